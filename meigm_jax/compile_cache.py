"""JAX's persistent compilation cache, on for every command by default.

A run's programs compile for minutes on a small CPU; with the cache, a
second run of the same shapes loads them from disk instead. ``compile_cache``
(a config key) is ``default`` ($XDG_CACHE_HOME/meigm_jax/xla, or
~/.cache/meigm_jax/xla; JAX_COMPILATION_CACHE_DIR when that is set, as the
test suite does), a directory, or null (off). The cache must be set before
the process compiles anything: JAX reads the setting once, at its first
compile.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

import jax

from meigm_jax.errors import one_line

DEFAULT = "default"
_HIT = "/jax/compilation_cache/cache_hits"
_REQUEST = "/jax/compilation_cache/compile_requests_use_cache"


class CacheCounts(NamedTuple):
    """Compilations that went through the cache, and those loaded from it."""

    requests: int
    hits: int

    def since(self, earlier: "CacheCounts") -> "CacheCounts":
        return CacheCounts(self.requests - earlier.requests, self.hits - earlier.hits)


_counts = {_HIT: 0, _REQUEST: 0}
_enabled: list[Path | None] = []  # the setting in force, once chosen


def _count(event: str, **_) -> None:
    if event in _counts:
        _counts[event] += 1


jax.monitoring.register_event_listener(_count)


def directory(setting: str | None) -> Path | None:
    """Where ``compile_cache=setting`` keeps the programs (None: nowhere)."""
    if setting is None:
        return None
    if setting == DEFAULT:
        if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
            return Path(os.environ["JAX_COMPILATION_CACHE_DIR"])
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        return Path(base) / "meigm_jax" / "xla"
    return Path(setting).expanduser()


def enable(setting: str | None) -> Path | None:
    """Point JAX at the cache of ``setting``, or turn it off; the directory
    in use. An unwritable directory is a one-line warning and no cache.
    Later calls in the same process keep the first choice (JAX has read it)."""
    if _enabled:
        return _enabled[0]
    path = directory(setting)
    if path is not None:
        try:
            path.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=path):
                pass
        except OSError as exc:
            print(f"warning: compile_cache={str(path)!r} is not writable ({one_line(exc)}); "
                  "running without the compilation cache", file=sys.stderr, flush=True)
            path = None
    jax.config.update("jax_enable_compilation_cache", path is not None)
    if path is not None:
        jax.config.update("jax_compilation_cache_dir", str(path))
        # Every program, however quick to compile: evaluation programs too.
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    _enabled.append(path)
    return path


def counts() -> CacheCounts:
    return CacheCounts(requests=_counts[_REQUEST], hits=_counts[_HIT])


def describe(used: CacheCounts) -> str:
    """For the progress line: how many of the programs came from the cache."""
    if not _enabled or _enabled[0] is None:
        return "compilation cache off"
    if used.requests == 0:
        return "nothing compiled"
    return f"{used.hits} of {used.requests} programs from the compilation cache"
