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

The plan is computed without a sequential loop over the episodes (first-fit
decreasing, the obvious plan, is one: a scan of B steps, each a few kernel
launches on an accelerator). To fit ``lanes`` rows, the ``lanes - r``
longest episodes, for a few small reserves r, each open a row; the other
episodes, longest first, fill the rows' free slots by best fit, one episode
per row per round for ``FILL_ROUNDS`` rounds (each round a stack matching
of free slots against episode sizes, computed with two sorts and prefix
sums); what is left goes next-fit into the reserved rows (an associative
scan over the composed fill maps of its episodes). Every candidate is
computed at once and the first whose rows suffice is taken. It fills about
one row more than first-fit decreasing, so a batch at the edge of a row
count sometimes takes the next one: on smax-like episode lengths the rows
per gradient step are within 0-3% of first-fit decreasing's (1-2% for a
near-uniform policy's, batch 32 or 128; ``benchmarks/step_depth.py --packing``).
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
# episodes (first-fit decreasing; ``plans`` takes the next count for 5-10%
# of such batches); 50% catches batches a little longer than that, 70% leaves room
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


# Rows held back from the longest episodes, for the episodes that fill no
# free slot; the candidates (lanes - r for each r) are computed side by side.
RESERVES = (0, 2, 4, 8)
# Rounds of best-fit filling; each adds at most one episode to a row.
FILL_ROUNDS = 3


def _best_fit_round(gap: jax.Array, open_row: jax.Array, size: jax.Array,
                    waiting: jax.Array) -> jax.Array:
    """One episode per row: the ``waiting`` episodes, longest first, each into the
    open row with the fewest free slots ``gap`` that holds its ``size`` slots.

    This is a stack matching: the rows' gaps and the episodes' sizes in one
    list by decreasing value (a gap before an episode of equal size), a gap
    pushed, an episode popping the last pushed gap (the smallest that holds
    it) or, with the stack empty, left waiting. Two sorts and prefix sums
    compute it: the stack's depth at each entry, then, per depth, pushes and
    pops alternate, so each pop's gap is the entry just before it. Returns
    the row of each episode [N], -1 where it stays waiting.
    """
    rows, episodes = gap.shape[0], size.shape[0]
    entries = rows + episodes
    value = jnp.concatenate([gap, size])
    is_episode = jnp.concatenate([jnp.zeros((rows,), bool), jnp.ones((episodes,), bool)])
    valid = jnp.concatenate([open_row, waiting])
    key = jnp.where(valid, -2 * value + is_episode, jnp.iinfo(jnp.int32).max)
    order = jnp.argsort(key, stable=True)
    is_episode, valid = is_episode[order], valid[order]
    depth = jnp.cumsum(jnp.where(valid, jnp.where(is_episode, -1, 1), 0))
    floor = jnp.minimum(jax.lax.cummin(depth), 0)  # pops of an empty stack lower it
    floor_before = jnp.concatenate([jnp.zeros((1,), floor.dtype), floor[:-1]])
    pops = valid & is_episode & (depth >= floor_before)
    level = depth - floor + pops  # a push's depth after it, a pop's before it
    level = jnp.where(valid & (~is_episode | pops), level, entries + 1)
    by_level = jnp.argsort(level, stable=True)  # within a level: push, pop, push, pop, ...
    rank = jnp.zeros((entries,), jnp.int32).at[by_level].set(jnp.arange(entries, dtype=jnp.int32))
    pushed = order[by_level[jnp.maximum(rank - 1, 0)]]  # the entry just before, by level
    episode = order - rows
    row = jnp.full((episodes,), -1, jnp.int32)
    return row.at[jnp.where(pops, episode, episodes)].set(pushed.astype(jnp.int32), mode="drop")


def _next_fit(size: jax.Array, waiting: jax.Array, capacity: int) -> tuple[jax.Array, jax.Array]:
    """Next fit of the ``waiting`` episodes, in order, into fresh rows: (opens [N], offset [N]).

    A row's fill after an episode is a map of its fill before (add the
    episode, or start a new row with it); the maps compose associatively, so
    the fill before every episode comes from one associative scan of the
    [N, capacity + 1] tables.
    """
    fill = jnp.arange(capacity + 1, dtype=jnp.int32)
    grown = fill[None, :] + size[:, None]
    maps = jnp.where(waiting[:, None], jnp.where(grown <= capacity, grown, size[:, None]),
                     fill[None, :])
    composed = jax.lax.associative_scan(lambda a, b: jnp.take_along_axis(b, a, axis=-1), maps)
    after = composed[:, capacity]  # from a full row: the first episode opens a row
    before = jnp.concatenate([jnp.full((1,), capacity, jnp.int32), after[:-1]])
    opens = waiting & (before + size > capacity)
    return opens, jnp.where(opens, 0, before)


