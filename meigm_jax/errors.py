"""Typed errors, the exit code of each, and the one-line formatter.

Library code raises these errors; only a command's ``main()`` turns one into
its line on stderr (``report``) and its exit code. Every message is one line.
"""

from __future__ import annotations

import sys

EXIT_HOST_FAILURE = 1  # the host loop cannot go on: its workers failed
EXIT_BAD_INPUT = 2  # bad input, reported before anything is created or compiled where it can be
EXIT_NON_FINITE = 3  # a seed's loss stopped being finite
EXIT_NOT_JOINED = 4  # distributed=true: the other processes did not all join in time
EXIT_INTERRUPTED = 130  # SIGINT or SIGTERM stopped a run (the shell's 128 + SIGINT)


def one_line(error: BaseException | str, limit: int | None = None, *, first_line: bool = False,
             verbatim: bool = False) -> str:
    """``error`` as one line, for messages that must stay one line.

    A string has its runs of whitespace squeezed to one space. An exception
    reads ``Type: message`` (``Type`` alone when the message is empty), its
    message squeezed the same way, or only the message's first line with
    ``first_line``. ``verbatim``: the first line of ``Type: message`` as
    Python prints it, spacing kept (``Type:`` for an empty message), which
    is how a worker process reports its failure. ``limit``: a longer line is
    cut to ``limit`` characters, ending in ``...``.
    """
    if isinstance(error, BaseException):
        name = type(error).__name__
        if verbatim:
            text = f"{name}: {error}".strip().splitlines()[0]
        else:
            message = str(error).strip()
            if first_line:
                message = message.splitlines()[0] if message else ""
            message = " ".join(message.split())
            text = f"{name}: {message}" if message else name
    else:
        text = " ".join(str(error).split())
    if limit is not None and len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


class ConfigError(ValueError):
    """A configuration value that cannot be run; its message is one line."""

    exit_code = EXIT_BAD_INPUT


class RunDirError(ValueError):
    """A run directory that cannot be read as asked; the message is one line.

    A command prints it as ``error: <message>``."""

    exit_code = EXIT_BAD_INPUT


class CheckpointError(Exception):
    """A checkpoint cannot be written or restored; the message is one line."""

    def __init__(self, message: str):
        super().__init__(one_line(message, limit=1000))


class WandbError(RuntimeError):
    """W&B cannot be used as configured; the message is one line."""


class WorkerFailed(RuntimeError):
    """A host-loop worker process failed (the pool restarts it); the message is one line."""


class DistributedError(RuntimeError):
    """The processes could not be joined; the message is the whole line to print.

    A half-joined JAX client can block a normal exit, so a command ends at
    once (``os._exit``) on this error.
    """

    exit_code = EXIT_NOT_JOINED


class NonFiniteLoss(RuntimeError):
    """A seed's loss stopped being finite and the run stopped; the message is the whole line to print."""

    exit_code = EXIT_NON_FINITE


class HostLoopError(RuntimeError):
    """The host loop cannot go on (no worker could build its env, or rollouts
    in a row finished no episode); the message is the whole line to print.
    A command exits with ``EXIT_HOST_FAILURE`` (1) on it."""

    exit_code = EXIT_HOST_FAILURE


class Interrupted(Exception):
    """A signal stopped a run mid-chunk; ``state`` is its last consistent state.

    The message is the signal's name (``SIGTERM``).
    """

    exit_code = EXIT_INTERRUPTED

    def __init__(self, signal_name: str, state=None):
        super().__init__(signal_name)
        self.state = state


# The errors that end a training run (``meigm_jax.running.run_loop.run``) with their
# line and exit code, for the commands that run it.
RUN_ERRORS = (ConfigError, NonFiniteLoss, HostLoopError, Interrupted, DistributedError)


def error_line(error: BaseException) -> str:
    """The one line a command prints on stderr for ``error``."""
    if isinstance(error, Interrupted):
        return f"interrupted ({error}); run stopped"
    if isinstance(error, RunDirError):
        return f"error: {error}"
    return str(error)


def report(error: ConfigError | RunDirError | NonFiniteLoss | HostLoopError | Interrupted
           | DistributedError) -> int:
    """Print ``error``'s line on stderr (stdout flushed first); its exit code."""
    sys.stdout.flush()
    print(error_line(error), file=sys.stderr, flush=True)
    return error.exit_code
