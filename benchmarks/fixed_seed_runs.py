"""Fixed-seed runs whose metrics must not change when the code is only reorganised.

    python benchmarks/fixed_seed_runs.py --out DIR [--only NAME ...]   # train them into DIR/<name>
    python benchmarks/fixed_seed_runs.py --compare DIR_A DIR_B [--ignore PREFIX ...]  # compare two sets

The runs: the default job (ME-QMIX on the matrix game), smax_5v5 with
ME-QMIX and with QMIX at small sizes, Overcooked's ``preset=cpu`` to 40k env
steps, and the SMACv2 host loop on its SMAX adapter (one worker, so its
episodes arrive in a fixed order). ``--compare`` prints, per run, whether
every ``metrics.jsonl`` record is equal apart from the timing fields, and
the first difference where one is not; it exits 1 if any run differs.
``--ignore`` leaves out the fields whose names start with a prefix as well
(``--ignore test_ misalignment_`` compares training alone, for a change that
draws other evaluation episodes).
Train the sets from two checkouts (``PYTHONPATH=CHECKOUT``) and compare.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

TIMING = {"sps", "wall_s"}
SMAX = ["+env=smax_5v5", "num_seeds=2", "total_timesteps=12000", "test_interval=4000", "batch_size=16",
        "buffer_size=64", "test_episodes=8"]
RUNS = {
    "default": [],
    "smax_me_qmix": ["alg=me_qmix", *SMAX],
    "smax_qmix": ["alg=qmix", *SMAX],
    "overcooked_cpu": ["+env=overcooked_cramped_room", "preset=cpu", "total_timesteps=40000"],
}
# The host loop in-process: a tiny ME-QMIX config on one SMAX worker behind SMACv2's API.
HOST = """
import sys
from pathlib import Path
root = Path({root!r})
sys.path.insert(0, str(root / "tests" / "programs" / "host"))
from meigm_jax.config import from_dict
from meigm_jax.envs.smacv2 import HostEnv
try:
    from meigm_jax.running.run_loop import run
    adapter = "smax_adapter:SmaxSC2Env"
except ImportError:  # the flat layout
    from meigm_jax.run_loop import run
    adapter = "meigm_jax.sc2.smax_adapter:SmaxSC2Env"
cfg = from_dict(dict(env=dict(name="smacv2_protoss_5v5", target_entropy_coef=0.24), alg=dict(name="me_qmix"),
                     hidden_dim=16, mixer_embed=8, hypernet_embed=16, opt=dict(embed_dim=8, hypernet_embed=16),
                     batch_size=4, buffer_size=8, batch_size_run=2, total_timesteps=600, test_interval=200,
                     test_episodes=2, target_update_interval=4, host=dict(num_workers=1, worker_timeout=120.0),
                     wandb=dict(mode="disabled")))
run(cfg, Path({run_dir!r}), env=HostEnv(cfg.env.name, adapter, lambda i, seed: dict(scenario="smacv2_5_units",
                                                                                     seed=100 * (seed + 1) + i)))
"""


def train(out: Path, names: list[str]) -> None:
    for name in names:
        run_dir = out / name
        if (run_dir / "metrics.jsonl").is_file():
            print(f"{run_dir}: exists, kept")
            continue
        if name == "host_loop":
            root = Path(os.environ.get("PYTHONPATH", "").split(os.pathsep)[0] or Path(__file__).parents[1])
            cmd = [sys.executable, "-c", HOST.format(root=str(root.resolve()), run_dir=str(run_dir))]
        else:
            cmd = [sys.executable, "-m", "meigm_jax.train", *RUNS[name], "wandb.mode=disabled",
                   f"hydra.run.dir={run_dir}"]
        print(" ".join(cmd[:3]) + (" ..." if name == "host_loop" else " " + " ".join(cmd[3:])), flush=True)
        subprocess.run(cmd, check=True)


def records(run_dir: Path, ignore: tuple[str, ...] = ()) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING and not k.startswith(ignore)}
            for line in lines]


def compare(a: Path, b: Path, ignore: tuple[str, ...] = ()) -> bool:
    same = True
    for name in [*RUNS, "host_loop"]:
        if not (a / name / "metrics.jsonl").is_file() or not (b / name / "metrics.jsonl").is_file():
            print(f"{name}: missing in one of the sets")
            same = False
            continue
        left, right = records(a / name, ignore), records(b / name, ignore)
        diff = next(((i, k) for i, (x, y) in enumerate(zip(left, right)) for k in sorted(set(x) | set(y))
                     if x.get(k) != y.get(k)), None)
        if len(left) != len(right):
            print(f"{name}: {len(left)} against {len(right)} records")
            same = False
        elif diff is not None:
            i, k = diff
            print(f"{name}: record {i} differs first at {k}: {left[i].get(k)!r} against {right[i].get(k)!r}")
            same = False
        else:
            left_out = sorted(TIMING) + [f"{prefix}*" for prefix in ignore]
            print(f"{name}: identical ({len(left)} records, {', '.join(left_out)} left out)")
    return same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--only", nargs="+", choices=[*RUNS, "host_loop"])
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("DIR_A", "DIR_B"))
    parser.add_argument("--ignore", nargs="+", default=[], metavar="PREFIX",
                        help="with --compare: also leave out the fields starting with these")
    args = parser.parse_args()
    if args.compare:
        sys.exit(0 if compare(*args.compare, tuple(args.ignore)) else 1)
    if args.out is None:
        parser.error("--out DIR or --compare DIR_A DIR_B")
    train(args.out, args.only or [*RUNS, "host_loop"])


if __name__ == "__main__":
    main()
