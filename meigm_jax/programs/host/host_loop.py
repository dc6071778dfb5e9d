"""Training on official SMACv2: StarCraft II stepped on the host, learning on the device.

``HostProgram`` is the host-stepped envs' ``RunProgram``: the same run loop
(``meigm_jax.running.run_loop.run``) drives it as it drives the compiled JAX program,
and it learns through the same ``trainer.Learner`` (``learn_from`` stores
episodes in the device replay, takes the gradient steps they are owed and
copies the target; ``chunk_metrics`` makes the chunk's metrics; the schedule
says where a chunk ends and how training rollouts act). Only stepping the
envs is its own.

Each rollout runs one episode in each of ``host.num_workers`` worker
processes in lockstep (pymarl's parallel runner): every step the host gathers
all observations, states and available actions, calls ONE jitted acting
function (``rollout.make_act``) on the batch and sends the actions back; a
worker whose episode ended waits for the others. Finished episodes are padded
to the episode limit as ``types.Episodes``. What each step means (time-outs,
terminal flags, rewards) and the rollout statistics come from
``meigm_jax.algorithm.step``, as in the compiled rollout, so the same
episode is stored and counted alike by both programs. Every
``test_interval`` env steps, greedy episodes are run; each metrics record
also counts ``worker_restarts`` and ``episodes_dropped``.

A worker that crashes or does not answer within ``host.worker_timeout`` s is
killed and restarted (``workers.WorkerPool``); its partial episode is dropped.
Workers that cannot start, and rollouts that keep finishing no episode, end
the run with an ``errors.HostLoopError``.
Ctrl-C / SIGTERM raise ``errors.Interrupted`` with the last consistent
state, which the run loop saves as a final checkpoint; leaving the program
closes every worker (and its StarCraft II).
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
from typing import Any, Callable, Mapping, NamedTuple

import numpy as np

from meigm_jax.config import TrainConfig
from meigm_jax.errors import HostLoopError, Interrupted
from meigm_jax.envs.smacv2 import HostEnv
from meigm_jax.programs.host.workers import STARTUP_TIMEOUT_S, WorkerFailed, WorkerPool

MAX_EMPTY_ROLLOUTS = 5  # rollouts in a row without a finished episode end the run


class Batch(NamedTuple):
    """One lockstep rollout over the workers (numpy, worker-major)."""

    result: Any  # rollout.RolloutResult: episodes [W, ...] (finished ones first) and the finished ones' sums
    count: int  # finished episodes (the rest were dropped)
    stored: np.ndarray  # [W] bool: the episodes to store, the finished ones
    dropped: int


class HostRollout:
    """Runs one episode per worker in lockstep with a batched acting function."""

    def __init__(self, pool: WorkerPool, spec, hidden_dim: int, bootstrap_timeout: bool):
        self.pool, self.spec = pool, spec
        self.hidden_dim, self.bootstrap_timeout = hidden_dim, bootstrap_timeout

    def _reset(self, W: int) -> dict[int, Any]:
        answers = self.pool.request({i: ("reset", None) for i in range(W)})
        retry = [i for i, a in answers.items() if a is None]
        if retry:  # restarted workers get one more try in this rollout
            answers.update(self.pool.request({i: ("reset", None) for i in retry}))
        return answers

    def collect(self, act: Callable, key) -> Batch:
        """``act(key, hidden, Observation, last_onehot) -> (hidden, actions, RolloutDiagnostics)`` (jitted)."""
        import jax
        import jax.numpy as jnp

        from meigm_jax.algorithm.rollout import RolloutDiagnostics, RolloutResult
        from meigm_jax.algorithm.step import EpisodeTotals, add_step, rollout_stats, step_meaning, zero_totals
        from meigm_jax.types import Episodes, Observation, StepOutcome

        spec, W = self.spec, self.pool.num_workers
        n, k, T, O, S = spec.num_agents, spec.num_actions, spec.episode_limit, spec.obs_dim, spec.state_dim
        obs = np.zeros((W, T + 1, n, O), np.float32)
        state = np.zeros((W, T + 1, S), np.float32)
        avail = np.zeros((W, T + 1, n, k), bool)
        actions_b = np.zeros((W, T, n), np.uint8)
        reward = np.zeros((W, T), np.float32)
        terminal = np.zeros((W, T), bool)
        filled = np.zeros((W, T), bool)
        # Summed in float64 on the host, handed on in float32.
        totals = zero_totals(W, np, np.float64)
        diag = np.zeros((W, len(RolloutDiagnostics._fields)))  # the fields stacked, as rollout sums them
        alive, finished = np.zeros(W, bool), np.zeros(W, bool)
        cur_obs = np.zeros((W, n, O), np.float32)
        cur_state = np.zeros((W, S), np.float32)
        cur_avail = np.zeros((W, n, k), bool)
        cur_avail[..., 0] = True  # placeholder rows for workers without an episode
        dropped = 0
        for i, answer in self._reset(W).items():
            if answer is None:
                dropped += 1
                continue
            alive[i] = True
            cur_obs[i], cur_state[i], cur_avail[i] = (x.reshape(y.shape) for x, y in
                                                      zip(answer, (cur_obs[i], cur_state[i], cur_avail[i])))
        hidden = jnp.zeros((W, n, self.hidden_dim), jnp.float32)
        last = np.zeros((W, n, k), np.float32)
        eye = np.eye(k, dtype=np.float32)
        for t in range(T):
            if not alive.any():
                break
            key, act_key = jax.random.split(key)
            hidden, actions, diagnostics = act(act_key, hidden, Observation(cur_obs, cur_state, cur_avail), last)
            actions, diagnostics = np.asarray(actions), np.stack(diagnostics, -1)
            live = np.flatnonzero(alive)
            obs[live, t], state[live, t], avail[live, t] = cur_obs[live], cur_state[live], cur_avail[live]
            answers = self.pool.request({int(i): ("step", actions[i]) for i in live})
            outcome = StepOutcome(reward=np.zeros(W), terminated=np.zeros(W, bool),
                                  truncated=np.zeros(W, bool), won=np.zeros(W, bool),
                                  shaped_reward=np.zeros(W, np.float32))  # SMACv2 has no shaping reward
            for i in live:
                answer = answers[int(i)]
                if answer is None:  # crashed or timed out: its partial episode is dropped
                    alive[i] = False
                    dropped += 1
                    cur_avail[i] = False
                    cur_avail[i, :, 0] = True
                    continue
                (r, term, battle_won, episode_limit), (o, s, a) = answer
                cur_obs[i], cur_state[i], cur_avail[i] = o.reshape(n, O), s.reshape(S), a.reshape(n, k)
                # SMACv2 ends a time-out with terminated=True and info["episode_limit"]:
                # read as MarlEnv.step reports it, a truncation and no true end.
                outcome.reward[i], outcome.won[i] = r, battle_won
                outcome.terminated[i], outcome.truncated[i] = term and not episode_limit, episode_limit
            meaning = step_meaning(outcome, alive, t, T, self.bootstrap_timeout, 0.0, np)
            actions_b[alive, t] = actions[alive]
            reward[:, t], terminal[:, t], filled[:, t] = meaning.learned, meaning.terminal, alive
            totals = add_step(totals, meaning, alive, np)
            diag += np.where(alive[:, None], diagnostics, 0.0)
            ended = alive & meaning.done
            finished |= ended
            # The observation after an episode's last step (index len of T + 1).
            obs[ended, t + 1], state[ended, t + 1] = cur_obs[ended], cur_state[ended]
            avail[ended, t + 1] = cur_avail[ended]
            alive = meaning.alive
            last = eye[actions]
        order = np.concatenate([np.flatnonzero(finished), np.flatnonzero(~finished)])
        done = order[: int(finished.sum())]
        episodes = Episodes(obs=obs[order], state=state[order], avail=avail[order], actions=actions_b[order],
                            reward=reward[order], terminal=terminal[order],
                            filled=filled[order] & finished[order][:, None])
        totals = EpisodeTotals(*(x[done] for x in totals))
        result = RolloutResult(episodes=episodes, stats=rollout_stats(totals, np),
                               diagnostics_sum=RolloutDiagnostics(*diag[done].sum(0).astype(np.float32)))
        return Batch(result=result, count=len(done), stored=finished[order], dropped=dropped)


def spec_from_info(name: str, info: Mapping[str, int]):
    from meigm_jax.envs.base import EnvSpec

    return EnvSpec(name=name, num_agents=info["n_agents"], num_actions=info["n_actions"],
                   obs_shape=(info["obs_shape"],), state_dim=info["state_shape"],
                   episode_limit=info["episode_limit"], has_win=True)


class HostProgram:
    """``RunProgram`` of an env stepped by worker processes (one seed)."""

    def __init__(self, cfg: TrainConfig, env: HostEnv, say: Callable[[str], None] = print):
        self.cfg, self.env, self.say = cfg, env, say
        self.spec = env.spec
        self.notes: list[str] = []
        self.pool: WorkerPool | None = None
        self.dropped = 0
        self._handlers: dict = {}
        self._latest = None

    def __enter__(self) -> "HostProgram":
        import jax

        from meigm_jax.algorithm.rollout import make_act
        from meigm_jax.programs.fits import check_fits
        from meigm_jax.algorithm.learner import make_learner

        cfg, env = self.cfg, self.env
        start = time.time()
        self._install_signal_handlers()
        try:
            self.pool = WorkerPool(env.factory, lambda i: env.worker_kwargs(i, cfg.seed),
                                   cfg.host.num_workers, cfg.host.worker_timeout,
                                   max(STARTUP_TIMEOUT_S, cfg.host.worker_timeout),
                                   log=lambda msg: print(f"warning: {msg}", file=sys.stderr, flush=True))
            self.spec = spec = spec_from_info(env.spec.name, self.pool.env_info)
            if env.expect_episode_limit is not None and spec.episode_limit != env.expect_episode_limit:
                self.say(f"note: env reports episode limit {spec.episode_limit} (SMACv2's 10gen maps: "
                         f"{env.expect_episode_limit})")
            check_fits(cfg, spec, jax.devices())
        except WorkerFailed as exc:
            self.__exit__(None, None, None)
            raise HostLoopError(f"error: {exc}") from exc
        except BaseException:
            self.__exit__(None, None, None)
            raise
        self.learner = learner = make_learner(cfg, spec)
        self.num_chunks = learner.num_chunks
        nets, mode = learner.nets, learner.acting_mode
        self._act_train = jax.jit(lambda p, eps, *a: make_act(nets, p, mode, eps)(*a))
        self._act_test = jax.jit(lambda p, *a: make_act(nets, p, "greedy", diagnose=cfg.is_soft)(*a))
        self._split = jax.jit(lambda key: jax.random.split(key, 3))
        self._epsilon = jax.jit(learner.epsilon)
        self._learn_from = jax.jit(learner.learn_from, donate_argnums=0)
        self._metrics = jax.jit(lambda *a: jax.tree.map(lambda x: x[None], learner.chunk_metrics(*a)))
        # Seed 0 of the JAX path's seed_keys.
        self.state = self._latest = jax.jit(learner.init)(jax.random.fold_in(jax.random.PRNGKey(cfg.seed), 0))
        self.rollout = HostRollout(self.pool, spec, cfg.hidden_dim, cfg.env.bootstrap_timeout)
        self.description = (f"{self.pool.num_workers} host worker(s) | workers up in "
                            f"{time.time() - start:.1f}s")
        return self

    def __exit__(self, *exc_info) -> None:
        for sig, handler in self._handlers.items():
            signal.signal(sig, handler)
        self._handlers = {}
        if self.pool is not None:
            self.pool.close()
            self.pool = None

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def on_signal(signum, frame):
            raise Interrupted(signal.Signals(signum).name, self._latest)

        for sig in (signal.SIGINT, signal.SIGTERM):
            self._handlers[sig] = signal.signal(sig, on_signal)

    def place(self, restored):
        return restored

    def record_extras(self) -> dict:
        return {"worker_restarts": self.pool.restarts, "episodes_dropped": self.dropped}

    def chunk(self, state, index: int):
        import jax
        import jax.numpy as jnp

        until = int(self.learner.chunk_end(int(index)))
        totals, empty = self.learner.zero_totals(), 0
        while int(state.counters.env_steps) < until:
            key, rollout_key, learn_key = self._split(state.key)
            epsilon = self._epsilon(state)
            params = state.params
            batch = self.rollout.collect(lambda *a: self._act_train(params, epsilon, *a), rollout_key)
            self.dropped += batch.dropped
            empty = 0 if batch.count else empty + 1
            if empty >= MAX_EMPTY_ROLLOUTS:
                raise HostLoopError(f"error: {MAX_EMPTY_ROLLOUTS} rollouts in a row without a finished "
                                    f"episode ({self.pool.restarts} worker restarts); stopping")
            if batch.count == 0:
                state = self._latest = state._replace(key=key)
                continue
            state, totals = self._learn_from(state, totals, batch.result, jnp.int32(batch.count), key,
                                             learn_key, True, batch.stored)
            self._latest = state
        key, eval_key = jax.random.split(state.key)
        state = self._latest = state._replace(key=key)
        return state, self._metrics(state, totals, self.evaluate(state.params, eval_key))

    def evaluate(self, params, key):
        """Greedy episodes until ``test_episodes`` finished (a few extra rollouts
        make up for dropped ones); their sums as a ``RolloutResult``."""
        import jax

        from meigm_jax.algorithm.rollout import RolloutDiagnostics, RolloutResult
        from meigm_jax.types import RolloutStats

        act = lambda *a: self._act_test(params, *a)
        # Sums in float64 over the rollouts, handed on in float32.
        add = lambda sums, more: type(sums)(*(total + np.float64(x) for total, x in zip(sums, more)))
        as_float32 = lambda sums: type(sums)(*(np.float32(total) for total in sums))
        stats = RolloutStats(*np.zeros(len(RolloutStats._fields)))
        diagnostics = RolloutDiagnostics(*np.zeros(len(RolloutDiagnostics._fields)))
        attempts, most = 0, 4 * math.ceil(self.cfg.test_episodes / self.pool.num_workers) + 4
        while stats.episodes < self.cfg.test_episodes and attempts < most:
            attempts += 1
            key, collect_key = jax.random.split(key)
            batch = self.rollout.collect(act, collect_key)
            self.dropped += batch.dropped
            stats = add(stats, batch.result.stats)
            diagnostics = add(diagnostics, batch.result.diagnostics_sum)
        return RolloutResult(episodes=None, stats=as_float32(stats), diagnostics_sum=as_float32(diagnostics))


