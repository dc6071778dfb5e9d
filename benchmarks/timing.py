"""Timing helpers shared by the benchmark scripts (run as ``python benchmarks/NAME.py``)."""

from __future__ import annotations

import statistics
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp


def timed(fn, *args, repeats: int) -> tuple[float, float]:
    """(median seconds per call after the first, seconds of the first call: compile + one run).

    The median of separately timed calls, so that one slow call (another
    process waking up) does not move the figure.
    """
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times), compile_s


def random_episodes(env, num_envs: int):
    """A jittable fn(key) stepping ``num_envs`` envs for one episode limit with
    uniformly random available actions: the raw env throughput a policy is held to."""
    limit = env.spec.episode_limit

    def run(key):
        def step(carry, _):
            state, obs, key = carry
            key, act_key, step_key = jax.random.split(key, 3)
            actions = jax.random.categorical(act_key, jnp.where(obs.avail, 0.0, -jnp.inf))
            state, obs, _ = jax.vmap(env.step)(jax.random.split(step_key, num_envs), state, actions)
            return (state, obs, key), None

        key, reset_key = jax.random.split(key)
        state, obs = jax.vmap(env.reset)(jax.random.split(reset_key, num_envs))
        (state, obs, _), _ = jax.lax.scan(step, (state, obs, key), None, length=limit)
        return obs.obs.sum()

    return run


def policy_episodes(trainer, mode: str, num_envs: int):
    """A jittable fn(params, key) running one recorded rollout, as the trainer
    does, with acting policy ``mode`` (epsilon 0.05 for epsilon-greedy).

    It returns (stepped, real): env steps computed (num_envs x the rollout's
    steps, which stop when the longest episode ends) and steps of episodes.
    """
    from meigm_jax.algorithm.rollout import make_act, rollout

    def run(params, key):
        epsilon = jnp.asarray(0.05) if mode == "epsilon_greedy" else None
        act = make_act(trainer.nets, params, mode, epsilon)
        result = rollout(trainer.env, act, trainer.config.hidden_dim, num_envs, key, record=True)
        lengths = result.episodes.filled.sum(-1)
        return num_envs * lengths.max(), lengths.sum()

    return run


class ChunkTiming(NamedTuple):
    """Progress of all seeds together over the timed chunks of a compiled training program."""

    env_steps: int
    updates: int
    seconds: float
    compile_s: float
    metrics: object  # the last chunk's ChunkMetrics, seeds first
    chunk_bytes: int  # device memory XLA plans for the compiled chunk (donated state counted once)


def timed_chunks(cfg, timed: int) -> ChunkTiming:
    """Compile ``cfg``'s training program, run chunk 0 (the replay fills; not
    timed), then time ``timed`` more chunks."""
    from meigm_jax.programs.program import compile_program, to_host
    from meigm_jax.programs.jax_trainer import make_train

    start = time.perf_counter()
    program = compile_program(make_train(cfg))
    compile_s = time.perf_counter() - start
    state, metrics = program.chunk(program.state, jnp.asarray(0, jnp.int32))
    first = to_host(metrics)
    start = time.perf_counter()
    for index in range(1, timed + 1):
        state, metrics = program.chunk(state, jnp.asarray(index, jnp.int32))
    jax.block_until_ready(metrics)
    seconds = time.perf_counter() - start
    metrics = to_host(metrics)
    memory = program.chunk.memory_analysis()
    chunk_bytes = (memory.argument_size_in_bytes + memory.output_size_in_bytes
                   + memory.temp_size_in_bytes - memory.alias_size_in_bytes)
    return ChunkTiming(int((metrics.env_steps - first.env_steps).sum()),
                       int((metrics.updates - first.updates).sum()), seconds, compile_s, metrics,
                       chunk_bytes)
