"""Wall time to a good policy on smax_5v5: ours (QMIX, ME-QMIX) against JaxMARL's qmix_rnn and pqn_vdn_rnn.

    python benchmarks/time_to_quality.py --jaxmarl-dir /tmp/jaxmarl_baseline \
        [--steps 1000000] [--seeds 3] [--their-seeds 1] [--algs qmix me_qmix] \
        [--ours-steps N] [--ours-overrides KEY=VALUE ...] \
        [--their-sizes published|matched] [--their-max-minutes M] \
        [--their-test-interval F] [--their-overrides KEY=VALUE ...] [--compile-cache DIR] [--out benchmarks/out/time_to_quality] \
        [--only ours|theirs|qmix_rnn|pqn_vdn_rnn|<our alg> ...] [--from-runs]

Measured: for each run, at each greedy evaluation, the env steps, the greedy
test return (the env's units: SMAX pays at most about 2 an episode, 1 of
damage and 1 for a win) and the wall time since the run's process was
started; the compile time apart. From these: the env steps and the wall
time (compile included) at which the running mean of 3 consecutive
evaluations of the greedy return first reaches 0.8, 1.0 and 1.2 (with
several seeds, the mean over seeds at each evaluation, then the running
mean; the row is the third evaluation of the first window that reaches the
level, at the wall time of the slowest seed's process). Their
runs train for ``--steps`` env steps (default 1M), because their epsilon,
learning-rate and test schedules are fractions of it. Ours train for
``--ours-steps`` (default the same): none of our schedules depends on
``total_timesteps`` (it is the key a resumed run may change), so a shorter
run of ours is the first part of a longer one, evaluation for evaluation.

Each run is a process of its own, started from here one after another,
never two at once; its wall time counts from just before it is spawned,
so interpreter start, imports, env creation and compilation are included.
Compilation is cold by default (no persistent XLA cache on either side);
``--compile-cache DIR`` lets both sides use the same cache directory.

Theirs: JaxMARL's ``qmix_rnn.py`` and ``pqn_vdn_rnn.py`` from a copy of its
``baselines/QLearning`` kept outside this repository (made as
``vs_jaxmarl.py`` says; measured with JaxMARL
c793d095618c6d3edfb5632802348f57b70a4b94; they need ``pip install flashbax``),
imported unmodified. Each seed runs in a child process of this script
(``jax.jit(jax.vmap(make_train(config, env)))`` with one key, as their Hydra
entry point runs it): ``.lower(keys).compile()`` is timed apart, then the
compiled function is run. Their metrics leave only through ``wandb.log``
inside a ``jax.debug.callback``; the module's ``wandb`` is replaced by the
recorder of ``vs_jaxmarl_overcooked.py``, which keeps the updates at which
they test (W&B itself is never called). Their config is composed as their
``single_run`` does (``config/config.yaml`` with the alg file merged on top):

- qmix_rnn: ``config/alg/ql_rnn_smax.yaml``, all theirs: 16 envs x 128 steps
  an update, 8 gradient steps an update on 32 trajectories of 128 steps
  from a 5,000-trajectory flashbax buffer (none until it holds 32 updates'
  trajectories, 65,536 env steps), GRU 512, QMIX mixer 64 / hypernet 256
  (init scale 0.001), RAdam lr 5e-5 (no decay), gradient clip 10, hard target copy
  every 10 updates, epsilon 1 -> 0.05 over 10% of the updates, gamma 0.99,
  rewards x 10 for learning; greedy test on 512 envs x 128 steps every 5%
  of the updates.
- pqn_vdn_rnn: ``config/alg/pqn_vdn_rnn_smax.yaml``, all theirs: 128 envs x
  128 steps an update (plus a 4-step memory window), 4 epochs of 16
  minibatches (8 envs x 128 steps each), batch-normed input, 2 dense
  layers of 512 with batch norm, GRU 512, VDN, Q(lambda) with lambda 0.85,
  no target network, RAdam lr 2.5e-4 decayed linearly to 0,
  gradient clip 1, epsilon 1 -> 0.01 over 10% of the updates, gamma 0.99,
  rewards x 10 for learning; greedy test on 128 envs x 128 steps every 5%
  of the updates.

Changed on their side, and nothing else: MAP_NAME smacv2_5_units (ENV_NAME
is already HeuristicEnemySMAX in both files; their ENV_KWARGS,
see_enemy_actions, walls_cause_death and attack_mode closest, are SMAX's
defaults, which ours uses too, and their ``env_from_config`` adds the
scenario from ``map_name_to_scenario``, the same scenario ours builds,
SMACv2 unit types and start positions), TOTAL_TIMESTEPS (the budget; their
epsilon and learning-rate schedules and their test cadence scale with it,
as in their code), SEED, NUM_SEEDS 1, WANDB_MODE offline (so that their
callback runs). With ``--their-sizes published`` (the default) no size is
matched: their own network and batch sizes run. ``--their-sizes matched``
runs their networks at our sizes, the ones ``vs_jaxmarl.py`` matches:
HIDDEN_SIZE 64 for both, and for qmix_rnn MIXER_EMBEDDING_DIM 32 and
MIXER_HYPERNET_HIDDEN_DIM 64; every other key stays theirs. A GRU of 512
costs about 60 times the multiply-adds of a GRU of 64 per agent step, which
on a CPU is hours per 1M env steps; ``--their-max-minutes`` stops each of
their runs after a wall budget (its curve ends at its last test, and the
table marks the run as stopped). At 1M env steps their 5% test cadence
gives 20 evaluations (qmix_rnn
every 24 updates = 49,152 env steps, pqn_vdn_rnn every 3 updates = 49,152);
``--their-test-interval`` changes TEST_INTERVAL (the fraction of updates
between tests) where a short budget would leave fewer than 3, and
``--their-overrides`` sets any other key (for smoke tests; the table then
no longer shows their published settings). Their logged
``test_returned_episode_returns`` is in the env's units like ours: REW_SCALE
multiplies only the rewards stored for learning (``Timestep.rewards`` in
qmix_rnn, ``Transition.reward`` in pqn_vdn_rnn), while the test return is
the SMAXLogWrapper's episode return of the unscaled env reward, averaged
over the episodes that ended within the test's 128 steps.
Their cost on a CPU (GRU 512 for 5 agents over 128-step trajectories) is
why they default to one seed each (``--their-seeds``).

Ours, one process per seed as theirs (a researcher waits for one policy,
not for three trained in turn): ``python -m meigm_jax.train +env=smax_5v5
alg=A num_seeds=1 seed=K total_timesteps=N batch_size=32 compile_cache=null
wandb.mode=disabled`` plus ``--ours-overrides``: the CPU settings of
RESULTS.md's smax_5v5 line-up (the paper's smax_5v5 config: 16 envs, one
gradient step per 4 episodes, replay 5,000 episodes, target copy every 200
episodes, rewards x 10 for learning; except batch 32 episodes), greedy
test on 32 episodes every 10,000 env steps. Its stdout goes to
``ours_<alg>_seed<k>.log`` (compile time from its "compiled in X s" line);
its ``metrics.jsonl`` is read as it grows, each record stamped with its
arrival time. The table's replay ratio is measured over the whole run:
gradient steps / env steps at the end (mean over seeds).

Writes under ``--out``: ``ours_<alg>_seed<k>.jsonl`` and
``theirs_<alg>_seed<k>.jsonl`` (one record per evaluation: seed, env_steps,
test_return, wall_s), a ``.json`` summary beside each, our run directories
``run_<alg>_seed<k>`` and the
figure ``time_to_quality.png``. ``--only`` runs a part and ``--from-runs``
runs nothing; both tabulate everything on disk, so a long comparison can
be done in parts.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import vs_jaxmarl_overcooked as overcooked
from tables import print_table

LEVELS = (0.8, 1.0, 1.2)
WINDOW = 3  # evaluations in the running mean
THEIRS = {"qmix_rnn": "ql_rnn_smax.yaml", "pqn_vdn_rnn": "pqn_vdn_rnn_smax.yaml"}
# Our network sizes (agent GRU 64, mixer embed 32, hypernet 64), for the keys their config has.
MATCHED = {"HIDDEN_SIZE": 64, "MIXER_EMBEDDING_DIM": 32, "MIXER_HYPERNET_HIDDEN_DIM": 64}
OURS_SETTINGS = ("batch_size=32",)


def _child_env(cache: str | None) -> dict:
    """The environment of a child: unbuffered, and JAX's persistent cache
    only where ``--compile-cache`` names one."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    if cache:
        env["JAX_COMPILATION_CACHE_DIR"] = cache
    return env


