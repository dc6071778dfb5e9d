"""SMACv2's fifteen scenarios as ``StarCraftCapabilityEnvWrapper`` keyword arguments.

Sources of the values (SMACv2, github.com/oxwhirl/smacv2):
  [yaml]   the published run configs ``sc2_gen_{protoss,terran,zerg}.yaml``
           (``env_args`` block; the per-size configs differ only in
           ``capability_config.n_units`` / ``n_enemies``);
  [readme] the README's example ``distribution_config`` (terran 5v5), which
           additionally repeats ``n_enemies`` under ``start_positions``;
  [maps]   ``smacv2/env/starcraft2/maps/smac_maps.py``: the ``10gen_<race>``
           maps have ``limit`` 200 steps. SMACv2 takes the episode limit from
           the map, not from ``env_args``, so it is kept apart here
           (``EPISODE_LIMIT``) and checked against ``get_env_info()``.
Nothing here imports smacv2 (or JAX). The races and team sizes are also the
SMAX analogues' (``meigm_jax.envs``).
"""

from __future__ import annotations

import copy
from typing import Any

RACES = ("protoss", "terran", "zerg")
# name suffix -> (n_units, n_enemies): SMACv2 paper Table/README scenario list [readme].
TEAM_SIZES = {"5v5": (5, 5), "10v10": (10, 10), "10v11": (10, 11), "20v20": (20, 20),
              "20v23": (20, 23)}
SCENARIO_NAMES = tuple(f"smacv2_{race}_{size}" for race in RACES for size in TEAM_SIZES)

# team_gen.unit_types per race and the one type allies never get as their
# only unit (exception_unit_types) [yaml, readme].
UNIT_TYPES = {
    "protoss": ("stalker", "zealot", "colossus"),
    "terran": ("marine", "marauder", "medivac"),
    "zerg": ("zergling", "hydralisk", "baneling"),
}
EXCEPTION_UNIT_TYPES = {"protoss": ("colossus",), "terran": ("medivac",), "zerg": ("baneling",)}
UNIT_WEIGHTS = (0.45, 0.45, 0.1)  # [yaml, readme]
EPISODE_LIMIT = 200  # [maps] 10gen_* "limit"

# Paper Table 7: target entropy coefficient (x n agents), terran 0.32, else 0.24.
TARGET_ENTROPY_COEF = {"protoss": 0.24, "terran": 0.32, "zerg": 0.24}

# env_args shared by all fifteen [yaml], except capability_config.
_COMMON: dict[str, Any] = {
    "continuing_episode": False,
    "difficulty": "7",
    "game_version": None,
    "move_amount": 2,
    "obs_all_health": True,
    "obs_instead_of_state": False,
    "obs_last_action": False,
    "obs_own_health": True,
    "obs_pathing_grid": False,
    "obs_terrain_height": False,
    "obs_timestep_number": False,
    "reward_death_value": 10,
    "reward_defeat": 0,
    "reward_negative_scale": 0.5,
    "reward_only_positive": True,
    "reward_scale": True,
    "reward_scale_rate": 20,
    "reward_sparse": False,
    "reward_win": 200,
    "replay_dir": "",
    "replay_prefix": "",
    "conic_fov": False,
    "use_unit_ranges": True,
    "min_attack_range": 2,
    "obs_own_pos": True,
    "num_fov_actions": 12,
    "state_last_action": True,
    "state_timestep_number": False,
    "step_mul": 8,
    "heuristic_ai": False,
    "debug": False,
    "prob_obs_enemy": 1.0,
    "action_mask": True,
}


def parse(name: str) -> tuple[str, int, int]:
    """``smacv2_<race>_<X>v<Y>`` -> (race, n_units, n_enemies)."""
    if name not in SCENARIO_NAMES:
        raise KeyError(f"unknown SMACv2 scenario {name!r}; allowed: {', '.join(SCENARIO_NAMES)}")
    _, race, size = name.split("_")
    return (race, *TEAM_SIZES[size])


def env_args(name: str, seed: int | None = None) -> dict[str, Any]:
    """The keyword arguments of ``StarCraftCapabilityEnvWrapper`` for one scenario."""
    race, n_units, n_enemies = parse(name)
    args = copy.deepcopy(_COMMON)
    args["map_name"] = f"10gen_{race}"  # [yaml]
    args["capability_config"] = {
        "n_units": n_units,
        "n_enemies": n_enemies,
        "team_gen": {
            "dist_type": "weighted_teams",
            "unit_types": list(UNIT_TYPES[race]),
            "weights": list(UNIT_WEIGHTS),
            "exception_unit_types": list(EXCEPTION_UNIT_TYPES[race]),
            "observe": True,
        },
        "start_positions": {
            "dist_type": "surrounded_and_reflect",
            "p": 0.5,
            "n_enemies": n_enemies,  # [readme]
            "map_x": 32,
            "map_y": 32,
        },
    }
    if seed is not None:
        args["seed"] = int(seed)
    return args
