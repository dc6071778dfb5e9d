"""What the commands that read run directories and write one file
(``meigm_jax.plot``, ``meigm_jax.marl_eval``) share: bad input is one line
on stderr and exit code 2, the file written is its path on stdout. Only the
standard library is imported."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from meigm_jax.errors import EXIT_BAD_INPUT, RunDirError


class OneLineParser(argparse.ArgumentParser):
    """argparse, with a bad argument as one line and exit code 2 (argparse's
    default is the usage and then the error)."""

    def error(self, message: str):
        usage = " ".join(self.format_usage().split()[1:])
        print(f"{self.prog}: error: {message} (usage: {usage})", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def write_output(write: Callable[[], Path]) -> int:
    """A command's exit code once ``write()`` made its file: 0 with the file's
    path on stdout, or on bad input (RunDirError) 2 with one line on stderr."""
    try:
        out = write()
    except RunDirError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(out.resolve())
    return 0
