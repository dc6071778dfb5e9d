"""The persistent compilation cache: where it lives, turning it off, and a second process loading from it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from meigm_jax import compile_cache

ROOT = Path(__file__).resolve().parent.parent


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


def _train(cache: Path, run_dir: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    out = subprocess.run(
        [sys.executable, "-m", "meigm_jax.train", "total_timesteps=300", "test_interval=300",
         "test_episodes=2", "wandb.mode=disabled", f"compile_cache={cache}", f"hydra.run.dir={run_dir}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_a_second_process_loads_its_programs_from_the_cache(tmp_path):
    cache = tmp_path / "xla"
    first = re.search(r"\((\d+) of (\d+) programs from the compilation cache\)", _train(cache, tmp_path / "a"))
    assert first and int(first[1]) == 0 and int(first[2]) > 0
    stored = set(os.listdir(cache))
    assert stored
    second = re.search(r"\((\d+) of (\d+) programs from the compilation cache\)", _train(cache, tmp_path / "b"))
    assert second and int(second[1]) == int(second[2]) == int(first[2])
    assert set(os.listdir(cache)) == stored  # nothing new was compiled
