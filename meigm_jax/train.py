"""Command line: ``python -m meigm_jax.train [+env=NAME] [alg=NAME] [key=value ...]``.

Writes into Hydra's run directory (``hydra.run.dir=PATH`` sets it; its
layout: ``meigm_jax.run_dir``). ``run`` is the one run loop, for the
compiled JAX envs and for envs stepped on the host alike.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

from meigm_jax import run_dir as run_dirs
from meigm_jax.cli_config import (
    CONFIG_DIR,
    check_overrides,
    compose,
    exit_bad_input,
    from_composed,
    hydra_context,
    register_base,
    with_default_env,
    with_preset,
)
from meigm_jax.config import ConfigError, TrainConfig, to_dict
from meigm_jax.envs import make_env
from meigm_jax.run_dir import json_value


def metric_records(cfg: TrainConfig, spec, metrics, seconds: float, wall: float,
                   prev_steps, extras: dict | None = None) -> list[dict]:
    """One JSON-ready dict per seed from a chunk's ``ChunkMetrics`` (leading seed axis)."""
    import numpy as np

    from meigm_jax.types import SHAPED_METRICS, WIN_METRICS

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


def _progress(cfg: TrainConfig, has_win: bool, records: list[dict], eta_s: float,
              extras: dict) -> str:
    import numpy as np

    steps = np.mean([r["env_steps"] for r in records])
    ret = np.array([r["test_return"] for r in records])
    # null when the chunk ran no training episode: a rollout of the chunk
    # before went past this chunk's end (test_interval shorter than a rollout)
    train = [r["train_return"] for r in records if r["train_return"] is not None]
    train_text = f"{np.mean(train):8.3f}" if train else f"{'n/a':>8}"
    line = (f"[{100 * min(steps / cfg.total_timesteps, 1):5.1f}%] env_steps {int(steps):>10,}"
            f" | train_return {train_text} | test_return {ret.mean():8.3f} ± {ret.std():.3f}")
    if has_win:
        win = np.array([r["test_win_rate"] for r in records])
        line += f" | win {win.mean():.3f}"
    sps = sum(r["sps"] for r in records)
    line += f" | sps {sps:>9,.0f} | eta {time.strftime('%H:%M:%S', time.gmtime(max(eta_s, 0)))}"
    return line + "".join(f" | {key} {value}" for key, value in extras.items())


EXIT_NON_FINITE = 3
EXIT_NOT_JOINED = 4  # distributed=true: the other processes did not all join in time


def _join_processes(cfg: TrainConfig) -> None:
    """distributed=true: join the run's other processes, before JAX starts
    its backend; one line on failure (a half-joined JAX client can block a
    normal exit, so the process ends at once)."""
    import jax

    from meigm_jax.distributed import DistributedError, initialize

    if jax.distributed.is_initialized():
        return
    try:
        initialize(cfg.distributed_timeout)
    except ConfigError as exc:
        exit_bad_input(str(exc))
    except DistributedError as exc:
        sys.stdout.flush()
        print(exc, file=sys.stderr, flush=True)
        os._exit(EXIT_NOT_JOINED)


def open_program(cfg: TrainConfig, env=None):
    """The env's ``RunProgram``: compiled JAX chunks, or workers stepped on the host."""
    env = make_env(cfg.env.name) if env is None else env
    if env.spec.host_stepped:
        from meigm_jax.sc2.host_loop import HostProgram

        return HostProgram(cfg, env)
    from meigm_jax.program import JaxProgram

    return JaxProgram(cfg, env)


