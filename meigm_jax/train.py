"""Command line: ``python -m meigm_jax.train [+env=NAME] [alg=NAME] [key=value ...]``.

Writes into Hydra's run directory (``hydra.run.dir=PATH`` sets it):
``config.json`` (the validated config) and ``metrics.jsonl`` (one JSON
object per evaluation per seed).
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from pathlib import Path

from meigm_jax.cli_config import (
    CONFIG_DIR,
    exit_bad_input,
    from_composed,
    load,
    register_base,
    with_default_env,
)
from meigm_jax.config import ConfigError, TrainConfig, env_family, to_dict


def json_value(x):
    """A metric as JSON: numpy scalars as Python numbers, non-finite floats as null."""
    x = x.item() if hasattr(x, "item") else x
    if isinstance(x, float) and not math.isfinite(x):
        return None  # e.g. a loss in a chunk without gradient steps
    return x


def metric_records(cfg: TrainConfig, spec, metrics, seconds: float, wall: float,
                   prev_steps) -> list[dict]:
    """One JSON-ready dict per seed from a chunk's vmapped ``ChunkMetrics``."""
    import numpy as np

    arrays = {name: np.asarray(value) for name, value in metrics._asdict().items()}
    records = []
    for i in range(cfg.num_seeds):
        rec = {"seed": cfg.seed, "seed_index": i}
        for name, values in arrays.items():
            if not spec.has_win and name.endswith("win_rate"):
                continue
            if not spec.has_shaped_reward and "shap" in name:
                continue
            rec[name] = json_value(values[i])
        if env_family(spec.name) == "overcooked":
            from meigm_jax.envs.overcooked import SOUP_REWARD

            rec["soups_per_episode"] = rec["test_return"] / SOUP_REWARD
            rec["train_soups_per_episode"] = rec["train_return"] / SOUP_REWARD
        rec["sps"] = (int(arrays["env_steps"][i]) - int(prev_steps[i])) / max(seconds, 1e-9)
        rec["wall_s"] = wall
        records.append(rec)
    return records


def _progress(cfg: TrainConfig, has_win: bool, records: list[dict], eta_s: float) -> str:
    import numpy as np

    steps = np.mean([r["env_steps"] for r in records])
    ret = np.array([r["test_return"] for r in records])
    train = np.mean([r["train_return"] for r in records])
    line = (f"[{100 * min(steps / cfg.total_timesteps, 1):5.1f}%] env_steps {int(steps):>10,}"
            f" | train_return {train:8.3f} | test_return {ret.mean():8.3f} ± {ret.std():.3f}")
    if has_win:
        win = np.array([r["test_win_rate"] for r in records])
        line += f" | win {win.mean():.3f}"
    sps = sum(r["sps"] for r in records)
    return line + f" | sps {sps:>9,.0f} | eta {time.strftime('%H:%M:%S', time.gmtime(max(eta_s, 0)))}"


# Config keys that may change when a run is resumed: they do not change
# what the remaining chunks compute.
RESUMABLE_CHANGES = ("resume", "total_timesteps", "wandb", "checkpoint")
EXIT_NON_FINITE = 3


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, prefix + key + "."))
        else:
            out[prefix + key] = list(value) if isinstance(value, tuple) else value
    return out


def check_resumable(cfg: TrainConfig, run_dir: Path) -> None:
    """A resumed run must be the same experiment: one ConfigError line otherwise."""
    saved_path = run_dir / "config.json"
    if not saved_path.exists():
        raise ConfigError(f"config error: resume=true but {run_dir} holds no run (no config.json); "
                          "set hydra.run.dir to the run to continue")
    saved = _flat(json.loads(saved_path.read_text()))
    now = _flat(to_dict(cfg))
    for key in sorted(set(saved) | set(now)):
        if key.split(".")[0] in RESUMABLE_CHANGES:
            continue
        if saved.get(key) != now.get(key):
            raise ConfigError(f"config error: resume=true with {key}={now.get(key)!r}, but the run in "
                              f"{run_dir} has {key}={saved.get(key)!r}; allowed to change on resume: "
                              f"{', '.join(RESUMABLE_CHANGES)}")


