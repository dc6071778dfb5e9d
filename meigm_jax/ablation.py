"""Paper Tables 3 and 4 in one command: QMIX, +Entropy, +OPT (ME-QMIX), ME-QMIX (MLP).

    python -m meigm_jax.ablation +env=smax_5v5 [preset=cpu|paper] [out=DIR] [key=value ...]

Each variant trains all seeds in one vmapped program (the run loop of
``meigm_jax.train``, ``meigm_jax.running.run_loop.run``; one run directory per
variant under ``out``), then the final greedy evaluation is tabulated as
mean ± std over seeds, and for the win rate and the return also as the
interquartile mean (IQM) over seeds with its 95% stratified-bootstrap CI,
printed and saved as ``ablation.md`` and ``ablation.csv``; the runs are
exported as marl-eval's raw-data JSON, ``ablation_marl_eval.json``. ``preset=paper`` (default)
keeps the environment's paper-scale settings; ``preset=cpu`` is a small run
that finishes on a 2-core machine (not converged). Other ``key=value``
overrides apply to every variant.

``from_runs=true`` trains nothing: it tabulates the run directories already
under ``out`` (runs cut short by a time limit, or run apart, e.g. one
process or machine per variant), at the last evaluation that every variant
reached, so that the rows compare equal numbers of env steps.
"""

from __future__ import annotations

from meigm_jax.reporting import lineup
from meigm_jax.config.compose import load, with_default_env

VARIANTS = (  # (paper's name, alg preset)
    ("QMIX", "qmix"),
    ("+Entropy", "me_qmix_no_opt"),
    ("+OPT (ME-QMIX)", "me_qmix"),
    ("ME-QMIX (MLP)", "me_qmix_mlp"),
)


def cells(argv: list[str]) -> tuple[lineup.Options, list[lineup.Cell]]:
    """The four variants' cells, every config validated; raises ConfigError."""
    options = lineup.parse(argv, chosen_by_lineup={"alg": "no alg= override"})
    overrides = with_default_env(options.overrides)
    return options, [
        lineup.Cell({"variant": name, "alg": alg}, alg,
                    load([f"alg={alg}", *lineup.PRESETS[options.preset], *overrides]))
        for name, alg in VARIANTS]


def main(argv: list[str] | None = None) -> list[dict]:
    return lineup.main(argv, cells, "ablation", markdown_table)


def markdown_table(rows: list[dict], variants: list[lineup.Cell]) -> str:
    """One row per variant; per metric its mean ± std over seeds, and for the
    win rate and the return its IQM [95% CI] beside it."""
    env_name = variants[0].config.env.name
    metrics = [m for m in lineup.METRICS if any(m in row for row in rows)]
    columns = [(m, lineup.mean_std_cell) for m in metrics]
    for m in lineup.IQM_METRICS:
        if m in metrics:
            columns.insert(columns.index((m, lineup.mean_std_cell)) + 1, (m, lineup.iqm_cell))
    names = [m if cell is lineup.mean_std_cell else f"{m} IQM [95% CI]" for m, cell in columns]
    header = "| variant | alg | seeds | env steps | " + " | ".join(names) + " |"
    lines = [f"Final greedy evaluation on {env_name}: mean ± std over seeds; {lineup.IQM_NOTE}.", "",
             header, "|" + "---|" * (4 + len(columns))]
    for row in rows:
        cells = [cell(row, m) for m, cell in columns]
        lines.append(f"| {row['variant']} | {row['alg']} | {row['seeds']} | {row['env_steps']:,} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
