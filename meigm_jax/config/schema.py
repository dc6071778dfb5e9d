"""Every config key: its type, its default and what it means, in frozen
dataclasses, with the roles some keys play beside them.

``TrainConfig`` is the whole run configuration; Hydra's schema
(``hydra_schema``) and the plain defaults (``defaults_dict``) are derived
from it. The names a key may take are owned by the code that uses them:
mixers, agents, logit and pre-mix transforms by their registries under
``meigm_jax.algorithm.networks``, environments and their families by
``meigm_jax.envs``, named algorithms by the files under ``configs/alg/``;
the remaining small sets of choices are listed here.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Optional

POLICIES = ("soft", "epsilon_greedy")
TD_WEIGHTINGS = ("none", "release")
GRAD_CLIP_SCOPES = ("group", "joint")
WANDB_MODES = ("offline", "online", "disabled")
REPLAY_FLOAT_DTYPES = ("float32", "float16", "bfloat16")
SEED_LOOPS = ("vmap", "sequential")
SWEEP_MODES = ("product", "zip")
TARGET_ENTROPY_SCOPES = ("joint", "per_agent")

# Roles a top-level key can play, declared on its field (``with_roles``).
# Never enters a compiled program: how a run is logged, saved, resumed,
# joined and cached (the executable cache leaves it out of its key).
OUTSIDE_PROGRAM = "outside_program"
# May change when a run is resumed: it does not change what the remaining
# chunks compute.
RESUMABLE = "resumable"


def with_roles(*roles: str, **kwargs: Any) -> Any:
    """A dataclass field (``default=`` or ``default_factory=``) that plays ``roles``."""
    return field(metadata={"roles": frozenset(roles)}, **kwargs)


@dataclass(frozen=True)
class AlgConfig:
    # A file under configs/alg/ (its parts fill the keys below and any other
    # key it sets, where they are not given), or "custom" (parts as given).
    name: str = "me_qmix"
    # A name in the mixer registry (meigm_jax.algorithm.networks.mixers.MIXERS).
    mixer: str = "qmix"
    policy: str = "soft"


@dataclass(frozen=True)
class OptConfig:
    # A name in the transform registry (networks.opt.TRANSFORMS): "opt": the
    # order-preserving transformation of paper Eq. 2; "none": identity (the
    # +Entropy ablation); "mlp": unconstrained MLP; "affine": the release's.
    kind: str = "opt"
    layers: int = 1  # of the OPT (networks.opt.OPT_LAYERS)
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
    # b1_ij(s)) + b2_i(s), slope >= 1 (the released ME-QMIX). Registry:
    # networks.premix.PREMIXES.
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
    # env family's (meigm_jax.envs.FAMILIES): 10 on SMAX, whose returns are at
    # most 2 where SMACv2's are 20, the scale the paper's hyperparameters
    # were set at (JaxMARL's QMIX scales SMAX by 10 too); 1 elsewhere.
    reward_scale: Optional[float] = None


@dataclass(frozen=True)
class AgentConfig:
    # Observation encoder ahead of the GRU: "mlp" flattens the observation
    # into one Dense layer (pymarl's agent); "cnn" runs two 3x3 convolutions
    # over grid observations (Overcooked's H x W x 26) first (networks.agent.TORSOS).
    torso: str = "mlp"
    cnn_channels: int = 32
    # "rnn": the GRU agent of the paper (pymarl's); "feedforward": no memory,
    # for fully observed envs (Overcooked), the field's default there.
    # Registry: networks.agent.AGENTS.
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


# The values of a swept key: a list of numbers (``sweep.alpha_lr=[0.03,0.3]``).
SweepValues = Optional[tuple[float, ...]]


@dataclass(frozen=True)
class SweepEnvConfig:
    target_entropy_coef: SweepValues = None
    target_entropy_start_coef: SweepValues = None


@dataclass(frozen=True)
class SweepConfig:
    """Scalar hyperparameters trained side by side in one compiled program.

    Each key set here is a list of values of the key of the same name;
    every value (or combination of values) is a run of ``num_seeds`` seeds,
    all of them one program: the values are traced, not compiled in
    (``meigm_jax.algorithm.hyper``), and each value's seeds are the seeds a
    run of that value alone would have. The keys here are exactly the ones
    that change no shape and no code path; anything else is swept with
    Hydra's ``-m``. ``mode``: ``product`` (every combination of the swept
    keys' values, the default) or ``zip`` (the i-th values of every key
    together; the lists must be equally long).
    """

    mode: str = "product"
    lr: SweepValues = None
    opt_lr: SweepValues = None
    alpha_lr: SweepValues = None
    init_alpha: SweepValues = None
    fixed_alpha: SweepValues = None
    td_lambda: SweepValues = None
    gamma: SweepValues = None
    target_tau: SweepValues = None
    epsilon_start: SweepValues = None
    epsilon_finish: SweepValues = None
    env: SweepEnvConfig = field(default_factory=SweepEnvConfig)


@dataclass(frozen=True)
class TrainConfig:
    alg: AlgConfig = field(default_factory=AlgConfig)
    opt: OptConfig = field(default_factory=OptConfig)
    premix: PremixConfig = field(default_factory=PremixConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    wandb: WandbConfig = with_roles(OUTSIDE_PROGRAM, RESUMABLE, default_factory=WandbConfig)
    checkpoint: CheckpointConfig = with_roles(OUTSIDE_PROGRAM, RESUMABLE, default_factory=CheckpointConfig)
    host: HostLoopConfig = field(default_factory=HostLoopConfig)
    # Continue the run in hydra.run.dir from its newest checkpoint.
    resume: bool = with_roles(OUTSIDE_PROGRAM, RESUMABLE, default=False)
    # Multi-process: join the other processes first (meigm_jax.running.distributed),
    # waiting at most distributed_timeout seconds for all of them.
    distributed: bool = with_roles(OUTSIDE_PROGRAM, RESUMABLE, default=False)
    distributed_timeout: int = with_roles(OUTSIDE_PROGRAM, RESUMABLE, default=300)

    # JAX's persistent compilation cache (meigm_jax.programs.compile_cache): "default"
    # ($XDG_CACHE_HOME/meigm_jax/xla, ~/.cache/meigm_jax/xla when unset), a
    # directory, or null (off).
    compile_cache: Optional[str] = with_roles(OUTSIDE_PROGRAM, default="default")

    seed: int = 0
    num_seeds: int = 1  # per swept value
    sweep: SweepConfig = field(default_factory=SweepConfig)
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
    # value for the mixer (its registry entry: QPLEX 8, otherwise 4).
    batch_size_run: Optional[int] = None
    # A resumed run may be given more (or fewer) steps to go on to.
    total_timesteps: int = with_roles(RESUMABLE, default=10_050_000)
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

    # None: the paper's value: the mixer's own where its registry entry has
    # one (QPLEX 0.6), else the environment family's (meigm_jax.envs.FAMILIES).
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


def swept_keys() -> tuple[str, ...]:
    """Every key a sweep may trace, dotted (``env.target_entropy_coef``), in the schema's order."""
    def walk(cls: type, prefix: str) -> list[str]:
        keys = []
        for name, typ in typing.get_type_hints(cls).items():
            if dataclasses.is_dataclass(typ):
                keys += walk(typ, prefix + name + ".")
            elif name != "mode":
                keys.append(prefix + name)
        return keys

    return tuple(walk(SweepConfig, ""))


def key_value(tree: Any, dotted: str) -> Any:
    """``tree``'s value at a dotted key (``env.target_entropy_coef``)."""
    for part in dotted.split("."):
        tree = getattr(tree, part)
    return tree


def keys_with(role: str) -> tuple[str, ...]:
    """The top-level keys that play ``role``, in the schema's order."""
    return tuple(f.name for f in dataclasses.fields(TrainConfig) if role in f.metadata.get("roles", ()))


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
