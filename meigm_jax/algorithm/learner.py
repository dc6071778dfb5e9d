"""The learner: what learning needs, whoever steps the envs.

``make_learner(config, spec)`` gives a ``Learner``: the initial state,
storing episodes and the gradient steps they are owed, the chunk's
metrics, and the schedule (how many chunks, where each ends, how training
rollouts act). Its parts are the module-level pure functions below, each of
a static ``LearnerSpec`` and the train state, bound to one spec. Any driver
that steps envs uses it: the compiled rollouts of
``programs.jax_trainer.make_train`` and the SMACv2 host loop
(``programs.host.host_loop``). The losses live in ``losses``, the targets
in ``targets``, the optimisers in ``optimisers``.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from meigm_jax.algorithm import replay
from meigm_jax.algorithm.hyper import Hyperparameters, hyperparameters
from meigm_jax.algorithm.losses import make_loss
from meigm_jax.algorithm.networks.model import Networks, build_networks, init_params
from meigm_jax.algorithm.optimisers import Optimisers, build_optimisers, init_optimiser_states, joint_clip, log_alpha_bounds
from meigm_jax.algorithm.packing import PackPlan, plans
from meigm_jax.algorithm.packing import lane_counts as packing_lane_counts
from meigm_jax.algorithm.policy import epsilon_schedule
from meigm_jax.algorithm.seeds import all_seeds
from meigm_jax.config.schema import TrainConfig
from meigm_jax.envs.base import EnvSpec
from meigm_jax.types import (ChunkMetrics, Counters, Episodes, LossInfo, OptimiserStates, Params, RolloutStats,
                             TargetParams, TrainState)


def make_step(cfg: TrainConfig, nets: Networks, spec: EnvSpec, opts: Optimisers,
              hyper: Hyperparameters | None = None):
    """One gradient step on a padded batch, computed packed when it fits.

    (params, target, opt_states, batch, key) -> (params, opt_states, info):
    the step of ``make_update``, on the batch's episodes packed into the
    fewest rows of ``packing.lane_counts`` that hold them (the same loss and
    gradients), or padded; ``info.rows`` is how many rows were computed.
    """
    update = make_update(cfg, nets, spec, opts, hyper)
    # Windows all have one length: nothing to pack.
    use_packing = cfg.pack_episodes and not spec.fixed_length and cfg.segment.length == 0
    counts = packing_lane_counts(cfg.batch_size, spec.episode_limit) if use_packing else ()

    def step(params, target, opt_states, batch: Episodes, key: jax.Array,
             env_steps: jax.Array | None = None):
        layouts = plans(batch.filled, counts)
        fits = [all_seeds(layout.fits) for layout in layouts]
        choice = jnp.argmax(jnp.stack(fits + [jnp.asarray(True)]))  # the first that fits
        branches = [lambda layout=layout: update(params, target, opt_states, batch, key, layout, env_steps)
                    for layout in layouts]
        branches.append(lambda: update(params, target, opt_states, batch, key, None, env_steps))
        if len(branches) == 1:
            return branches[0]()
        return jax.lax.switch(choice, branches)

    return step


def make_update(cfg: TrainConfig, nets: Networks, spec: EnvSpec, opts: Optimisers,
                hyper: Hyperparameters | None = None):
    grad_fn = jax.grad(make_loss(cfg, nets, spec, hyper), has_aux=True)

    def update(params: Params, target: TargetParams, opt_states: OptimiserStates,
               batch: Episodes, key: jax.Array, layout: PackPlan | None = None,
               env_steps: jax.Array | None = None):
        grads, info = grad_fn(params, target, batch, key, layout, env_steps)
        if cfg.grad_clip_scope == "joint":  # build_optimisers then clips no group
            grads = joint_clip(grads, cfg.grad_clip)
        q_updates, q_state = opts.q.update((grads.agent, grads.mixer), opt_states.q)
        agent, mixer = optax.apply_updates((params.agent, params.mixer), q_updates)
        transform, transform_state = params.transform, opt_states.transform
        log_alpha, alpha_state = params.log_alpha, opt_states.alpha
        if cfg.is_soft:
            transform_updates, transform_state = opts.transform.update(grads.transform,
                                                                       opt_states.transform)
            transform = optax.apply_updates(params.transform, transform_updates)
        if cfg.learns_alpha:
            alpha_updates, alpha_state = opts.alpha.update(grads.log_alpha, opt_states.alpha)
            log_alpha = jnp.clip(optax.apply_updates(params.log_alpha, alpha_updates),
                                 *log_alpha_bounds(cfg))
        params = Params(agent=agent, mixer=mixer, transform=transform, log_alpha=log_alpha)
        return params, OptimiserStates(q=q_state, transform=transform_state, alpha=alpha_state), info

    return update


class LearnerSpec(NamedTuple):
    """What a learner is built from and never changes while it trains (static)."""

    config: TrainConfig
    # The keys a sweep may trace: the config's numbers, or one run's traced values.
    hyper: Hyperparameters
    env: EnvSpec
    nets: Networks
    opts: Optimisers
    step: Callable  # the gradient step, make_step's
    zero_losses: LossInfo


class ChunkTotals(NamedTuple):
    """What a chunk's rollouts and gradient steps add up to, for its metrics."""

    rollouts: RolloutStats
    entropy_sum: jax.Array
    updates: jax.Array
    losses: LossInfo  # sums over updates
    first_nonfinite: jax.Array  # [] int32 number of the first update with a non-finite loss, -1: none


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


