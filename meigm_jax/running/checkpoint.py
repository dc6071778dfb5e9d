"""Checkpoints of the whole training state, written between compiled chunks.

A checkpoint is one orbax step directory ``<directory>/<step>/`` with two
items: ``state`` (the state pytree, saved as host numpy arrays with
``StandardSave``) and ``meta`` (JSON: the caller's meta dict plus this
manifest of every leaf's path, shape, dtype and CRC-32).

Atomicity: orbax writes both items of a step into
``<step>.orbax-checkpoint-tmp`` and renames that directory to ``<step>`` only
after every file is written, and it lists only renamed directories as steps.
A process killed mid-save therefore leaves at most a temporary directory that
:func:`restore_latest` never sees; the next :class:`Checkpointer` on the
directory deletes it (it must: the temporary name is fixed per step, so a
leftover would block saving that step again).

Corruption: the manifest is checked against the template before the arrays are
read, orbax's read errors are reported as a corrupt checkpoint, and every
restored leaf must match the CRC-32 recorded when it was saved
(``meigm_jax.running.checkpoint_manifest``).

Orbax's informational logging and the stray callbacks of a failed read are
kept off stderr only while a Checkpointer is open or a restore runs
(``meigm_jax.running.orbax_quiet``); nothing here changes the process for
longer.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path
from typing import Any, Self

import jax
import numpy as np
import orbax.checkpoint as ocp

from meigm_jax.errors import CheckpointError
from meigm_jax.running import checkpoint_manifest as manifests
from meigm_jax.running.checkpoint_manifest import leaf_dtype, leaf_shape, reason
from meigm_jax.running.orbax_quiet import orbax_quiet, reads_finish_first
from meigm_jax.types import FORMER_FIELD_NAMES

PyTree = Any

_TMP_SUFFIX = ".orbax-checkpoint-tmp"  # orbax's name for a step still being written


def _handlers(partial: bool = False) -> dict[str, ocp.CheckpointHandler]:
    # Reading only some fields of the state needs the PyTree handler's partial
    # restore; it reads what the Standard handler wrote.
    state = ocp.PyTreeCheckpointHandler() if partial else ocp.StandardCheckpointHandler()
    return {"state": state, "meta": ocp.JsonCheckpointHandler()}


def _this_process_only() -> ocp.options.MultiprocessingOptions:
    """Checkpoints hold host arrays, written and read by one process alone: in a
    multi-process run the first process saves while the others keep training,
    so orbax must not wait for them at its barriers."""
    index = jax.process_index()
    return ocp.options.MultiprocessingOptions(primary_host=index, active_processes={index})


def _to_host(leaves: list) -> list[np.ndarray]:
    """Host copies that the caller's later buffer donation cannot touch."""
    for leaf in leaves:
        leaf_dtype(leaf)
    host = [np.asarray(x) for x in jax.device_get(leaves)]  # one batched transfer
    # A zero-copy view of a (CPU) device buffer would alias memory the next
    # chunk may donate while orbax still writes it in the background.
    return [x if x.flags.owndata and x.flags.c_contiguous else np.array(x, copy=True, order="C")
            for x in host]


