"""meigm_jax.running.checkpoint: bit-identical round trips, retention, one-line errors
for missing, incompatible and corrupt checkpoints, and saves killed mid-write."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import ROOT

from meigm_jax.running.checkpoint import Checkpointer, CheckpointError, restore_latest
from meigm_jax.types import (
    Counters,
    Episodes,
    OptimiserStates,
    Params,
    ReplayState,
    TargetParams,
    TrainState,
)

SEEDS, CAP, T, N, O, K, S = 2, 5, 4, 3, 6, 5, 7


def small_state(seed: int) -> TrainState:
    """A TrainState in miniature: flax-like param dicts, adam states, a replay
    with float32/bool/uint8 arrays, int32 counters and raw uint32 keys."""
    rng = np.random.default_rng(seed)

    def f32(*shape):
        return jnp.asarray(rng.standard_normal((SEEDS, *shape)), jnp.float32)

    def flags(*shape):
        return jnp.asarray(rng.random((SEEDS, *shape)) < 0.5)

    agent = {"params": {"Dense_0": {"kernel": f32(O, 16), "bias": f32(16)}}}
    mixer = {"params": {"hyper_w": {"kernel": f32(S, 8)}}}
    transform = {"params": {"w": f32(4)}}
    # Bit patterns that a lossy or re-encoding round trip would not keep.
    agent["params"]["Dense_0"]["bias"] = agent["params"]["Dense_0"]["bias"].at[0, :3].set(
        jnp.array([jnp.nan, -0.0, jnp.inf]))
    params = Params(agent=agent, mixer=mixer, transform=transform, log_alpha=f32())
    target = TargetParams(agent=jax.tree.map(lambda x: x * 2, agent), mixer=mixer)

    def adam_state(tree):
        state = jax.vmap(optax.adam(1e-3).init)(tree)
        return jax.tree.map(lambda x: x + np.asarray(rng.integers(1, 9), x.dtype), state)

    opt_states = OptimiserStates(q=adam_state((agent, mixer)), transform=adam_state(transform),
                                 alpha=adam_state(params.log_alpha))
    data = Episodes(
        obs=f32(CAP, T + 1, N, O), state=f32(CAP, T + 1, S), avail=flags(CAP, T + 1, N, K),
        actions=jnp.asarray(rng.integers(0, K, (SEEDS, CAP, T, N)), jnp.uint8),
        reward=f32(CAP, T), terminal=flags(CAP, T), filled=flags(CAP, T))
    replay = ReplayState(data=data, insert_pos=jnp.full((SEEDS,), seed % CAP, jnp.int32),
                         size=jnp.full((SEEDS,), CAP, jnp.int32))
    counters = Counters(*(jnp.asarray(rng.integers(0, 10_000, SEEDS), jnp.int32) for _ in range(4)))
    key = jax.random.split(jax.random.PRNGKey(seed), SEEDS)
    return TrainState(params, target, opt_states, replay, counters, key)


def assert_identical(restored, expected) -> None:
    assert jax.tree.structure(restored) == jax.tree.structure(expected)
    for (path, got), want in zip(jax.tree_util.tree_flatten_with_path(restored)[0],
                                 jax.tree.leaves(expected)):
        where = jax.tree_util.keystr(path)
        assert isinstance(got, jax.Array), where
        assert got.dtype == want.dtype and got.shape == want.shape, where
        assert np.asarray(got).tobytes() == np.asarray(want).tobytes(), where


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def one_line_error(directory: Path, template) -> str:
    with pytest.raises(CheckpointError) as info:
        restore_latest(directory, template)
    message = str(info.value)
    assert "\n" not in message and len(message) < 600, message
    return message


def saved(directory: Path, states: dict[int, TrainState], keep: int = 2) -> Path:
    with Checkpointer(directory, keep=keep) as ckpt:
        for step, state in states.items():
            ckpt.save(step, state, {"chunk": step, "metrics_lines": 4 * step,
                                    "config": {"lr": 3e-3, "tags": ["a", "b"]}})
        assert ckpt.latest_step() == max(states)
    return directory


@pytest.fixture(scope="module")
def states() -> dict[int, TrainState]:
    return {step: small_state(step) for step in (1, 2, 3)}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, states) -> Path:
    """Three saves with keep=2; tests that read it check it stays unchanged."""
    return saved(tmp_path_factory.mktemp("run") / "checkpoints", states)


def test_round_trip_is_bit_identical_with_namedtuple_types(run_dir, states):
    before = snapshot(run_dir)
    for template in (states[1], jax.eval_shape(lambda: states[1])):
        restored, meta = restore_latest(run_dir, template)
        assert_identical(restored, states[3])
        assert meta == {"chunk": 3, "metrics_lines": 12, "config": {"lr": 3e-3, "tags": ["a", "b"]}}
        assert type(restored) is TrainState and type(restored.replay.data) is Episodes
        assert type(restored.opt_states.q[0]) is optax.ScaleByAdamState
        assert type(restored.opt_states.q[1]) is optax.EmptyState
        assert restored.key.dtype == jnp.uint32 and restored.key.shape == (SEEDS, 2)
    assert snapshot(run_dir) == before


def test_keep_two_keeps_the_two_newest(run_dir, states, tmp_path):
    assert sorted(p.name for p in run_dir.iterdir()) == ["2", "3"]
    # A later run in the same directory counts the checkpoints already there.
    directory = saved(tmp_path / "ck", {1: states[1], 2: states[2]})
    with Checkpointer(directory, keep=2) as ckpt:
        assert ckpt.latest_step() == 2
        ckpt.save(3, states[3], {"chunk": 3})
        with pytest.raises(CheckpointError, match="already exists"):
            ckpt.save(3, states[3], {"chunk": 3})
    assert sorted(p.name for p in directory.iterdir()) == ["2", "3"]
    assert_identical(restore_latest(directory, states[1])[0], states[3])


def test_missing_or_empty_directory(tmp_path, states):
    missing = tmp_path / "nope" / "checkpoints"
    assert one_line_error(missing, states[1]).startswith(f"no checkpoint in {missing}")
    assert not missing.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "3.orbax-checkpoint-tmp-123").mkdir()  # a save that never finished
    assert one_line_error(empty, states[1]).startswith(f"no checkpoint in {empty}")
    assert [p.name for p in empty.iterdir()] == ["3.orbax-checkpoint-tmp-123"]


def test_incompatible_template_names_the_leaf(run_dir, states):
    before = snapshot(run_dir)
    state = states[1]
    wider = state._replace(replay=state.replay._replace(
        data=state.replay.data._replace(obs=jnp.zeros((SEEDS, CAP, T + 1, N, O + 1)))))
    message = one_line_error(run_dir, wider)
    assert message.startswith(f"incompatible checkpoint {run_dir / '3'}: ")
    assert message.endswith(f".replay.data.obs has shape {(SEEDS, CAP, T + 1, N, O)},"
                            f" expected {(SEEDS, CAP, T + 1, N, O + 1)}")

    agent = {"params": {**state.params.agent["params"], "Dense_1": {"bias": jnp.zeros((SEEDS, 3))}}}
    message = one_line_error(run_dir, state._replace(params=state.params._replace(agent=agent)))
    assert "incompatible checkpoint" in message
    assert ".params.agent['params']['Dense_1']['bias'] is in the template but not" in message

    class Fewer(NamedTuple):
        env_steps: jax.Array
        episodes: jax.Array
        updates: jax.Array

    message = one_line_error(run_dir, state._replace(counters=Fewer(*state.counters[:3])))
    assert ".counters.last_target_update is in the checkpoint but not in the template" in message

    message = one_line_error(run_dir, state._replace(key=state.key.astype(jnp.int32)))
    assert message.endswith(".key has dtype uint32, expected int32")
    assert snapshot(run_dir) == before


def _data_files(step_dir: Path) -> list[Path]:
    files = [p for p in (step_dir / "state").rglob("*") if p.is_file() and p.parent.name == "d"]
    assert files, f"no array data files under {step_dir}"
    return files


def _garbage(step_dir: Path) -> None:
    rng = np.random.default_rng(0)
    for p in _data_files(step_dir):
        p.write_bytes(rng.bytes(p.stat().st_size))


def _truncate(step_dir: Path) -> None:
    for p in _data_files(step_dir):
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _flip_byte(step_dir: Path) -> None:
    # Single flipped bytes, one every 512 bytes of every data file: the files'
    # layout differs from save to save and one flip at a fixed offset
    # sometimes lands in bytes that no array reads (about 1 save in 15).
    for p in _data_files(step_dir):
        data = bytearray(p.read_bytes())
        for i in range(len(data) // 2 % 512, len(data), 512):
            data[i] ^= 0x5A
        p.write_bytes(bytes(data))


def _meta_garbage(step_dir: Path) -> None:
    (step_dir / "meta" / "metadata").write_bytes(b"\x00{not json")


def _wrong_checksum(step_dir: Path) -> None:
    path = step_dir / "meta" / "metadata"
    record = json.loads(path.read_text())
    record["leaves"][-1]["crc32"] ^= 1
    path.write_text(json.dumps(record))


@pytest.mark.parametrize("damage", [_garbage, _truncate, _flip_byte, _meta_garbage, _wrong_checksum])
def test_corrupt_checkpoint_is_reported_and_left_alone(tmp_path, states, damage):
    directory = saved(tmp_path / "ck", {1: states[1], 2: states[2]})
    damage(directory / "2")
    before = snapshot(directory)
    message = one_line_error(directory, states[1])
    assert message.startswith(f"corrupt checkpoint {directory / '2'}: "), message
    if damage is _wrong_checksum:
        assert message.endswith(".key does not match its saved checksum")
    assert snapshot(directory) == before


# --- saves killed by SIGKILL -------------------------------------------------

class Big(NamedTuple):
    replay: jax.Array  # float32 [2, 4M], incompressible: ~32 MB a save
    step: jax.Array  # int32 [2]
    key: jax.Array  # uint32 [2, 2]


_BASE: list[np.ndarray] = []


def big_state(step: int) -> Big:
    if not _BASE:
        _BASE.append(np.random.default_rng(7).random((2, 4 * 1024 * 1024), np.float32))
    return Big(replay=_BASE[0] + np.float32(step), step=np.full(2, step, np.int32),
               key=np.asarray(jax.random.split(jax.random.PRNGKey(step), 2)))


_CHILD = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_checkpoint import big_state
from meigm_jax.running.checkpoint import Checkpointer
ckpt = Checkpointer(Path({directory!r}), keep=2)
step = ckpt.latest_step() or 0
print("ready", step, flush=True)
while True:
    step += 1
    ckpt.save(step, big_state(step), {{"step": step}})
    ckpt.wait()
    print("saved", step, flush=True)
"""


