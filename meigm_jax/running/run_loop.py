"""The one run loop, for the compiled JAX envs and for envs stepped on the host alike.

``run`` trains all seeds of a config chunk by chunk into a run directory
(its layout: ``meigm_jax.running.run_dir``). It is library code: it raises the
typed errors of ``meigm_jax.errors`` (``errors.RUN_ERRORS``) and never ends
the process; the commands (``meigm_jax.train``, the line-ups) turn an error
into its line and exit code.
"""

from __future__ import annotations

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
    """One JSON-ready dict per seed from a chunk's ``ChunkMetrics`` (leading seed axis)."""
    omitted = (() if spec.has_win else WIN_METRICS) + (() if spec.has_shaped_reward else SHAPED_METRICS)
    arrays = {name: np.asarray(value) for name, value in metrics._asdict().items() if name not in omitted}
    records = []
    for i in range(len(arrays["env_steps"])):
        rec = {"seed": cfg.seed, "seed_index": i}
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
    ``resume=true`` continues from the newest one. ``program`` is the one
    ``prepare(cfg, env)`` made, where the caller ran the pre-flight already;
    otherwise it runs here (``env`` defaults to the registry's
    ``cfg.env.name``). Returns every metrics record.

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
    cached = compile_cache.counts()
    if cfg.resume:
        run_dirs.check_resumable(to_dict(cfg), run_dir)
    else:
        run_dirs.check_new(run_dir, "resume=true continues it, or choose another hydra.run.dir")
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
        first_chunk, all_records = 0, []
        if cfg.resume:
            try:
                restored, meta = restore_latest(ckpt_dir, state)
            except CheckpointError as exc:
                raise ConfigError(str(exc)) from exc
            state = program.place(restored)
            first_chunk = int(meta["chunk"])
            # Chunks logged after the checkpoint are run again: drop their lines.
            all_records = run_dirs.read_records(run_dir, required=False)[:int(meta["metrics_lines"])]
            print(f"resumed from {ckpt_dir} at chunk {first_chunk} "
                  f"({int(meta['env_steps']):,} env steps of seed 0)", flush=True)
        elif main_process:
            run_dirs.write_config(run_dir, to_dict(cfg))
        print(f"compiled in {time.time() - start:.1f}s ({compile_cache.describe(compile_cache.counts().since(cached))}); "
              f"training {program.num_chunks - first_chunk} "
              f"chunk(s) of {cfg.test_interval:,} env steps", flush=True)
        state = _train_chunks(cfg, program, state, run_dir, first_chunk, all_records, start, main_process)
        final = all_records[-cfg.num_seeds:]

    console.print_summary(spec.has_win, final, time.time() - start)
    if spec.end_report is not None:
        params = to_host(state.params)  # every process: a gather when there are several
        if main_process:
            _write_end_report(spec.end_report, program.trainer, params, run_dir)
    return all_records


def _train_chunks(cfg: TrainConfig, program, state, run_dir: Path, first_chunk: int,
                  all_records: list[dict], start: float, main_process: bool):
    """The chunks from ``first_chunk`` on: metrics, W&B, checkpoints, the
    non-finite stop and progress. ``all_records`` grows by every record."""
    spec, ckpt_dir = program.spec, run_dirs.checkpoints_dir(run_dir)
    logger = _wandb_logger(cfg, run_dir) if main_process else None
    checkpointer = Checkpointer(ckpt_dir, cfg.checkpoint.keep) if main_process else None
    prev_steps = [r["env_steps"] for r in all_records[-cfg.num_seeds:]] or [0] * cfg.num_seeds
    saved_updates = max([r["updates"] for r in all_records[-cfg.num_seeds:]], default=0)
    saved_chunk = first_chunk
    train_start = time.time()

    def save(chunk_done: int, state, **meta) -> None:
        host_state = to_host(state)  # every process: a gather when there are several
        if checkpointer is None:
            return
        checkpointer.save(chunk_done, host_state, {
            "chunk": chunk_done, "metrics_lines": len(all_records),
            "env_steps": int(np.ravel(host_state.counters.env_steps)[0]), "config": to_dict(cfg), **meta})

    try:
        with run_dirs.MetricsWriter(run_dir, keep=all_records if cfg.resume else None,
                                    active=main_process) as sink:
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
                sink.write(records)
                all_records.extend(records)
                if logger is not None:
                    logger.log(records)
                _stop_on_non_finite(metrics, saved_chunk, ckpt_dir)
                updates = max(r["updates"] for r in records)
                if cfg.checkpoint.every and updates - saved_updates >= cfg.checkpoint.every:
                    save(index + 1, state)
                    saved_updates, saved_chunk = updates, index + 1
                elapsed = time.time() - train_start
                eta = elapsed / (index + 1 - first_chunk) * (program.num_chunks - index - 1)
                print(console.progress_line(cfg.total_timesteps, spec.has_win, records, eta, extras), flush=True)
        if saved_chunk < program.num_chunks:
            save(program.num_chunks, state)
    finally:
        if checkpointer is not None:
            checkpointer.close()  # waits for a save in flight
        if logger is not None:
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


def _wandb_logger(cfg: TrainConfig, run_dir: Path) -> WandbLogger:
    try:
        return WandbLogger(to_dict(cfg), run_dir, cfg.num_seeds, cfg.wandb.mode, cfg.wandb.project,
                           cfg.wandb.entity, cfg.wandb.group, cfg.wandb.tags)
    except WandbError as exc:
        raise ConfigError(str(exc)) from exc


def _stop_on_non_finite(metrics, saved_chunk: int, ckpt_dir: Path) -> None:
    """A seed whose loss stopped being finite ends the run (NonFiniteLoss);
    checkpoints stay as they are."""
    bad = np.asarray(metrics.first_nonfinite_update)
    if np.any(bad >= 0):
        seed = int(np.argmax(bad >= 0))
        kept = f"the last good checkpoint is chunk {saved_chunk} in {ckpt_dir}" if saved_chunk else \
            "no checkpoint was saved yet"
        raise NonFiniteLoss(f"error: non-finite loss in seed_index {seed} at update {int(bad[seed])}; "
                            f"run stopped, {kept}")
