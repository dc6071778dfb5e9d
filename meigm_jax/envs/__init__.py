"""Environment registry: config names to ``MarlEnv`` constructors."""

from __future__ import annotations

from typing import Callable

from meigm_jax.envs.base import EnvSpec, MarlEnv
from meigm_jax.envs.matrix_game import MatrixGame


def _smax(name: str, scenario: str) -> Callable[[], MarlEnv]:
    def make() -> MarlEnv:
        from meigm_jax.envs.smax import SmaxEnv

        return SmaxEnv(name, scenario)

    return make


_REGISTRY: dict[str, Callable[[], MarlEnv]] = {
    "matrix_game": MatrixGame,
    "smax_5v5": _smax("smax_5v5", "smacv2_5_units"),
    "smax_10v10": _smax("smax_10v10", "smacv2_10_units"),
    "smax_20v20": _smax("smax_20v20", "smacv2_20_units"),
}

ENV_NAMES = tuple(_REGISTRY)


def make_env(name: str) -> MarlEnv:
    if name not in _REGISTRY:
        raise KeyError(f"unknown env {name!r}; allowed: {', '.join(ENV_NAMES)}")
    return _REGISTRY[name]()


__all__ = ["ENV_NAMES", "EnvSpec", "MarlEnv", "make_env"]