def _read_metrics(path: Path, lines: int) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()[:lines]]


def run(cfg: TrainConfig, run_dir: Path) -> list[dict]:
    """Train all seeds of ``cfg`` chunk by chunk, logging into ``run_dir``.

    Writes ``config.json``, ``metrics.jsonl`` and, every ``checkpoint.every``
    updates and at the end, an orbax checkpoint of the whole state under
    ``checkpoints/``; ``resume=true`` continues from the newest one.
    """
    if cfg.env.name.startswith("smacv2_"):  # official SMACv2: StarCraft II stepped on the host
        from meigm_jax.sc2.host_loop import run as run_host_loop
        return run_host_loop(cfg, run_dir)
    import jax

    if cfg.distributed:
        jax.distributed.initialize()  # coordinator from the environment (SLURM, JAX_COORDINATOR_ADDRESS, ...)
    from meigm_jax.checkpoint import Checkpointer, CheckpointError, restore_latest
    from meigm_jax.program import compile_program, to_host
    from meigm_jax.trainer import check_fits, make_train, replay_bytes_per_seed

    main_process = jax.process_index() == 0
    trainer = make_train(cfg)
    spec = trainer.spec
    print(f"meigm_jax: {cfg.alg.name} on {spec.name} ({spec.num_agents} agents, {spec.num_actions} "
          f"actions, episode limit {spec.episode_limit}) | {cfg.num_seeds} seed(s) on "
          f"{jax.devices()[0].platform} | replay {replay_bytes_per_seed(cfg, spec) / 2**20:.1f} MiB per seed"
          f" | run dir {run_dir}", flush=True)
    ckpt_dir = run_dir / "checkpoints"
    metrics_path = run_dir / "metrics.jsonl"
    try:
        check_fits(cfg, spec, jax.devices())
        if cfg.resume:
            check_resumable(cfg, run_dir)
        elif metrics_path.exists() or ckpt_dir.exists():
            raise ConfigError(f"config error: {run_dir} already holds a run; resume=true continues it, "
                              "or choose another hydra.run.dir")
        if cfg.wandb.mode == "online" and main_process:
            _check_wandb_login()  # before compiling, not after
    except ConfigError as exc:
        exit_bad_input(str(exc))

    start = time.time()
    program = compile_program(trainer)
    state, chunk = program.state, program.chunk
    used, available = program.mesh.devices.size, len(jax.devices())
    note = "" if used == available else f" (of {available}: num_seeds={cfg.num_seeds} is not a multiple of {available})"
    print(f"seeds sharded over {used} {jax.devices()[0].platform} device(s){note}", flush=True)

    first_chunk, all_records = 0, []
    if cfg.resume:
        try:
            restored, meta = restore_latest(ckpt_dir, state)
        except CheckpointError as exc:
            exit_bad_input(str(exc))
        state = jax.device_put(restored, jax.tree.map(lambda x: x.sharding, state))
        first_chunk = int(meta["chunk"])
        # Chunks logged after the checkpoint are run again: drop their lines.
        all_records = _read_metrics(metrics_path, int(meta["metrics_lines"]))
        if main_process:
            with open(metrics_path, "w") as sink:
                sink.writelines(json.dumps(rec) + "\n" for rec in all_records)
        print(f"resumed from {ckpt_dir} at chunk {first_chunk} "
              f"({int(meta['env_steps']):,} env steps of seed 0)", flush=True)
    elif main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(to_dict(cfg), indent=2))
    print(f"compiled in {time.time() - start:.1f}s; training {trainer.num_chunks - first_chunk} "
          f"chunk(s) of {cfg.test_interval:,} env steps", flush=True)

    logger = _wandb_logger(cfg, run_dir) if main_process else None
    checkpointer = Checkpointer(ckpt_dir, cfg.checkpoint.keep) if main_process else None
    prev_steps = [r["env_steps"] for r in all_records[-cfg.num_seeds:]] or [0] * cfg.num_seeds
    saved_updates = max([r["updates"] for r in all_records[-cfg.num_seeds:]], default=0)
    saved_chunk = first_chunk
    train_start = time.time()

    def save(chunk_done: int, records_so_far: list[dict]) -> None:
        if checkpointer is None:
            return
        host_state = to_host(state)
        checkpointer.save(chunk_done, host_state, {
            "chunk": chunk_done, "metrics_lines": len(records_so_far),
            "env_steps": int(host_state.counters.env_steps[0]), "config": to_dict(cfg)})

    try:
        with open(metrics_path, "a") if main_process else _null_sink() as sink:
            for index in range(first_chunk, trainer.num_chunks):
                t0 = time.time()
                state, metrics = chunk(state, jax.numpy.asarray(index, jax.numpy.int32))
                metrics = to_host(metrics)
                seconds = time.time() - t0
                records = metric_records(cfg, spec, metrics, seconds, time.time() - start, prev_steps)
                prev_steps = [r["env_steps"] for r in records]
                sink.writelines(json.dumps(rec) + "\n" for rec in records)
                sink.flush()
                all_records.extend(records)
                if logger is not None:
                    logger.log(records)
                _stop_on_non_finite(metrics, saved_chunk, ckpt_dir)
                updates = max(r["updates"] for r in records)
                if cfg.checkpoint.every and updates - saved_updates >= cfg.checkpoint.every:
                    save(index + 1, all_records)
                    saved_updates, saved_chunk = updates, index + 1
                elapsed = time.time() - train_start
                eta = elapsed / (index + 1 - first_chunk) * (trainer.num_chunks - index - 1)
                print(_progress(cfg, spec.has_win, records, eta), flush=True)
        if saved_chunk < trainer.num_chunks:
            save(trainer.num_chunks, all_records)
    finally:
        if checkpointer is not None:
            checkpointer.close()  # waits for a save in flight
        if logger is not None:
            logger.finish()

    _summary(cfg, spec.has_win, all_records[-cfg.num_seeds:], time.time() - start)
    if spec.name == "matrix_game" and main_process:
        _write_table1(trainer, to_host(state.params), run_dir)
    return all_records