def test_save_killed_mid_write_leaves_a_restorable_latest(tmp_path):
    directory = tmp_path / "checkpoints"
    code = _CHILD.format(tests=str(Path(__file__).parent), directory=str(directory))
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests"),
                                          os.environ.get("PYTHONPATH", "")])}
    template = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), big_state(0))
    last_saved = 0
    for attempt in range(3):
        child = subprocess.Popen([sys.executable, "-c", code], env=env, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        watchdog = threading.Timer(60, child.kill)  # a hung child fails the test, never hangs it
        watchdog.start()
        try:
            lines = [child.stdout.readline()]
            assert lines[0].startswith("ready"), child.stderr.read()
            lines.append(child.stdout.readline())  # the first save of this child is done
            assert lines[1].startswith("saved"), child.stderr.read()
            delay = random.uniform(0.0, 1.0)
            time.sleep(delay)
        finally:
            os.kill(child.pid, signal.SIGKILL)
            out, _ = child.communicate()
            watchdog.cancel()
        lines += out.splitlines()
        done = [int(line.split()[1]) for line in lines if line.startswith("saved")]
        last_saved = max(done + [last_saved])

        restored, meta = restore_latest(directory, template)
        context = f"attempt {attempt}, killed after {delay:.2f}s, reported {done}"
        assert meta["step"] in (last_saved, last_saved + 1), context
        assert_identical(restored, big_state(meta["step"]))
        last_saved = meta["step"]

    # The next run removes what the killed save left behind.
    Checkpointer(directory, keep=2).close()
    assert not [p.name for p in directory.iterdir() if "tmp" in p.name]
    assert restore_latest(directory, template)[1]["step"] == last_saved


def test_zero_size_leaves_round_trip(tmp_path):
    # Overcooked's replay keeps a state of width 0 (derived from observations).
    state = {"empty": jnp.zeros((3, 5, 0), jnp.float32), "full": jnp.arange(6, dtype=jnp.int32)}
    with Checkpointer(tmp_path / "ckpt", keep=1) as ckpt:
        ckpt.save(1, state, {"chunk": 1})
    restored, meta = restore_latest(tmp_path / "ckpt", state)
    assert meta == {"chunk": 1}
    assert restored["empty"].shape == (3, 5, 0) and restored["empty"].dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(restored["full"]), np.arange(6))


