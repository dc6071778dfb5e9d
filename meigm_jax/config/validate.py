"""Turning plain data into a frozen ``TrainConfig``, once: types, ranges
and combinations checked, a named algorithm's parts filled in from its file,
and the keys left null given the paper's values. Every rejection is one
``ConfigError`` line naming the key and what is allowed."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Mapping

from meigm_jax.config.algs import CUSTOM, alg_names, alg_parts
from meigm_jax.config.sweep import check_sweep, is_sweep
from meigm_jax.config.schema import (GRAD_CLIP_SCOPES, POLICIES, REPLAY_FLOAT_DTYPES, SEED_LOOPS,
                                     TARGET_ENTROPY_SCOPES, TD_WEIGHTINGS, WANDB_MODES, AlgConfig, TrainConfig)
from meigm_jax.errors import ConfigError


def env_family(env_name: str) -> str:
    """The family an env belongs to: its name's prefix (``smax_5v5`` -> ``smax``)."""
    return env_name.split("_", 1)[0]


# The paper's values of keys left null (Tables 7-11), each declared by its
# owner: the mixer's registry entry, else the env family's.

def paper_td_lambda(mixer: str, env_name: str) -> float:
    from meigm_jax.algorithm.networks.mixers import MIXERS
    from meigm_jax.envs import FAMILIES

    own = MIXERS[mixer].td_lambda
    return FAMILIES[env_family(env_name)].td_lambda if own is None else own


def paper_reward_scale(env_name: str) -> float:
    from meigm_jax.envs import FAMILIES

    return FAMILIES[env_family(env_name)].reward_scale


def paper_batch_size_run(mixer: str) -> int:
    from meigm_jax.algorithm.networks.mixers import MIXERS

    return MIXERS[mixer].batch_size_run


def _fail(key: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"config error: {key}={value!r} is not allowed; allowed: {allowed}")


def _base_type(typ: Any) -> tuple[Any, bool]:
    """(the type inside Optional, whether None is allowed)."""
    args = typing.get_args(typ)
    if typing.get_origin(typ) in (typing.Union, types.UnionType) and type(None) in args:
        return next(a for a in args if a is not type(None)), True
    return typ, False


def type_error(key: str, value: Any) -> ConfigError:
    """The one line for a value of the wrong type at dotted ``key`` (e.g. ``opt.layers``)."""
    typ: Any = TrainConfig
    for part in key.split("."):
        typ = typing.get_type_hints(typ)[part]
    return _fail(key, value, _allowed(_base_type(typ)[0]))


def _allowed(base: Any) -> str:
    if typing.get_origin(base) is tuple:
        return "a list of strings" if typing.get_args(base)[0] is str else "a non-empty list of finite numbers"
    return {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}[base]


def _coerce(key: str, value: Any, typ: Any) -> Any:
    """Convert one leaf to its field's type, or fail with one line."""
    base, optional = _base_type(typ)
    if optional and value is None:
        return None
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if base is bool:
        ok = isinstance(value, bool)
    elif base is int:
        ok = number and value == int(value)
        value = int(value) if ok else value
    elif base is float:
        ok = number and math.isfinite(value)
        value = float(value) if ok else value
    elif typing.get_origin(base) is tuple and typing.get_args(base)[0] is str:
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
        value = tuple(value) if ok else value
    elif typing.get_origin(base) is tuple:  # numbers (a swept key's values)
        ok = isinstance(value, (list, tuple)) and len(value) > 0 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
        value = tuple(float(v) for v in value) if ok else value
    else:
        ok = isinstance(value, base)
    if not ok:
        raise _fail(key, value, _allowed(base))
    return value