class Checkpointer:
    """Saves checkpoints into ``directory``, keeping the ``keep`` newest.

    ``save`` copies the state to host memory, then writes in the background;
    ``wait`` (also done by ``latest_step``, the next ``save`` and ``close``)
    blocks until the write is on disk.
    """

    def __init__(self, directory: Path, keep: int):
        if int(keep) < 1:
            raise CheckpointError(f"checkpoint keep must be >= 1, got {keep}")
        self._quiet = contextlib.ExitStack()  # left by close
        self._quiet.enter_context(orbax_quiet())
        self.directory = Path(directory).absolute()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            # Leftovers of saves killed before their rename. Orbax's own
            # cleanup_tmp_directories runs in a background thread that only a
            # save waits for; this is done before anything else looks.
            for leftover in self.directory.iterdir():
                if _TMP_SUFFIX in leftover.name and leftover.is_dir() and not leftover.is_symlink():
                    shutil.rmtree(leftover)
            self._manager = ocp.CheckpointManager(
                self.directory,
                options=ocp.CheckpointManagerOptions(
                    max_to_keep=int(keep),
                    create=False,  # made above (orbax cannot with active_processes)
                    cleanup_tmp_directories=False,
                    enable_async_checkpointing=True,
                    save_root_metadata=False,
                    multiprocessing_options=_this_process_only(),
                ),
                item_handlers=_handlers(),
            )
        except Exception as exc:
            self._quiet.close()
            if isinstance(exc, CheckpointError):
                raise
            raise CheckpointError(
                f"cannot open checkpoint directory {self.directory}: {reason(exc)}") from exc
        self._closed = False

    def save(self, step: int, state: PyTree, meta: dict) -> None:
        """Starts writing checkpoint ``step``; returns once the state is on the host."""
        if self._closed:
            raise CheckpointError(f"checkpointer for {self.directory} is closed")
        step = int(step)
        try:
            json.dumps(meta)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(
                f"checkpoint meta for step {step} is not JSON-serialisable: {reason(exc)}") from exc
        self.wait()
        if step in self._manager.all_steps():
            raise CheckpointError(f"checkpoint step {step} already exists in {self.directory}")

        flat, treedef = jax.tree_util.tree_flatten_with_path(state)
        host = _to_host([leaf for _, leaf in flat])
        record = manifests.record(meta, flat, host)
        # Orbax refuses zero-size arrays (e.g. a replay's state of width 0):
        # they are stored as one-element placeholders and rebuilt from the manifest.
        stored = [np.zeros((1,), array.dtype) if array.size == 0 else array for array in host]
        host_state = jax.tree_util.tree_unflatten(treedef, stored)
        try:
            self._manager.save(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardSave(host_state), meta=ocp.args.JsonSave(record)),
                force=True,
            )
        except Exception as exc:
            raise CheckpointError(
                f"cannot save checkpoint step {step} in {self.directory}: {reason(exc)}") from exc

    def wait(self) -> None:
        """Blocks until the last save is complete on disk."""
        if self._closed:
            return
        try:
            self._manager.wait_until_finished()
        except Exception as exc:
            raise CheckpointError(
                f"saving a checkpoint in {self.directory} failed: {reason(exc)}") from exc

    def latest_step(self) -> int | None:
        """The newest complete checkpoint's step (after waiting for any save)."""
        self.wait()
        return self._manager.latest_step()

    def close(self) -> None:
        """Waits for the last save, then releases orbax's threads; idempotent."""
        if self._closed:
            return
        failed = None
        try:
            self.wait()
        except CheckpointError as exc:
            failed = exc
        self._closed = True
        try:
            self._manager.close()
        except Exception as exc:
            if failed is None:
                raise CheckpointError(
                    f"cannot close checkpoint directory {self.directory}: {reason(exc)}") from exc
        finally:
            self._quiet.close()
        if failed is not None:
            raise failed

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _place(array: np.ndarray, like):
    sharding = getattr(like, "sharding", None)
    if isinstance(sharding, jax.sharding.Sharding):
        return jax.device_put(array, sharding)
    return jax.device_put(array)


def restore_latest(directory: Path, template: PyTree,
                   fields: tuple[str, ...] | None = None,
                   former_names: dict[type, type] = FORMER_FIELD_NAMES) -> tuple[PyTree, dict]:
    """The newest checkpoint in ``directory``, restored into ``template``'s structure.

    ``template`` has the saved state's structure, shapes and dtypes (a real
    state or ``jax.eval_shape`` of one). Returns the state, with jax arrays
    placed like the template's (default device for abstract leaves), and the
    meta dict given to ``save``. Reads only; raises a one-line
    :class:`CheckpointError` when there is no checkpoint, when it does not fit
    the template, or when it is corrupt.

    ``fields`` (for a NamedTuple state) reads only those top-level fields from
    disk, e.g. ``("params", "counters")`` for evaluation, without the replay;
    the other fields come back as None. The whole manifest is still checked
    against the template, and the fields read against their checksums.

    ``former_names`` maps NamedTuple types whose fields were renamed to
    their former versions: a checkpoint saved before the rename is read
    under the former names and returned in ``template``'s types.
    """
    directory = Path(directory).absolute()
    if not directory.is_dir():
        raise CheckpointError(f"no checkpoint in {directory}; the directory does not exist")
    with orbax_quiet(), reads_finish_first():
        return _restore(directory, template, fields, former_names)


