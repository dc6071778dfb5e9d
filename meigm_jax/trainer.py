"""``make_train(config)``: the whole training run as pure, jittable functions.

    trainer = make_train(cfg)
    state, metrics = jax.jit(jax.vmap(trainer.train, axis_name=SEEDS_AXIS))(seed_keys)

``train(key)`` runs ``num_chunks`` chunks in a ``lax.scan``; a chunk
collects episodes and takes gradient steps (a ``lax.while_loop``) until the
seed has seen the next ``test_interval`` env steps, then evaluates greedily.
Naming the seed axis (``learner.SEEDS_AXIS``, as ``meigm_jax.program`` does)
lets the seeds share loop conditions and the learner's layout; without it
the program computes the same numbers, more slowly.
The CLI calls the same ``init`` and ``chunk`` one chunk at a time, so it can
log between compiled chunks; nothing else returns to Python.
"""

from __future__ import annotations

import math
import os
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from meigm_jax import replay
from meigm_jax.config import ConfigError, TrainConfig
from meigm_jax.envs import make_env
from meigm_jax.envs.base import EnvSpec, MarlEnv
from meigm_jax.learner import (
    Networks,
    build_networks,
    build_optimisers,
    init_optimiser_states,
    init_params,
    any_seed,
    make_step,
)
from meigm_jax.policy import epsilon_schedule
from meigm_jax.rollout import ENTROPY, GAP_EXPECTED, GAP_LOGITS, RolloutResult, make_act, rollout
from meigm_jax.types import (
    ChunkMetrics,
    Counters,
    Episodes,
    LossInfo,
    RolloutStats,
    TargetParams,
    TrainState,
)


class Trainer(NamedTuple):
    config: TrainConfig
    env: MarlEnv
    spec: EnvSpec
    nets: Networks
    num_chunks: int
    init: Callable[[jax.Array], TrainState]
    chunk: Callable[[TrainState, jax.Array], tuple[TrainState, ChunkMetrics]]
    evaluate: Callable  # (params, key) -> RolloutResult of greedy test episodes
    train: Callable[[jax.Array], tuple[TrainState, ChunkMetrics]]
    # The parts of a chunk that do not step an env, for drivers that step
    # envs themselves (the SMACv2 host loop): they compute what ``chunk`` does.
    epsilon: Callable  # (state) -> the baselines' exploration rate
    chunk_end: Callable  # (index) -> env steps at the end of chunk ``index``
    zero_totals: Callable  # () -> empty chunk totals
    learn_from: Callable  # (state, totals, RolloutResult, new_episodes, key, learn_key, active, stored)
    chunk_metrics: Callable  # (state, totals, evaluation RolloutResult) -> ChunkMetrics


class _ChunkTotals(NamedTuple):
    rollouts: RolloutStats
    entropy_sum: jax.Array
    updates: jax.Array
    losses: LossInfo  # sums over updates
    first_nonfinite: jax.Array  # [] int32 number of the first update with a non-finite loss, -1: none


def empty_episode(spec: EnvSpec, float_dtype: str = "float32") -> Episodes:
    """One zero episode: the replay's item shape and dtypes.

    Integer observations (Overcooked's uint8 grids) keep their dtype; float
    observations and states are stored as ``float_dtype`` (the networks
    compute in float32 whatever is stored).
    """
    n, k, T = spec.num_agents, spec.num_actions, spec.episode_limit
    stored = jnp.dtype(float_dtype)
    obs_dtype = spec.obs_dtype if jnp.issubdtype(spec.obs_dtype, jnp.integer) else stored
    return Episodes(
        obs=jnp.zeros((T + 1, n) + tuple(spec.obs_shape), obs_dtype),
        state=jnp.zeros((T + 1, spec.stored_state_dim), stored),
        avail=jnp.zeros((T + 1, n, k), bool),
        actions=jnp.zeros((T, n), jnp.uint8),
        reward=jnp.zeros((T,), jnp.float32),
        terminal=jnp.zeros((T,), bool),
        filled=jnp.zeros((T,), bool),
    )


def replay_bytes_per_seed(cfg: TrainConfig, spec: EnvSpec) -> int:
    item = jax.eval_shape(lambda: empty_episode(spec, cfg.replay_float_dtype))
    return cfg.buffer_size * sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(item))


def device_memory_bytes(device: jax.Device) -> int:
    """Memory of one device: the allocator's limit on accelerators, host RAM on CPU."""
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def seed_device_count(num_seeds: int, num_devices: int) -> int:
    """How many devices the seeds are spread over: as many as divide them evenly."""
    return math.gcd(num_seeds, num_devices)


