"""Packing short episodes into fewer learner rows.

The replay stores every episode padded to the episode limit T, and the
learner's agent unroll costs the same for a padded step as for a real one
(benchmarks/unroll_cost.py: it is bound by compute). SMAX episodes last about
40 of their 100 steps, so most of a padded batch is padding. Before a
gradient step the sampled episodes can instead be laid end to end in
``lanes`` rows of the same T + 1 slots: an episode of length L takes L + 1
slots (its L steps and the observation after the last one, which its
bootstrap needs), and the agent's hidden state and previous action are reset
at each episode's first slot.

The packed batch is an ``Episodes`` with the same field shapes as a padded
one (rows [lanes, T + 1]), so the learner runs unchanged on it; ``starts``
marks the slots where an episode begins. Every step target and loss term is
the padded batch's: a lane holds whole episodes back to back, its free
slots come after the last one, and a slot past an episode's last step is
never ``filled``, so the TD(lambda) recursion bootstraps there exactly as it
does at a padded episode's end.

Whether a batch fits is known only after sampling: ``plan`` reports it, and
the trainer takes the padded step when it does not.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from meigm_jax.types import Episodes


# Row counts tried, as fractions of the batch, smallest first; a batch that
# fits none is computed padded. Under a near-uniform policy on smax_5v5 (mean
# episode 35 of 100 steps) 40% of the rows held every batch of 32 or 128
# episodes; 50% catches batches a little longer than that, 70% leaves room
# for longer episodes later in training. Each fraction compiles one more
# copy of the gradient step.
ROW_FRACTIONS = (0.4, 0.5, 0.7)


def lane_counts(batch_size: int, episode_limit: int) -> tuple[int, ...]:
    """The packed row counts worth compiling for batches of ``batch_size`` episodes."""
    if episode_limit < 3:  # two episodes never share T + 1 <= 3 slots
        return ()
    counts = sorted({math.ceil(batch_size * f) for f in ROW_FRACTIONS})
    return tuple(c for c in counts if c < batch_size)


class PackPlan(NamedTuple):
    """Where each slot of the packed rows comes from."""

    source_episode: jax.Array  # [lanes, T+1] int32, -1 for a free slot
    source_step: jax.Array  # [lanes, T+1] int32
    fits: jax.Array  # [] bool: every episode of the batch has its slots


def plan(filled: jax.Array, lanes: int) -> PackPlan:
    """First-fit decreasing of the episodes of ``filled`` [B, T] into ``lanes`` rows of T + 1 slots."""
    batch, limit = filled.shape
    capacity = limit + 1
    slots = filled.sum(-1).astype(jnp.int32) + 1  # an episode's steps and its last observation
    order = jnp.argsort(-slots, stable=True)

    def place(fill, episode):
        need = slots[episode]
        room = fill + need <= capacity
        lane = jnp.argmax(room)  # the first lane with room
        fits = room[lane]
        offset = fill[lane]
        fill = fill.at[lane].add(jnp.where(fits, need, 0))
        return fill, (jnp.where(fits, lane, lanes), offset, fits)

    _, (lane_sorted, offset_sorted, fits_sorted) = jax.lax.scan(
        place, jnp.zeros((lanes,), jnp.int32), order)
    lane = jnp.zeros((batch,), jnp.int32).at[order].set(lane_sorted)
    offset = jnp.zeros((batch,), jnp.int32).at[order].set(offset_sorted)

    # Scatter every (episode, step) to its slot; steps past an episode's
    # last observation (and episodes that did not fit) go out of bounds and
    # are dropped.
    step = jnp.arange(capacity)
    used = step[None, :] < slots[:, None]  # [B, T+1]
    dest_lane = jnp.where(used, lane[:, None], lanes)
    dest_slot = offset[:, None] + step[None, :]
    episode_ids = jnp.broadcast_to(jnp.arange(batch, dtype=jnp.int32)[:, None], used.shape)
    steps = jnp.broadcast_to(step[None, :].astype(jnp.int32), used.shape)
    free = jnp.full((lanes, capacity), -1, jnp.int32)
    source_episode = free.at[dest_lane, dest_slot].set(episode_ids, mode="drop")
    source_step = jnp.zeros((lanes, capacity), jnp.int32).at[dest_lane, dest_slot].set(steps, mode="drop")
    return PackPlan(source_episode=source_episode, source_step=source_step, fits=fits_sorted.all())


def pack(layout: PackPlan, batch: Episodes, *per_step: jax.Array) -> tuple[Episodes, jax.Array, tuple]:
    """The batch laid out by ``layout``: (packed episodes, starts [lanes, T+1], packed ``per_step``).

    ``per_step`` are extra arrays with the episodes' [B, T+1, ...] layout
    (e.g. sampling noise), gathered the same way.
    """
    limit = batch.reward.shape[-1]
    used = layout.source_episode >= 0
    episode = jnp.maximum(layout.source_episode, 0)
    step = layout.source_step

    # Steps (the [B, T] fields) fill the first T slots: the last slot of a
    # lane can only hold an episode's final observation.
    step_episode, step_index = episode[:, :limit], jnp.minimum(step[:, :limit], limit - 1)
    filled = used[:, :limit] & (step[:, :limit] < limit) & batch.filled[step_episode, step_index]

    def gather_obs_steps(x):  # [B, T+1, ...]
        return x[episode, step]

    def gather_action_steps(x, fill):  # [B, T, ...]
        values = x[step_episode, step_index]
        real = filled.reshape(filled.shape + (1,) * (values.ndim - 2))
        return jnp.where(real, values, fill)

    packed = Episodes(
        obs=gather_obs_steps(batch.obs),
        state=gather_obs_steps(batch.state),
        avail=gather_obs_steps(batch.avail) & used[..., None, None],
        actions=gather_action_steps(batch.actions, 0),
        reward=gather_action_steps(batch.reward, 0.0),
        terminal=gather_action_steps(batch.terminal, False),
        filled=filled,
    )
    starts = used & (step == 0)
    return packed, starts, tuple(gather_obs_steps(x) for x in per_step)
