"""What the training and evaluation commands print: the progress line of a
chunk, the end-of-run summary and the evaluation table."""

from __future__ import annotations

import time

import numpy as np


def progress_line(total_timesteps: int, has_win: bool, records: list[dict], eta_s: float,
                  extras: dict, label: str | None = None) -> str:
    """One chunk's line: progress, returns over seeds, win rate, speed, ETA and
    ``extras``; ``label`` (a sweep's value) follows the progress."""
    steps = np.mean([r["env_steps"] for r in records])
    ret = np.array([r["test_return"] for r in records])
    # null when the chunk ran no training episode: a rollout of the chunk
    # before went past this chunk's end (test_interval shorter than a rollout)
    train = [r["train_return"] for r in records if r["train_return"] is not None]
    train_text = f"{np.mean(train):8.3f}" if train else f"{'n/a':>8}"
    line = (f"[{100 * min(steps / total_timesteps, 1):5.1f}%] env_steps {int(steps):>10,}"
            + (f" | {label}" if label else "")
            + f" | train_return {train_text} | test_return {ret.mean():8.3f} ± {ret.std():.3f}")
    if has_win:
        win = np.array([r["test_win_rate"] for r in records])
        line += f" | win {win.mean():.3f}"
    sps = sum(r["sps"] for r in records)
    line += f" | sps {sps:>9,.0f} | eta {time.strftime('%H:%M:%S', time.gmtime(max(eta_s, 0)))}"
    return line + "".join(f" | {key} {value}" for key, value in extras.items())


def seed_table(rows: list[dict], columns: list[tuple[str, str, int, int]], total: str,
               note: str) -> list[str]:
    """Lines of a table with one row per seed (``seed_index``, ``env_steps``,
    then each of ``columns``: (title, key, width, decimals)) and a last row
    ``total`` holding each column's mean over the seeds, followed by ``note``."""
    lines = [f"{'seed':>5} {'env_steps':>10}" + "".join(f" {title:>{width}}" for title, _, width, _ in columns)]
    for row in rows:
        lines.append(f"{row['seed_index']:>5} {row['env_steps']:>10,}" + "".join(
            f" {row[key]:>{width}.{decimals}f}" for _, key, width, decimals in columns))
    lines.append(f"{total:>5} {'':>10}" + "".join(
        f" {np.mean([r[key] for r in rows]):>{width}.{decimals}f}" for _, key, width, decimals in columns)
        + note)
    return lines


def print_summary(has_win: bool, final: list[dict], seconds: float, label: str | None = None) -> None:
    """The end of a run (or of a sweep's value ``label``): each seed's final
    greedy evaluation and their mean."""
    print(f"\ndone in {seconds:.1f}s. final greedy evaluation per seed" + (f" of {label}:" if label else ":"))
    columns = [("test_return", "test_return", 12, 3)] + ([("win_rate", "test_win_rate", 9, 3)] if has_win else [])
    ret = np.array([r["test_return"] for r in final])
    for line in seed_table(final, columns, "mean", f"   (± {ret.std():.3f} over {len(final)} seed(s))"):
        print(line)


def print_evaluation(alg: str, env: str, has_win: bool, rows: list[dict], meta: dict,
                     policy: str = "greedy") -> None:
    """``meigm_jax.evaluate``'s table: per seed and over all seeds, of a checkpoint's episodes."""
    print(f"{alg} on {env}: checkpoint of chunk {meta.get('chunk')}, "
          f"{rows[0]['episodes']} {policy} episode(s) per seed")
    columns = [("return", "return", 10, 3), ("length", "length", 8, 1)] + (
        [("win_rate", "win_rate", 9, 3)] if has_win else [])
    ret = np.array([r["return"] for r in rows])
    for line in seed_table(rows, columns, "all", f"   (return ± {ret.std():.3f} over {len(rows)} seed(s))"):
        print(line)
