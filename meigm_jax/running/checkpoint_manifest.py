"""A checkpoint's manifest: what was saved, and the checks a restore makes
against it (``meigm_jax.running.checkpoint`` writes and reads the files).

The manifest is the ``meta`` item's record: the format, the caller's meta
dict and, for every leaf of the state, its path, shape, dtype and CRC-32.
A template is checked against it before any array is read (the first leaf
that does not fit is named), and every array read must match its CRC-32,
which also catches damage the storage format itself would decode without
complaint. Checkpoints written before a field was renamed are read under
the former names.
"""

from __future__ import annotations

import zlib
from typing import Any

import jax
import numpy as np

from meigm_jax.errors import CheckpointError, one_line

PyTree = Any

# In every saved record: another value would make the checkpoints saved so far unreadable.
FORMAT = "meigm_jax.running.checkpoint/1"
_MAX_REASON = 300


def reason(exc: BaseException) -> str:
    """The exception as one short line: its type and the start of its message."""
    return one_line(exc, _MAX_REASON, first_line=True)


def leaf_dtype(leaf) -> np.dtype:
    dtype = leaf.dtype if hasattr(leaf, "dtype") else np.asarray(leaf).dtype
    if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        raise CheckpointError(
            f"typed PRNG key leaves ({dtype}) are not supported; store raw uint32 keys"
            " (jax.random.key_data)")
    return np.dtype(dtype)


def leaf_shape(leaf) -> tuple[int, ...]:
    return tuple(int(d) for d in (leaf.shape if hasattr(leaf, "shape") else np.shape(leaf)))


def crc32(array: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(array).reshape(-1).view(np.uint8))


def _describe(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def record(meta: dict, flat, host: list[np.ndarray]) -> dict:
    """The manifest of a state: ``flat`` its (path, leaf) pairs, ``host`` the leaves as saved."""
    leaves = [{"path": jax.tree_util.keystr(path), "shape": list(array.shape),
               "dtype": array.dtype.str, "crc32": crc32(array)}
              for (path, _), array in zip(flat, host)]
    return {"format": FORMAT, "meta": meta, "leaves": leaves}


def read_record(where: str, saved) -> tuple[list[dict], dict]:
    """(the leaves' manifest, the caller's meta) of a saved record; CheckpointError if malformed."""
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        found = saved.get("format") if isinstance(saved, dict) else type(saved).__name__
        raise CheckpointError(
            f"corrupt checkpoint {where}: its meta is not a {FORMAT} record (found {found!r})")
    manifest, meta = saved.get("leaves"), saved.get("meta")
    ok = isinstance(manifest, list) and all(
        isinstance(leaf, dict) and isinstance(leaf.get("path"), str)
        and isinstance(leaf.get("shape"), list) and isinstance(leaf.get("dtype"), str)
        and isinstance(leaf.get("crc32"), int) for leaf in manifest)
    if not ok:
        raise CheckpointError(f"corrupt checkpoint {where}: its leaf manifest is malformed")
    try:
        for leaf in manifest:
            np.dtype(leaf["dtype"])
    except TypeError as exc:
        raise CheckpointError(f"corrupt checkpoint {where}: {reason(exc)}") from exc
    return manifest, meta


def check_compatible(where: str, manifest: list[dict], template_flat) -> None:
    """Raises a one-line CheckpointError at the first leaf that does not match."""
    saved = {leaf["path"]: leaf for leaf in manifest}
    wanted = [(jax.tree_util.keystr(path), leaf) for path, leaf in template_flat]
    wanted_paths = {path for path, _ in wanted}
    saved_order = [leaf["path"] for leaf in manifest]
    for i in range(max(len(saved_order), len(wanted))):
        want = wanted[i][0] if i < len(wanted) else None
        have = saved_order[i] if i < len(saved_order) else None
        if want == have:
            continue
        if want is not None and want not in saved:
            raise CheckpointError(
                f"incompatible checkpoint {where}: {want} is in the template but not in the checkpoint")
        if have is not None and have not in wanted_paths:
            raise CheckpointError(
                f"incompatible checkpoint {where}: {have} is in the checkpoint but not in the template")
        raise CheckpointError(
            f"incompatible checkpoint {where}: leaves are in a different order at {want}")
    for path, leaf in wanted:
        have = saved[path]
        shape, dtype = leaf_shape(leaf), leaf_dtype(leaf)
        have_shape = tuple(int(d) for d in have["shape"])
        if have_shape != shape:
            raise CheckpointError(
                f"incompatible checkpoint {where}: {path} has shape {_describe(have_shape)},"
                f" expected {_describe(shape)}")
        if np.dtype(have["dtype"]) != dtype:
            raise CheckpointError(
                f"incompatible checkpoint {where}: {path} has dtype {np.dtype(have['dtype']).name},"
                f" expected {dtype.name}")


def check_leaf(where: str, saved: dict, array: np.ndarray) -> None:
    """Raises a one-line CheckpointError unless ``array`` is the leaf ``saved`` describes."""
    if (array.shape != tuple(saved["shape"]) or array.dtype != np.dtype(saved["dtype"])
            or crc32(array) != saved["crc32"]):
        raise CheckpointError(
            f"corrupt checkpoint {where}: {saved['path']} does not match its saved checksum")


def _with_former_names(tree: PyTree, former: dict[type, type]) -> PyTree:
    """``tree`` with each NamedTuple of a type in ``former`` rebuilt as its
    former type (the same fields under their former names)."""
    if not (isinstance(tree, tuple) and hasattr(tree, "_fields")):
        return tree
    children = [_with_former_names(child, former) for child in tree]
    if type(tree) not in former and all(a is b for a, b in zip(children, tree)):
        return tree
    return former.get(type(tree), type(tree))(*children)


def as_saved(template: PyTree, manifest: list[dict], former: dict[type, type]) -> PyTree:
    """``template``, or the template with former field names where the
    checkpoint was written before they were renamed."""
    saved = {leaf["path"] for leaf in manifest}
    paths = lambda tree: [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]
    if all(path in saved for path in paths(template)):
        return template
    renamed = _with_former_names(template, former)
    return renamed if all(path in saved for path in paths(renamed)) else template