def run(cfg: TrainConfig, run_dir: Path, env=None) -> list[dict]:
    """Train all seeds of ``cfg`` chunk by chunk, logging into ``run_dir``.

    The one run loop, whatever steps the envs (``program.RunProgram``): it
    writes ``config.json``, ``metrics.jsonl`` and, every ``checkpoint.every``
    updates and at the end, an orbax checkpoint of the whole state;
    ``resume=true`` continues from the newest one. ``env`` defaults to the
    registry's ``cfg.env.name``.
    """
    import jax

    if cfg.distributed:
        _join_processes(cfg)
    from meigm_jax.checkpoint import CheckpointError, restore_latest
    from meigm_jax.program import EXIT_INTERRUPTED, Interrupted, to_host

    run_dir = Path(run_dir)
    main_process = jax.process_index() == 0
    ckpt_dir = run_dirs.checkpoints_dir(run_dir)
    start = time.time()
    try:
        program = open_program(cfg, env)
        if cfg.resume:
            run_dirs.check_resumable(to_dict(cfg), run_dir)
        else:
            run_dirs.check_new(run_dir, "resume=true continues it, or choose another hydra.run.dir")
        if cfg.wandb.mode == "online" and main_process:
            _check_wandb_login()  # before compiling, not after
    except ConfigError as exc:
        exit_bad_input(str(exc))

    try:
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
                    exit_bad_input(str(exc))
                state = program.place(restored)
                first_chunk = int(meta["chunk"])
                # Chunks logged after the checkpoint are run again: drop their lines.
                all_records = run_dirs.read_records(run_dir, required=False)[:int(meta["metrics_lines"])]
                print(f"resumed from {ckpt_dir} at chunk {first_chunk} "
                      f"({int(meta['env_steps']):,} env steps of seed 0)", flush=True)
            elif main_process:
                run_dirs.write_config(run_dir, to_dict(cfg))
            print(f"compiled in {time.time() - start:.1f}s; training {program.num_chunks - first_chunk} "
                  f"chunk(s) of {cfg.test_interval:,} env steps", flush=True)
            state = _train_chunks(cfg, program, state, run_dir, first_chunk, all_records, start,
                                  main_process)
            final = all_records[-cfg.num_seeds:]
    except Interrupted as exc:
        print(f"interrupted ({exc}); run stopped", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_INTERRUPTED)
    except ConfigError as exc:  # found once the program is ready (the workers' env sizes)
        exit_bad_input(str(exc))

    _summary(cfg, spec.has_win, final, time.time() - start)
    if spec.end_report is not None:
        params = to_host(state.params)  # every process: a gather when there are several
        if main_process:
            _write_end_report(spec.end_report, program.trainer, params, run_dir)
    return all_records


def _train_chunks(cfg: TrainConfig, program, state, run_dir: Path, first_chunk: int,
                  all_records: list[dict], start: float, main_process: bool):
    """The chunks from ``first_chunk`` on: metrics, W&B, checkpoints, the
    non-finite stop and progress. ``all_records`` grows by every record."""
    import numpy as np

    from meigm_jax.checkpoint import Checkpointer
    from meigm_jax.program import Interrupted, to_host

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
                print(_progress(cfg, spec.has_win, records, eta, extras), flush=True)
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
    from meigm_jax.analysis import END_REPORTS

    filename, text = END_REPORTS[name](trainer, params)
    print("\n" + text)
    (run_dir / filename).write_text(text + "\n")
    print(f"saved {run_dir / filename}")


def _check_wandb_login() -> None:
    import wandb

    from meigm_jax.wandb_log import WandbError, WandbLogger

    try:
        WandbLogger.check_online(wandb)
    except WandbError as exc:
        raise ConfigError(str(exc)) from exc


def _wandb_logger(cfg: TrainConfig, run_dir: Path):
    from meigm_jax.wandb_log import WandbError, WandbLogger

    try:
        return WandbLogger(to_dict(cfg), run_dir, cfg.num_seeds, cfg.wandb.mode, cfg.wandb.project,
                           cfg.wandb.entity, cfg.wandb.group, cfg.wandb.tags)
    except WandbError as exc:
        exit_bad_input(str(exc))


