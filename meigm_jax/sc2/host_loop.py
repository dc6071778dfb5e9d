"""Training on official SMACv2: StarCraft II stepped on the host, learning on the device.

Each rollout runs one episode in each of ``host.num_workers`` worker
processes in lockstep (pymarl's parallel runner): every step the host gathers
all observations, states and available actions, calls ONE jitted acting
function (``rollout.make_act``) on the batch and sends the actions back; a
worker whose episode ended waits for the others. Finished episodes are padded
to the episode limit as ``types.Episodes`` and added to the same device replay
(``replay``); the same jitted update (``learner.make_update``) then runs
num_finished / batch_size_run times on average (the paper's replay ratio), the
target network is copied every ``target_update_interval`` episodes and the
baselines' epsilon follows the same schedule, exactly as
``trainer.rollout_and_learn``. Every ``test_interval`` env steps, greedy
episodes are run and one metrics.jsonl record is written with the JAX path's
keys plus ``worker_restarts`` and ``episodes_dropped``.

A worker that crashes or does not answer within ``host.worker_timeout`` s is
killed and restarted (``workers.WorkerPool``); its partial episode is dropped.
Ctrl-C / SIGTERM close every worker (and its StarCraft II) and save a final
checkpoint of the parameters, optimiser states and counters (not the replay).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple

import numpy as np

from meigm_jax.cli_config import exit_bad_input
from meigm_jax.config import ConfigError, TrainConfig, to_dict
from meigm_jax.sc2 import scenarios
from meigm_jax.sc2.workers import STARTUP_TIMEOUT_S, WorkerFailed, WorkerPool
from meigm_jax.train import metric_records

SMACV2_FACTORY = "smacv2.env:StarCraftCapabilityEnvWrapper"
INSTALL_HINT = ("pip install -e .[sc2] (pysc2 and smacv2 from github.com/oxwhirl/smacv2), "
                "StarCraft II 4.10 with the SMAC maps in $SC2PATH/Maps/SMAC_Maps, and SC2PATH set")
EXIT_NON_FINITE = 3
EXIT_INTERRUPTED = 130
MAX_EMPTY_ROLLOUTS = 5  # rollouts in a row without a finished episode end the run


def _default_sc2_path() -> Path:
    if sys.platform == "darwin":
        return Path("/Applications/StarCraft II")
    if sys.platform.startswith("win"):
        return Path("C:/Program Files (x86)/StarCraft II")
    return Path.home() / "StarCraftII"  # pysc2's default on Linux


def missing_install() -> str | None:
    """One line naming what an official SMACv2 run lacks here, or None."""
    missing = [pkg for pkg in ("smacv2", "pysc2") if importlib.util.find_spec(pkg) is None]
    if missing:
        return f"error: official SMACv2 runs need {' and '.join(missing)}, not installed; install: {INSTALL_HINT}"
    sc2 = Path(os.environ["SC2PATH"]) if os.environ.get("SC2PATH") else _default_sc2_path()
    if not sc2.is_dir():
        return f"error: StarCraft II not found at {sc2} (SC2PATH); install: {INSTALL_HINT}"
    if not (sc2 / "Maps" / "SMAC_Maps").is_dir():
        return f"error: SMAC maps not found in {sc2 / 'Maps' / 'SMAC_Maps'}; install: {INSTALL_HINT}"
    return None


def run(cfg: TrainConfig, run_dir: Path) -> list[dict]:
    """``python -m meigm_jax.train +env=smacv2_*``: check the install, then train with SMACv2 workers."""
    message = missing_install()
    if message:
        exit_bad_input(message)
    scenarios.parse(cfg.env.name)

    def worker_kwargs(i: int) -> dict:
        return scenarios.env_args(cfg.env.name, seed=cfg.seed * 10_007 + i)

    return train(cfg, Path(run_dir), SMACV2_FACTORY, worker_kwargs,
                 expect_episode_limit=scenarios.EPISODE_LIMIT)


class Batch(NamedTuple):
    """One lockstep rollout over the workers (numpy, worker-major)."""

    episodes: Any  # types.Episodes [W, ...], finished episodes first
    count: int  # finished episodes (the rest were dropped)
    returns: np.ndarray  # [count]
    won: np.ndarray  # [count]
    lengths: np.ndarray  # [count]
    diagnostics_sum: np.ndarray  # [3] over the real steps of finished episodes
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
        """``act(key, hidden, Observation, last_onehot) -> (hidden, actions, diagnostics)`` (jitted)."""
        import jax
        import jax.numpy as jnp

        from meigm_jax.types import Episodes, Observation

        spec, W = self.spec, self.pool.num_workers
        n, k, T, O, S = spec.num_agents, spec.num_actions, spec.episode_limit, spec.obs_dim, spec.state_dim
        obs = np.zeros((W, T + 1, n, O), np.float32)
        state = np.zeros((W, T + 1, S), np.float32)
        avail = np.zeros((W, T + 1, n, k), bool)
        actions_b = np.zeros((W, T, n), np.uint8)
        reward = np.zeros((W, T), np.float32)
        terminal = np.zeros((W, T), bool)
        filled = np.zeros((W, T), bool)
        returns, won, lengths = np.zeros(W), np.zeros(W, bool), np.zeros(W, np.int64)
        diag = np.zeros((W, 3))
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
            actions, diagnostics = np.asarray(actions), np.asarray(diagnostics)
            live = np.flatnonzero(alive)
            obs[live, t], state[live, t], avail[live, t] = cur_obs[live], cur_state[live], cur_avail[live]
            answers = self.pool.request({int(i): ("step", actions[i]) for i in live})
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
                truncated = (episode_limit or t == T - 1) and not (term and not episode_limit)
                real_end = term and not episode_limit
                actions_b[i, t] = actions[i]
                reward[i, t] = r
                terminal[i, t] = real_end or (truncated and not self.bootstrap_timeout)
                filled[i, t] = True
                returns[i] += r
                lengths[i] += 1
                diag[i] += diagnostics[i]
                won[i] |= battle_won
                if term or truncated:
                    alive[i], finished[i] = False, True
                    obs[i, t + 1], state[i, t + 1], avail[i, t + 1] = cur_obs[i], cur_state[i], cur_avail[i]
            last = eye[actions]
        order = np.concatenate([np.flatnonzero(finished), np.flatnonzero(~finished)])
        done = order[: int(finished.sum())]
        episodes = Episodes(obs=obs[order], state=state[order], avail=avail[order], actions=actions_b[order],
                            reward=reward[order], terminal=terminal[order],
                            filled=filled[order] & finished[order][:, None])
        return Batch(episodes=episodes, count=len(done), returns=returns[done], won=won[done],
                     lengths=lengths[done], diagnostics_sum=diag[done].sum(0), dropped=dropped)


def add_finished(buffer, episodes, count):
    """Write the first ``count`` of ``episodes`` [W, ...] into the FIFO replay (static shapes)."""
    import jax
    import jax.numpy as jnp

    from meigm_jax.types import ReplayState

    capacity = buffer.data.reward.shape[0]
    rows = jnp.arange(episodes.reward.shape[0])
    slots = jnp.where(rows < count, (buffer.insert_pos + rows) % capacity, capacity)  # capacity: dropped
    data = jax.tree.map(lambda buf, new: buf.at[slots].set(new.astype(buf.dtype), mode="drop"),
                        buffer.data, episodes)
    return ReplayState(data=data, insert_pos=(buffer.insert_pos + count) % capacity,
                       size=jnp.minimum(buffer.size + count, capacity))


def spec_from_info(name: str, info: Mapping[str, int]):
    from meigm_jax.envs.base import EnvSpec

    return EnvSpec(name=name, num_agents=info["n_agents"], num_actions=info["n_actions"],
                   obs_shape=(info["obs_shape"],), state_dim=info["state_shape"],
                   episode_limit=info["episode_limit"], has_win=True)


class _Interrupted(Exception):
    pass


def train(cfg: TrainConfig, run_dir: Path, factory: str, worker_kwargs: Callable[[int], Mapping[str, Any]],
          expect_episode_limit: int | None = None, verbose: bool = True) -> list[dict]:
    """The host training loop over ``cfg.host.num_workers`` workers built by ``factory(**worker_kwargs(i))``."""
    try:
        if cfg.num_seeds != 1:
            raise ConfigError(f"config error: num_seeds={cfg.num_seeds} is not allowed for {cfg.env.name}; "
                              "allowed: 1 (a host-loop run trains one seed; start one run per seed)")
        if cfg.resume:
            raise ConfigError(f"config error: resume=true is not allowed for {cfg.env.name}; allowed: false")
        if (run_dir / "metrics.jsonl").exists():
            raise ConfigError(f"config error: {run_dir} already holds a run; choose another hydra.run.dir")
        if cfg.host.num_workers > cfg.buffer_size:
            raise ConfigError(f"config error: host.num_workers={cfg.host.num_workers} is not allowed; "
                              f"allowed: an integer <= buffer_size ({cfg.buffer_size})")
    except ConfigError as exc:
        exit_bad_input(str(exc))
    say = (lambda msg: print(msg, flush=True)) if verbose else (lambda msg: None)
    interrupted = {"flag": False}

    def on_signal(signum, frame):
        interrupted["flag"] = True
        raise _Interrupted(signal.Signals(signum).name)

    handlers = {}
    if _main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            handlers[sig] = signal.signal(sig, on_signal)
    pool = None
    loop = None
    try:
        start = time.time()
        pool = WorkerPool(factory, worker_kwargs, cfg.host.num_workers, cfg.host.worker_timeout,
                          max(STARTUP_TIMEOUT_S, cfg.host.worker_timeout),
                          log=lambda msg: print(f"warning: {msg}", file=sys.stderr, flush=True))
        spec = spec_from_info(cfg.env.name, pool.env_info)
        if expect_episode_limit is not None and spec.episode_limit != expect_episode_limit:
            say(f"note: env reports episode limit {spec.episode_limit} (SMACv2's 10gen maps: "
                f"{expect_episode_limit})")
        loop = _Loop(cfg, spec, pool, run_dir, say)
        say(f"meigm_jax: {cfg.alg.name} on {spec.name} ({spec.num_agents} agents, {spec.num_actions} actions, "
            f"episode limit {spec.episode_limit}) | {pool.num_workers} host worker(s) | workers up in "
            f"{time.time() - start:.1f}s | run dir {run_dir}")
        return loop.run(start)
    except WorkerFailed as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(1)
    except _Interrupted as exc:
        print(f"interrupted ({exc}): closing workers" + (", saving a final checkpoint" if loop else ""),
              file=sys.stderr, flush=True)
        if loop is not None:
            loop.save_checkpoint()
        raise SystemExit(EXIT_INTERRUPTED)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        if pool is not None:
            pool.close()


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


class _Loop:
    def __init__(self, cfg: TrainConfig, spec, pool: WorkerPool, run_dir: Path, say):
        import jax
        import jax.numpy as jnp

        from meigm_jax import replay
        from meigm_jax.learner import (build_networks, build_optimisers, init_optimiser_states, init_params,
                                       make_step)
        from meigm_jax.rollout import make_act
        from meigm_jax.trainer import check_fits, empty_episode
        from meigm_jax.types import TargetParams

        try:
            check_fits(cfg, spec, jax.devices())
        except ConfigError as exc:
            exit_bad_input(str(exc))
        self.cfg, self.spec, self.pool, self.run_dir, self.say = cfg, spec, pool, run_dir, say
        self.nets = nets = build_networks(cfg, spec)
        opts = build_optimisers(cfg)
        update = make_step(cfg, nets, spec, opts)
        # Seed 0 of the JAX path's seed_keys.
        key = jax.random.fold_in(jax.random.PRNGKey(cfg.seed), 0)
        self.key, init_key = jax.random.split(key)
        self.params = init_params(nets, cfg, spec, init_key)
        self.target = TargetParams(self.params.agent, self.params.mixer)
        self.opt_states = init_optimiser_states(opts, self.params)
        self.buffer = replay.init(empty_episode(spec, cfg.replay_float_dtype), cfg.buffer_size)
        self.env_steps = self.episodes = self.updates = self.last_copy = 0
        self.dropped = 0
        mode = "soft" if cfg.is_soft else "epsilon_greedy"
        self.act_train = jax.jit(lambda p, eps, *a: make_act(nets, p, mode, eps)(*a))
        self.act_test = jax.jit(lambda p, *a: make_act(nets, p, "greedy", diagnose=cfg.is_soft)(*a))
        self.add = jax.jit(add_finished, donate_argnums=0)

        def learn_step(params, target, opt_states, buffer, key):
            sample_key, loss_key = jax.random.split(key)
            batch = replay.sample(buffer, sample_key, cfg.batch_size)
            params, opt_states, info = update(params, target, opt_states, batch, loss_key)
            if cfg.target_tau > 0:
                target = jax.tree.map(lambda t, p: (1 - cfg.target_tau) * t + cfg.target_tau * p,
                                      target, TargetParams(params.agent, params.mixer))
            return params, target, opt_states, info

        self.learn_step = jax.jit(learn_step)
        self.rollout = HostRollout(pool, spec, cfg.hidden_dim, cfg.env.bootstrap_timeout)
        self.jnp = jnp

    def epsilon(self) -> float:
        from meigm_jax.policy import epsilon_schedule

        c = self.cfg
        return float(epsilon_schedule(np.asarray(self.env_steps), c.epsilon_start, c.epsilon_finish,
                                      c.epsilon_anneal_steps))

    def _split(self):
        import jax

        self.key, sub = jax.random.split(self.key)
        return sub

    def train_rollout(self, totals: dict) -> None:
        import jax

        from meigm_jax.trainer import updates_due
        from meigm_jax.types import TargetParams

        cfg = self.cfg
        eps = self.jnp.asarray(self.epsilon(), self.jnp.float32)
        act = lambda *a: self.act_train(self.params, eps, *a)
        batch = self.rollout.collect(act, self._split())
        self.dropped += batch.dropped
        totals["empty"] = 0 if batch.count else totals["empty"] + 1
        if totals["empty"] >= MAX_EMPTY_ROLLOUTS:
            print(f"error: {MAX_EMPTY_ROLLOUTS} rollouts in a row without a finished episode "
                  f"({self.pool.restarts} worker restarts); stopping", file=sys.stderr, flush=True)
            raise SystemExit(1)
        if batch.count == 0:
            return
        self.buffer = self.add(self.buffer, batch.episodes, self.jnp.asarray(batch.count, self.jnp.int32))
        before, self.episodes = self.episodes, self.episodes + batch.count
        n_updates = updates_due(before, self.episodes, cfg.batch_size_run)
        if int(self.buffer.size) < cfg.batch_size:
            n_updates = 0
        for _ in range(n_updates):
            self.params, self.target, self.opt_states, info = self.learn_step(
                self.params, self.target, self.opt_states, self.buffer, self._split())
            info = jax.device_get(info)
            self.updates += 1
            for name, value in info._asdict().items():
                totals["loss"][name] = totals["loss"].get(name, 0.0) + float(value)
            finite = all(math.isfinite(float(v)) for v in (info.loss_q, info.loss_opt, info.loss_alpha))
            if not finite and totals["first_bad"] < 0:
                totals["first_bad"] = self.updates
        totals["updates"] += n_updates
        if cfg.target_tau == 0 and n_updates > 0 and self.episodes - self.last_copy >= cfg.target_update_interval:
            self.target = TargetParams(self.params.agent, self.params.mixer)
            self.last_copy = self.episodes
        steps = int(batch.lengths.sum())
        self.env_steps += steps
        totals["episodes"] += batch.count
        totals["return"] += float(batch.returns.sum())
        totals["wins"] += float(batch.won.sum())
        totals["steps"] += steps
        totals["entropy"] += float(batch.diagnostics_sum[0])

    def evaluate(self) -> dict:
        act = lambda *a: self.act_test(self.params, *a)
        episodes = returns = wins = length = 0.0
        diag = np.zeros(3)
        attempts = 0
        while episodes < self.cfg.test_episodes and attempts < 4 * math.ceil(
                self.cfg.test_episodes / self.pool.num_workers) + 4:
            attempts += 1
            batch = self.rollout.collect(act, self._split())
            self.dropped += batch.dropped
            episodes += batch.count
            returns += float(batch.returns.sum())
            wins += float(batch.won.sum())
            length += float(batch.lengths.sum())
            diag += batch.diagnostics_sum
        nan = float("nan")
        gap = (lambda i: diag[i] / length if length else nan) if self.cfg.is_soft else (lambda i: nan)
        return {"test_return": returns / episodes if episodes else nan,
                "test_win_rate": wins / episodes if episodes else nan,
                "test_length": length / episodes if episodes else nan,
                "misalignment_gap": gap(1), "misalignment_gap_expected": gap(2)}

    def run(self, start: float) -> list[dict]:
        import jax

        from meigm_jax.types import ChunkMetrics

        cfg = self.cfg
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.json").write_text(json.dumps(to_dict(cfg), indent=2))
        num_chunks = math.ceil(cfg.total_timesteps / cfg.test_interval)
        records = []
        with open(self.run_dir / "metrics.jsonl", "a") as sink:
            for index in range(num_chunks):
                t0, steps0 = time.time(), self.env_steps
                until = min((index + 1) * cfg.test_interval, cfg.total_timesteps)
                totals = dict(episodes=0, steps=0, updates=0, empty=0, first_bad=-1, loss={},
                              **{"return": 0.0, "wins": 0.0, "entropy": 0.0})
                while self.env_steps < until:
                    self.train_rollout(totals)
                seconds = time.time() - t0
                test = self.evaluate()
                loss = {name: (value / totals["updates"] if totals["updates"] else float("nan"))
                        for name, value in totals["loss"].items()}
                nan = float("nan")
                # One seed's ChunkMetrics (leading seed axis of 1), written by the
                # same metric_records as the JAX trainer's, plus the workers' counts.
                metrics = ChunkMetrics(**{name: np.asarray([value]) for name, value in dict(
                    env_steps=self.env_steps, episodes=self.episodes, updates=self.updates,
                    **{k: test[k] for k in ("test_return", "test_win_rate", "test_length")},
                    train_return=totals["return"] / max(totals["episodes"], 1),
                    train_win_rate=totals["wins"] / max(totals["episodes"], 1),
                    loss_q=loss.get("loss_q", nan), loss_opt=loss.get("loss_opt", nan),
                    loss_alpha=loss.get("loss_alpha", nan), td_target=loss.get("target", nan),
                    alpha=float(jax.numpy.exp(self.params.log_alpha)) if cfg.is_soft else 0.0,
                    policy_entropy=totals["entropy"] / max(totals["steps"], 1),
                    epsilon=0.0 if cfg.is_soft else self.epsilon(),
                    q_tot=loss.get("q_tot", nan), learner_rows=loss.get("rows", nan),
                    misalignment_gap=test["misalignment_gap"],
                    misalignment_gap_expected=test["misalignment_gap_expected"],
                    shaping_weight=0.0, test_shaped_return=0.0, train_shaped_return=0.0,
                    first_nonfinite_update=totals["first_bad"]).items()})
                rec = metric_records(cfg, self.spec, metrics, seconds, time.time() - start, [steps0])[0]
                rec["worker_restarts"] = self.pool.restarts
                rec["episodes_dropped"] = self.dropped
                sink.write(json.dumps(rec) + "\n")
                sink.flush()
                records.append(rec)
                self.say(f"[{100 * min(self.env_steps / cfg.total_timesteps, 1):5.1f}%] env_steps "
                         f"{self.env_steps:>10,} | train_return {rec['train_return']:8.3f} | test_return "
                         f"{_fmt(rec['test_return'])} | win {_fmt(rec['test_win_rate'])} | sps {rec['sps']:7.1f}"
                         f" | restarts {self.pool.restarts}")
                if totals["first_bad"] >= 0:
                    print(f"error: non-finite loss at update {totals['first_bad']}; run stopped",
                          file=sys.stderr, flush=True)
                    raise SystemExit(EXIT_NON_FINITE)
        self.save_checkpoint()
        return records

    def save_checkpoint(self) -> None:
        """Parameters, target, optimiser states and counters (the replay is not saved)."""
        try:
            from meigm_jax.checkpoint import Checkpointer

            ckpt = Checkpointer(self.run_dir / "checkpoints", self.cfg.checkpoint.keep)
            try:
                state = {"params": self.params, "target": self.target, "opt_states": self.opt_states}
                ckpt.save(self.updates, state, {"env_steps": self.env_steps, "episodes": self.episodes,
                                                "updates": self.updates, "config": to_dict(self.cfg)})
            finally:
                ckpt.close()
        except Exception as exc:  # a final checkpoint is best effort
            print(f"warning: final checkpoint not saved: {exc}", file=sys.stderr, flush=True)


def _fmt(x) -> str:
    return "   n/a" if x is None else f"{x:6.3f}"