def _build(cls: type, data: Mapping[str, Any], prefix: str) -> Any:
    fields = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = prefix + unknown[0]
        allowed = ", ".join(prefix + name for name in fields)
        raise ConfigError(f"config error: unknown key '{key}'; allowed: {allowed}")
    kwargs = {}
    default = cls()
    hints = typing.get_type_hints(cls)
    for name in fields:
        if name not in data:
            continue
        value = data[name]
        sub_default = getattr(default, name)
        if dataclasses.is_dataclass(sub_default):
            value = {} if value is None else value  # an empty group, as YAML reads ``opt:`` alone
            if not isinstance(value, Mapping):
                raise _fail(prefix + name, value, "a mapping of sub-keys")
            kwargs[name] = _build(type(sub_default), value, prefix + name + ".")
        else:
            kwargs[name] = _coerce(prefix + name, value, hints[name])
    return cls(**kwargs)


def _check_range(cfg: TrainConfig) -> None:
    def need(ok: bool, key: str, value: Any, allowed: str) -> None:
        if not ok:
            raise _fail(key, value, allowed)

    # Late: the registries live with the code that builds each part (JAX).
    from meigm_jax.algorithm.networks.agent import AGENTS, TORSOS
    from meigm_jax.algorithm.networks.mixers import MIXERS
    from meigm_jax.algorithm.networks.opt import OPT_LAYERS, TRANSFORMS
    from meigm_jax.algorithm.networks.premix import PREMIXES
    from meigm_jax.envs import ENV_NAMES, FAMILIES

    algs = alg_names()
    need(cfg.alg.name in algs or cfg.alg.name == CUSTOM, "alg.name", cfg.alg.name, ", ".join(algs))
    need(cfg.alg.mixer in MIXERS, "alg.mixer", cfg.alg.mixer, ", ".join(MIXERS))
    need(cfg.alg.policy in POLICIES, "alg.policy", cfg.alg.policy, ", ".join(POLICIES))
    need(cfg.opt.kind in TRANSFORMS, "opt.kind", cfg.opt.kind, ", ".join(TRANSFORMS))
    need(cfg.opt.layers in OPT_LAYERS, "opt.layers", cfg.opt.layers, " or ".join(map(str, OPT_LAYERS)))
    need(cfg.premix.kind in PREMIXES, "premix.kind", cfg.premix.kind, ", ".join(PREMIXES))
    need(cfg.td_weighting in TD_WEIGHTINGS, "td_weighting", cfg.td_weighting, ", ".join(TD_WEIGHTINGS))
    need(cfg.grad_clip_scope in GRAD_CLIP_SCOPES, "grad_clip_scope", cfg.grad_clip_scope,
         ", ".join(GRAD_CLIP_SCOPES))
    if cfg.alg.policy != "soft":
        greedy = f"alg {cfg.alg.name} is epsilon-greedy and has no policy head"
        need(cfg.opt.kind == "none", "opt.kind", cfg.opt.kind, f"none ({greedy})")
        need(cfg.premix.kind == "none", "premix.kind", cfg.premix.kind,
             f"none ({greedy}; a pre-mix transform needs the soft head)")
        need(cfg.td_weighting == "none", "td_weighting", cfg.td_weighting,
             f"none ({greedy}; the weighting reads the policy logits)")
    need(cfg.replay_float_dtype in REPLAY_FLOAT_DTYPES, "replay_float_dtype", cfg.replay_float_dtype,
         ", ".join(REPLAY_FLOAT_DTYPES))
    need(cfg.seed_loop in SEED_LOOPS, "seed_loop", cfg.seed_loop, ", ".join(SEED_LOOPS))
    need(cfg.agent.torso in TORSOS, "agent.torso", cfg.agent.torso, ", ".join(TORSOS))
    need(cfg.agent.kind in AGENTS, "agent.kind", cfg.agent.kind, ", ".join(AGENTS))
    need(cfg.segment.length >= 0, "segment.length", cfg.segment.length,
         "an integer >= 0 (0: whole episodes)")
    need(cfg.segment.burn_in >= 0, "segment.burn_in", cfg.segment.burn_in, "an integer >= 0")
    if cfg.segment.burn_in > 0:
        need(cfg.segment.length > 0, "segment.burn_in", cfg.segment.burn_in,
             "0 (a burn-in needs segment.length > 0)")
        need(cfg.agent.kind == "rnn", "segment.burn_in", cfg.segment.burn_in,
             "0 (agent.kind=feedforward has no hidden state to warm up)")
    need(cfg.env_steps_per_update >= 0, "env_steps_per_update", cfg.env_steps_per_update,
         "an integer >= 0 (0: one gradient step per batch_size_run episodes)")
    need(cfg.agent.cnn_channels > 0, "agent.cnn_channels", cfg.agent.cnn_channels, "an integer > 0")
    need(cfg.wandb.mode in WANDB_MODES, "wandb.mode", cfg.wandb.mode, ", ".join(WANDB_MODES))
    need(cfg.checkpoint.every >= 0, "checkpoint.every", cfg.checkpoint.every,
         "an integer >= 0 (0: only at the end)")
    need(cfg.checkpoint.keep > 0, "checkpoint.keep", cfg.checkpoint.keep, "an integer > 0")
    need(cfg.env.name in ENV_NAMES, "env.name", cfg.env.name, ", ".join(ENV_NAMES))
    need(cfg.host.num_workers > 0, "host.num_workers", cfg.host.num_workers, "an integer > 0")
    need(cfg.host.worker_timeout > 0, "host.worker_timeout", cfg.host.worker_timeout, "a number > 0")
    if cfg.batch_size_run is not None:
        need(cfg.batch_size_run > 0, "batch_size_run", cfg.batch_size_run, "an integer > 0")
    for key in ("num_seeds", "num_envs", "total_timesteps", "batch_size",
                "buffer_size", "target_update_interval", "test_interval", "test_episodes",
                "hidden_dim", "mixer_embed", "hypernet_embed", "epsilon_anneal_steps",
                "distributed_timeout"):
        need(getattr(cfg, key) > 0, key, getattr(cfg, key), "an integer > 0")
    for key in ("opt.embed_dim", "opt.hypernet_embed", "premix.embed_dim", "premix.hypernet_embed"):
        group, name = key.split(".")
        value = getattr(getattr(cfg, group), name)
        need(value > 0, key, value, "an integer > 0")
    need(cfg.opt.min_slope > 0, "opt.min_slope", cfg.opt.min_slope, "a number > 0")
    for key in ("lr", "opt_lr", "init_alpha", "grad_clip"):
        need(getattr(cfg, key) > 0, key, getattr(cfg, key), "a number > 0")
    need(cfg.alpha_lr >= 0, "alpha_lr", cfg.alpha_lr, "a number >= 0 (0: the temperature stays at init_alpha)")
    if cfg.fixed_alpha is not None:
        need(cfg.fixed_alpha > 0, "fixed_alpha", cfg.fixed_alpha,
             "a number > 0, or null (learned from init_alpha at alpha_lr)")
    need(cfg.target_entropy_scope in TARGET_ENTROPY_SCOPES, "target_entropy_scope",
         cfg.target_entropy_scope, ", ".join(TARGET_ENTROPY_SCOPES))
    for key in ("alpha_min", "alpha_max"):
        if getattr(cfg, key) is not None:
            need(getattr(cfg, key) > 0, key, getattr(cfg, key), "a number > 0, or null (no bound)")
    if cfg.alpha_min is not None:
        need(cfg.alpha_min <= cfg.init_alpha, "alpha_min", cfg.alpha_min,
             f"a number <= init_alpha ({cfg.init_alpha}), or null")
    if cfg.alpha_max is not None:
        need(cfg.alpha_max >= cfg.init_alpha, "alpha_max", cfg.alpha_max,
             f"a number >= init_alpha ({cfg.init_alpha}), or null")
    if cfg.env.reward_scale is not None:
        need(cfg.env.reward_scale > 0, "env.reward_scale", cfg.env.reward_scale,
             "a number > 0 (null: the env family's)")
    if cfg.td_lambda is not None:
        need(0.0 <= cfg.td_lambda <= 1.0, "td_lambda", cfg.td_lambda, "a number in [0, 1]")
    need(0.0 <= cfg.gamma <= 1.0, "gamma", cfg.gamma, "a number in [0, 1]")
    need(0.0 <= cfg.target_tau <= 1.0, "target_tau", cfg.target_tau, "a number in [0, 1] (0: hard copies)")
    for key in ("epsilon_start", "epsilon_finish"):
        need(0.0 <= getattr(cfg, key) <= 1.0, key, getattr(cfg, key), "a number in [0, 1]")
    need(cfg.env.reward_shaping_horizon >= 0, "env.reward_shaping_horizon",
         cfg.env.reward_shaping_horizon, "an integer >= 0 (0: no shaped reward)")
    if cfg.env.target_entropy_start_coef is not None:
        need(cfg.env.target_entropy_start_coef >= 0, "env.target_entropy_start_coef",
             cfg.env.target_entropy_start_coef, "a number >= 0, or null (a constant target)")
    need(cfg.env.target_entropy_anneal_steps > 0, "env.target_entropy_anneal_steps",
         cfg.env.target_entropy_anneal_steps, "an integer > 0")
    need(cfg.env.target_entropy_coef >= 0, "env.target_entropy_coef", cfg.env.target_entropy_coef,
         "a number >= 0")
    need(cfg.batch_size <= cfg.buffer_size or cfg.segment.length > 0, "batch_size", cfg.batch_size,
         f"an integer <= buffer_size ({cfg.buffer_size})")
    need(cfg.num_envs <= cfg.buffer_size, "num_envs", cfg.num_envs,
         f"an integer <= buffer_size ({cfg.buffer_size})")
    if FAMILIES[env_family(cfg.env.name)].steps_on_host:
        if is_sweep(cfg):
            raise ConfigError(f"config error: sweep is not allowed for {cfg.env.name}; allowed: none (a host-loop "
                              "run trains one value; sweep with Hydra's -m)")
        if cfg.num_seeds != 1:
            raise ConfigError(f"config error: num_seeds={cfg.num_seeds} is not allowed for {cfg.env.name}; "
                              "allowed: 1 (a host-loop run trains one seed; start one run per seed)")
        if cfg.resume:
            raise ConfigError(f"config error: resume=true is not allowed for {cfg.env.name}; allowed: false")
        if cfg.host.num_workers > cfg.buffer_size:
            raise ConfigError(f"config error: host.num_workers={cfg.host.num_workers} is not allowed; "
                              f"allowed: an integer <= buffer_size ({cfg.buffer_size})")


