"""Overcooked side by side: ours against JaxMARL's VDN, greedy soups against env steps and wall time.

    python benchmarks/vs_jaxmarl_overcooked.py --jaxmarl-dir /tmp/jaxmarl_baseline \
        [--layout cramped_room] [--steps 1000000] [--seeds 3] [--their-seeds 1] \
        [--algs vdn me_qmix] [--out benchmarks/out/vs_jaxmarl_overcooked] [--only ours|theirs|none] \
        [--their-max-minutes M]

JaxMARL's code is never part of this repository. Make the copy yourself,
outside the repository, as ``vs_jaxmarl.py`` says (measured with JaxMARL
c793d095618c6d3edfb5632802348f57b70a4b94). Its ``vdn_cnn_overcooked.py``
also needs ``pip install flashbax``.

Theirs: ``vdn_cnn_overcooked.py`` imported unmodified, with the config its
Hydra entry point composes (``config/config.yaml`` + ``alg/ql_cnn_overcooked.yaml``:
a 3-layer CNN on single transitions, 32 envs, 4 gradient steps of 128
transitions per 32 env steps, a 1e5-transition buffer, hard target copies
every 10 updates, RAdam at 7e-5 decayed to 0, epsilon 1 -> 0.05 over 10% of
training, shaping annealed over 2.5M env steps). Changed: the layout,
TOTAL_TIMESTEPS (the budget here; their epsilon and learning-rate schedules
scale with it, as they do in their code), SEED, NUM_SEEDS, and W&B: its
metrics leave only through ``wandb.log`` inside a ``jax.debug.callback``, so
the module gets a stand-in ``wandb`` that writes each record with its wall
time (W&B itself is never called). Their greedy test (512 envs x 400 steps,
every 5% of training) reports the mean true return; soups = return / 20.

Ours: ``python -m meigm_jax.train +env=overcooked_<layout> preset=cpu alg=A
num_seeds=S total_timesteps=N``, its greedy soups per episode from
``metrics.jsonl`` (test_episodes of the preset per evaluation and seed).

Theirs is costly on a CPU (on 2 cores about 9 minutes per 20k env steps,
so 400k take three hours): ``--their-max-minutes`` stops each of their runs
after that long, with the schedules of the full budget, and their curve
ends at the last test it logged.

Each side runs in a process of its own, one after another, never together;
wall time counts from that process's start, so imports and compilation are
included. Prints greedy soups (mean over seeds) against env steps and wall
time, the env steps and wall time at which each soup level is first reached,
and draws both curves.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

_START = time.perf_counter()

import numpy as np  # noqa: E402
from tables import print_table  # noqa: E402

SOUP_REWARD = 20.0
LEVELS = (0.5, 1.0, 3.0, 5.0)


# --- theirs, in a child process -------------------------------------------

class _Recorder:
    """Stands in for the ``wandb`` module: appends each logged test to a JSONL file."""

    def __init__(self, path: Path, test_every: int, seed: int):
        self.path, self.test_every, self.seed = path, test_every, seed

    def log(self, metrics: dict, step=None) -> None:
        update = int(np.asarray(metrics["update_steps"]))
        if update % self.test_every:
            return  # their test metrics only change at a test
        rec = {"seed": self.seed, "env_steps": int(np.asarray(metrics["env_step"])),
               "test_return": float(np.asarray(metrics["test_returned_episode_returns"])),
               "wall_s": time.perf_counter() - _START}
        with open(self.path, "a") as f:
            f.write(json.dumps(rec) + "\n")


def run_theirs(jaxmarl_dir: Path, layout: str, steps: int, seed: int, out: Path) -> None:
    import jax
    from omegaconf import OmegaConf

    spec = importlib.util.spec_from_file_location("jaxmarl_vdn_cnn_overcooked",
                                                  jaxmarl_dir / "vdn_cnn_overcooked.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(jaxmarl_dir))
    spec.loader.exec_module(module)
    base = OmegaConf.to_container(OmegaConf.load(jaxmarl_dir / "config" / "config.yaml"))
    alg = OmegaConf.to_container(OmegaConf.load(jaxmarl_dir / "config" / "alg" / "ql_cnn_overcooked.yaml"))
    config = {**base, **alg}  # as their single_run merges config["alg"]
    config["ENV_KWARGS"] = dict(config["ENV_KWARGS"], layout=layout)
    config.update(TOTAL_TIMESTEPS=steps, SEED=seed, NUM_SEEDS=1, WANDB_MODE="offline")
    updates = steps // config["NUM_STEPS"] // config["NUM_ENVS"]
    module.wandb = _Recorder(out, int(updates * config["TEST_INTERVAL"]), seed)
    env, _ = module.env_from_config(copy.deepcopy(config))
    train = jax.jit(module.make_train(copy.deepcopy(config), env))
    jax.block_until_ready(train(jax.random.PRNGKey(seed)))
    print(f"theirs: {updates} updates, {time.perf_counter() - _START:.0f}s; "
          f"{jax.devices()[0].device_kind}, jax {jax.__version__}")


# --- ours, through the command ------------------------------------------------

def run_ours(alg: str, layout: str, steps: int, seeds: int, run_dir: Path, out: Path) -> None:
    """Our command in a child process; each metrics record stamped with the
    time it reached the disk, from the child's start."""
    cmd = [sys.executable, "-m", "meigm_jax.train", f"+env=overcooked_{layout}", "preset=cpu",
           f"alg={alg}", f"num_seeds={seeds}", f"total_timesteps={steps}", "wandb.mode=disabled",
           f"hydra.run.dir={run_dir}"]
    start = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    metrics, seen = run_dir / "metrics.jsonl", 0
    out.write_text("")
    while True:
        done = child.poll() is not None
        lines = metrics.read_text().splitlines() if metrics.exists() else []
        complete = lines if done else lines[:-1]  # the last line may still be written
        with open(out, "a") as f:
            for line in complete[seen:]:
                rec = json.loads(line)
                f.write(json.dumps({"seed": rec["seed_index"], "env_steps": rec["env_steps"],
                                    "test_return": rec["test_return"],
                                    "wall_s": time.perf_counter() - start}) + "\n")
        seen = max(seen, len(complete))
        if done:
            break
        time.sleep(0.5)
    if child.returncode:
        raise SystemExit(f"our run failed ({' '.join(cmd)}): exit {child.returncode}")