def test_checkpoint_with_former_field_names_restores(tmp_path):
    # Written before Params.opt and OptimiserStates.opt were named transform.
    from meigm_jax.running.checkpoint_manifest import _with_former_names
    from meigm_jax.types import FORMER_FIELD_NAMES

    state = small_state(6)
    old = _with_former_names(state, FORMER_FIELD_NAMES)
    assert old.params._fields == ("agent", "mixer", "opt", "log_alpha")
    with Checkpointer(tmp_path / "ckpt", keep=1) as ckpt:
        ckpt.save(1, old, {"chunk": 1})
    template = jax.eval_shape(lambda: state)
    restored, _ = restore_latest(tmp_path / "ckpt", template)
    assert type(restored.params) is Params and type(restored.opt_states) is OptimiserStates
    assert_identical(restored, state)
    partial, _ = restore_latest(tmp_path / "ckpt", template, fields=("params",))
    assert type(partial.params) is Params and partial.opt_states is None
    assert_identical(partial.params, state.params)


def test_restoring_only_some_fields(tmp_path):
    # Evaluation needs the parameters, not a replay of up to GiBs.
    state = small_state(5)
    with Checkpointer(tmp_path / "ckpt", keep=1) as ckpt:
        ckpt.save(3, state, {"chunk": 3})
    template = jax.eval_shape(lambda: state)
    partial, meta = restore_latest(tmp_path / "ckpt", template, fields=("params", "counters"))
    assert meta == {"chunk": 3}
    assert partial.replay is None and partial.opt_states is None and partial.target is None
    assert_identical(partial.params, state.params)
    assert_identical(partial.counters, state.counters)
    with pytest.raises(CheckpointError, match="fields are"):
        restore_latest(tmp_path / "ckpt", template, fields=("weights",))
    # A template that does not fit is refused before reading, as for a full restore.
    bad = template._replace(counters=template.counters._replace(
        env_steps=jax.ShapeDtypeStruct((SEEDS + 1,), jnp.int32)))
    with pytest.raises(CheckpointError, match="env_steps has shape"):
        restore_latest(tmp_path / "ckpt", bad, fields=("params",))