def _key_values(pairs: list[str]) -> dict:
    import yaml

    parsed = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--their-overrides: {pair!r} is not KEY=VALUE")
        parsed[key] = yaml.safe_load(value)
    return parsed


# --- theirs: one seed, in a child process of this script --------------------------

def their_name(alg: str, sizes: str) -> str:
    """The name of their runs on disk and in the table: the alg, and the sizes when matched."""
    return alg if sizes == "published" else f"{alg}_{sizes}"


def their_config(jaxmarl_dir: Path, alg: str, steps: int, seed: int, test_interval: float | None,
                 overrides: dict, sizes: str = "published") -> dict:
    from omegaconf import OmegaConf

    config: dict = {}
    for part in (Path("config.yaml"), Path("alg") / THEIRS[alg]):  # their single_run's merge
        config.update(OmegaConf.to_container(OmegaConf.load(jaxmarl_dir / "config" / part)))
    config.update(MAP_NAME="smacv2_5_units", TOTAL_TIMESTEPS=steps, SEED=seed, NUM_SEEDS=1,
                  WANDB_MODE="offline")
    if sizes == "matched":
        config.update({k: v for k, v in MATCHED.items() if k in config})
    if test_interval is not None:
        config["TEST_INTERVAL"] = test_interval
    config.update(overrides)
    return config


