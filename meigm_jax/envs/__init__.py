"""Environment registry: config names to ``MarlEnv`` constructors, and the
env families (the name's prefix before ``_``) with the settings each declares."""

from __future__ import annotations

from dataclasses import dataclass
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
    # Official SMACv2 (meigm_jax.programs.host): same fifteen race x size names.
    **{f"smacv2_{race}_{size}": _smacv2(f"smacv2_{race}_{size}") for race in RACES for size in TEAM_SIZES},
}

ENV_NAMES = tuple(_REGISTRY)


@dataclass(frozen=True)
class EnvFamily:
    # The paper's TD(lambda) on this family for mixers without their own
    # (Tables 7-11; pymarl2's SMACv2 QMIX uses 0.4 too, so the baselines
    # share the row of their mixer): what a null ``td_lambda`` takes.
    td_lambda: float = 0.4
    # What a null ``env.reward_scale`` takes: agents learn from this x the
    # env's reward.
    reward_scale: float = 1.0
    # The envs step on the host, in worker processes (meigm_jax.programs.host):
    # a run then trains one seed, cannot resume, and has at most buffer_size
    # workers.
    steps_on_host: bool = False


# Every env name's family (``config.env_family``) has an entry.
FAMILIES: dict[str, EnvFamily] = {
    "matrix": EnvFamily(),
    # SMAX pays at most 1 of damage reward and 1 for a win per episode, where
    # SMACv2 pays 20, the scale the paper's hyperparameters were set at.
    "smax": EnvFamily(reward_scale=10.0),
    "overcooked": EnvFamily(td_lambda=0.6),
    "smacv2": EnvFamily(steps_on_host=True),  # StarCraft II
}


def make_env(name: str) -> MarlEnv:
    if name not in _REGISTRY:
        raise KeyError(f"unknown env {name!r}; allowed: {', '.join(ENV_NAMES)}")
    return _REGISTRY[name]()


__all__ = ["ENV_NAMES", "FAMILIES", "OVERCOOKED_LAYOUTS", "RACES", "TEAM_SIZES", "EnvFamily", "EnvSpec", "MarlEnv",
           "make_env"]
