"""JAX's persistent compilation cache, on for every command by default,
and whole executables stored beside it.

A run's programs compile for minutes on a small CPU; with the cache, a
second run of the same shapes loads them from disk instead. ``compile_cache``
(a config key) is ``default`` ($XDG_CACHE_HOME/meigm_jax/xla, or
~/.cache/meigm_jax/xla; JAX_COMPILATION_CACHE_DIR when that is set, as the
test suite does), a directory, or null (off). The cache must be set before
the process compiles anything: JAX reads the setting once, at its first
compile.

JAX keys its cache on the lowered program, so a warm start still traces
and lowers every program (on smax_5v5 about 10 s). ``compiled`` goes one
step further for a run's own programs: it keys the serialized executable on
what determines it (the config, this package's source, the versions of
jax, jaxlib and jaxmarl, the devices, XLA_FLAGS and the arguments' shapes
and shardings) and loads it without tracing at all. It stores only
executables it compiled itself, never ones JAX's cache supplied (on CPU
those serialize again without all their kernels). It is used only where
that key is complete: programs built from a registered env by name, in a
single process. Code changed while the process runs (a monkeypatch in a
test) is not in the key: such a caller passes ``compile_cache=null``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import pickle
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
from jax.experimental import serialize_executable

from meigm_jax.config import OUTSIDE_PROGRAM, keys_with
from meigm_jax.errors import one_line

DEFAULT = "default"
_HIT = "/jax/compilation_cache/cache_hits"
_REQUEST = "/jax/compilation_cache/compile_requests_use_cache"


_UNTRACED = "untraced"  # executables loaded whole (``compiled``)
# Config keys that never enter a compiled program (declared in the schema).
OUTSIDE_PROGRAMS = keys_with(OUTSIDE_PROGRAM)


class CacheCounts(NamedTuple):
    """Compilations that went through the cache, those loaded from it, and
    those of them loaded as whole executables, without tracing."""

    requests: int
    hits: int
    untraced: int = 0

    def since(self, earlier: "CacheCounts") -> "CacheCounts":
        return CacheCounts(*(now - then for now, then in zip(self, earlier)))


_counts = {_HIT: 0, _REQUEST: 0, _UNTRACED: 0}
_enabled: list[Path | None] = []  # the setting in force, once chosen
_listening: list[bool] = []  # whether ``_count`` is registered with JAX


def _count(event: str, **_) -> None:
    if event in _counts:
        _counts[event] += 1


def _listen() -> None:
    """Count JAX's cache events from now on; registered once per process."""
    if not _listening:
        jax.monitoring.register_event_listener(_count)
        _listening.append(True)


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
    Later calls in the same process keep the first choice (JAX has read it).
    From here on the cache's events are counted (``counts``)."""
    _listen()
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
    return CacheCounts(requests=_counts[_REQUEST], hits=_counts[_HIT], untraced=_counts[_UNTRACED])


def describe(used: CacheCounts) -> str:
    """For the progress line: how many of the programs came from the cache."""
    if not _enabled or _enabled[0] is None:
        return "compilation cache off"
    if used.requests == 0:
        return "nothing compiled"
    untraced = f", {used.untraced} of them untraced" if used.untraced else ""
    return f"{used.hits} of {used.requests} programs from the compilation cache{untraced}"


_source: list[str] = []


def _source_digest() -> str:
    """A digest of this package's Python source: any edit is a new program."""
    if not _source:
        package, digest = Path(__file__).resolve().parents[1], hashlib.sha256()
        for path in sorted(package.rglob("*.py")):
            digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes() + b"\0")
        _source.append(digest.hexdigest())
    return _source[0]


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def program_key(name: str, config: dict, args: tuple) -> str:
    """What an executable is stored under: a digest of everything it is
    compiled from (see the module docstring)."""
    def signature(x):
        return [list(x.shape), str(x.dtype), str(getattr(x, "sharding", None))]

    device = jax.devices()[0]
    material = {
        "name": name,
        "config": {k: v for k, v in config.items() if k not in OUTSIDE_PROGRAMS},
        "source": _source_digest(),
        "versions": [jax.__version__, _version("jaxlib"), _version("jaxmarl"), sys.version],
        "backend": [device.platform, device.device_kind, device.client.platform_version, jax.device_count()],
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "x64": bool(jax.config.jax_enable_x64),
        "tree": str(jax.tree.structure(args)),
        "args": jax.tree.leaves(jax.tree.map(signature, args), is_leaf=lambda x: isinstance(x, list)),
    }
    text = json.dumps(material, sort_keys=True, default=str)
    return f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:32]}"


def compiled(jitted: Callable, args: tuple, key: str | None) -> Any:
    """``jitted.lower(*args).compile()``, or the executable stored under
    ``key`` in the cache's ``executables`` directory, stored there on its
    first compile. ``key`` None, or the cache off: compiled as usual."""
    root = _enabled[0] if _enabled else None
    if key is None or root is None:
        return jitted.lower(*args).compile()
    path = root / "executables" / f"{key}.pkl"
    if path.exists():
        try:
            blob, in_tree, out_tree = pickle.loads(path.read_bytes())
            program = serialize_executable.deserialize_and_load(blob, in_tree, out_tree)
        except Exception as exc:  # a file another version wrote, or a truncated one
            print(f"warning: stored executable {path.name} did not load ({one_line(exc)}); compiling it again",
                  file=sys.stderr, flush=True)
        else:
            for event in (_REQUEST, _HIT, _UNTRACED):
                _counts[event] += 1
            return program
    hits = _counts[_HIT]
    program = jitted.lower(*args).compile()
    if _counts[_HIT] > hits:
        # JAX's cache supplied it: on CPU an executable loaded from there
        # serializes without some of its kernels, and a later process that
        # loaded it would fail at its first call ("Function ... not found").
        # Only a fresh compile is stored; until then a run traces this one.
        return program
    try:
        blob = pickle.dumps(serialize_executable.serialize(program))
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as part:
            part.write(blob)
        os.replace(part.name, path)  # whole or not at all: a run killed mid-write leaves no stub
    except (OSError, ValueError, NotImplementedError) as exc:
        print(f"warning: executable {key} not stored ({one_line(exc)}); the next run traces it again",
              file=sys.stderr, flush=True)
    return program
