"""``make_train(config)``: training as a pure, jittable function of a key.

    trainer = make_train(cfg)
    state, metrics = jax.jit(jax.vmap(trainer.train, axis_name=SEED_AXIS))(seed_keys(cfg))

The learner (``algorithm.learner.make_learner``) is everything a chunk does
that does not step an env; this program steps the JAX envs for it in
compiled rollouts.

``Trainer.train(key)`` runs ``num_chunks`` chunks in a ``lax.scan``; a chunk
collects episodes and takes gradient steps (a ``lax.while_loop``) until the
seed has seen the next ``test_interval`` env steps, then evaluates greedily.
Naming the seed axis (``seeds.SEED_AXIS``, as ``meigm_jax.programs.program`` does)
lets the seeds share loop conditions and the learner's layout; without it
the program computes the same numbers, more slowly.
The CLI calls the same ``init`` and ``chunk`` one chunk at a time, so it can
log between compiled chunks; nothing else returns to Python.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from meigm_jax.algorithm.hyper import Hyperparameters
from meigm_jax.algorithm.learner import ChunkTotals, Learner, make_learner
from meigm_jax.algorithm.rollout import make_act, rollout
from meigm_jax.algorithm.seeds import any_seed
from meigm_jax.config import TrainConfig
from meigm_jax.envs import make_env
from meigm_jax.envs.base import MarlEnv
from meigm_jax.types import ChunkMetrics, TrainState


class Trainer(NamedTuple):
    """A ``Learner`` and the JAX env its chunks step in compiled rollouts."""

    learner: Learner
    env: MarlEnv
    chunk: Callable[[TrainState, jax.Array], tuple[TrainState, ChunkMetrics]]
    evaluate: Callable  # (params, key) -> RolloutResult of greedy test episodes
    train: Callable[[jax.Array], tuple[TrainState, ChunkMetrics]]

    # The learner's parts that callers of a trainer read most.
    config = property(lambda self: self.learner.config)
    spec = property(lambda self: self.learner.spec)
    nets = property(lambda self: self.learner.nets)
    num_chunks = property(lambda self: self.learner.num_chunks)
    init = property(lambda self: self.learner.init)


def make_train(cfg: TrainConfig, env: MarlEnv | None = None, hyper: Hyperparameters | None = None) -> Trainer:
    """The learner of ``cfg`` and the env it steps (default: the registry's
    ``cfg.env.name``) in compiled rollouts; ``hyper``: one run's values of
    the swept keys (default: the config's; ``meigm_jax.algorithm.hyper``)."""
    env = env if env is not None else make_env(cfg.env.name)
    learner = make_learner(cfg, env.spec, hyper)
    nets, epsilon, learn_from = learner.nets, learner.epsilon, learner.learn_from

    def rollout_and_learn(state: TrainState, totals: ChunkTotals, active: jax.Array):
        """One rollout of the JAX envs and its gradient steps."""
        key, rollout_key, learn_key = jax.random.split(state.key, 3)
        act = make_act(nets, state.params, learner.acting_mode, epsilon(state))
        result = rollout(env, act, cfg.hidden_dim, cfg.num_envs, rollout_key, record=True,
                         bootstrap_timeout=cfg.env.bootstrap_timeout,
                         shaping_weight=learner.shaping_weight(state))
        return learn_from(state, totals, result, cfg.num_envs, key, learn_key, active)

    def evaluate(params, key):
        """Greedy decentralised episodes; soft algorithms also measure the misalignment gaps."""
        act = make_act(nets, params, "greedy", diagnose=cfg.is_soft)
        return rollout(env, act, cfg.hidden_dim, cfg.test_episodes, key, record=False)

    def chunk(state: TrainState, index: jax.Array) -> tuple[TrainState, ChunkMetrics]:
        until = learner.chunk_end(index)
        # The loop runs while any seed of the sweep still has env steps to
        # take (seeds.any_seed over the named seed vmap), so its condition
        # is one value and vmap adds no select over the whole carry, which
        # would copy every seed's replay at every rollout; seeds that are
        # done sit the remaining rollouts out unchanged.
        active = lambda state: state.counters.env_steps < until
        state, totals = jax.lax.while_loop(
            lambda carry: any_seed(active(carry[0])),
            lambda carry: rollout_and_learn(*carry, active(carry[0])),
            (state, learner.zero_totals()),
        )
        key, eval_key = jax.random.split(state.key)
        state = state._replace(key=key)
        return state, learner.chunk_metrics(state, totals, evaluate(state.params, eval_key))

    def train(key: jax.Array):
        state = learner.init(key)
        return jax.lax.scan(chunk, state, jnp.arange(learner.num_chunks))

    return Trainer(learner=learner, env=env, chunk=chunk, evaluate=evaluate, train=train)
