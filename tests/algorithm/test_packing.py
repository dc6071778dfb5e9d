"""Packing short episodes into fewer learner rows changes no loss and no gradient."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import SPEC, random_episodes, short_episodes, small_config
from meigm_jax.algorithm.optimisers import build_optimisers, init_optimiser_states
from meigm_jax.algorithm.losses import make_loss
from meigm_jax.algorithm.learner import make_step
from meigm_jax.algorithm.networks.model import build_networks, init_params
from meigm_jax.algorithm.seeds import SEED_AXIS
from meigm_jax.algorithm.packing import FILL_ROUNDS, _candidate, lane_counts, pack, plan, plans
from meigm_jax.types import TargetParams

LONG = SPEC._replace(episode_limit=12)
BATCH = 10


def _short_episodes(seed, batch=BATCH, max_len=5):
    return short_episodes(seed, batch, LONG, max_len)


def _setup(alg, **over):
    cfg = small_config(alg=dict(name=alg), batch_size=BATCH, buffer_size=50, **over)
    nets = build_networks(cfg, LONG)
    params = init_params(nets, cfg, LONG, jax.random.PRNGKey(0))
    params = params._replace(log_alpha=jnp.log(jnp.asarray(0.7)))
    other = init_params(nets, cfg, LONG, jax.random.PRNGKey(1))
    return cfg, nets, params, TargetParams(other.agent, other.mixer)


def test_plan_lays_whole_episodes_end_to_end():
    episodes, lengths = _short_episodes(0)
    slots = int((lengths + 1).sum())
    capacity = LONG.episode_limit + 1
    lanes = -(-slots // capacity) + 1
    layout = jax.tree.map(np.asarray, plan(episodes.filled, lanes))
    assert layout.fits
    source, step = layout.source_episode, layout.source_step
    for b, length in enumerate(lengths):
        where = np.argwhere(source == b)
        assert len(where) == length + 1  # its steps and the observation after them
        lane, first = where[0]
        assert np.all(where[:, 0] == lane)
        np.testing.assert_array_equal(where[:, 1], first + np.arange(length + 1))
        np.testing.assert_array_equal(step[lane, first:first + length + 1], np.arange(length + 1))
    for row in source:  # free slots only after a lane's last episode
        used = row >= 0
        assert not np.any(used[np.argmax(~used):]) or used.all()

    packed, starts, _ = pack(plan(episodes.filled, lanes), episodes)
    assert int(starts.sum()) == BATCH
    assert int(packed.filled.sum()) == int(lengths.sum())
    np.testing.assert_allclose(float(packed.reward.sum()), float(episodes.reward.sum()), rtol=1e-6)
    assert int(packed.terminal.sum()) == int(np.asarray(episodes.terminal).sum())

    too_few = slots // capacity  # fewer slots than the episodes need
    assert not bool(plan(episodes.filled, too_few).fits)


def test_lane_counts_skip_what_cannot_pack():
    assert lane_counts(32, 100) == (13, 16, 23)
    assert lane_counts(128, 100) == (52, 64, 90)
    assert lane_counts(16, 1) == ()  # the matrix game: one step per episode
    assert lane_counts(1, 100) == ()


@pytest.mark.parametrize("alg", ["me_qmix", "qmix", "me_qplex"])
def test_packed_loss_and_gradients_equal_padded(alg):
    cfg, nets, params, target = _setup(alg)
    episodes, lengths = _short_episodes(1)
    lanes = -(-int((lengths + 1).sum()) // (LONG.episode_limit + 1)) + 1
    assert lanes < BATCH
    layout = plan(episodes.filled, lanes)
    assert bool(layout.fits)
    grad_fn = jax.jit(jax.value_and_grad(make_loss(cfg, nets, LONG), has_aux=True))
    (loss_a, info_a), grads_a = grad_fn(params, target, episodes, jax.random.PRNGKey(3))
    (loss_b, info_b), grads_b = grad_fn(params, target, episodes, jax.random.PRNGKey(3), layout)
    assert np.isfinite(float(loss_a))
    np.testing.assert_allclose(float(loss_b), float(loss_a), rtol=1e-5)
    for name in info_a._fields:
        if name != "rows":
            np.testing.assert_allclose(float(getattr(info_b, name)), float(getattr(info_a, name)),
                                       rtol=1e-5, atol=1e-6, err_msg=name)
    assert float(info_a.rows) == BATCH and float(info_b.rows) == lanes
    for a, b in zip(jax.tree.leaves(grads_a), jax.tree.leaves(grads_b)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-6)
    assert any(np.any(np.asarray(g) != 0) for g in jax.tree.leaves(grads_a))


def test_step_packs_when_it_fits_and_seeds_agree_on_the_layout():
    """A batch of short episodes is computed in fewer rows; under a named seed
    vmap one seed's long episodes make every seed take the padded step."""
    cfg, nets, params, target = _setup("qmix")
    opts = build_optimisers(cfg)
    opt_states = init_optimiser_states(opts, params)
    step = make_step(cfg, nets, LONG, opts)
    short, _ = _short_episodes(2, max_len=2)
    short = short._replace(filled=short.filled.at[0].set(short.filled[1]))  # no full-length one
    long_, _ = random_episodes(3, BATCH, LONG)
    long_ = long_._replace(filled=jnp.ones_like(long_.filled))
    key = jax.random.PRNGKey(4)

    rows = lambda batch: float(jax.jit(step)(params, target, opt_states, batch, key)[2].rows)
    assert rows(short) == min(lane_counts(BATCH, LONG.episode_limit))
    assert rows(long_) == BATCH

    both = jax.tree.map(lambda a, b: jnp.stack([a, b]), short, long_)
    swept = jax.jit(jax.vmap(lambda b: step(params, target, opt_states, b, key), axis_name=SEED_AXIS))
    new_params, _, info = swept(both)
    np.testing.assert_array_equal(np.asarray(info.rows), [BATCH, BATCH])
    alone, _, alone_info = jax.jit(step)(params, target, opt_states, short, key)
    np.testing.assert_allclose(float(info.loss_q[0]), float(alone_info.loss_q), rtol=1e-5)
    for a, b in zip(jax.tree.leaves(new_params), jax.tree.leaves(alone)):
        np.testing.assert_allclose(np.asarray(a)[0], np.asarray(b), rtol=1e-4, atol=1e-6)