def _candidate(size: jax.Array, first: jax.Array, capacity: int):
    """Episodes ``size`` [N] (longest first): the first ``first`` open a row each,
    the others fill them by best fit, the rest go next-fit into new rows.
    Returns (row [N], offset [N], rows used)."""
    episodes = size.shape[0]
    index = jnp.arange(episodes, dtype=jnp.int32)
    opener = index < first
    row = jnp.where(opener, index, -1)
    offset = jnp.zeros((episodes,), jnp.int32)
    load = jnp.where(opener, size, 0)  # row r's slots in use (row r opened by episode r)
    waiting = ~opener
    for _ in range(FILL_ROUNDS):
        got = _best_fit_round(capacity - load, opener, size, waiting)
        placed = got >= 0
        offset = jnp.where(placed, load[jnp.maximum(got, 0)], offset)
        load = load.at[jnp.where(placed, got, episodes)].add(size, mode="drop")
        row = jnp.where(placed, got, row)
        waiting = waiting & ~placed
    opens, next_offset = _next_fit(size, waiting, capacity)
    row = jnp.where(waiting, first + jnp.cumsum(opens) - 1, row)
    offset = jnp.where(waiting, next_offset, offset)
    return row, offset, first + opens.sum()


def plans(filled: jax.Array, counts: tuple[int, ...]) -> list[PackPlan]:
    """The episodes of ``filled`` [B, T] packed into rows of T + 1 slots, for each count of rows."""
    batch, limit = filled.shape
    capacity = limit + 1
    slots = filled.sum(-1).astype(jnp.int32) + 1  # an episode's steps and its last observation
    order = jnp.argsort(-slots, stable=True)
    size = slots[order]
    firsts = [[max(lanes - r, 0) for r in RESERVES] for lanes in counts]
    rows, offsets, used = jax.vmap(_candidate, (None, 0, None))(
        size, jnp.asarray([f for group in firsts for f in group], jnp.int32), capacity)
    layouts = []
    for i, lanes in enumerate(counts):
        group = slice(i * len(RESERVES), (i + 1) * len(RESERVES))
        fits = used[group] <= lanes
        pick = i * len(RESERVES) + jnp.argmax(fits)  # the first candidate that fits
        lane = jnp.zeros((batch,), jnp.int32).at[order].set(rows[pick])
        offset = jnp.zeros((batch,), jnp.int32).at[order].set(offsets[pick])
        layouts.append(_layout(lane, offset, slots, lanes, capacity, fits.any()))
    return layouts


def plan(filled: jax.Array, lanes: int) -> PackPlan:
    """The episodes of ``filled`` [B, T] packed into ``lanes`` rows of T + 1 slots."""
    return plans(filled, (lanes,))[0]


def _layout(lane: jax.Array, offset: jax.Array, slots: jax.Array, lanes: int, capacity: int,
            fits: jax.Array) -> PackPlan:
    """The slots of ``lanes`` rows of ``capacity``, from each episode's row and first slot."""
    batch = slots.shape[0]
    # Scatter every (episode, step) to its slot; steps past an episode's
    # last observation (and episodes in rows past ``lanes``: the batch did
    # not fit) go out of bounds and are dropped.
    step = jnp.arange(capacity)
    used = step[None, :] < slots[:, None]  # [B, T+1]
    dest_lane = jnp.where(used, lane[:, None], lanes)
    dest_slot = offset[:, None] + step[None, :]
    episode_ids = jnp.broadcast_to(jnp.arange(batch, dtype=jnp.int32)[:, None], used.shape)
    steps = jnp.broadcast_to(step[None, :].astype(jnp.int32), used.shape)
    free = jnp.full((lanes, capacity), -1, jnp.int32)
    source_episode = free.at[dest_lane, dest_slot].set(episode_ids, mode="drop")
    source_step = jnp.zeros((lanes, capacity), jnp.int32).at[dest_lane, dest_slot].set(steps, mode="drop")
    return PackPlan(source_episode=source_episode, source_step=source_step, fits=fits)


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