def _write_table1(trainer, params, run_dir: Path) -> None:
    """The matrix game's result in paper Table 1's layout: printed and saved as table1.md."""
    from meigm_jax.analysis import seeds_joint_values, table1
    from meigm_jax.envs.matrix_game import PAYOFF

    text = table1(seeds_joint_values(trainer, params), PAYOFF)
    print("\n" + text)
    (run_dir / "table1.md").write_text(text + "\n")
    print(f"saved {run_dir / 'table1.md'}")


def _null_sink():
    import contextlib
    import io

    return contextlib.nullcontext(io.StringIO())


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


def _hydra_main() -> None:
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    register_base()

    @hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base="1.3")
    def task(node) -> None:
        # Hydra logs at INFO; JAX's probe for absent TPU/GPU plugins is noise.
        logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
        try:
            cfg = from_composed(OmegaConf.to_container(node, resolve=True))
        except ConfigError as exc:
            exit_bad_input(str(exc))
        run(cfg, Path(HydraConfig.get().runtime.output_dir))

    task()


def main(argv: list[str] | None = None) -> None:
    overrides = with_default_env(list(sys.argv[1:] if argv is None else argv))
    multirun = any(o in ("-m", "--multirun") for o in overrides)
    if not multirun:
        # Fail fast, in one line, before Hydra or JAX do any work.
        try:
            cfg = load(overrides)
        except ConfigError as exc:
            exit_bad_input(str(exc))
        if cfg.env.name.startswith("smacv2_"):
            from meigm_jax.sc2.host_loop import missing_install

            message = missing_install()  # before Hydra creates the run directory
            if message:
                exit_bad_input(message)
        if cfg.resume:
            # Hydra would rewrite .hydra/ and main.log in the run before the
            # resume is checked; a resume that fails must leave the run as it was.
            overrides += ["hydra.output_subdir=null", "hydra/job_logging=disabled"]
    sys.argv = [sys.argv[0]] + overrides
    _hydra_main()


if __name__ == "__main__":
    main()