def _sequential_candidate(sizes, first, capacity):
    """``packing._candidate`` step by step: the ``first`` longest episodes open a
    row each; FILL_ROUNDS rounds in which the others, longest first, each take
    the open row with the least room that holds them (one per row per round);
    the rest next-fit into new rows. Returns the rows' loads."""
    loads = list(sizes[:first])
    waiting = list(sizes[first:])
    for _ in range(FILL_ROUNDS):
        taken = [False] * len(loads)
        left = []
        for size in waiting:
            fitting = [r for r in range(len(loads)) if not taken[r] and capacity - loads[r] >= size]
            if fitting:
                best = min(fitting, key=lambda r: capacity - loads[r])
                loads[best] += size
                taken[best] = True
            else:
                left.append(size)
        waiting = left
    opened = False
    for size in waiting:
        if opened and loads[-1] + size <= capacity:
            loads[-1] += size
        else:
            loads.append(size)
            opened = True
    return loads


def test_vectorised_plan_is_its_sequential_heuristic_and_valid():
    """The plan's candidates (two sorts and prefix sums per round, no loop)
    use exactly the rows of the step-by-step heuristic, each within T + 1 slots."""
    rng = np.random.default_rng(0)
    batch, limit = 24, 20
    candidate = jax.jit(_candidate, static_argnums=2)
    for trial in range(12):
        lengths = rng.integers(1, limit + 1 if trial % 2 else limit // 3 + 2, size=batch)
        sizes = np.sort(lengths + 1)[::-1].astype(np.int32)
        first = int(rng.integers(0, batch + 1))
        row, offset, used = jax.tree.map(np.asarray, candidate(jnp.asarray(sizes), jnp.asarray(first),
                                                                limit + 1))
        want = _sequential_candidate(sizes.tolist(), first, limit + 1)
        assert int(used) == len(want)
        for r in range(int(used)):  # episodes laid end to end from slot 0
            members = np.flatnonzero(row == r)
            ends = sorted(zip(offset[members], offset[members] + sizes[members]))
            assert ends[0][0] == 0 and all(a[1] == b[0] for a, b in zip(ends, ends[1:]))
            assert ends[-1][1] <= limit + 1
        assert sorted(np.bincount(row, weights=sizes, minlength=int(used)).tolist()) == sorted(want)


def test_plans_have_no_sequential_loop_and_fit_like_first_fit():
    """Batch 128 of smax-like lengths (mean ~37 of 100): the counts first-fit
    decreasing reaches, without a scan over the episodes."""
    rng = np.random.default_rng(1)
    counts = lane_counts(128, 100)
    lengths = np.clip(np.round(rng.gamma(6.0, 37 / 6, 128)), 1, 100).astype(int)
    filled = jnp.asarray(np.arange(100)[None, :] < lengths[:, None])
    closed = jax.make_jaxpr(lambda f: plans(f, counts))(filled)
    names = set()

    def collect(jaxpr):
        for e in jaxpr.eqns:
            names.add(e.primitive.name)
            for v in e.params.values():
                if hasattr(v, "jaxpr") and hasattr(v.jaxpr, "eqns"):
                    collect(v.jaxpr)
    collect(closed.jaxpr)
    assert not names & {"scan", "while"}
    layouts = jax.jit(lambda f: plans(f, counts))(filled)
    fits = [bool(layout.fits) for layout in layouts]
    assert fits == sorted(fits)  # more rows fit whatever fewer rows fit
    assert fits[0] and counts[0] == 52  # first-fit decreasing needs 47 rows for these
    for layout, lanes in zip(layouts, counts):
        source = np.asarray(layout.source_episode)
        assert source.shape == (lanes, 101)
        np.testing.assert_array_equal(np.bincount(source[source >= 0], minlength=128), lengths + 1)