def _stop_on_non_finite(metrics, saved_chunk: int, ckpt_dir: Path) -> None:
    """A seed whose loss stopped being finite ends the run; checkpoints stay as they are."""
    import numpy as np

    bad = np.asarray(metrics.first_nonfinite_update)
    if np.any(bad >= 0):
        seed = int(np.argmax(bad >= 0))
        kept = f"the last good checkpoint is chunk {saved_chunk} in {ckpt_dir}" if saved_chunk else \
            "no checkpoint was saved yet"
        print(f"error: non-finite loss in seed_index {seed} at update {int(bad[seed])}; run stopped, "
              f"{kept}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_NON_FINITE)


def _summary(cfg: TrainConfig, has_win: bool, final: list[dict], seconds: float) -> None:
    import numpy as np

    print(f"\ndone in {seconds:.1f}s. final greedy evaluation per seed:")
    header = f"{'seed':>5} {'env_steps':>10} {'test_return':>12}" + (f" {'win_rate':>9}" if has_win else "")
    print(header)
    for rec in final:
        line = f"{rec['seed_index']:>5} {rec['env_steps']:>10,} {rec['test_return']:>12.3f}"
        if has_win:
            line += f" {rec['test_win_rate']:>9.3f}"
        print(line)
    ret = np.array([r["test_return"] for r in final])
    line = f"{'mean':>5} {'':>10} {ret.mean():>12.3f}"
    if has_win:
        line += f" {np.mean([r['test_win_rate'] for r in final]):>9.3f}"
    print(line + f"   (± {ret.std():.3f} over {len(final)} seed(s))")


def _task(cfg: TrainConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    # Hydra logs at INFO; JAX's probe for absent TPU/GPU plugins is noise.
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
    run(cfg, Path(HydraConfig.get().runtime.output_dir))


def _run_job(cfg: TrainConfig, node) -> None:
    """Run ``cfg`` as Hydra's job for the composed ``node``: Hydra makes the
    run directory, ``.hydra/`` and the job log as ``hydra.main`` would, from
    the one composition (call within ``cli_config.hydra_context()``)."""
    from hydra._internal.callbacks import Callbacks
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.utils import run_job
    from hydra.types import HydraContext
    from omegaconf import read_write

    if cfg.resume:
        # Hydra would rewrite .hydra/ and the job log in the run before the
        # resume is checked; a resume that fails must leave the run as it was.
        with read_write(node.hydra):
            node.hydra.output_subdir = None
            node.hydra.job_logging = {"version": 1, "root": None, "disable_existing_loggers": False}
    HydraConfig.instance().set_config(node)
    context = HydraContext(config_loader=GlobalHydra.instance().config_loader(), callbacks=Callbacks(node))
    job = run_job(hydra_context=context, task_function=lambda _: _task(cfg), config=node,
                  job_dir_key="hydra.run.dir", job_subdir_key=None)
    job.return_value  # re-raises what the run raised


def _hydra_main() -> None:
    """A multirun (``-m``): Hydra composes each job; each is validated as it starts."""
    import hydra

    register_base()

    @hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base="1.3")
    def task(node) -> None:
        try:
            cfg = from_composed(node)
        except ConfigError as exc:
            exit_bad_input(str(exc))
        _task(cfg)

    task()


def main(argv: list[str] | None = None) -> None:
    overrides = with_default_env(list(sys.argv[1:] if argv is None else argv))
    try:
        overrides = with_preset(overrides)
    except ConfigError as exc:
        exit_bad_input(str(exc))
    if any(o in ("-m", "--multirun") for o in overrides):
        sys.argv = [sys.argv[0]] + overrides
        _hydra_main()
        return
    # One composition, checked in one line before Hydra or JAX do any work.
    try:
        check_overrides(overrides)
        with hydra_context():
            node = compose(overrides, with_hydra=True)
            cfg = from_composed(node)
            if cfg.distributed:
                _join_processes(cfg)  # before anything starts JAX's backend
            make_env(cfg.env.name)  # e.g. a missing StarCraft II, before the run directory exists
            run_dirs.check_writable(Path(node.hydra.run.dir))
            _run_job(cfg, node)
    except ConfigError as exc:
        exit_bad_input(str(exc))


if __name__ == "__main__":
    main()
