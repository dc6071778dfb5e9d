"""Paper Tables 3 and 4 in one command: QMIX, +Entropy, +OPT (ME-QMIX), ME-QMIX (MLP).

    python -m meigm_jax.ablation +env=smax_5v5 [preset=cpu|paper] [out=DIR] [key=value ...]

Each variant trains all seeds in one vmapped program (the same ``run`` as
``meigm_jax.train``, one run directory per variant under ``out``), then the
final greedy evaluation is tabulated as mean ± std over seeds, printed and
saved as ``ablation.md`` and ``ablation.csv``. ``preset=paper`` (default)
keeps the environment's paper-scale settings; ``preset=cpu`` is a small run
that finishes on a 2-core machine (not converged). Other ``key=value``
overrides apply to every variant.

``from_runs=true`` trains nothing: it tabulates the run directories already
under ``out`` (runs cut short by a time limit, or run apart, e.g. one
process or machine per variant), at the last evaluation that every variant
reached, so that the rows compare equal numbers of env steps.
"""

from __future__ import annotations

from meigm_jax import lineup
from meigm_jax.cli_config import load, with_default_env

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
    return lineup.command(argv, cells, "ablation", markdown_table)


def markdown_table(rows: list[dict], variants: list[lineup.Cell]) -> str:
    env_name = variants[0].config.env.name
    metrics = [m for m in lineup.METRICS if any(m in row for row in rows)]
    header = "| variant | alg | seeds | env steps | " + " | ".join(metrics) + " |"
    lines = [f"Final greedy evaluation on {env_name} (mean ± std over seeds).", "", header,
             "|" + "---|" * (4 + len(metrics))]
    for row in rows:
        cells = [lineup.mean_std_cell(row, m) for m in metrics]
        lines.append(f"| {row['variant']} | {row['alg']} | {row['seeds']} | {row['env_steps']:,} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
