"""meigm_jax.running.arguments: argparse with key=value options, bad input as one ConfigError line."""

import pytest

from meigm_jax.errors import ConfigError
from meigm_jax.running import arguments


def _parser() -> arguments.Parser:
    parse = arguments.Parser("cmd", error_prefix="cmd error:")
    parse.add_argument("--flag", action="store_true")
    parse.add_key("name", required=True, metavar="NAME", help="what to name")
    parse.add_key("count", arguments.integer(1), default=3, metavar="N")
    parse.add_key("on", arguments.boolean(), default=False)
    parse.add_key("mode", arguments.choice(("a", "b")), default="a")
    return parse


def test_keys_and_options_together():
    args = _parser().parse_args(["name=x=y", "--flag", "count=7", "on=TRUE", "mode=b"])
    assert (args.name, args.flag, args.count, args.on, args.mode) == ("x=y", True, 7, True, "b")
    args = _parser().parse_args(["name=", "name=z"])  # the last one counts
    assert (args.name, args.flag, args.count, args.on, args.mode) == ("z", False, 3, False, "a")


@pytest.mark.parametrize("argv, line", [
    (["name=x", "size=2"], "cmd error: unknown argument 'size=2'; allowed: name=..., count=..., on=..., mode=..."),
    (["name=x", "--count=2"], "cmd error: unknown argument '--count=2'; allowed: name=..., count=..., on=..., mode=..."),
    (["count=0"], "cmd error: name=NAME is required (what to name)"),
    (["name=x", "count=0"], "cmd error: count='0' is not allowed; allowed: an integer >= 1"),
    (["name=x", "count=two"], "cmd error: count='two' is not allowed; allowed: an integer >= 1"),
    (["name=x", "on=yes"], "cmd error: on='yes' is not allowed; allowed: true, false"),
    (["name=x", "mode=c"], "cmd error: mode='c' is not allowed; allowed: a, b"),
])
def test_a_bad_key_is_one_line_naming_it_and_what_it_allows(argv, line):
    with pytest.raises(ConfigError) as info:
        _parser().parse_args(argv)
    assert str(info.value) == line


def test_argparse_errors_are_one_line_with_the_usage():
    parse = arguments.Parser("prog")
    parse.add_argument("runs", nargs="+", metavar="PATH")
    parse.add_argument("--stat", choices=["iqm", "mean"])
    for argv, needle in [([], "the following arguments are required: PATH"),
                         (["r", "--stat", "median"], "invalid choice: 'median'"),
                         (["r", "--what"], "unrecognized arguments: --what")]:
        with pytest.raises(ConfigError) as info:
            parse.parse_args(argv)
        message = str(info.value)
        assert message.startswith("prog: error: ") and needle in message and "\n" not in message
        assert message.endswith("(usage: prog [-h] [--stat {iqm,mean}] PATH [PATH ...])")
    assert parse.parse_args(["a", "b=c"]).runs == ["a", "b=c"]  # no keys: = is part of a path


def test_help_lists_the_keys(capsys):
    with pytest.raises(SystemExit) as info:
        _parser().parse_args(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: cmd [-h] [--flag] name=NAME [count=N] [on=VALUE] [mode=VALUE]")
    assert "count=N" in out and "(allowed: an integer >= 1)" in out