def _fill(data: Mapping[str, Any], parts: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with each key of ``parts`` it leaves out, sub-keys one by one.
    A group given as something other than a mapping is left for ``_build``
    to reject."""
    out = dict(data)
    for key, value in parts.items():
        if isinstance(value, Mapping):
            given = out.get(key) or {}
            if isinstance(given, Mapping):
                out[key] = _fill(given, value)
        else:
            out.setdefault(key, value)
    return out


def from_dict(data: Mapping[str, Any]) -> TrainConfig:
    """Validate a composed config once and return it frozen.

    A named ``alg.name`` fills every key its file under configs/alg/ sets
    (``alg.mixer``, ``alg.policy``, ``opt.kind``, and any other part) where
    the data does not give it (a Hydra-composed config gives them all).
    ``td_lambda``, ``batch_size_run`` and ``env.reward_scale`` left null
    become the paper's values for the mixer and the environment family.
    """
    alg = data.get("alg") or {}
    if isinstance(alg, Mapping):
        data = _fill(data, alg_parts(alg.get("name", AlgConfig.name)))
    cfg = _build(TrainConfig, data, "")
    _check_range(cfg)
    check_sweep(cfg, _check_range)
    if cfg.td_lambda is None:
        cfg = dataclasses.replace(cfg, td_lambda=paper_td_lambda(cfg.alg.mixer, cfg.env.name))
    if cfg.batch_size_run is None:
        cfg = dataclasses.replace(cfg, batch_size_run=paper_batch_size_run(cfg.alg.mixer))
    if cfg.env.reward_scale is None:
        cfg = dataclasses.replace(cfg, env=dataclasses.replace(
            cfg.env, reward_scale=paper_reward_scale(cfg.env.name)))
    return cfg


def to_dict(cfg: TrainConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)