def check_fits(cfg: TrainConfig, spec: EnvSpec, devices: list[jax.Device]) -> None:
    """Refuse, before compiling, what this env and these devices cannot run.

    The replays of the seeds a device holds must fit in its memory with a
    quarter to spare for parameters, batches and activations (a replay that
    passes can still run out of memory with a very large batch).
    """
    window = cfg.segment.burn_in + cfg.segment.length
    if window > spec.episode_limit:
        raise ConfigError(f"config error: segment.length={cfg.segment.length} is not allowed for {spec.name} "
                          f"(with segment.burn_in={cfg.segment.burn_in}); allowed: burn_in + length <= "
                          f"the episode limit {spec.episode_limit}")
    if cfg.agent.torso == "cnn" and len(spec.obs_shape) != 3:
        raise ConfigError(f"config error: agent.torso='cnn' is not allowed for {spec.name} "
                          f"(observations of shape {tuple(spec.obs_shape)}); allowed: mlp")
    seeds_per_device = cfg.num_seeds // seed_device_count(cfg.num_seeds, len(devices))
    need = replay_bytes_per_seed(cfg, spec) * seeds_per_device
    # One of this process's own devices: another process's cannot be asked.
    local = next((d for d in devices if d.process_index == jax.process_index()), devices[0])
    have = device_memory_bytes(local)
    if need > 0.75 * have:
        gib = 2**30
        raise ConfigError(
            f"config error: buffer_size={cfg.buffer_size} does not fit: {seeds_per_device} seed(s) "
            f"per device x {replay_bytes_per_seed(cfg, spec) / gib:.2f} GiB of replay each = "
            f"{need / gib:.2f} GiB, but {local.platform} device {local.id} has {have / gib:.2f} GiB "
            f"(at most 75% for the replay); lower buffer_size or num_seeds, or add devices")


def updates_due(episodes_before, episodes_after, batch_size_run: int):
    """Gradient steps owed for the episodes just collected: one per
    ``batch_size_run`` episodes (the paper's replay ratio), carried across
    rollouts; the callers take none until the replay holds a full batch."""
    return episodes_after // batch_size_run - episodes_before // batch_size_run


def shaping_weight(env_steps: jax.Array, horizon: int) -> jax.Array:
    """Weight of the shaped reward: 1 at step 0, linearly down to 0 at ``horizon`` (0: none)."""
    if horizon <= 0:
        return jnp.zeros(())
    return jnp.clip(1.0 - env_steps / horizon, 0.0, 1.0)


