"""Paper Table 2 in one command: win rates of QMIX, QPLEX, ME-QMIX and ME-QPLEX
on the fifteen SMACv2 scenarios.

    python -m meigm_jax.table2 [family=smax|smacv2] [scenarios=protoss_5v5,...] [algs=qmix,...]
                               [preset=cpu|paper] [out=DIR] [from_runs=true] [key=value ...]

``family=smax`` (default) runs the JAX analogues ``smax_<race>_<size>`` on the
accelerator; ``family=smacv2`` runs the official scenarios through StarCraft
II (the host loop; it needs the install that ``+env=smacv2_*`` needs).
``scenarios=`` picks rows (Table 2's names, e.g. ``terran_10v11``, or any
``+env`` name such as ``smax_5v5``), ``algs=`` picks columns (any ``alg=``
preset). Each (scenario, alg) cell trains all seeds in one vmapped program
with its own run directory ``out/<env>/<alg>``; cells run one after another.
The table (win rate in %, mean ± std over seeds, as in the paper, and beside
each the IQM over seeds with its 95% stratified-bootstrap CI) is printed and
saved as ``table2.md``, and one line per cell (win rate and return) as
``table2.csv``; the runs are exported as marl-eval's raw-data JSON,
``table2_marl_eval.json``.

``preset=paper`` (default) keeps each scenario's and algorithm's paper
settings (docs/choices.md) with 4 seeds; ``preset=cpu`` is a small run per
cell (not converged): with all 60 cells it is hours of compiling on a CPU,
so pick a few with ``scenarios=`` and ``algs=``. ``from_runs=true`` trains
nothing and tabulates the cells' runs under ``out`` (cut short, or run as
separate processes or machines) at the last evaluation every cell reached.
"""

from __future__ import annotations

from meigm_jax.reporting import lineup
from meigm_jax.config.compose import group_options, load
from meigm_jax.config import ConfigError
from meigm_jax.envs import RACES

SIZES = ("5v5", "10v10", "10v11", "20v20", "20v23")
SCENARIOS = tuple(f"{race}_{size}" for race in RACES for size in SIZES)  # the paper's row order
FAMILIES = ("smax", "smacv2")
ALGS = ("qmix", "qplex", "me_qmix", "me_qplex")  # the paper's columns that this package implements
PAPER_NAMES = {"qmix": "QMIX", "qplex": "QPLEX", "me_qmix": "ME-QMIX", "me_qplex": "ME-QPLEX",
               "vdn": "VDN", "me_vdn": "ME-VDN"}


def env_name(family: str, scenario: str, env_options: list[str]) -> str:
    """A row's env config: Table 2's name within the family, or an env name as given."""
    if scenario in SCENARIOS:
        return f"{family}_{scenario}"
    if scenario in env_options:
        return scenario
    raise ConfigError(f"config error: unknown scenario {scenario!r}; allowed: {', '.join(SCENARIOS)}, "
                      "or an +env name")


def cells(argv: list[str]) -> tuple[lineup.Options, list[lineup.Cell]]:
    """Every (scenario, alg) cell, each config validated; raises ConfigError."""
    options = lineup.parse(argv, list_options=("family", "scenarios", "algs"),
                           chosen_by_lineup={"env": "scenarios=NAME,NAME", "alg": "algs=NAME,NAME"})
    family = options.choices.get("family", ["smax"])
    if len(family) != 1 or family[0] not in FAMILIES:
        raise ConfigError(f"config error: family={','.join(family)!r} is not allowed; allowed: "
                          f"{', '.join(FAMILIES)}")
    env_options = group_options("env")
    scenarios = options.choices.get("scenarios", list(SCENARIOS))
    envs = [env_name(family[0], s, env_options) for s in scenarios]
    algs = options.choices.get("algs", list(ALGS))
    if any(env.startswith("smacv2_") for env in envs) and not options.from_runs:
        from meigm_jax.envs.smacv2 import missing_install

        message = missing_install()
        if message:
            raise ConfigError(message)
    preset = lineup.PRESETS[options.preset]
    return options, [
        lineup.Cell({"scenario": scenario, "env": env, "alg": alg}, f"{env}/{alg}",
                    load([f"+env={env}", f"alg={alg}", *preset, *options.overrides]))
        for scenario, env in zip(scenarios, envs) for alg in algs]


def main(argv: list[str] | None = None) -> list[dict]:
    return lineup.main(argv, cells, "table2", markdown_table)


def markdown_table(rows: list[dict], grid: list[lineup.Cell]) -> str:
    """Scenarios down, algorithms across; per algorithm the final win rate in %
    as mean ± std and as IQM [95% CI] over seeds."""
    del grid  # the rows name their scenario, env and alg
    scenarios = list(dict.fromkeys(r["scenario"] for r in rows))
    algs = list(dict.fromkeys(r["alg"] for r in rows))
    by_cell = {(r["scenario"], r["alg"]): r for r in rows}
    seeds = sorted({r["seeds"] for r in rows})
    steps = sorted({r["env_steps"] for r in rows})
    steps_text = f"{steps[0]:,}" if len(steps) == 1 else f"{steps[0]:,} to {steps[-1]:,}"
    names = [PAPER_NAMES.get(a, a) for a in algs]
    lines = [f"Final greedy win rate (%), mean ± std over {'/'.join(map(str, seeds))} seeds, "
             f"at {steps_text} env steps; {lineup.IQM_NOTE}.", "",
             "| scenario | env | " + " | ".join(f"{n} | {n} IQM [95% CI]" for n in names) + " |",
             "|" + "---|" * (2 + 2 * len(algs))]
    for scenario in scenarios:
        cells = [by_cell.get((scenario, alg)) for alg in algs]
        env = next(c["env"] for c in cells if c is not None)
        lines.append(f"| {scenario} | {env} | " + " | ".join(
            "- | -" if c is None else
            lineup.mean_std_cell(c, "test_win_rate", scale=100.0, digits=1) + " | "
            + lineup.iqm_cell(c, "test_win_rate", scale=100.0, digits=1)
            for c in cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
