"""Typed errors that commands turn into one line on stderr and an exit code."""


class ConfigError(ValueError):
    """A configuration value that cannot be run; its message is one line."""


class HostStepError(RuntimeError):
    """The host-stepped envs cannot go on: their workers do not start, or
    rollouts keep finishing no episode. The message is one line; the run
    stops with exit code 1."""
