"""Typed, frozen run configuration.

The dataclasses below are the single source of truth for every key and its
default. Hydra composes YAML overrides on top of ``defaults_dict()``; the
result is turned into a frozen ``TrainConfig`` exactly once, by
``from_dict``, which rejects unknown keys and out-of-range values with a
one-line ``ConfigError`` naming the key and what is allowed.

An algorithm is a composition: a mixer (``alg.mixer``), a policy head
(``alg.policy``: soft policy through the OPT, or epsilon-greedy), and the OPT
variant (``opt.kind``); optionally a transform of the Q-values before mixing
(``premix.kind``), a TD-loss weighting (``td_weighting``), a fixed temperature
(``fixed_alpha``, or ``alpha_lr: 0``) and one gradient clip over all networks
(``grad_clip_scope``). The named presets in ``ALG_PRESETS`` (and
``PRESET_PARTS``) only pick parts.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from meigm_jax.errors import ConfigError


MIXERS = ("vdn", "qmix", "qplex")
POLICIES = ("soft", "epsilon_greedy")
OPT_KINDS = ("opt", "none", "mlp", "affine")
PREMIX_KINDS = ("none", "residual")
TD_WEIGHTINGS = ("none", "release")
GRAD_CLIP_SCOPES = ("group", "joint")
OPT_LAYERS = (1, 2)
TORSOS = ("mlp", "cnn")
AGENT_KINDS = ("rnn", "feedforward")
WANDB_MODES = ("offline", "online", "disabled")
REPLAY_FLOAT_DTYPES = ("float32", "float16", "bfloat16")
SEED_LOOPS = ("vmap", "sequential")
TARGET_ENTROPY_SCOPES = ("joint", "per_agent")

# Named algorithms: (mixer, policy head, opt kind). Baselines have no OPT.
ALG_PRESETS: dict[str, tuple[str, str, str]] = {
    "me_qmix": ("qmix", "soft", "opt"),
    "me_vdn": ("vdn", "soft", "opt"),
    "me_qplex": ("qplex", "soft", "opt"),
    "qmix": ("qmix", "epsilon_greedy", "none"),
    "qplex": ("qplex", "epsilon_greedy", "none"),
    "vdn": ("vdn", "epsilon_greedy", "none"),
    # Paper Tables 3 and 4: ME-QMIX without the OPT (+Entropy) and with an
    # unconstrained MLP in its place.
    "me_qmix_no_opt": ("qmix", "soft", "none"),
    "me_qmix_mlp": ("qmix", "soft", "mlp"),
    # The authors' released ME-QMIX code (not the paper's algorithm): VDN
    # over residually transformed Q-values, an affine logit transform, and
    # the parts in PRESET_PARTS (docs/choices.md, "The released ME-QMIX").
    "me_qmix_release": ("vdn", "soft", "affine"),
}

# The parts beyond (mixer, policy head, opt kind) that a preset picks, as
# config keys, filled in by from_dict where the data leaves them out (the
# Hydra alg file of the preset gives them all).
PRESET_PARTS: dict[str, dict[str, Any]] = {
    "me_qmix_release": {
        "premix": {"kind": "residual"},
        "td_weighting": "release",
        # An alg-level key, not init_alpha/alpha_lr: env files set those
        # (matrix_game) and Hydra applies +env after alg.
        "fixed_alpha": 0.03,
        "grad_clip_scope": "joint",
    },
}


@dataclass(frozen=True)
class AlgConfig:
    name: str = "me_qmix"
    mixer: str = "qmix"
    policy: str = "soft"


@dataclass(frozen=True)
class OptConfig:
    # "opt": the order-preserving transformation of paper Eq. 2;
    # "none": identity (the +Entropy ablation); "mlp": unconstrained MLP.
    kind: str = "opt"
    layers: int = 1
    embed_dim: int = 32  # d1, hidden width of the 2-layer OPT
    hypernet_embed: int = 64
    # Keeps the generated slopes strictly positive, so order is strict.
    min_slope: float = 1e-6


@dataclass(frozen=True)
class PremixConfig:
    # A transform g_i(Q_i; s) of each agent's k Q-values before the mixer,
    # part of the critic: in the online and target networks, trained by the
    # TD loss; the logit transform then reads g_i(Q_i). "none": the mixer
    # sees Q_i; "residual": g_i(x) = x + sum_j |W2_ij(s)| ELU(|W1_ij(s)| x +
    # b1_ij(s)) + b2_i(s), slope >= 1 (the released ME-QMIX).
    kind: str = "none"
    embed_dim: int = 16  # j = 1..embed_dim (the release: half of mixer_embed 32)
    hypernet_embed: int = 64


@dataclass(frozen=True)
class EnvConfig:
    # Registry name (meigm_jax.envs.ENV_NAMES) of the environment.
    name: str = "matrix_game"
    # Target joint entropy = coef * num_agents (paper Table 7).
    target_entropy_coef: float = 0.24
    # A number: the per-agent target starts here instead and falls linearly
    # to target_entropy_coef over target_entropy_anneal_steps env steps
    # (exploration early, as the baselines' epsilon). None: constant.
    target_entropy_start_coef: Optional[float] = None
    target_entropy_anneal_steps: int = 100_000
    # pymarl2 treats a time-out as terminal on SMACv2; True bootstraps instead.
    bootstrap_timeout: bool = False
    # Envs with a shaped reward (Overcooked): its weight falls linearly from
    # 1 to 0 over this many env steps (JaxMARL's 2.5M); 0 trains without it.
    reward_shaping_horizon: int = 2_500_000
    # Agents learn from reward_scale x the env's reward; the replay and the
    # logged returns stay in the env's units (the learner scales). None: the
    # family's (paper_reward_scale): 10 on SMAX, whose returns are at most 2
    # where SMACv2's are 20, the scale the paper's hyperparameters were set
    # at (JaxMARL's QMIX scales SMAX by 10 too); 1 elsewhere.
    reward_scale: Optional[float] = None


@dataclass(frozen=True)
class AgentConfig:
    # Observation encoder ahead of the GRU: "mlp" flattens the observation
    # into one Dense layer (pymarl's agent); "cnn" runs two 3x3 convolutions
    # over grid observations (Overcooked's H x W x 26) first.
    torso: str = "mlp"
    cnn_channels: int = 32
    # "rnn": the GRU agent of the paper (pymarl's); "feedforward": no memory,
    # for fully observed envs (Overcooked), the field's default there.
    kind: str = "rnn"


@dataclass(frozen=True)
class SegmentConfig:
    """What the learner trains on: whole stored episodes (``length`` 0,
    pymarl's way and the default), or windows of ``length`` steps cut from
    stored episodes at uniformly drawn steps, so that a gradient step costs
    a window and not a whole episode (Overcooked's are 400 steps long); the
    TD(lambda) return is cut at a window's end by bootstrapping there.
    ``burn_in`` steps are unrolled ahead of a window only to warm up the
    GRU's hidden state, which starts from zero at the window's first step."""

    length: int = 0
    burn_in: int = 0


@dataclass(frozen=True)
class WandbConfig:
    # offline: written under the run directory, never uploaded (default);
    # online: uploaded; disabled: no W&B at all.
    mode: str = "offline"
    project: str = "meigm_jax"
    entity: Optional[str] = None
    # None: one group per run directory (all seeds of one experiment).
    group: Optional[str] = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class CheckpointConfig:
    # Save the whole training state of all seeds every this many gradient
    # updates (checked between compiled chunks); 0 saves only at the end.
    every: int = 0
    keep: int = 2  # newest checkpoints kept


@dataclass(frozen=True)
class HostLoopConfig:
    # Official SMACv2 runs (smacv2_* envs): StarCraft II steps on the host in
    # this many worker processes (meigm_jax.programs.host.host_loop).
    num_workers: int = 8
    # Seconds a worker may take to answer a step before it is killed and
    # restarted (its partial episode is dropped).
    worker_timeout: float = 60.0


@dataclass(frozen=True)
class TrainConfig:
    alg: AlgConfig = field(default_factory=AlgConfig)
    opt: OptConfig = field(default_factory=OptConfig)
    premix: PremixConfig = field(default_factory=PremixConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    host: HostLoopConfig = field(default_factory=HostLoopConfig)
    # Continue the run in hydra.run.dir from its newest checkpoint.
    resume: bool = False
    # Multi-process: join the other processes first (meigm_jax.running.distributed),
    # waiting at most distributed_timeout seconds for all of them.
    distributed: bool = False
    distributed_timeout: int = 300

    # JAX's persistent compilation cache (meigm_jax.running.compile_cache): "default"
    # ($XDG_CACHE_HOME/meigm_jax/xla, ~/.cache/meigm_jax/xla when unset), a
    # directory, or null (off).
    compile_cache: Optional[str] = "default"

    seed: int = 0
    num_seeds: int = 1
    # How a device runs its block of seeds in a training chunk. vmap: all at
    # once, the right choice on an accelerator; the seeds then share loop
    # conditions and one packed learner layout (the one the seed with the
    # longest episodes needs). sequential: one after another
    # (meigm_jax.programs.program), each with its own layout and early stop; faster
    # where vmapped seeds have no idle cores to fill (a small CPU; README).
    seed_loop: str = "vmap"
    # Parallel environments per rollout; each rollout collects one whole
    # episode per environment.
    num_envs: int = 4
    # The paper's episodes per gradient step (pymarl's batch_size_run): the
    # trainer takes num_envs / batch_size_run gradient steps per rollout, so
    # the replay ratio is the paper's at any num_envs. None: the paper's
    # value for the mixer (QPLEX 8, otherwise 4).
    batch_size_run: Optional[int] = None
    total_timesteps: int = 10_050_000
    # > 0: one gradient step per this many env steps collected, instead of
    # one per batch_size_run episodes (a replay ratio for long episodes).
    env_steps_per_update: int = 0

    lr: float = 1e-3  # agent + mixer (theta)
    opt_lr: float = 1e-3  # OPT (phi)
    alpha_lr: float = 0.3  # log alpha (omega), Adam; 0: alpha stays at init_alpha
    init_alpha: float = 1.0
    # A number: the temperature is held at it (no alpha loss; init_alpha and
    # alpha_lr are ignored). An alg-level choice that env files leave alone.
    fixed_alpha: Optional[float] = None
    # What the temperature holds to the target entropy. "joint": one alpha,
    # the agents' summed entropy held to coef x agents (the paper's SAC
    # form). "per_agent": one alpha per agent, each agent's own entropy held
    # to coef (one cook cannot stay near-uniform while the other turns
    # greedy); the soft value then subtracts sum_i alpha_i log pi_i.
    target_entropy_scope: str = "joint"
    # Bounds on a learned temperature (null: none beyond float range).
    alpha_min: Optional[float] = None
    alpha_max: Optional[float] = None
    grad_clip: float = 10.0
    # "group": agent+mixer and the logit transform are clipped to grad_clip
    # each; "joint": one global norm over both (one optimiser over all).
    grad_clip_scope: str = "group"
    # "release": the released ME-QMIX's weighted TD loss (learner.td_weights).
    td_weighting: str = "none"

    # None: the paper's value for this algorithm and environment family.
    td_lambda: Optional[float] = None
    gamma: float = 0.99
    batch_size: int = 128  # episodes per gradient step
    buffer_size: int = 5000  # episodes
    # Storage dtype of float observations and states in the replay (the
    # networks compute in float32): float16 halves the replay (smax_5v5,
    # 5000 episodes: 0.78 GiB per seed instead of 1.5 GiB).
    replay_float_dtype: str = "float16"
    # Lay short sampled episodes end to end in fewer learner rows when they
    # fit (same loss and gradients, less padding computed; meigm_jax.algorithm.packing).
    pack_episodes: bool = True
    target_update_interval: int = 200  # episodes between hard target copies
    target_tau: float = 0.0  # > 0: Polyak averaging every gradient step instead

    epsilon_start: float = 1.0
    epsilon_finish: float = 0.05
    epsilon_anneal_steps: int = 100_000

    hidden_dim: int = 64
    mixer_embed: int = 32
    hypernet_embed: int = 64

    test_interval: int = 10_000  # env steps between greedy evaluations
    test_episodes: int = 32

    @property
    def is_soft(self) -> bool:
        return self.alg.policy == "soft"

    @property
    def learns_alpha(self) -> bool:
        """Whether the temperature is learned (soft head, no fixed_alpha, alpha_lr > 0)."""
        return self.is_soft and self.fixed_alpha is None and self.alpha_lr > 0

    @property
    def alpha_at_start(self) -> float:
        """The temperature a run starts at: ``fixed_alpha`` when it is held
        fixed, else the ``init_alpha`` it is learned from."""
        return self.init_alpha if self.fixed_alpha is None else self.fixed_alpha



# Paper Tables 7-11. QMIX-family lambda by env family (pymarl2's SMACv2 QMIX
# also uses 0.4, so baselines share the row of their mixer); QPLEX 0.6.
_TD_LAMBDA_QMIX = {"smax": 0.4, "overcooked": 0.6, "matrix": 0.4}


def paper_td_lambda(mixer: str, env_name: str) -> float:
    if mixer == "qplex":
        return 0.6
    return _TD_LAMBDA_QMIX.get(env_family(env_name), 0.4)


# SMAX pays at most 1 of damage reward and 1 for a win per episode.
_REWARD_SCALE = {"smax": 10.0}


def paper_reward_scale(env_name: str) -> float:
    return _REWARD_SCALE.get(env_family(env_name), 1.0)


def paper_batch_size_run(mixer: str) -> int:
    return 8 if mixer == "qplex" else 4


def env_family(env_name: str) -> str:
    return env_name.split("_", 1)[0]


def defaults_dict() -> dict[str, Any]:
    """Every key with its default, as plain data."""
    return dataclasses.asdict(TrainConfig())


def hydra_schema(cls: type = None) -> type:
    """``TrainConfig`` as Hydra's typed schema: the same fields, types and
    defaults in dataclasses that are not frozen (OmegaConf makes a frozen
    dataclass read-only, and Hydra merges overrides into the schema)."""
    cls = TrainConfig if cls is None else cls
    hints = typing.get_type_hints(cls)
    fields = []
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            sub = hydra_schema(hints[f.name])
            fields.append((f.name, sub, dataclasses.field(default_factory=sub)))
        else:
            fields.append((f.name, hints[f.name], dataclasses.field(default=f.default)))
    return dataclasses.make_dataclass(cls.__name__, fields)


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
        return "a list of strings"
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
    elif typing.get_origin(base) is tuple:
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
        value = tuple(value) if ok else value
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

    from meigm_jax.envs import ENV_NAMES  # late: envs import jax

    need(cfg.alg.name in ALG_PRESETS or cfg.alg.name == "custom", "alg.name", cfg.alg.name,
         ", ".join(ALG_PRESETS))
    need(cfg.alg.mixer in MIXERS, "alg.mixer", cfg.alg.mixer, ", ".join(MIXERS))
    need(cfg.alg.policy in POLICIES, "alg.policy", cfg.alg.policy, ", ".join(POLICIES))
    need(cfg.opt.kind in OPT_KINDS, "opt.kind", cfg.opt.kind, ", ".join(OPT_KINDS))
    need(cfg.opt.layers in OPT_LAYERS, "opt.layers", cfg.opt.layers, "1 or 2")
    need(cfg.premix.kind in PREMIX_KINDS, "premix.kind", cfg.premix.kind, ", ".join(PREMIX_KINDS))
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
    need(cfg.agent.kind in AGENT_KINDS, "agent.kind", cfg.agent.kind, ", ".join(AGENT_KINDS))
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
    if env_family(cfg.env.name) == "smacv2":  # StarCraft II workers on the host (meigm_jax.sc2)
        if cfg.num_seeds != 1:
            raise ConfigError(f"config error: num_seeds={cfg.num_seeds} is not allowed for {cfg.env.name}; "
                              "allowed: 1 (a host-loop run trains one seed; start one run per seed)")
        if cfg.resume:
            raise ConfigError(f"config error: resume=true is not allowed for {cfg.env.name}; allowed: false")
        if cfg.host.num_workers > cfg.buffer_size:
            raise ConfigError(f"config error: host.num_workers={cfg.host.num_workers} is not allowed; "
                              f"allowed: an integer <= buffer_size ({cfg.buffer_size})")


def from_dict(data: Mapping[str, Any]) -> TrainConfig:
    """Validate a composed config once and return it frozen.

    A named ``alg.name`` fills ``alg.mixer``, ``alg.policy`` and ``opt.kind``
    (and the keys of its ``PRESET_PARTS``) from its preset where they are not
    given (the Hydra alg files give them all). ``td_lambda``,
    ``batch_size_run`` and ``env.reward_scale`` left null become the paper's
    values for the mixer and environment.
    """
    data = dict(data)
    alg = dict(data.get("alg") or {})
    opt = dict(data.get("opt") or {})
    name = alg.get("name", AlgConfig.name)
    if name in ALG_PRESETS:
        mixer, policy, kind = ALG_PRESETS[name]
        alg.setdefault("mixer", mixer)
        alg.setdefault("policy", policy)
        opt.setdefault("kind", kind)
    data["alg"], data["opt"] = alg, opt
    for key, value in PRESET_PARTS.get(name, {}).items():
        if isinstance(value, Mapping):
            data[key] = {**value, **dict(data.get(key) or {})}
        else:
            data.setdefault(key, value)
    cfg = _build(TrainConfig, data, "")
    _check_range(cfg)
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