def init_state(ls: LearnerSpec, key: jax.Array) -> TrainState:
    """A seed's initial train state: fresh networks, target copies, an empty replay."""
    cfg = ls.config
    key, init_key = jax.random.split(key)
    params = init_params(ls.nets, cfg, ls.env, init_key, ls.hyper.alpha_at_start)
    return TrainState(
        params=params,
        target=TargetParams(agent=params.agent, mixer=params.mixer),
        opt_states=init_optimiser_states(ls.opts, params),
        replay=replay.init(replay.empty_episode(ls.env, cfg.replay_float_dtype), cfg.buffer_size),
        counters=Counters(*([jnp.zeros((), jnp.int32)] * len(Counters._fields))),
        key=key,
    )


def chunk_end(ls: LearnerSpec, index):
    """The env steps a seed has taken when chunk ``index`` ends."""
    return jnp.minimum((index + 1) * ls.config.test_interval, ls.config.total_timesteps)


def epsilon(ls: LearnerSpec, state: TrainState) -> jax.Array:
    """The baselines' exploration rate at the seed's env steps."""
    return epsilon_schedule(state.counters.env_steps, ls.hyper.epsilon_start, ls.hyper.epsilon_finish,
                            ls.config.epsilon_anneal_steps)


def reward_shaping(ls: LearnerSpec, state: TrainState) -> jax.Array:
    """Weight of the shaped reward in the training reward at the seed's env steps."""
    if not ls.env.has_shaped_reward:
        return jnp.zeros(())
    return shaping_weight(state.counters.env_steps, ls.config.env.reward_shaping_horizon)


def learn(ls: LearnerSpec, state: TrainState, n_updates: jax.Array, key: jax.Array,
          first_nonfinite: jax.Array):
    """``n_updates`` gradient steps on batches drawn from the state's replay:
    (params, target, opt_states, loss sums, first non-finite update)."""
    cfg = ls.config

    def body(i, carry):
        params, target, opt_states, loss_sums, first_bad = carry
        sample_key, loss_key = jax.random.split(jax.random.fold_in(key, i))
        if cfg.segment.length > 0:
            batch = replay.sample_windows(state.replay, sample_key, cfg.batch_size,
                                          cfg.segment.length, cfg.segment.burn_in)
        else:
            batch = replay.sample(state.replay, sample_key, cfg.batch_size)
        params, opt_states, info = ls.step(params, target, opt_states, batch, loss_key,
                                           state.counters.env_steps)
        if cfg.target_tau > 0:  # the code path; a sweep's values all agree on it
            tau = ls.hyper.target_tau
            target = jax.tree.map(lambda t, p: (1 - tau) * t + tau * p,
                                  target, TargetParams(params.agent, params.mixer))
        loss_sums = jax.tree.map(jnp.add, loss_sums, info)
        finite = jnp.isfinite(info.loss_q) & jnp.isfinite(info.loss_opt) & jnp.isfinite(info.loss_alpha)
        first_bad = jnp.where((first_bad < 0) & ~finite, state.counters.updates + i + 1, first_bad)
        return params, target, opt_states, loss_sums, first_bad

    carry = (state.params, state.target, state.opt_states, ls.zero_losses, first_nonfinite)
    return jax.lax.fori_loop(0, n_updates, body, carry)


def learn_from(ls: LearnerSpec, state: TrainState, totals: ChunkTotals, result,
               new_episodes: jax.Array | int, key: jax.Array, learn_key: jax.Array,
               active: jax.Array | bool = True, stored: jax.Array | bool = True):
    """Everything after a rollout (``rollout.RolloutResult``), whoever
    stepped the envs: store its episodes (``stored``: all, or a mask [E] of
    the finished ones), take the gradient steps ``new_episodes`` are owed,
    copy the target and count. A seed that is not ``active`` (its chunk is
    done while other seeds' go on) comes out unchanged; ``key`` becomes the
    state's key."""
    cfg = ls.config
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
    params, target, opt_states, loss_sums, first_bad = learn(ls, state, n_updates, learn_key,
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
    totals = ChunkTotals(
        rollouts=jax.tree.map(jnp.add, totals.rollouts, result.stats),
        entropy_sum=totals.entropy_sum + result.diagnostics_sum.entropy,
        updates=totals.updates + n_updates,
        losses=jax.tree.map(jnp.add, totals.losses, loss_sums),
        first_nonfinite=first_bad,
    )
    # Select the small parts only: a select over the replay would copy it.
    keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(active, a, b), new, old)
    state = keep(state._replace(replay=None), old_state._replace(replay=None))._replace(replay=buffer)
    return state, keep(totals, old_totals)


