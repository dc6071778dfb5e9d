"""The error every command turns into one line on stderr and exit code 2."""


class ConfigError(ValueError):
    """A configuration value that cannot be run; its message is one line."""
