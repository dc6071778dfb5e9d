"""The command-line parser of the commands that are not Hydra
(``meigm_jax.evaluate``, ``meigm_jax.plot``, ``meigm_jax.marl_eval``).

It is argparse (positionals, ``--options``, ``--help``) that also takes
``key=value`` tokens for the options declared with ``add_key``. A bad
argument raises ConfigError with one line: for a key, the key and what it
allows; for argparse's own errors, argparse's message and the usage. The
command's ``main()`` turns it into its exit code (``meigm_jax.errors.report``).
Only the standard library is imported.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from meigm_jax.errors import ConfigError, RunDirError, report


class _Key(NamedTuple):
    # Raises ValueError on a value it does not allow (or ConfigError with its own line).
    convert: Callable[[str], Any]
    allowed: str | None  # what the key allows, for the error line (None: any text)
    default: Any
    required: bool
    metavar: str
    help: str | None


def integer(low: int) -> tuple[Callable[[str], int], str]:
    """``add_key``'s ``convert`` and ``allowed`` for an integer >= ``low``."""
    def convert(text: str) -> int:
        number = int(text)
        if number < low:
            raise ValueError(text)
        return number

    return convert, f"an integer >= {low}"


def boolean() -> tuple[Callable[[str], bool], str]:
    """``add_key``'s ``convert`` and ``allowed`` for true or false (any case)."""
    values = {"true": True, "false": False}
    return (lambda text: values[text.lower()]), ", ".join(values)


def choice(options: Sequence[str]) -> tuple[Callable[[str], str], str]:
    """``add_key``'s ``convert`` and ``allowed`` for one of ``options``."""
    def convert(text: str) -> str:
        if text not in options:
            raise ValueError(text)
        return text

    return convert, ", ".join(options)


class Parser(argparse.ArgumentParser):
    """argparse with ``key=value`` options, raising ConfigError on bad input.

    ``error_prefix`` starts every error line (default ``"<prog>: error:"``).
    """

    def __init__(self, prog: str, description: str | None = None, *, error_prefix: str | None = None):
        super().__init__(prog=prog, description=description)
        self.error_prefix = error_prefix or f"{prog}: error:"
        self._keys: dict[str, _Key] = {}

    def add_key(self, name: str, kind: tuple[Callable[[str], Any], str | None] | None = None, *,
                default: Any = None, required: bool = False, metavar: str = "VALUE",
                help: str | None = None) -> None:
        """Declare ``name=VALUE``. ``kind`` is ``(convert, allowed)``, e.g.
        ``integer(1)``, or ``(convert, None)`` for a convert that refuses
        nothing or raises its own ConfigError; None keeps the text. ``help``
        of a required key also says what it is in the line that reports it
        missing."""
        convert, allowed = kind or (str, None)
        self._keys[name] = _Key(convert, allowed, default, required, metavar, help)

    def format_usage(self) -> str:
        return self._with_keys(super().format_usage())

    def format_help(self) -> str:
        text = self._with_keys(super().format_help())
        if self._keys:
            rows = [f"  {name}={key.metavar}".ljust(24) + (key.help or "")
                    + (f" (allowed: {key.allowed})" if key.allowed else "") for name, key in self._keys.items()]
            text += "\nkey=value arguments:\n" + "\n".join(rows) + "\n"
        return text

    def _with_keys(self, usage: str) -> str:
        """The usage with the keys after argparse's own arguments."""
        if not self._keys:
            return usage
        words = [f"{name}={key.metavar}" if key.required else f"[{name}={key.metavar}]"
                 for name, key in self._keys.items()]
        first, _, rest = usage.partition("\n")
        return f"{first} {' '.join(words)}\n{rest}"

    def parse_args(self, args: Sequence[str] | None = None, namespace=None) -> argparse.Namespace:
        """The namespace of ``args`` (default ``sys.argv[1:]``), keys included;
        ConfigError (one line) on bad input: an unknown argument first, then
        a required key missing, then the keys' values in declaration order."""
        given: dict[str, str] = {}
        rest = []
        for token in list(sys.argv[1:] if args is None else args):
            name, sep, value = token.partition("=")
            if sep and name in self._keys:
                given[name] = value
            else:
                rest.append(token)
        parsed, unknown = self.parse_known_args(rest, namespace)
        if unknown:
            if not self._keys:
                self.error(f"unrecognized arguments: {' '.join(unknown)}")
            raise ConfigError(f"{self.error_prefix} unknown argument {unknown[0]!r}; allowed: "
                              + ", ".join(f"{name}=..." for name in self._keys))
        for name, key in self._keys.items():
            if key.required and name not in given:
                why = f" ({key.help})" if key.help else ""
                raise ConfigError(f"{self.error_prefix} {name}={key.metavar} is required{why}")
        for name, key in self._keys.items():
            if name in given:
                try:
                    value = key.convert(given[name])
                except ConfigError:
                    raise
                except (ValueError, KeyError):
                    raise ConfigError(f"{self.error_prefix} {name}={given[name]!r} is not allowed; "
                                      f"allowed: {key.allowed}") from None
            else:
                value = key.default
            setattr(parsed, name, value)
        return parsed

    def error(self, message: str):
        """argparse's errors as one line with the usage (argparse prints the
        usage on a line of its own and exits)."""
        usage = " ".join(self.format_usage().split()[1:])
        raise ConfigError(f"{self.error_prefix} {message} (usage: {usage})")


def write_file(parse: "Parser", write: Callable[[argparse.Namespace], Any], argv: Sequence[str] | None) -> int:
    """A command that writes one file from its arguments: 0 with the file's
    path on stdout, or 2 with one line on stderr (``errors.report``)."""
    try:
        out = write(parse.parse_args(argv))
    except (ConfigError, RunDirError) as exc:
        return report(exc)
    print(out.resolve())
    return 0

