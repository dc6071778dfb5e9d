"""Learning curves from run directories.

Command line::

    python -m meigm_jax.plot RUN_DIR [RUN_DIR ...] [--metric NAME] [--stat iqm|mean] [--log-y] [--out FILE.png]

Each RUN_DIR is a training run directory (``config.json`` and
``metrics.jsonl``, as written by ``meigm_jax.train``). ``--stat iqm``
(default) draws the interquartile mean over seeds with a band of its 95%
stratified-bootstrap confidence interval; ``--stat mean`` draws the mean
with a band of ± one standard deviation (``meigm_jax.reporting.curves``
says how). The PNG's path is printed on stdout.

Bad input (a path without ``metrics.jsonl``, a metric no run has) prints one
line to stderr and exits with status 2. Only numpy and matplotlib are needed
(no JAX).
"""

from __future__ import annotations

from collections.abc import Sequence

from meigm_jax.reporting.curves import DEFAULT_OUT, DEFAULT_STAT, STATS, plot_runs
from meigm_jax.running.arguments import Parser, write_file


def parser() -> Parser:
    parse = Parser("python -m meigm_jax.plot",
                   "Learning curves (IQM with its 95% CI, or mean ± std, over seeds) of one or more runs.")
    parse.add_argument("runs", nargs="+", metavar="PATH", help="run directory with metrics.jsonl")
    parse.add_argument("--metric", default=None,
                       help="record key to plot (default: test_win_rate if every run has it, "
                            "else test_return)")
    parse.add_argument("--stat", default=DEFAULT_STAT, choices=list(STATS),
                       help="iqm: interquartile mean with its 95%% stratified-bootstrap CI "
                            "(default); mean: mean ± std")
    parse.add_argument("--log-y", action="store_true",
                       help="logarithmic y axis (e.g. --metric alpha); every value must be > 0")
    parse.add_argument("--out", default=DEFAULT_OUT, help=f"PNG file (default: {DEFAULT_OUT})")
    return parse


def main(argv: Sequence[str] | None = None) -> int:
    """The command: 0 with the PNG's path on stdout, or 2 with one line on stderr."""
    return write_file(parser(), lambda args: plot_runs(args.runs, args.metric, args.out, args.stat, log_y=args.log_y), argv)


if __name__ == "__main__":
    raise SystemExit(main())
