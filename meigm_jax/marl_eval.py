"""Run directories as marl-eval's raw experiment data (one JSON file).

Command line::

    python -m meigm_jax.marl_eval RUN_DIR [RUN_DIR ...] [--out FILE.json] [--metric KEY ...]

Writes the runs in the raw-data layout of marl-eval (InstaDeep's
``id-marl-eval``): env family, env name, alg name, one run per seed and one
step per evaluation (``meigm_jax.reporting.marl_eval`` describes the layout
and what is cut or left out). Metrics are record keys without their
``test_`` prefix: by default ``test_return`` as ``return`` and
``test_win_rate`` as ``win_rate``; ``--metric KEY`` (repeatable) exports
other keys instead. The file's path is printed on stdout.

Bad input (a path without ``metrics.jsonl`` or without a ``config.json``
naming its env and alg, two runs of the same alg on the same env, a metric
no run has) prints one line to stderr and exits with status 2. Needs only
the standard library and numpy (no JAX, no marl-eval).
"""

from __future__ import annotations

from collections.abc import Sequence

from meigm_jax.reporting.marl_eval import DEFAULT_METRICS, DEFAULT_OUT, source, write
from meigm_jax.running.arguments import Parser, write_file


def parser() -> Parser:
    parse = Parser("python -m meigm_jax.marl_eval",
                   "Export run directories as marl-eval's raw experiment data (JSON).")
    parse.add_argument("runs", nargs="+", metavar="PATH", help="run directory with metrics.jsonl")
    parse.add_argument("--out", default=DEFAULT_OUT, help=f"JSON file (default: {DEFAULT_OUT})")
    parse.add_argument("--metric", action="append", metavar="KEY",
                       help="record key to export, repeatable (default: test_return and "
                            "test_win_rate); exported without its test_ prefix")
    return parse


def main(argv: Sequence[str] | None = None) -> int:
    """The command: 0 with the JSON file's path on stdout, or 2 with one line on stderr."""
    return write_file(parser(), lambda args: write([source(d) for d in args.runs], args.out, args.metric or DEFAULT_METRICS), argv)


if __name__ == "__main__":
    raise SystemExit(main())
