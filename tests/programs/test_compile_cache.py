"""The persistent compilation cache: where it lives, turning it off, stored
executables, and a second process loading from it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import ROOT

from meigm_jax.programs import compile_cache



@pytest.fixture
def fresh(monkeypatch):
    """``enable`` as in a new process, recording the JAX settings it makes instead of making them."""
    settings = {}
    monkeypatch.setattr(compile_cache, "_enabled", [])
    monkeypatch.setattr(compile_cache.jax.config, "update", lambda name, value: settings.__setitem__(name, value))
    return settings


def test_default_directory_follows_xdg_and_jax_variables(monkeypatch, tmp_path):
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compile_cache.directory("default") == tmp_path / "xdg" / "meigm_jax" / "xla"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert compile_cache.directory("default") == tmp_path / "home" / ".cache" / "meigm_jax" / "xla"
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "jax"))
    assert compile_cache.directory("default") == tmp_path / "jax"
    assert compile_cache.directory(str(tmp_path / "mine")) == tmp_path / "mine"
    assert compile_cache.directory(None) is None


def test_enable_points_jax_at_the_directory(fresh, tmp_path):
    assert compile_cache.enable(str(tmp_path / "c")) == tmp_path / "c"
    assert (tmp_path / "c").is_dir()
    assert fresh["jax_enable_compilation_cache"] is True
    assert fresh["jax_compilation_cache_dir"] == str(tmp_path / "c")
    # JAX reads the setting once: a later call keeps the first choice.
    assert compile_cache.enable(None) == tmp_path / "c"


def test_null_turns_the_cache_off(fresh):
    assert compile_cache.enable(None) is None
    assert fresh == {"jax_enable_compilation_cache": False}
    assert compile_cache.describe(compile_cache.CacheCounts(3, 0)) == "compilation cache off"


def test_unwritable_directory_is_one_warning_and_no_cache(fresh, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert compile_cache.enable(str(blocker / "xla")) is None
    assert fresh == {"jax_enable_compilation_cache": False}
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"warning: compile_cache='{blocker / 'xla'}' is not writable")
    assert err[0].endswith("running without the compilation cache")


_LISTENERS = """
import jax.monitoring
registered = []
jax.monitoring.register_event_listener = registered.append
from meigm_jax.programs import compile_cache
print(len(registered))
compile_cache.enable(None)
compile_cache.enable(None)
compile_cache._enabled.clear()  # as if enable had not chosen yet
compile_cache.enable(None)
print(len(registered), registered[0] is compile_cache._count)
"""


def test_cache_events_are_counted_from_enable_on_and_only_once():
    """Importing the module registers nothing with JAX; ``enable`` registers
    its counter once, however often it is called."""
    out = subprocess.run([sys.executable, "-c", _LISTENERS], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["0", "1", "True"]


def _train(cache: Path, run_dir: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    out = subprocess.run(
        [sys.executable, "-m", "meigm_jax.train", "total_timesteps=300", "test_interval=300",
         "test_episodes=2", "wandb.mode=disabled", f"compile_cache={cache}", f"hydra.run.dir={run_dir}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _records(run_dir: Path) -> list[dict]:
    timing = ("sps", "wall_s")
    return [{k: v for k, v in json.loads(line).items() if k not in timing}
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_a_second_process_loads_its_programs_from_the_cache(tmp_path):
    cache = tmp_path / "xla"
    pattern = r"\((\d+) of (\d+) programs from the compilation cache(?:, (\d+) of them untraced)?\)"
    first = re.search(pattern, _train(cache, tmp_path / "a"))
    assert first and int(first[1]) == 0 and int(first[2]) > 0 and first[3] is None
    stored = set(os.listdir(cache))
    executables = sorted(os.listdir(cache / "executables"))
    assert [name.split("-")[0] for name in executables] == ["chunk", "init"]
    second = re.search(pattern, _train(cache, tmp_path / "b"))
    # Every program from the cache; the run's own two loaded whole, without tracing.
    assert second and int(second[1]) == int(second[2]) == int(first[2]) and int(second[3]) == 2
    assert set(os.listdir(cache)) == stored  # nothing new was compiled
    assert sorted(os.listdir(cache / "executables")) == executables
    assert _records(tmp_path / "b") == _records(tmp_path / "a")  # the loaded programs compute the same


@pytest.fixture
def stored_in(monkeypatch, tmp_path):
    """``compile_cache.compiled`` storing under ``tmp_path``, counting afresh."""
    monkeypatch.setattr(compile_cache, "_enabled", [tmp_path])
    monkeypatch.setattr(compile_cache, "_counts", dict.fromkeys(compile_cache._counts, 0))
    return tmp_path / "executables"


def _unseen() -> float:
    """A constant no earlier run has compiled into a program: the suite's
    JAX cache misses, so ``compiled`` compiles afresh (and stores)."""
    return float(int.from_bytes(os.urandom(3), "little") + 2)


def test_an_executable_is_stored_then_loaded_untraced(stored_in):
    traced, factor = [], _unseen()

    def scale(x):
        traced.append(x.shape)
        return factor * x

    x = jnp.arange(3.0)
    first = compile_cache.compiled(jax.jit(scale), (x,), "scale-k")
    assert (stored_in / "scale-k.pkl").is_file() and len(traced) == 1
    second = compile_cache.compiled(jax.jit(scale), (x,), "scale-k")
    assert len(traced) == 1  # loaded, not traced again
    assert compile_cache.counts().untraced == 1
    np.testing.assert_array_equal(second(x), first(x))
    np.testing.assert_array_equal(second(x), np.float32(factor) * np.arange(3.0, dtype=np.float32))


# One process's work with ``compiled``: a scan with slices and an iota, the
# kind of program whose kernels a re-serialized executable lost.
_PROCESS = """
import sys
import jax, jax.numpy as jnp, numpy as np
from meigm_jax.programs import compile_cache
compile_cache.enable(sys.argv[1])