# --- the table ----------------------------------------------------------------------

def curve(path: Path) -> dict:
    """Mean greedy soups over seeds at each evaluation (the n-th record of
    every seed), at the seeds' mean env steps, with the wall time the last
    seed's record of it arrived."""
    by_seed: dict[int, list] = {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        by_seed.setdefault(rec.get("seed", 0), []).append(rec)
    evaluations = list(zip(*by_seed.values()))  # only those every seed reached
    return {"steps": np.array([np.mean([r["env_steps"] for r in e]) for e in evaluations]),
            "soups": np.array([np.mean([r["test_return"] for r in e]) / SOUP_REWARD for e in evaluations]),
            "wall": np.array([max(r["wall_s"] for r in e) for e in evaluations]),
            "seeds": len(by_seed)}


def first_reached(c: dict, level: float) -> tuple[str, str]:
    hit = np.nonzero(c["soups"] >= level)[0]
    if not len(hit):
        return "not reached", "-"
    i = hit[0]
    return f"{int(c['steps'][i]):,}", f"{c['wall'][i] / 60:.1f} min"


def plot(curves: dict[str, dict], layout: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_steps, by_wall) = plt.subplots(1, 2, figsize=(11, 4))
    for name, c in curves.items():
        label = f"{name} ({c['seeds']} seed{'s' * (c['seeds'] > 1)})"
        by_steps.plot(c["steps"], c["soups"], marker=".", label=label)
        by_wall.plot(c["wall"] / 60, c["soups"], marker=".", label=label)
    by_steps.set_xlabel("env steps")
    by_wall.set_xlabel("wall time from process start (min)")
    for axis in (by_steps, by_wall):
        axis.set_ylabel("greedy soups per episode (mean over seeds)")
        axis.legend()
    fig.suptitle(f"Overcooked {layout}: ours against JaxMARL's VDN")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jaxmarl-dir", type=Path)
    parser.add_argument("--layout", default="cramped_room")
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--seeds", type=int, default=3, help="seeds of ours (one run, vmapped)")
    parser.add_argument("--their-seeds", type=int, default=1, help="seeds of theirs, one run each")
    parser.add_argument("--algs", nargs="+", default=["vdn", "me_qmix"])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/vs_jaxmarl_overcooked"))
    parser.add_argument("--only", choices=("ours", "theirs", "none"),
                        help="run one side (or none); tabulate what is in --out")
    parser.add_argument("--their-max-minutes", type=float,
                        help="stop each of their runs after this long; its curve ends at its last test")
    parser.add_argument("--their-child", type=int, help=argparse.SUPPRESS)  # the seed, in the child
    args = parser.parse_args()
    out = args.out / args.layout
    if args.their_child is not None:
        run_theirs(args.jaxmarl_dir, args.layout, args.steps, args.their_child,
                   out / f"theirs_seed{args.their_child}.jsonl")
        return
    out.mkdir(parents=True, exist_ok=True)
    if args.only in (None, "theirs"):
        if args.jaxmarl_dir is None:
            parser.error("--jaxmarl-dir is needed to run theirs")
        limit = None if args.their_max_minutes is None else 60 * args.their_max_minutes
        for seed in range(args.their_seeds):
            path = out / f"theirs_seed{seed}.jsonl"
            path.write_text("")
            try:
                subprocess.run([sys.executable, __file__, "--jaxmarl-dir", str(args.jaxmarl_dir),
                                "--layout", args.layout, "--steps", str(args.steps), "--out", str(args.out),
                                "--their-child", str(seed)], check=True, timeout=limit)
            except subprocess.TimeoutExpired:
                tests = path.read_text().splitlines()
                reached = json.loads(tests[-1])["env_steps"] if tests else 0
                print(f"theirs, seed {seed}: stopped after {args.their_max_minutes:g} min at its test of "
                      f"{reached:,} env steps (of {args.steps:,}); its curve ends there", flush=True)
    if args.only in (None, "ours"):
        for alg in args.algs:
            run_ours(alg, args.layout, args.steps, args.seeds, out / f"run_{alg}", out / f"ours_{alg}.jsonl")

    curves = {}
    for alg in args.algs:
        if (out / f"ours_{alg}.jsonl").exists():
            curves[f"ours {alg}"] = curve(out / f"ours_{alg}.jsonl")
    theirs = sorted(out.glob("theirs_seed*.jsonl"))
    if theirs:
        merged = out / "theirs.jsonl"
        merged.write_text("".join(p.read_text() for p in theirs))
        curves["JaxMARL vdn_cnn"] = curve(merged)
    print(f"Overcooked {args.layout}, {args.steps:,} env steps; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPU cores; wall time from each process's start (compile included)\n")
    print_table(["soups per episode", *[f"{name}: {what}" for name in curves for what in ("env steps", "wall")]],
                [[f">= {level:g}", *[cell for c in curves.values() for cell in first_reached(c, level)]]
                 for level in LEVELS])
    print()
    for name, c in curves.items():
        print(f"{name}, {c['seeds']} seed(s): greedy soups (mean over seeds) by env steps")
        print_table(["env steps", "wall (min)", "soups"],
                    [[f"{int(s):,}", f"{w / 60:.1f}", f"{x:.2f}"]
                     for s, w, x in zip(c["steps"], c["wall"], c["soups"], strict=True)])
        print()
    plot(curves, args.layout, out / f"vs_jaxmarl_overcooked_{args.layout}.png")
    print(f"wrote {out / f'vs_jaxmarl_overcooked_{args.layout}.png'}")


if __name__ == "__main__":
    main()