def their_grad_steps_per_env_step(config: dict) -> float:
    """From their config: qmix_rnn takes NUM_EPOCHS gradient steps an update,
    pqn_vdn_rnn NUM_EPOCHS x NUM_MINIBATCHES (for a run stopped before its end)."""
    per_update = config["NUM_EPOCHS"] * config.get("NUM_MINIBATCHES", 1)
    return per_update / (config["NUM_ENVS"] * config["NUM_STEPS"])


def run_theirs(args, alg: str, seed: int, out: Path) -> None:
    """One seed of theirs in this process; ``args.t0`` is the parent's clock
    just before it spawned this process."""
    overcooked._START = args.t0  # the recorder stamps wall time from the spawn
    import jax

    spec = importlib.util.spec_from_file_location(f"jaxmarl_{alg}", args.jaxmarl_dir / f"{alg}.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(args.jaxmarl_dir))
    spec.loader.exec_module(module)
    config = their_config(args.jaxmarl_dir, alg, args.steps, seed, args.their_test_interval,
                          _key_values(args.their_overrides), args.their_sizes)
    name = their_name(alg, args.their_sizes)
    updates = config["TOTAL_TIMESTEPS"] // config["NUM_STEPS"] // config["NUM_ENVS"]
    test_every = int(updates * config["TEST_INTERVAL"])
    if test_every < 1:
        raise SystemExit(f"{alg}: {updates} updates x TEST_INTERVAL {config['TEST_INTERVAL']} tests never; "
                         "raise --steps or --their-test-interval")
    curve_path = out / f"theirs_{name}_seed{seed}.jsonl"
    curve_path.write_text("")
    module.wandb = overcooked._Recorder(curve_path, test_every, seed)
    env, _ = module.env_from_config(copy.deepcopy(config))
    keys = jax.random.split(jax.random.PRNGKey(seed), 1)
    train = jax.jit(jax.vmap(module.make_train(copy.deepcopy(config), env)))
    began = time.perf_counter()
    compiled = train.lower(keys).compile()
    compile_s = time.perf_counter() - began
    if "NUM_MINIBATCHES" in config:  # pqn: minibatches split the envs of an update
        batch = f"{config['NUM_ENVS'] // config['NUM_MINIBATCHES']} envs x {config['NUM_STEPS']} steps"
    else:
        batch = f"{config['BUFFER_BATCH_SIZE']} trajectories x {config['NUM_STEPS']} steps"
    summary = {"compile_s": compile_s, "wall_s": None, "env_steps": None, "grad_steps": None,
               "grad_steps_per_env_step": their_grad_steps_per_env_step(config), "finished": False,
               "batch": batch, "envs": config["NUM_ENVS"], "sizes": args.their_sizes,
               "device": f"{jax.devices()[0].device_kind}, jax {jax.__version__}",
               "config": {k: v for k, v in config.items() if k.isupper()}}
    summary_path = out / f"theirs_{name}_seed{seed}.json"
    summary_path.write_text(json.dumps(summary, indent=1, default=str))  # a stopped run keeps this one
    state = jax.block_until_ready(compiled(keys))["runner_state"][0]
    env_steps, grad_steps = int(np.asarray(state.timesteps)[0]), int(np.asarray(state.grad_steps)[0])
    summary.update(wall_s=time.perf_counter() - args.t0, env_steps=env_steps, grad_steps=grad_steps,
                   grad_steps_per_env_step=grad_steps / env_steps, finished=True)
    summary_path.write_text(json.dumps(summary, indent=1, default=str))
    print(f"theirs {name} seed {seed}: {updates} updates, {grad_steps} gradient steps, compile {compile_s:.0f}s, "
          f"{summary['wall_s']:.0f}s from spawn", flush=True)


def spawn_theirs(args, alg: str, seed: int) -> None:
    """One seed of theirs in a child; stopped after ``--their-max-minutes``,
    its summary then records the wall budget and its last test."""
    cmd = [sys.executable, __file__, "--jaxmarl-dir", str(args.jaxmarl_dir), "--steps", str(args.steps),
           "--out", str(args.out), "--their-sizes", args.their_sizes, "--their-child", f"{alg}:{seed}"]
    if args.their_test_interval is not None:
        cmd += ["--their-test-interval", str(args.their_test_interval)]
    if args.their_overrides:
        cmd += ["--their-overrides", *args.their_overrides]
    name = their_name(alg, args.their_sizes)
    print(f"theirs {name} seed {seed} ...", flush=True)
    limit = None if args.their_max_minutes is None else 60 * args.their_max_minutes
    try:
        subprocess.run([*cmd, "--t0", repr(time.perf_counter())], check=True, env=_child_env(args.compile_cache),
                       timeout=limit)
    except subprocess.TimeoutExpired:
        summary_path = args.out / f"theirs_{name}_seed{seed}.json"
        if not summary_path.exists():
            raise SystemExit(f"theirs {name} seed {seed}: still compiling after {args.their_max_minutes:g} min")
        tests = [json.loads(line) for line in (args.out / f"theirs_{name}_seed{seed}.jsonl").read_text().splitlines()]
        summary = json.loads(summary_path.read_text())
        summary.update(wall_s=limit, env_steps=tests[-1]["env_steps"] if tests else 0)
        summary_path.write_text(json.dumps(summary, indent=1, default=str))
        print(f"theirs {name} seed {seed}: stopped after {args.their_max_minutes:g} min, at its test of "
              f"{summary['env_steps']:,} env steps (of {args.steps:,}); its curve ends there", flush=True)


# --- ours: the training command, in a child process -------------------------------

def _echo(stream, log: Path, prefix: str) -> None:
    with open(log, "w") as sink:
        for line in stream:
            sink.write(line)
            sink.flush()
            print(prefix + line, end="", flush=True)


def run_ours(args, alg: str, seed: int) -> None:
    name = f"ours_{alg}_seed{seed}"
    run_dir = args.out / f"run_{alg}_seed{seed}"
    if run_dir.exists():
        shutil.rmtree(run_dir)  # the command refuses an existing run directory
    cmd = [sys.executable, "-m", "meigm_jax.train", "+env=smax_5v5", f"alg={alg}", "num_seeds=1", f"seed={seed}",
           f"total_timesteps={args.ours_steps or args.steps}", *OURS_SETTINGS, f"compile_cache={args.compile_cache or 'null'}",
           "wandb.mode=disabled", *args.ours_overrides, f"hydra.run.dir={run_dir.resolve()}"]
    print(f"ours {alg} seed {seed}: {' '.join(cmd[1:])}", flush=True)
    log, metrics, curve_path = args.out / f"{name}.log", run_dir / "metrics.jsonl", args.out / f"{name}.jsonl"
    t0 = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=_child_env(args.compile_cache))
    reader = threading.Thread(target=_echo, args=(child.stdout, log, f"  [ours {alg}] "))
    reader.start()
    taken, exited = 0, False
    with open(curve_path, "w") as sink:
        while not exited:
            exited = child.poll() is not None
            now = time.perf_counter() - t0
            # whole lines only: each record ends with a newline, a half-written one not yet
            lines = metrics.read_text().split("\n")[:-1] if metrics.exists() else []
            for record in map(json.loads, lines[taken:]):
                sink.write(json.dumps({"seed": seed, "env_steps": record["env_steps"],
                                       "test_return": record["test_return"], "wall_s": now}) + "\n")
            sink.flush()
            taken = max(taken, len(lines))
            if not exited:
                time.sleep(0.5)
    reader.join()
    wall_s = time.perf_counter() - t0
    if child.returncode:
        raise SystemExit(f"ours {alg} seed {seed} failed with exit code {child.returncode}; see {log}")
    compiled = re.search(r"compiled in ([0-9.]+)s", log.read_text())
    config = json.loads((run_dir / "config.json").read_text())
    last = json.loads(metrics.read_text().splitlines()[-1])
    summary = {"compile_s": float(compiled.group(1)) if compiled else None, "wall_s": wall_s,
               "env_steps": float(last["env_steps"]), "grad_steps": float(last["updates"]), "finished": True,
               "batch": f"{config['batch_size']} episodes", "envs": config["num_envs"],
               "batch_size_run": config["batch_size_run"], "command": " ".join(cmd[1:])}
    (args.out / f"{name}.json").write_text(json.dumps(summary, indent=1))


