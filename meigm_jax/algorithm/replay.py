"""A device-resident FIFO replay of whole padded episodes: pure init / add / sample."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from meigm_jax.config.schema import TrainConfig
from meigm_jax.envs.base import EnvSpec
from meigm_jax.types import Episodes, ReplayState


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


def init(example: Episodes, capacity: int) -> ReplayState:
    """An empty buffer of ``capacity`` episodes shaped like one ``example``."""
    data = jax.tree.map(lambda x: jnp.zeros((capacity,) + x.shape, x.dtype), example)
    return ReplayState(data=data, insert_pos=jnp.zeros((), jnp.int32), size=jnp.zeros((), jnp.int32))


def add(state: ReplayState, episodes: Episodes, keep: jax.Array | bool = True) -> ReplayState:
    """Write a batch of episodes [E, ...], overwriting the oldest when full.

    ``keep`` (one flag, or one per episode) chooses which are written; the
    kept ones go to consecutive slots in order. False leaves the buffer as
    it was (a seed whose chunk is done while others' go on), by dropping the
    writes rather than selecting between two whole buffers, which would copy
    the replay.
    """
    capacity = state.data.reward.shape[0]
    keep = jnp.broadcast_to(jnp.asarray(keep, bool), episodes.reward.shape[:1])
    offsets = jnp.cumsum(keep) - 1
    slots = jnp.where(keep, (state.insert_pos + offsets) % capacity, capacity)  # out of bounds: dropped
    data = jax.tree.map(lambda buf, new: buf.at[slots].set(new.astype(buf.dtype), mode="drop"),
                        state.data, episodes)
    count = keep.sum(dtype=jnp.int32)
    return ReplayState(
        data=data,
        insert_pos=(state.insert_pos + count) % capacity,
        size=jnp.minimum(state.size + count, capacity),
    )


def can_sample(state: ReplayState, batch_size: int) -> jax.Array:
    return state.size >= batch_size


def sample(state: ReplayState, key: jax.Array, batch_size: int) -> Episodes:
    """``batch_size`` distinct stored episodes, uniformly (as pymarl samples).

    Random scores on filled slots and the top ``batch_size`` of them: a draw
    without replacement with static shapes. Needs ``can_sample``.
    """
    capacity = state.data.reward.shape[0]
    scores = jax.random.uniform(key, (capacity,))
    scores = jnp.where(jnp.arange(capacity) < state.size, scores, -1.0)
    _, idx = jax.lax.top_k(scores, batch_size)
    return jax.tree.map(lambda buf: buf[idx], state.data)


def cut_windows(data: Episodes, episode: jax.Array, start: jax.Array, length: int,
                burn_in: int = 0) -> Episodes:
    """Windows of ``burn_in + length`` steps from episodes stored in ``data``
    (leading axis: slots): row b holds the steps of episode ``episode[b]``
    from ``start[b] - burn_in`` (not before 0) on, as an ``Episodes`` of
    that many steps. Only steps from ``start[b]`` on, and inside the
    episode, are ``filled``: the steps ahead of them only warm up a
    recurrent agent. The observation after the window's last step is kept,
    so the learner bootstraps there (a window's end is not terminal), and so
    is the action taken before the first step (``previous_action``), which
    a recurrent agent reads at that step."""
    T = data.reward.shape[1]
    first = jnp.maximum(start - burn_in, 0)
    steps = first[:, None] + jnp.arange(burn_in + length + 1)  # [B, W+1]
    at = lambda buf, t: buf[episode[:, None], jnp.minimum(t, buf.shape[1] - 1)]
    acted = steps[:, :-1]
    filled = at(data.filled, acted) & (acted < T) & (acted >= start[:, None])
    # The agents acted on the action before the window's first step; k
    # (no action) where that step starts the episode.
    num_actions = data.avail.shape[-1]
    before = at(data.actions, jnp.maximum(first - 1, 0)[:, None])[:, 0]
    previous = jnp.where((first > 0)[:, None], before, jnp.asarray(num_actions, before.dtype))
    return Episodes(obs=at(data.obs, steps), state=at(data.state, steps), avail=at(data.avail, steps),
                    actions=at(data.actions, acted), reward=at(data.reward, acted),
                    terminal=at(data.terminal, acted), filled=filled, previous_action=previous)


def sample_windows(state: ReplayState, key: jax.Array, batch_size: int, length: int,
                   burn_in: int = 0) -> Episodes:
    """``batch_size`` windows (``cut_windows``) with replacement: a stored
    episode uniformly, then a first trained step uniformly among those
    that leave ``length`` steps in the episode (any, in a shorter one)."""
    episode_key, start_key = jax.random.split(key)
    episode = jax.random.randint(episode_key, (batch_size,), 0, jnp.maximum(state.size, 1))
    steps = state.data.filled[episode].sum(-1)  # [B] episode lengths
    start = jax.random.randint(start_key, (batch_size,), 0, jnp.maximum(steps - length, 0) + 1)
    return cut_windows(state.data, episode, start, length, burn_in)

