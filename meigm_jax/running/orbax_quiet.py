"""Orbax's noise kept off stderr, only while checkpoint work runs.

``orbax_quiet``: orbax's informational absl records (warnings included) are
dropped; errors pass. ``reads_finish_first``: a failed read waits for the
reads it started before orbax closes their event loop (otherwise each one
ends in "Exception ignored ... Event loop is closed" on stderr, after the
error was reported). Both are context managers that undo what they did on
exit, and either may be entered by several threads at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Iterator

# How long a failed read's other reads may take to finish (then the loop closes anyway).
_FINISH_S = 60.0


class _QuietOrbax(logging.Filter):
    """Drops orbax's informational absl records (warnings included); errors pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        pathname = record.pathname.replace("\\", "/")
        return record.levelno >= logging.ERROR or "/orbax/" not in pathname


_lock = threading.Lock()
_quiet_filter = _QuietOrbax()
_quiet_users = [0]  # open Checkpointers and running restores


@contextlib.contextmanager
def orbax_quiet() -> Iterator[None]:
    """Orbax's absl warnings kept off stderr while any checkpoint work is under way."""
    logger = logging.getLogger("absl")
    with _lock:
        if _quiet_users[0] == 0:
            logger.addFilter(_quiet_filter)
        _quiet_users[0] += 1
    try:
        yield
    finally:
        with _lock:
            _quiet_users[0] -= 1
            if _quiet_users[0] == 0:
                logger.removeFilter(_quiet_filter)


def _finish_then_close(loop: asyncio.AbstractEventLoop, close) -> None:
    if not loop.is_closed() and not loop.is_running():
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=_FINISH_S))
            for task in pending:  # their errors are the failed read's, reported already
                if task.done() and not task.cancelled():
                    task.exception()
    close()


class _ReadsFinishFirst(asyncio.AbstractEventLoopPolicy):
    """The policy in force, except that a loop made by a restoring thread
    waits for its tasks before it closes.

    Orbax reads through a fresh event loop that it closes as soon as one read
    fails (a corrupt checkpoint); tensorstore would then complete the other
    reads into the closed loop, and Python would print "Exception ignored ... Event
    loop is closed" once per read, after the restore has returned."""

    def __init__(self, previous: asyncio.AbstractEventLoopPolicy):
        self.previous = previous

    def get_event_loop(self):
        return self.previous.get_event_loop()

    def set_event_loop(self, loop) -> None:
        self.previous.set_event_loop(loop)

    def new_event_loop(self):
        loop = self.previous.new_event_loop()
        if threading.get_ident() in _restoring:
            loop.close = lambda close=loop.close: _finish_then_close(loop, close)
        return loop

    def get_child_watcher(self):
        return self.previous.get_child_watcher()

    def set_child_watcher(self, watcher) -> None:
        self.previous.set_child_watcher(watcher)


_restoring: dict[int, int] = {}  # thread id: how deep it is inside reads_finish_first


@contextlib.contextmanager
def reads_finish_first() -> Iterator[None]:
    """Within: orbax's reads in this thread all finish before their loop closes."""
    thread = threading.get_ident()
    with _lock:
        if not _restoring:
            asyncio.set_event_loop_policy(_ReadsFinishFirst(asyncio.get_event_loop_policy()))
        _restoring[thread] = _restoring.get(thread, 0) + 1
    try:
        yield
    finally:
        with _lock:
            _restoring[thread] -= 1
            if not _restoring[thread]:
                del _restoring[thread]
            policy = asyncio.get_event_loop_policy()
            if not _restoring and isinstance(policy, _ReadsFinishFirst):
                asyncio.set_event_loop_policy(policy.previous)