# --- the table and the figure -----------------------------------------------------

def load_curve(paths: list[Path], merged: Path) -> dict:
    """Mean greedy return over the seeds in ``paths`` at each evaluation
    (``vs_jaxmarl_overcooked.curve`` on their records gathered in ``merged``,
    back in the env's units)."""
    if len(paths) > 1:
        merged.write_text("".join(p.read_text() for p in paths))
    c = overcooked.curve(merged if len(paths) > 1 else paths[0])
    c["return"] = c.pop("soups") * overcooked.SOUP_REWARD
    return c


def time_to(c: dict, level: float) -> str:
    if len(c["return"]) < WINDOW:
        return "not reached"
    running = np.convolve(c["return"], np.ones(WINDOW) / WINDOW, mode="valid")
    hits = np.flatnonzero(running >= level)
    if not hits.size:
        return "not reached"
    i = hits[0] + WINDOW - 1
    return f"{int(c['steps'][i]):,} / {c['wall'][i] / 60:.1f} min"


def collect(out: Path, algs: list[str]) -> list[dict]:
    """Every finished run on disk: one row per (trainer, alg)."""
    rows = []
    for alg in algs:
        runs = sorted(p.with_suffix(".jsonl") for p in out.glob(f"ours_{alg}_seed*.json"))
        if runs:
            rows.append({"trainer": "meigm_jax (ours)", "alg": alg, "runs": runs})
    for alg in THEIRS:
        for sizes in ("published", "matched"):
            name = their_name(alg, sizes)
            runs = sorted(p.with_suffix(".jsonl") for p in out.glob(f"theirs_{name}_seed*.json"))
            if runs:
                rows.append({"trainer": "JaxMARL", "alg": name, "runs": runs})
    for row in rows:
        row["summaries"] = [json.loads(p.with_suffix(".json").read_text()) for p in row["runs"]]
        side = "ours" if row["trainer"].endswith("(ours)") else "theirs"
        row["curve"] = load_curve(row["runs"], out / f"{side}_{row['alg']}_merged.jsonl")
        if any(s["env_steps"] is None for s in row["summaries"]):
            raise SystemExit(f"{row['alg']}: a run under {out} has not finished; run it again or remove it")
    return rows