def test_a_failed_read_leaves_nothing_behind_and_nothing_on_stderr(tmp_path, monkeypatch):
    """A read that fails while others are in flight: orbax closes its event
    loop at once, and the other reads would each end in an unraisable
    "Event loop is closed" after the restore returned. None reaches the
    hook here, and the process's unraisable hook, event-loop policy and absl
    filters are as they were before the checkpoint was used."""
    import asyncio
    import gc
    import logging

    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    hook, policy = sys.unraisablehook, asyncio.get_event_loop_policy()
    filters = list(logging.getLogger("absl").filters)

    rng = np.random.default_rng(0)
    state = {f"leaf{i:02d}": rng.random(100_000, np.float32) for i in range(20)}
    with Checkpointer(tmp_path / "ck", keep=1) as ckpt:
        ckpt.save(1, state, {})
        assert logging.getLogger("absl").filters != filters  # orbax kept quiet while open
    assert logging.getLogger("absl").filters == filters
    # Damage the chunks of the largest data file, not the metadata before them:
    # the arrays open, and then reads fail while others are still running.
    data = max(_data_files(tmp_path / "ck" / "1"), key=lambda p: p.stat().st_size)
    damaged = bytearray(data.read_bytes())
    for i in range(len(damaged) // 100, len(damaged), 4096):
        damaged[i] ^= 0x5A
    data.write_bytes(bytes(damaged))

    message = one_line_error(tmp_path / "ck", state)
    assert message.startswith(f"corrupt checkpoint {tmp_path / 'ck' / '1'}: ")
    time.sleep(1.0)  # where the stray reads would land
    gc.collect()
    assert [repr(u.exc_value) for u in unraisable] == []
    assert sys.unraisablehook is hook and asyncio.get_event_loop_policy() is policy
    assert logging.getLogger("absl").filters == filters
