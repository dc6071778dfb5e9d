"""Typed, frozen run configuration.

``schema`` holds every key with its default, its meaning and its roles, as
frozen dataclasses; Hydra composes YAML overrides on top of
``defaults_dict()``; the result is turned into a frozen ``TrainConfig``
exactly once, by ``validate.from_dict``, which rejects unknown keys and
out-of-range values with a one-line ``ConfigError`` naming the key and what
is allowed.

An algorithm is a composition: a mixer (``alg.mixer``), a policy head
(``alg.policy``: soft policy through the OPT, or epsilon-greedy), and the OPT
variant (``opt.kind``); optionally a transform of the Q-values before mixing
(``premix.kind``), a TD-loss weighting (``td_weighting``), a fixed temperature
(``fixed_alpha``, or ``alpha_lr: 0``) and one gradient clip over all networks
(``grad_clip_scope``). A named algorithm (``configs/alg/<name>.yaml``) only
picks parts.
"""

from meigm_jax.config.algs import CONFIG_DIR, CUSTOM, alg_names, alg_parts
from meigm_jax.config.schema import (GRAD_CLIP_SCOPES, OUTSIDE_PROGRAM, POLICIES, REPLAY_FLOAT_DTYPES, RESUMABLE,
                                     SEED_LOOPS, TARGET_ENTROPY_SCOPES, TD_WEIGHTINGS, WANDB_MODES, AgentConfig,
                                     AlgConfig, CheckpointConfig, EnvConfig, HostLoopConfig, OptConfig,
                                     PremixConfig, SegmentConfig, TrainConfig, WandbConfig, defaults_dict,
                                     hydra_schema, keys_with, with_roles)
from meigm_jax.config.validate import (env_family, from_dict, paper_batch_size_run, paper_reward_scale,
                                       paper_td_lambda, to_dict, type_error)
from meigm_jax.errors import ConfigError

__all__ = [
    "CONFIG_DIR", "CUSTOM", "GRAD_CLIP_SCOPES", "OUTSIDE_PROGRAM", "POLICIES", "REPLAY_FLOAT_DTYPES", "RESUMABLE",
    "SEED_LOOPS", "TARGET_ENTROPY_SCOPES", "TD_WEIGHTINGS", "WANDB_MODES", "AgentConfig", "AlgConfig",
    "CheckpointConfig", "ConfigError", "EnvConfig", "HostLoopConfig", "OptConfig", "PremixConfig", "SegmentConfig",
    "TrainConfig", "WandbConfig", "alg_names", "alg_parts", "defaults_dict", "env_family", "from_dict",
    "hydra_schema", "keys_with", "paper_batch_size_run", "paper_reward_scale", "paper_td_lambda", "to_dict",
    "type_error", "with_roles",
]