def make_train(cfg: TrainConfig, env: MarlEnv | None = None) -> Trainer:
    env = env if env is not None else make_env(cfg.env.name)
    spec = env.spec
    nets = build_networks(cfg, spec)
    opts = build_optimisers(cfg)
    update = make_step(cfg, nets, spec, opts)
    train_mode = "soft" if cfg.is_soft else "epsilon_greedy"
    num_chunks = math.ceil(cfg.total_timesteps / cfg.test_interval)
    zero_losses = LossInfo(*([jnp.zeros(())] * len(LossInfo._fields)))

    def init(key: jax.Array) -> TrainState:
        key, init_key = jax.random.split(key)
        params = init_params(nets, cfg, spec, init_key)
        return TrainState(
            params=params,
            target=TargetParams(agent=params.agent, mixer=params.mixer),
            opt_states=init_optimiser_states(opts, params),
            replay=replay.init(empty_episode(spec, cfg.replay_float_dtype), cfg.buffer_size),
            counters=Counters(*([jnp.zeros((), jnp.int32)] * len(Counters._fields))),
            key=key,
        )

    def chunk_end(index):
        """The env steps a seed has taken when chunk ``index`` ends."""
        return jnp.minimum((index + 1) * cfg.test_interval, cfg.total_timesteps)

    def epsilon(state: TrainState) -> jax.Array:
        return epsilon_schedule(state.counters.env_steps, cfg.epsilon_start, cfg.epsilon_finish,
                                cfg.epsilon_anneal_steps)

    def reward_shaping(state: TrainState) -> jax.Array:
        if not spec.has_shaped_reward:
            return jnp.zeros(())
        return shaping_weight(state.counters.env_steps, cfg.env.reward_shaping_horizon)

    def learn(state: TrainState, n_updates: jax.Array, key: jax.Array, first_nonfinite: jax.Array):
        def body(i, carry):
            params, target, opt_states, loss_sums, first_bad = carry
            sample_key, loss_key = jax.random.split(jax.random.fold_in(key, i))
            if cfg.segment.length > 0:
                batch = replay.sample_windows(state.replay, sample_key, cfg.batch_size,
                                              cfg.segment.length, cfg.segment.burn_in)
            else:
                batch = replay.sample(state.replay, sample_key, cfg.batch_size)
            params, opt_states, info = update(params, target, opt_states, batch, loss_key,
                                              state.counters.env_steps)
            if cfg.target_tau > 0:
                target = jax.tree.map(lambda t, p: (1 - cfg.target_tau) * t + cfg.target_tau * p,
                                      target, TargetParams(params.agent, params.mixer))
            loss_sums = jax.tree.map(jnp.add, loss_sums, info)
            finite = jnp.isfinite(info.loss_q) & jnp.isfinite(info.loss_opt) & jnp.isfinite(info.loss_alpha)
            first_bad = jnp.where((first_bad < 0) & ~finite, state.counters.updates + i + 1, first_bad)
            return params, target, opt_states, loss_sums, first_bad

        carry = (state.params, state.target, state.opt_states, zero_losses, first_nonfinite)
        return jax.lax.fori_loop(0, n_updates, body, carry)

    def learn_from(state: TrainState, totals: _ChunkTotals, result: RolloutResult,
                   new_episodes: jax.Array | int, key: jax.Array, learn_key: jax.Array,
                   active: jax.Array | bool = True, stored: jax.Array | bool = True):
        """Everything after a rollout, whoever stepped the envs: store its
        episodes (``stored``: all, or a mask [E] of the finished ones), take
        the gradient steps ``new_episodes`` are owed, copy the target and
        count. A seed that is not ``active`` (its chunk is done while other
        seeds' go on) comes out unchanged; ``key`` becomes the state's key."""
        old_state, old_totals = state, totals
        buffer = replay.add(state.replay, result.episodes, keep=stored & active)
        c = state.counters
        episodes = c.episodes + new_episodes
        env_steps = c.env_steps + result.stats.length_sum.astype(jnp.int32)
        if cfg.env_steps_per_update > 0:
            n_updates = updates_due(c.env_steps, env_steps, cfg.env_steps_per_update)
        else:
            n_updates = updates_due(c.episodes, episodes, cfg.batch_size_run)
        # Windows are drawn with replacement: one stored episode is enough.
        min_stored = 1 if cfg.segment.length > 0 else cfg.batch_size
        n_updates = jnp.where(replay.can_sample(buffer, min_stored) & active, n_updates, 0)
        state = state._replace(replay=buffer)
        params, target, opt_states, loss_sums, first_bad = learn(state, n_updates, learn_key,
                                                                 totals.first_nonfinite)
        last_copy = c.last_target_update
        if cfg.target_tau == 0:
            copy = (n_updates > 0) & (episodes - last_copy >= cfg.target_update_interval)
            online = TargetParams(params.agent, params.mixer)
            target = jax.tree.map(lambda t, p: jnp.where(copy, p, t), target, online)
            last_copy = jnp.where(copy, episodes, last_copy)
        counters = Counters(
            env_steps=env_steps,
            episodes=episodes, updates=c.updates + n_updates, last_target_update=last_copy,
        )
        state = TrainState(params=params, target=target, opt_states=opt_states, replay=buffer,
                           counters=counters, key=key)
        totals = _ChunkTotals(
            rollouts=jax.tree.map(jnp.add, totals.rollouts, result.stats),
            entropy_sum=totals.entropy_sum + result.diagnostics_sum[ENTROPY],
            updates=totals.updates + n_updates,
            losses=jax.tree.map(jnp.add, totals.losses, loss_sums),
            first_nonfinite=first_bad,
        )
        # Select the small parts only: a select over the replay would copy it.
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(active, a, b), new, old)
        state = keep(state._replace(replay=None), old_state._replace(replay=None))._replace(replay=buffer)
        return state, keep(totals, old_totals)

    def rollout_and_learn(state: TrainState, totals: _ChunkTotals, active: jax.Array):
        """One rollout of the JAX envs and its gradient steps."""
        key, rollout_key, learn_key = jax.random.split(state.key, 3)
        act = make_act(nets, state.params, train_mode, epsilon(state))
        result = rollout(env, act, cfg.hidden_dim, cfg.num_envs, rollout_key, record=True,
                         bootstrap_timeout=cfg.env.bootstrap_timeout,
                         shaping_weight=reward_shaping(state))
        return learn_from(state, totals, result, cfg.num_envs, key, learn_key, active)

    def evaluate(params, key):
        """Greedy decentralised episodes; soft algorithms also measure the misalignment gaps."""
        act = make_act(nets, params, "greedy", diagnose=cfg.is_soft)
        return rollout(env, act, cfg.hidden_dim, cfg.test_episodes, key, record=False)

    def zero_totals() -> _ChunkTotals:
        return _ChunkTotals(
            rollouts=RolloutStats(*([jnp.zeros(())] * len(RolloutStats._fields))),
            entropy_sum=jnp.zeros(()), updates=jnp.zeros((), jnp.int32), losses=zero_losses,
            first_nonfinite=jnp.full((), -1, jnp.int32),
        )

    def chunk_metrics(state: TrainState, totals: _ChunkTotals, evaluation: RolloutResult) -> ChunkMetrics:
        """A chunk's metrics from its training totals and its greedy evaluation."""
        test, train = evaluation.stats, totals.rollouts
        # Gaps averaged over the states the greedy evaluation visited.
        gap = lambda i: (evaluation.diagnostics_sum[i] / test.length_sum if cfg.is_soft
                         else jnp.asarray(jnp.nan))
        # Losses are undefined in a chunk with no gradient step: NaN, which
        # the metrics writer records as null.
        per_update = jax.tree.map(
            lambda s: jnp.where(totals.updates > 0, s / jnp.maximum(totals.updates, 1), jnp.nan),
            totals.losses)
        return ChunkMetrics(
            env_steps=state.counters.env_steps,
            episodes=state.counters.episodes,
            updates=state.counters.updates,
            test_return=test.return_sum / test.episodes,
            test_win_rate=test.win_sum / test.episodes,
            test_length=test.length_sum / test.episodes,
            train_return=train.return_sum / train.episodes,
            train_win_rate=train.win_sum / train.episodes,
            loss_q=per_update.loss_q,
            loss_opt=per_update.loss_opt,
            loss_alpha=per_update.loss_alpha,
            td_target=per_update.target,
            alpha=jnp.exp(state.params.log_alpha) if cfg.is_soft else jnp.zeros(()),
            policy_entropy=totals.entropy_sum / jnp.maximum(train.length_sum, 1.0),
            learner_entropy=per_update.policy_entropy if cfg.is_soft else jnp.asarray(jnp.nan),
            epsilon=jnp.zeros(()) if cfg.is_soft else epsilon(state),
            q_tot=per_update.q_tot,
            learner_rows=per_update.rows,
            misalignment_gap=gap(GAP_LOGITS),
            misalignment_gap_expected=gap(GAP_EXPECTED),
            shaping_weight=reward_shaping(state),
            test_shaped_return=test.shaped_return_sum / test.episodes,
            train_shaped_return=train.shaped_return_sum / train.episodes,
            first_nonfinite_update=totals.first_nonfinite,
        )

    def chunk(state: TrainState, index: jax.Array) -> tuple[TrainState, ChunkMetrics]:
        until = chunk_end(index)
        # The loop runs while any seed of the sweep still has env steps to
        # take (learner.any_seed over the named seed vmap), so its condition
        # is one value and vmap adds no select over the whole carry, which
        # would copy every seed's replay at every rollout; seeds that are
        # done sit the remaining rollouts out unchanged.
        active = lambda state: state.counters.env_steps < until
        state, totals = jax.lax.while_loop(
            lambda carry: any_seed(active(carry[0])),
            lambda carry: rollout_and_learn(*carry, active(carry[0])),
            (state, zero_totals()),
        )
        key, eval_key = jax.random.split(state.key)
        state = state._replace(key=key)
        return state, chunk_metrics(state, totals, evaluate(state.params, eval_key))

    def train(key: jax.Array):
        state = init(key)
        return jax.lax.scan(chunk, state, jnp.arange(num_chunks))

    return Trainer(config=cfg, env=env, spec=spec, nets=nets, num_chunks=num_chunks, init=init,
                   chunk=chunk, evaluate=evaluate, train=train, epsilon=epsilon, chunk_end=chunk_end,
                   zero_totals=zero_totals, learn_from=learn_from, chunk_metrics=chunk_metrics)


def seed_keys(cfg: TrainConfig) -> jax.Array:
    """One key per seed; seed i of a sweep is the same run whatever num_seeds is."""
    base = jax.random.PRNGKey(cfg.seed)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(cfg.num_seeds))