def zero_totals(ls: LearnerSpec) -> ChunkTotals:
    """A chunk's totals before its first rollout."""
    return ChunkTotals(
        rollouts=RolloutStats(*([jnp.zeros(())] * len(RolloutStats._fields))),
        entropy_sum=jnp.zeros(()), updates=jnp.zeros((), jnp.int32), losses=ls.zero_losses,
        first_nonfinite=jnp.full((), -1, jnp.int32),
    )


def chunk_metrics(ls: LearnerSpec, state: TrainState, totals: ChunkTotals, evaluation) -> ChunkMetrics:
    """A chunk's metrics from its training totals and its greedy evaluation (a ``RolloutResult``)."""
    cfg = ls.config
    test, train = evaluation.stats, totals.rollouts
    # Gaps averaged over the states the greedy evaluation visited.
    gap = lambda total: total / test.length_sum if cfg.is_soft else jnp.asarray(jnp.nan)
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
        # The mean over agents where each has its own (target_entropy_scope).
        alpha=jnp.exp(state.params.log_alpha).mean() if cfg.is_soft else jnp.zeros(()),
        policy_entropy=totals.entropy_sum / jnp.maximum(train.length_sum, 1.0),
        learner_entropy=per_update.policy_entropy if cfg.is_soft else jnp.asarray(jnp.nan),
        epsilon=jnp.zeros(()) if cfg.is_soft else epsilon(ls, state),
        q_tot=per_update.q_tot,
        learner_rows=per_update.rows,
        misalignment_gap=gap(evaluation.diagnostics_sum.gap_logits),
        misalignment_gap_expected=gap(evaluation.diagnostics_sum.gap_expected),
        shaping_weight=reward_shaping(ls, state),
        test_shaped_return=test.shaped_return_sum / test.episodes,
        train_shaped_return=train.shaped_return_sum / train.episodes,
        first_nonfinite_update=totals.first_nonfinite,
    )


class Learner(NamedTuple):
    """A learner's parts, bound to its ``LearnerSpec``; nothing here steps an env."""

    static: LearnerSpec
    num_chunks: int
    acting_mode: str  # how training rollouts act (rollout.make_act): "soft" or "epsilon_greedy"
    init: Callable[[jax.Array], TrainState]
    chunk_end: Callable  # (index) -> env steps a seed has taken when chunk ``index`` ends
    epsilon: Callable  # (state) -> the baselines' exploration rate
    shaping_weight: Callable  # (state) -> weight of the shaped reward in the training reward
    zero_totals: Callable  # () -> empty chunk totals
    learn_from: Callable  # (state, totals, RolloutResult, new_episodes, key, learn_key, active, stored)
    chunk_metrics: Callable  # (state, totals, evaluation RolloutResult) -> ChunkMetrics

    config = property(lambda self: self.static.config)
    spec = property(lambda self: self.static.env)
    nets = property(lambda self: self.static.nets)


def make_learner(cfg: TrainConfig, spec: EnvSpec, hyper: Hyperparameters | None = None) -> Learner:
    """The learner of ``cfg`` for envs of ``spec``; ``hyper``: one run's
    values of the swept keys (default: the config's)."""
    hyper = hyperparameters(cfg) if hyper is None else hyper
    nets = build_networks(cfg, spec)
    opts = build_optimisers(cfg, hyper)
    ls = LearnerSpec(config=cfg, hyper=hyper, env=spec, nets=nets, opts=opts,
                     step=make_step(cfg, nets, spec, opts, hyper),
                     zero_losses=LossInfo(*([jnp.zeros(())] * len(LossInfo._fields))))
    bind = lambda fn: functools.partial(fn, ls)
    return Learner(
        static=ls, num_chunks=math.ceil(cfg.total_timesteps / cfg.test_interval),
        acting_mode="soft" if cfg.is_soft else "epsilon_greedy",
        init=bind(init_state), chunk_end=bind(chunk_end), epsilon=bind(epsilon),
        shaping_weight=bind(reward_shaping), zero_totals=bind(zero_totals), learn_from=bind(learn_from),
        chunk_metrics=bind(chunk_metrics))
