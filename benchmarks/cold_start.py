"""Time from typing a training command to its first output, cold and warm compilation cache.

    python benchmarks/cold_start.py [--envs default smax_5v5] [--cache DIR] [--repeats 1]

For each env (``default`` is the command with no ``+env=``, the matrix game),
the command ``python -m meigm_jax.train [+env=NAME] compile_cache=DIR
wandb.mode=disabled`` runs twice in a child process: first with DIR emptied
(cold: every program compiles), then again with DIR as the first run left
it (warm: the programs come from the cache). Each child is stopped once it
has printed its first progress line. Measured from just before the child is
spawned, so interpreter start, imports, env creation and compilation are in:

- ``compiled``: the "compiled in ..." line (training can start), with the
  count of programs the line says came from the cache (and of those, the
  executables loaded whole, without tracing: ``meigm_jax.programs.compile_cache``);
- ``first progress``: the first chunk's progress line (the first chunk
  trained and evaluated: ``test_interval`` env steps).

Nothing else should run on the machine meanwhile.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tables import print_table

PROGRESS = re.compile(r"^\[\s*[\d.]+%\] env_steps")
CACHED = re.compile(r"\((\d+) of (\d+) programs from the compilation cache(?:, (\d+) of them untraced)?\)")


def first_lines(env: str, cache: Path, run_dir: Path) -> dict:
    """Seconds from spawn to the compiled line and to the first progress line."""
    cmd = [sys.executable, "-m", "meigm_jax.train", *([f"+env={env}"] if env != "default" else []),
           f"compile_cache={cache}", "wandb.mode=disabled", f"hydra.run.dir={run_dir}"]
    start = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
    seen: dict = {}
    try:
        for line in child.stdout:
            if line.startswith("compiled in"):
                seen["compiled"] = time.perf_counter() - start
                hit = CACHED.search(line)
                seen["cached"] = (f"{hit[1]} of {hit[2]}" + (f", {hit[3]} untraced" if hit[3] else "")) if hit else "?"
            elif PROGRESS.match(line):
                seen["progress"] = time.perf_counter() - start
                break
    finally:
        child.kill()
        child.wait()
    if "progress" not in seen:
        raise SystemExit(f"no progress line from {' '.join(cmd)} (exit {child.returncode})")
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=["default", "smax_5v5"])
    parser.add_argument("--cache", type=Path, help="cache directory to use (emptied first); a temporary one by default")
    parser.add_argument("--repeats", type=int, default=1, help="cold/warm pairs per env")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="cold_start_"))
    cache = args.cache or scratch / "xla"
    rows = []
    for env in args.envs:
        for repeat in range(args.repeats):
            shutil.rmtree(cache, ignore_errors=True)
            for state in ("cold", "warm"):
                seen = first_lines(env, cache, scratch / f"{env}_{repeat}_{state}")
                if state == "cold":
                    cold = seen["progress"]
                rows.append([env, state, f"{seen['compiled']:.1f}", seen["cached"], f"{seen['progress']:.1f}",
                             f"{100 * seen['progress'] / cold:.0f}%"])
                print(f"{env} {state}: compiled line at {seen['compiled']:.1f}s, first progress line at "
                      f"{seen['progress']:.1f}s", flush=True)
    shutil.rmtree(scratch, ignore_errors=True)
    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores; seconds from spawn\n")
    print_table(["env", "cache", "compiled (s)", "programs from cache", "first progress line (s)", "of cold"], rows)


if __name__ == "__main__":
    main()
