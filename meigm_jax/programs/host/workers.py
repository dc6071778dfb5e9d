"""Worker processes that each own one environment with SMACv2's env API.

The host talks to every worker over a ``multiprocessing`` pipe (``spawn``
context: the parent has JAX loaded, which must not be forked). A worker
answers each command with ``("ok", payload)`` or ``("error", one line)``;
``step`` answers with the step's outcome together with the next
observations, states and available actions, so one round trip serves a step.

Faults: a worker whose pipe closes (it crashed or was killed), which
answers with an error, or which does not answer within ``timeout`` seconds
(``startup_timeout`` for its construction and first reset, which launch
StarCraft II) is killed with its whole process group (the worker calls
``os.setsid``, so the StarCraft II process it launched goes too) and a new
worker is started in its place; the caller drops that worker's episode.
This module does not import JAX.
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import os
import signal
import time
import traceback
from typing import Any, Callable, Mapping

import numpy as np

from meigm_jax.errors import WorkerFailed, one_line

STARTUP_TIMEOUT_S = 300.0  # StarCraft II launch + map load can take minutes on a busy host


def _observe(env) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.asarray(env.get_obs(), np.float32), np.asarray(env.get_state(), np.float32),
            np.asarray(env.get_avail_actions()).astype(bool))


def _env_info(env) -> dict:
    info = env.get_env_info()
    return {key: int(np.asarray(info[key]).reshape(-1)[0]) if key != "obs_shape" and key != "state_shape"
            else int(np.prod(info[key])) for key in
            ("state_shape", "obs_shape", "n_actions", "n_agents", "episode_limit")}


def worker_main(conn, factory: str, kwargs: Mapping[str, Any]) -> None:
    """Entry point of a worker process: build the env, then serve commands until told to close."""
    os.setsid()  # own process group: the host can kill it with its StarCraft II child
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the host handles Ctrl-C and closes us
    # An env that uses JAX (the SMAX adapter) stays off the accelerator the learner holds.
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    env = None
    try:
        module, _, name = factory.partition(":")
        env = getattr(importlib.import_module(module), name)(**kwargs)
        conn.send(("ok", _env_info(env)))
        while True:
            try:
                cmd, arg = conn.recv()
            except (EOFError, OSError):  # the host is gone
                break
            if cmd == "reset":
                env.reset()
                conn.send(("ok", _observe(env)))
            elif cmd == "step":
                reward, terminated, info = env.step(arg)
                outcome = (float(reward), bool(terminated), bool(info.get("battle_won", False)),
                           bool(info.get("episode_limit", False)))
                conn.send(("ok", (outcome, _observe(env))))
            elif cmd == "close":
                break
            else:
                raise ValueError(f"unknown worker command {cmd!r}")
    except Exception as exc:  # reported to the host, which restarts this worker
        try:
            conn.send(("error", one_line(exc, verbatim=True) + " | " + traceback.format_exc().strip().splitlines()[-1]))
        except Exception:
            pass
    finally:
        if env is not None:
            try:
                env.close()
            except Exception:
                pass
        conn.close()


class _Worker:
    def __init__(self, ctx, index: int, factory: str, kwargs: Mapping[str, Any]):
        self.index = index
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=worker_main, args=(child, factory, dict(kwargs)),
                                name=f"sc2-worker-{index}", daemon=True)
        self.proc.start()
        child.close()
        self.ready = False  # env built and its first reset answered
        self.info: dict | None = None
        self.started = time.monotonic()

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError, OSError):
            pass
        try:
            self.proc.kill()
        except Exception:
            pass
        self.proc.join(5)
        self.conn.close()


class WorkerPool:
    """``num_workers`` environments in their own processes, restarted when they fail.

    ``factory`` is ``"module:callable"`` resolved inside the worker (for the
    official env ``"smacv2.env:StarCraftCapabilityEnvWrapper"``);
    ``worker_kwargs(i)`` gives worker i's keyword arguments.
    """

    def __init__(self, factory: str, worker_kwargs: Callable[[int], Mapping[str, Any]], num_workers: int,
                 timeout: float, startup_timeout: float = STARTUP_TIMEOUT_S, context: str = "spawn",
                 log: Callable[[str], None] | None = None):
        self.factory, self.worker_kwargs = factory, worker_kwargs
        self.timeout, self.startup_timeout = float(timeout), max(float(startup_timeout), float(timeout))
        self.ctx = mp.get_context(context)
        self.log = log or (lambda msg: None)
        self.restarts = 0
        self.workers = [_Worker(self.ctx, i, factory, worker_kwargs(i)) for i in range(num_workers)]
        self.env_info = None
        self.last_failure = ""
        for w in self.workers:
            self.env_info = self.env_info or self._await_info(w)
        if self.env_info is None:
            self.close(grace=1.0)
            raise WorkerFailed(f"no worker could build its environment ({factory}): {self.last_failure}")

    @property
    def num_workers(self) -> int:
        return len(self.workers)

    def _recv(self, w: _Worker, deadline: float):
        remaining = max(deadline - time.monotonic(), 0.0)
        if not w.conn.poll(remaining):
            raise WorkerFailed(f"worker {w.index} did not answer within {self._limit(w):.0f}s")
        status, payload = w.conn.recv()  # EOFError when the process died
        if status != "ok":
            raise WorkerFailed(f"worker {w.index} failed: {payload}")
        return payload

    def _limit(self, w: _Worker) -> float:
        return self.timeout if w.ready else self.startup_timeout

    def _await_info(self, w: _Worker) -> dict | None:
        if w.info is None:
            try:
                w.info = self._recv(w, w.started + self.startup_timeout)
            except (WorkerFailed, EOFError, OSError) as exc:
                self._fail(w, exc)
                return None
        return w.info

    def _fail(self, w: _Worker, exc: BaseException) -> None:
        reason = str(exc) if isinstance(exc, WorkerFailed) else f"worker {w.index} died ({one_line(exc, verbatim=True)})"
        self.last_failure = reason
        self.log(f"{reason}; restarting it")
        w.kill()
        self.restarts += 1
        self.workers[w.index] = _Worker(self.ctx, w.index, self.factory, self.worker_kwargs(w.index))

    def request(self, commands: Mapping[int, tuple[str, Any]]) -> dict[int, Any]:
        """Send ``{worker: (cmd, arg)}`` to all at once, gather the answers.

        A worker that fails answers ``None`` and is replaced by a fresh one.
        """
        # Workers still starting are awaited first, so no answer's deadline runs meanwhile.
        built = {i: self._await_info(self.workers[i]) is not None for i in commands}
        sent = {}
        for i, command in commands.items():
            if not built[i]:
                sent[i] = None
                continue
            w = self.workers[i]
            try:
                w.conn.send(command)
                sent[i] = (w, time.monotonic() + self._limit(w))
            except (OSError, ValueError) as exc:
                self._fail(w, exc)
                sent[i] = None
        answers = {}
        for i, entry in sent.items():
            if entry is None:
                answers[i] = None
                continue
            w, deadline = entry
            try:
                answers[i] = self._recv(w, deadline)
                w.ready = w.ready or commands[i][0] == "reset"
            except (WorkerFailed, EOFError, OSError) as exc:
                self._fail(w, exc)
                answers[i] = None
        return answers

    def pid(self, i: int) -> int:
        return self.workers[i].proc.pid

    def close(self, grace: float = 10.0) -> None:
        """Ask every worker to close its env (and StarCraft II), kill what is left after ``grace`` s."""
        for w in self.workers:
            try:
                w.conn.send(("close", None))
            except Exception:
                pass
        deadline = time.monotonic() + grace
        for w in self.workers:
            w.proc.join(max(deadline - time.monotonic(), 0.0))
            w.kill()