def _restore(directory: Path, template: PyTree, fields: tuple[str, ...] | None,
             former_names: dict[type, type]) -> tuple[PyTree, dict]:
    """``restore_latest`` once the directory exists."""
    manager = None
    try:
        try:
            manager = ocp.CheckpointManager(
                directory,
                options=ocp.CheckpointManagerOptions(
                    read_only=True, create=False, save_root_metadata=False,
                    lightweight_initialize=True, enable_async_checkpointing=False,
                    multiprocessing_options=_this_process_only()),
                item_handlers=_handlers(partial=fields is not None),
            )
            step = manager.latest_step()
        except Exception as exc:
            raise CheckpointError(
                f"cannot read checkpoint directory {directory}: {reason(exc)}") from exc
        if step is None:
            raise CheckpointError(
                f"no checkpoint in {directory}; it holds no complete checkpoint step directory")
        where = str(directory / str(step))

        try:
            record = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
        except Exception as exc:
            raise CheckpointError(f"corrupt checkpoint {where}: meta: {reason(exc)}") from exc
        manifest, meta = manifests.read_record(where, record)

        current, template = template, manifests.as_saved(template, manifest, former_names)
        template_flat, treedef = jax.tree_util.tree_flatten_with_path(template)
        manifests.check_compatible(where, manifest, template_flat)

        def stored_shape(leaf) -> tuple[int, ...]:
            shape = leaf_shape(leaf)
            return (1,) if 0 in shape else shape  # the placeholder of a zero-size leaf

        abstract = jax.tree_util.tree_unflatten(treedef, [
            jax.ShapeDtypeStruct(stored_shape(leaf), leaf_dtype(leaf)) for _, leaf in template_flat])
        if fields is None:
            wanted, request = template, ocp.args.StandardRestore(abstract)
        else:
            unknown = [f for f in fields if f not in getattr(template, "_fields", ())]
            if unknown:
                raise CheckpointError(f"cannot restore fields {unknown}: the state's fields are "
                                      f"{list(getattr(template, '_fields', ()))}")
            wanted = {f: getattr(template, f) for f in fields}
            request = ocp.args.PyTreeRestore(
                {f: getattr(abstract, f) for f in fields}, partial_restore=True)
        try:
            restored = manager.restore(step, args=ocp.args.Composite(state=request)).state
        except Exception as exc:
            raise CheckpointError(f"corrupt checkpoint {where}: state: {reason(exc)}") from exc
        wanted_flat, wanted_def = jax.tree_util.tree_flatten_with_path(wanted)
        restored_leaves, restored_def = jax.tree_util.tree_flatten(restored)
        if restored_def != wanted_def:
            raise CheckpointError(
                f"corrupt checkpoint {where}: its state does not have the structure of its manifest")
        if fields is not None:
            # Paths under the dict of fields read as ['params']...; on disk as .params...
            by_path = {leaf["path"]: leaf for leaf in manifest}
            manifest = [by_path["." + path[0].key + jax.tree_util.keystr(path[1:])]
                        for path, _ in wanted_flat]

        leaves = []
        for saved, array, (_, like) in zip(manifest, restored_leaves, wanted_flat):
            array = np.asarray(array)
            if 0 in saved["shape"]:
                array = np.zeros(saved["shape"], array.dtype)
            manifests.check_leaf(where, saved, array)
            leaves.append(_place(array, like))
        state = jax.tree_util.tree_unflatten(wanted_def, leaves)
        # Into the current types (a no-op unless the checkpoint has former names).
        as_current = lambda like, tree: jax.tree_util.tree_unflatten(
            jax.tree_util.tree_structure(like), jax.tree_util.tree_leaves(tree))
        if fields is not None:
            return current._replace(**{f: as_current(getattr(current, f), state[f]) if f in state else None
                                       for f in current._fields}), meta
        return as_current(current, state), meta
    finally:
        if manager is not None:
            # Closing a read-only manager must not hide the result or the error.
            with contextlib.suppress(Exception):
                manager.close()
