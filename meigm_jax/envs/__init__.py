"""Environment registry: config names to ``MarlEnv`` constructors."""

from __future__ import annotations

from typing import Callable

from meigm_jax.envs.base import EnvSpec, MarlEnv
from meigm_jax.envs.matrix_game import MatrixGame
from meigm_jax.envs.overcooked import OVERCOOKED_LAYOUTS
from meigm_jax.envs.smacv2_scenarios import RACES, TEAM_SIZES


def _smax(name: str, **kwargs) -> Callable[[], MarlEnv]:
    def make() -> MarlEnv:
        from meigm_jax.envs.smax import SmaxEnv

        return SmaxEnv(name, **kwargs)

    return make


# SMAX analogues of SMACv2's fifteen scenarios (paper Table 2): race x X vs Y.
SMAX_RACE_SCENARIOS = {
    f"smax_{race}_{size}": dict(race=race, num_allies=allies, num_enemies=enemies)
    for race in RACES for size, (allies, enemies) in TEAM_SIZES.items()
}


def _overcooked(layout: str) -> Callable[[], MarlEnv]:
    def make() -> MarlEnv:
        from meigm_jax.envs.overcooked import OvercookedEnv

        return OvercookedEnv(f"overcooked_{layout}", layout)

    return make


def _smacv2(name: str) -> Callable[[], MarlEnv]:
    def make() -> MarlEnv:
        from meigm_jax.envs.smacv2 import smacv2_env

        return smacv2_env(name)  # StarCraft II in worker processes (meigm_jax.programs.host.host_loop)

    return make


_REGISTRY: dict[str, Callable[[], MarlEnv]] = {
    "matrix_game": MatrixGame,
    "smax_5v5": _smax("smax_5v5", scenario="smacv2_5_units"),
    "smax_10v10": _smax("smax_10v10", scenario="smacv2_10_units"),
    "smax_20v20": _smax("smax_20v20", scenario="smacv2_20_units"),
    **{name: _smax(name, **kwargs) for name, kwargs in SMAX_RACE_SCENARIOS.items()},
    **{f"overcooked_{layout}": _overcooked(layout) for layout in OVERCOOKED_LAYOUTS},
    # Official SMACv2 (meigm_jax.sc2): same fifteen race x size names.
    **{f"smacv2_{race}_{size}": _smacv2(f"smacv2_{race}_{size}") for race in RACES for size in TEAM_SIZES},
}

ENV_NAMES = tuple(_REGISTRY)


def make_env(name: str) -> MarlEnv:
    if name not in _REGISTRY:
        raise KeyError(f"unknown env {name!r}; allowed: {', '.join(ENV_NAMES)}")
    return _REGISTRY[name]()


__all__ = ["ENV_NAMES", "OVERCOOKED_LAYOUTS", "RACES", "TEAM_SIZES", "EnvSpec", "MarlEnv", "make_env"]
