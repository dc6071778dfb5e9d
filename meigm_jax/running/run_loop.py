"""The one run loop, for the compiled JAX envs and for envs stepped on the host alike.

``run`` trains all seeds of a config chunk by chunk into a run directory
(its layout: ``meigm_jax.running.run_dir``). It is library code: it raises the
typed errors of ``meigm_jax.errors`` (``errors.RUN_ERRORS``) and never ends
the process; the commands (``meigm_jax.train``, the line-ups) turn an error
into its line and exit code.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

import jax
import numpy as np

from meigm_jax.programs import compile_cache
from meigm_jax.running import console
from meigm_jax.running import run_dir as run_dirs
from meigm_jax.algorithm.analysis import END_REPORTS
from meigm_jax.running.checkpoint import Checkpointer, restore_latest
from meigm_jax.config import TrainConfig, to_dict
from meigm_jax.errors import CheckpointError, ConfigError, Interrupted, NonFiniteLoss, WandbError
from meigm_jax.programs.program import RunProgram, to_host
from meigm_jax.running.run_dir import json_value
from meigm_jax.types import SHAPED_METRICS, WIN_METRICS
from meigm_jax.running.prepare import prepare
from meigm_jax.running.wandb_log import WandbLogger


def metric_records(cfg: TrainConfig, spec, metrics, seconds: float, wall: float,
                   prev_steps, extras: dict | None = None) -> list[dict]:
    """One JSON-ready dict per run from a chunk's ``ChunkMetrics`` (leading
    axis of runs: seeds, value after value in a sweep)."""
    omitted = (() if spec.has_win else WIN_METRICS) + (() if spec.has_shaped_reward else SHAPED_METRICS)
    arrays = {name: np.asarray(value) for name, value in metrics._asdict().items() if name not in omitted}
    records = []
    for i in range(len(arrays["env_steps"])):
        rec = {"seed": cfg.seed, "seed_index": i % cfg.num_seeds}
        rec.update((name, json_value(values[i])) for name, values in arrays.items())
        if spec.record_extras is not None:
            rec.update(spec.record_extras(rec))
        rec["sps"] = (int(arrays["env_steps"][i]) - int(prev_steps[i])) / max(seconds, 1e-9)
        rec["wall_s"] = wall
        rec.update(extras or {})
        records.append(rec)
    return records


def run(cfg: TrainConfig, run_dir: Path, env=None, program: RunProgram | None = None) -> list[dict]:
    """Train all seeds of ``cfg`` chunk by chunk, logging into ``run_dir``.

    The one run loop, whatever steps the envs (``program.RunProgram``): it
    writes ``config.json``, ``metrics.jsonl`` and, every ``checkpoint.every``
    updates and at the end, an orbax checkpoint of the whole state;
    ``resume=true`` continues from the newest one. A sweep writes its
    config and checkpoints there and each value as a run of its own in a
    directory inside (``run_dir.sweep_members``). ``program`` is the one
    ``prepare(cfg, env)`` made, where the caller ran the pre-flight already;
    otherwise it runs here (``env`` defaults to the registry's
    ``cfg.env.name``). Returns every metrics record (a sweep's: every value's,
    chunk by chunk).

    Raises ConfigError on bad input (nothing of the run is touched when it
    is found before training), NonFiniteLoss when a seed's loss stops being
    finite, Interrupted when a signal stops a host-stepped run, and the
    program's own errors (``errors.RUN_ERRORS``).
    """
    start = time.time()
    if program is None:
        program = prepare(cfg, env)
    run_dir = Path(run_dir)
    main_process = jax.process_index() == 0
    ckpt_dir = run_dirs.checkpoints_dir(run_dir)
    members = run_dirs.sweep_members(cfg, run_dir)
    cached = compile_cache.counts()
    if cfg.resume:
        run_dirs.check_resumable(to_dict(cfg), run_dir)
    else:
        for directory in dict.fromkeys([run_dir, *(m.run_dir for m in members)]):
            run_dirs.check_new(directory, "resume=true continues it, or choose another hydra.run.dir")
    if cfg.wandb.mode == "online" and main_process:
        _check_wandb_login()  # before compiling, not after

    with program:
        spec = program.spec
        print(f"meigm_jax: {cfg.alg.name} on {spec.name} ({spec.num_agents} agents, {spec.num_actions} "
              f"actions, episode limit {spec.episode_limit}) | {program.description} | run dir {run_dir}",
              flush=True)
        for note in program.notes:
            print(note, flush=True)
        state = program.state
        first_chunk, records_of = 0, [[] for _ in members]
        if cfg.resume:
            try:
                restored, meta = restore_latest(ckpt_dir, state)
            except CheckpointError as exc:
                raise ConfigError(str(exc)) from exc
            state = program.place(restored)
            first_chunk = int(meta["chunk"])
            # Chunks logged after the checkpoint are run again: drop their lines.
            records_of = [run_dirs.read_records(m.run_dir, required=False)[:int(meta["metrics_lines"])]
                          for m in members]
            print(f"resumed from {ckpt_dir} at chunk {first_chunk} "
                  f"({int(meta['env_steps']):,} env steps of seed 0)", flush=True)
        elif main_process:
            run_dirs.write_config(run_dir, to_dict(cfg))
            for member in members:
                if member.name is not None:
                    run_dirs.write_config(member.run_dir, to_dict(member.config))
        print(f"compiled in {time.time() - start:.1f}s ({compile_cache.describe(compile_cache.counts().since(cached))}); "
              f"training {program.num_chunks - first_chunk} "
              f"chunk(s) of {cfg.test_interval:,} env steps", flush=True)
        state = _train_chunks(cfg, program, state, run_dir, members, first_chunk, records_of, start,
                              main_process)

    seconds, seeds = time.time() - start, cfg.num_seeds
    for member, records in zip(members, records_of):
        console.print_summary(spec.has_win, records[-seeds:], seconds, member.name)
    if spec.end_report is not None:
        params = to_host(state.params)  # every process: a gather when there are several
        if main_process:
            for member in members:
                rows = jax.tree.map(lambda x: x[member.rows], params)
                _write_end_report(spec.end_report, program.trainer, rows, member.run_dir)
    # Chunk by chunk, value after value: the order of the program's runs.
    return [rec for chunk in zip(*[_chunks(r, seeds) for r in records_of]) for block in chunk for rec in block]


def _chunks(records: list[dict], seeds: int) -> list[list[dict]]:
    return [records[i:i + seeds] for i in range(0, len(records), seeds)]


def _train_chunks(cfg: TrainConfig, program, state, run_dir: Path, members: list, first_chunk: int,
                  records_of: list[list[dict]], start: float, main_process: bool):
    """The chunks from ``first_chunk`` on: metrics, W&B, checkpoints, the
    non-finite stop and progress. ``records_of`` (one list per member) grows
    by every record."""
    spec, ckpt_dir, seeds = program.spec, run_dirs.checkpoints_dir(run_dir), cfg.num_seeds
    loggers = [_wandb_logger(m) for m in members] if main_process else []
    checkpointer = Checkpointer(ckpt_dir, cfg.checkpoint.keep) if main_process else None
    last = [rec for records in records_of for rec in records[-seeds:]]
    prev_steps = [r["env_steps"] for r in last] or [0] * seeds * len(members)
    saved_updates = max([r["updates"] for r in last], default=0)
    saved_chunk = first_chunk
    train_start = time.time()

    def save(chunk_done: int, state, **meta) -> None:
        host_state = to_host(state)  # every process: a gather when there are several
        if checkpointer is None:
            return
        checkpointer.save(chunk_done, host_state, {
            # Lines of each member's metrics.jsonl (every member has as many).
            "chunk": chunk_done, "metrics_lines": len(records_of[0]),
            "env_steps": int(np.ravel(host_state.counters.env_steps)[0]), "config": to_dict(cfg), **meta})

    try:
        with contextlib.ExitStack() as open_sinks:
            sinks = [open_sinks.enter_context(run_dirs.MetricsWriter(
                m.run_dir, keep=records if cfg.resume else None, active=main_process))
                for m, records in zip(members, records_of)]
            for index in range(first_chunk, program.num_chunks):
                t0 = time.time()
                try:
                    state, metrics = program.chunk(state, index)
                except Interrupted as exc:
                    # The chunk in progress is kept, unless a checkpoint of
                    # its start exists already (a checkpoint step is written once).
                    # (Only a host-stepped program, one process, is interrupted.)
                    if checkpointer is not None and checkpointer.latest_step() != index:
                        try:
                            save(index, exc.state, interrupted=True)
                            checkpointer.wait()
                            print(f"saved the interrupted chunk's state as checkpoint {index} in {ckpt_dir}",
                                  file=sys.stderr, flush=True)
                        except Exception as error:  # a final checkpoint is best effort
                            print(f"warning: final checkpoint not saved: {error}", file=sys.stderr, flush=True)
                    raise
                metrics = to_host(metrics)
                seconds = time.time() - t0
                extras = program.record_extras()
                records = metric_records(cfg, spec, metrics, seconds, time.time() - start, prev_steps, extras)
                prev_steps = [r["env_steps"] for r in records]
                blocks = [records[member.rows] for member in members]
                for v, block in enumerate(blocks):
                    sinks[v].write(block)
                    records_of[v].extend(block)
                    if loggers:
                        loggers[v].log(block)
                _stop_on_non_finite(metrics, seeds, members, saved_chunk, ckpt_dir)
                updates = max(r["updates"] for r in records)
                if cfg.checkpoint.every and updates - saved_updates >= cfg.checkpoint.every:
                    save(index + 1, state)
                    saved_updates, saved_chunk = updates, index + 1
                elapsed = time.time() - train_start
                eta = elapsed / (index + 1 - first_chunk) * (program.num_chunks - index - 1)
                for member, block in zip(members, blocks):
                    print(console.progress_line(cfg.total_timesteps, spec.has_win, block, eta, extras,
                                                member.name), flush=True)
        if saved_chunk < program.num_chunks:
            save(program.num_chunks, state)
    finally:
        if checkpointer is not None:
            checkpointer.close()  # waits for a save in flight
        for logger in loggers:
            logger.finish()
    return state


def _write_end_report(name: str, trainer, params, run_dir: Path) -> None:
    """The env's end-of-run report (the matrix game's Table 1): printed and saved in the run."""
    filename, text = END_REPORTS[name](trainer, params)
    print("\n" + text)
    (run_dir / filename).write_text(text + "\n")
    print(f"saved {run_dir / filename}")


def _check_wandb_login() -> None:
    import wandb  # only for wandb.mode=online: a slow import that disabled runs never make

    try:
        WandbLogger.check_online(wandb)
    except WandbError as exc:
        raise ConfigError(str(exc)) from exc


def _wandb_logger(member) -> WandbLogger:
    """A member's W&B runs, one per seed; a sweep's values each form their own group."""
    cfg = member.config
    group = cfg.wandb.group and (f"{cfg.wandb.group}/{member.name}" if member.name else cfg.wandb.group)
    try:
        return WandbLogger(to_dict(cfg), member.run_dir, cfg.num_seeds, cfg.wandb.mode, cfg.wandb.project,
                           cfg.wandb.entity, group, cfg.wandb.tags, label=member.name)
    except WandbError as exc:
        raise ConfigError(str(exc)) from exc


def _stop_on_non_finite(metrics, seeds: int, members: list, saved_chunk: int, ckpt_dir: Path) -> None:
    """A seed whose loss stopped being finite ends the run (NonFiniteLoss);
    checkpoints stay as they are."""
    bad = np.asarray(metrics.first_nonfinite_update)
    if np.any(bad >= 0):
        run = int(np.argmax(bad >= 0))
        name = members[run // seeds].name
        where = f"seed_index {run % seeds}" + (f" of {name}" if name else "")
        kept = f"the last good checkpoint is chunk {saved_chunk} in {ckpt_dir}" if saved_chunk else \
            "no checkpoint was saved yet"
        raise NonFiniteLoss(f"error: non-finite loss in {where} at update {int(bad[run])}; "
                            f"run stopped, {kept}")
