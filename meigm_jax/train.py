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


def _json_value(x):
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
            if not spec.has_shaped_reward and name == "shaping_weight":
                continue
            rec[name] = _json_value(values[i])
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


def run(cfg: TrainConfig, run_dir: Path) -> list[dict]:
    """Train all seeds of ``cfg`` chunk by chunk, logging into ``run_dir``."""
    import jax

    from meigm_jax.program import compile_program, to_host
    from meigm_jax.trainer import check_fits, make_train, replay_bytes_per_seed

    trainer = make_train(cfg)
    spec = trainer.spec
    print(f"meigm_jax: {cfg.alg.name} on {spec.name} ({spec.num_agents} agents, {spec.num_actions} "
          f"actions, episode limit {spec.episode_limit}) | {cfg.num_seeds} seed(s) on "
          f"{jax.devices()[0].platform} | replay {replay_bytes_per_seed(cfg, spec) / 2**20:.1f} MiB per seed"
          f" | run dir {run_dir}", flush=True)
    try:
        check_fits(cfg, spec, jax.devices())
    except ConfigError as exc:
        exit_bad_input(str(exc))
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(to_dict(cfg), indent=2))

    start = time.time()
    program = compile_program(trainer)
    state, chunk = program.state, program.chunk
    used, available = program.mesh.devices.size, len(jax.devices())
    note = "" if used == available else f" (of {available}: num_seeds={cfg.num_seeds} is not a multiple of {available})"
    print(f"seeds sharded over {used} {jax.devices()[0].platform} device(s){note}", flush=True)
    print(f"compiled in {time.time() - start:.1f}s; training {trainer.num_chunks} chunk(s) of "
          f"{cfg.test_interval:,} env steps", flush=True)

    all_records: list[dict] = []
    prev_steps = [0] * cfg.num_seeds
    train_start = time.time()
    with open(run_dir / "metrics.jsonl", "a") as sink:
        for index in range(trainer.num_chunks):
            t0 = time.time()
            state, metrics = chunk(state, jax.numpy.asarray(index, jax.numpy.int32))
            metrics = to_host(metrics)
            seconds = time.time() - t0
            records = metric_records(cfg, spec, metrics, seconds, time.time() - start,
                                     prev_steps)
            prev_steps = [r["env_steps"] for r in records]
            for rec in records:
                sink.write(json.dumps(rec) + "\n")
            sink.flush()
            all_records.extend(records)
            elapsed = time.time() - train_start
            eta = elapsed / (index + 1) * (trainer.num_chunks - index - 1)
            print(_progress(cfg, spec.has_win, records, eta), flush=True)

    _summary(cfg, spec.has_win, all_records[-cfg.num_seeds:], time.time() - start)
    return all_records


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
            load(overrides)
        except ConfigError as exc:
            exit_bad_input(str(exc))
    sys.argv = [sys.argv[0]] + overrides
    _hydra_main()


if __name__ == "__main__":
    main()