def program(x):
    def body(c, i):
        c = c + jnp.sin(jax.lax.dynamic_slice_in_dim(x, i, 1, 0)).sum() * c[::-1]
        return c, c[1:3].sum()
    return jax.lax.scan(body, x[0], jnp.arange(3))

x = jnp.arange(12.0).reshape(3, 4) / float(sys.argv[2])
out = compile_cache.compiled(jax.jit(program), (x,), "scan-k")(x)
print(compile_cache.counts().untraced, np.asarray(out[1]).tolist())
"""


def test_an_executable_from_jax_cache_is_not_stored_again(tmp_path):
    """Stored executables are fresh compiles: one that JAX's own cache
    supplied is not re-serialized (on CPU that copy lacks kernels, and the
    process that loaded it failed), so every later process runs."""
    cache, scale = tmp_path / "xla", str(_unseen())
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}

    def process() -> list:
        out = subprocess.run([sys.executable, "-c", _PROCESS, str(cache), scale], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        untraced, values = out.stdout.strip().splitlines()[-1].split(" ", 1)
        return [int(untraced), values]

    stored = cache / "executables" / "scan-k.pkl"
    fresh = process()
    assert fresh[0] == 0 and stored.is_file()
    assert process() == [1, fresh[1]]  # the stored executable, loaded untraced
    stored.unlink()
    assert process() == [0, fresh[1]]  # JAX's cache supplied it: traced, not stored
    assert not stored.exists()
    assert process() == [0, fresh[1]]


def test_a_damaged_executable_is_one_warning_and_compiled_again(stored_in, capsys):
    x, step = jnp.arange(3.0), _unseen()
    stored_in.mkdir()
    (stored_in / "inc-k.pkl").write_bytes(b"not a pickle")
    program = compile_cache.compiled(jax.jit(lambda v: v + step), (x,), "inc-k")
    np.testing.assert_array_equal(program(x), np.arange(3.0, dtype=np.float32) + np.float32(step))
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: stored executable inc-k.pkl did not load")
    assert compile_cache.counts().untraced == 0
    compile_cache.compiled(jax.jit(lambda v: v + step), (x,), "inc-k")  # rewritten whole: now it loads
    assert compile_cache.counts().untraced == 1


def test_no_key_or_no_cache_stores_nothing(stored_in, monkeypatch):
    x = jnp.arange(3.0)
    compile_cache.compiled(jax.jit(lambda v: v - 1), (x,), None)
    assert not stored_in.exists()
    monkeypatch.setattr(compile_cache, "_enabled", [None])
    compile_cache.compiled(jax.jit(lambda v: v - 1), (x,), "dec-k")
    assert not stored_in.exists()


def test_the_key_follows_what_the_program_is_built_from():
    config = {"lr": 0.001, "num_envs": 4, "wandb": {"mode": "online"}, "resume": False}
    x = jnp.zeros((2, 3))
    key = compile_cache.program_key("chunk", config, (x,))
    assert key.startswith("chunk-")
    assert compile_cache.program_key("chunk", config, (x,)) == key
    assert compile_cache.program_key("init", config, (x,)) != key
    assert compile_cache.program_key("chunk", {**config, "lr": 0.002}, (x,)) != key
    assert compile_cache.program_key("chunk", config, (jnp.zeros((2, 4)),)) != key
    assert compile_cache.program_key("chunk", config, (jnp.zeros((2, 3), jnp.int32),)) != key
    # How a run is logged, resumed or cached does not enter its programs.
    outside = {**config, "wandb": {"mode": "disabled"}, "resume": True, "compile_cache": None}
    assert compile_cache.program_key("chunk", outside, (x,)) == key
