"""Multi-process runs on localhost: two CPU processes train one sweep together.

Each process is started as a user would, with the documented variables
(JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID) and
``distributed=true``; the first process writes the run. It must write what
one process writes for the same sweep, resume it, and fail in one line when
a process is missing or the count is wrong.
"""

import math
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import FAST_COMPILE_FLAGS
from meigm_jax.running.run_dir import checkpoints_dir, read_records
from helpers import ROOT

SWEEP = ["+env=matrix_game", "num_seeds=4", "total_timesteps=600", "test_interval=200", "hidden_dim=16",
         "mixer_embed=8", "hypernet_embed=16", "checkpoint.every=1", "checkpoint.keep=3",
         "wandb.mode=disabled"]
TIMING = ("sps", "wall_s")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch(run_dir: Path, process_ids, count: int, extra=(), timeout: float = 600):
    """Start processes ``process_ids`` of a ``count``-process run; (returncode, stderr) each."""
    port = _free_port()
    procs = []
    for i in process_ids:
        env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
               "JAX_NUM_PROCESSES": str(count), "JAX_PROCESS_ID": str(i)}
        env["XLA_FLAGS"] = FAST_COMPILE_FLAGS  # no forced device count: one CPU device per process
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "meigm_jax.train", "distributed=true", *SWEEP, *extra,
             f"hydra.run.dir={run_dir}"], cwd=ROOT, env=env, text=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    deadline = time.time() + timeout
    results = []
    for proc in procs:
        try:
            _, err = proc.communicate(timeout=max(deadline - time.time(), 1))
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            pytest.fail("a distributed run hung")
        results.append((proc.returncode, err))
    return results


def _strip(records):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def _assert_same_sweep(got, want):
    """The same records up to float rounding (a device's seeds form another
    vmap than one device's four, so reductions may round differently)."""
    assert len(got) == len(want) == 12  # 3 evaluations x 4 seeds
    for a, b in zip(_strip(got), _strip(want)):
        assert a.keys() == b.keys()
        for key in a:
            if isinstance(b[key], float):
                assert a[key] is not None and math.isclose(a[key], b[key], rel_tol=1e-5, abs_tol=1e-5), (key, a, b)
            else:
                assert a[key] == b[key], (key, a, b)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("one") / "run"
    proc = subprocess.run([sys.executable, "-m", "meigm_jax.train", *SWEEP, f"hydra.run.dir={run_dir}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return read_records(run_dir)


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("two") / "run"
    results = _launch(run_dir, [0, 1], 2)
    for code, err in results:
        assert code == 0, err[-2000:]
    return run_dir


def test_two_processes_write_the_one_process_sweep(one_process, two_processes):
    records = read_records(two_processes)
    assert sorted({r["seed_index"] for r in records}) == [0, 1, 2, 3]
    _assert_same_sweep(records, one_process)
    assert (two_processes / "table1.md").exists()


def test_a_two_process_run_resumes(one_process, two_processes, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(two_processes, run_dir)
    # As if both processes had been killed during the last chunk.
    shutil.rmtree(checkpoints_dir(run_dir) / "3")
    results = _launch(run_dir, [0, 1], 2, extra=["resume=true"])
    for code, err in results:
        assert code == 0, err[-2000:]
    _assert_same_sweep(read_records(run_dir), one_process)


def test_a_missing_process_fails_in_one_line(tmp_path):
    start = time.time()
    [(code, err)] = _launch(tmp_path / "run", [0], 2, extra=["distributed_timeout=5"], timeout=120)
    assert code == 4, err[-2000:]
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "could not join 2 processes" in lines[0], err[-2000:]
    assert time.time() - start < 120
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


@pytest.mark.parametrize("variables,key", [({"JAX_PROCESS_ID": "2"}, "JAX_PROCESS_ID"),
                                           ({"JAX_NUM_PROCESSES": "0"}, "JAX_NUM_PROCESSES")])
def test_a_wrong_count_is_one_line_and_exit_2(tmp_path, variables, key):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_COORDINATOR_ADDRESS": "127.0.0.1:1",
           "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "0", **variables}
    proc = subprocess.run([sys.executable, "-m", "meigm_jax.train", "distributed=true", *SWEEP,
                           f"hydra.run.dir={tmp_path / 'run'}"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0] and "allowed" in lines[0], proc.stderr
    assert not (tmp_path / "run").exists()