def table(rows: list[dict]) -> None:
    body = []
    for row in rows:
        s, c = row["summaries"], row["curve"]
        ratio = np.mean([x.get("grad_steps_per_env_step") or x["grad_steps"] / x["env_steps"] for x in s])
        stopped = "" if all(x.get("finished", True) for x in s) else " (stopped)"
        batch = s[0]["batch"] + (f", 1 per {s[0]['batch_size_run']} episodes" if "batch_size_run" in s[0] else "")
        compile_s = [x["compile_s"] for x in s if x["compile_s"] is not None]
        body.append([row["trainer"], row["alg"], str(c["seeds"]), f"{np.mean([x['env_steps'] for x in s]):,.0f}", batch, str(s[0]["envs"]), f"{ratio:.5f}",
                     f"{np.mean(compile_s):.0f}" if compile_s else "?",
                     f"{np.mean([x['wall_s'] for x in s]) / 60:.1f} min{stopped}",
                     *[time_to(c, level) for level in LEVELS]])
    print_table(["trainer", "alg", "seeds", "env steps", "batch", "envs", "gradient steps per env step", "compile s",
                 "wall, whole run", *[f"return >= {level:g}: env steps / wall" for level in LEVELS]], body)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_wall, by_steps) = plt.subplots(1, 2, figsize=(12, 4.5))
    for row in rows:
        # ours: the mean over seeds (three or more); theirs: one line per seed's run
        lines = [row["curve"]] if row["trainer"].endswith("(ours)") else [load_curve([p], p) for p in row["runs"]]
        for k, c in enumerate(lines):
            label = f"{row['trainer']} {row['alg']}" + (f" ({c['seeds']} seeds, mean)" if c["seeds"] > 1 else
                                                        f" (seed {k})")
            by_wall.plot(c["wall"] / 60, c["return"], marker=".", label=label)
            by_steps.plot(c["steps"], c["return"], marker=".", label=label)
    for axis, name in ((by_wall, "wall time from process start, compile included (min)"), (by_steps, "env steps")):
        for level in LEVELS:
            axis.axhline(level, color="grey", linewidth=0.5, linestyle=":")
        axis.set_xlabel(name)
        axis.set_ylabel("greedy test return")
    by_wall.legend(fontsize=8)
    fig.suptitle("smax_5v5 (smacv2_5_units): greedy test return (ours: mean over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jaxmarl-dir", type=Path, help="a copy of JaxMARL's baselines/QLearning, outside the repo")
    parser.add_argument("--steps", type=int, default=1_000_000, help="env steps of every run")
    parser.add_argument("--seeds", type=int, default=3, help="our seeds, one run each")
    parser.add_argument("--their-seeds", type=int, default=1, help="their seeds, one run each")
    parser.add_argument("--algs", nargs="+", default=["qmix", "me_qmix"], help="our algorithms")
    parser.add_argument("--ours-steps", type=int, help="env steps of our runs (default --steps)")
    parser.add_argument("--their-sizes", choices=("published", "matched"), default="published",
                        help="their published network sizes, or ours (see the docstring)")
    parser.add_argument("--their-max-minutes", type=float, help="stop each of their runs after this long")
    parser.add_argument("--ours-overrides", nargs="*", default=[], help="KEY=VALUE for our command")
    parser.add_argument("--their-test-interval", type=float, help="their TEST_INTERVAL (default theirs, 0.05)")
    parser.add_argument("--their-overrides", nargs="*", default=[], help="KEY=VALUE for their config")
    parser.add_argument("--compile-cache", help="a persistent XLA cache for both sides (default: cold)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/time_to_quality"))
    parser.add_argument("--only", nargs="+", help="run only these: ours, theirs, qmix_rnn, pqn_vdn_rnn, an alg of ours")
    parser.add_argument("--from-runs", action="store_true", help="run nothing; tabulate what is in --out")
    parser.add_argument("--their-child", help=argparse.SUPPRESS)  # ALG:SEED, in the child
    parser.add_argument("--t0", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.their_child:
        alg, seed = args.their_child.split(":")
        run_theirs(args, alg, int(seed), args.out)
        return

    unknown = set(args.only or ()) - {"ours", "theirs", *THEIRS, *args.algs}
    if unknown:
        parser.error(f"--only: unknown {sorted(unknown)}; choose from ours, theirs, {', '.join(THEIRS)}, "
                     f"{', '.join(args.algs)}")

    def chosen(name: str, side: str) -> bool:
        return not args.from_runs and (args.only is None or name in args.only or side in args.only)

    for alg in THEIRS:
        if chosen(alg, "theirs"):
            if args.jaxmarl_dir is None or not (args.jaxmarl_dir / f"{alg}.py").is_file():
                parser.error(f"--jaxmarl-dir must hold {alg}.py to run theirs (see the docstring)")
            for seed in range(args.their_seeds):
                spawn_theirs(args, alg, seed)
    for alg in args.algs:
        if chosen(alg, "ours"):
            for seed in range(args.seeds):
                run_ours(args, alg, seed)

    rows = collect(args.out, args.algs)
    if not rows:
        raise SystemExit(f"no finished runs under {args.out}")
    print(f"\nsmax_5v5 (smacv2_5_units, HeuristicEnemySMAX); "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores. Greedy test return, "
          f"running mean of {WINDOW} evaluations (of the mean over seeds where there are several); "
          "wall time from each process's spawn, compile included.\n")
    table(rows)
    plot(rows, args.out / "time_to_quality.png")
    print(f"\nwrote {args.out / 'time_to_quality.png'}")


if __name__ == "__main__":
    main()
