"""Small shared builders for the unit tests: a fake env spec, random padded
episodes and run directories of made-up metrics."""

from __future__ import annotations

import json
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from meigm_jax.config import from_dict
from meigm_jax.envs.base import EnvSpec
from meigm_jax.types import Episodes

# The repository's root (tests live in folders that mirror the package).
ROOT = Path(__file__).resolve().parent.parent

SPEC = EnvSpec(name="fake", num_agents=3, num_actions=5, obs_shape=(6,), state_dim=8, episode_limit=7,
               has_win=False)


def small_config(**over):
    base = dict(env=dict(name="matrix_game"), hidden_dim=16, mixer_embed=8, hypernet_embed=16,
                opt=dict(embed_dim=8, hypernet_embed=16), gamma=0.9, td_lambda=0.6)
    for k, v in over.items():
        base[k] = {**base.get(k, {}), **v} if isinstance(v, dict) else v
    return from_dict(base)


def random_episodes(seed: int, batch: int, spec: EnvSpec = SPEC, terminal_fraction=0.5) -> tuple[Episodes, np.ndarray]:
    """Random episodes of varied lengths 1..T, padded with random garbage.

    Returns the batch and the lengths. Each episode either ends terminally or
    is cut at its length by a time-out (no terminal flag: bootstraps).
    """
    rng = np.random.default_rng(seed)
    n, k, T = spec.num_agents, spec.num_actions, spec.episode_limit
    lengths = rng.integers(1, T + 1, size=batch)
    lengths[0] = T  # always one full-length episode
    filled = np.arange(T)[None, :] < lengths[:, None]
    terminal = np.zeros((batch, T), bool)
    ends_terminal = rng.random(batch) < terminal_fraction
    terminal[np.arange(batch), lengths - 1] = ends_terminal
    avail = rng.random((batch, T + 1, n, k)) < 0.7
    avail[..., 0] = True  # at least one action always available
    actions = np.zeros((batch, T, n), np.uint8)
    for b, t, i in np.ndindex(batch, T, n):
        choices = np.flatnonzero(avail[b, t, i])
        actions[b, t, i] = rng.choice(choices)
    episodes = Episodes(
        obs=jnp.asarray(rng.normal(size=(batch, T + 1, n, spec.obs_dim)), jnp.float32),
        state=jnp.asarray(rng.normal(size=(batch, T + 1, spec.state_dim)), jnp.float32),
        avail=jnp.asarray(avail),
        actions=jnp.asarray(actions),
        reward=jnp.asarray(rng.normal(size=(batch, T)) * filled, jnp.float32),
        terminal=jnp.asarray(terminal),
        filled=jnp.asarray(filled),
    )
    return episodes, lengths


def scramble_padding(episodes: Episodes, lengths: np.ndarray, seed: int) -> Episodes:
    """Replace everything past each episode's end with other random values.

    Observations, states and masks at index ``len`` (the step after the last
    action) are kept: a time-out bootstraps from them. Padded actions stay
    valid indices.
    """
    rng = np.random.default_rng(seed)
    T = episodes.reward.shape[1]
    step_pad = np.arange(T)[None, :] >= lengths[:, None]  # [B, T]
    obs_pad = np.arange(T + 1)[None, :] > lengths[:, None]  # [B, T+1]

    def mix(x, pad, fresh):
        pad = pad.reshape(pad.shape + (1,) * (x.ndim - pad.ndim))
        return jnp.where(pad, jnp.asarray(fresh, x.dtype), x)

    k = episodes.avail.shape[-1]
    return Episodes(
        obs=mix(episodes.obs, obs_pad, 100 * rng.normal(size=episodes.obs.shape)),
        state=mix(episodes.state, obs_pad, 100 * rng.normal(size=episodes.state.shape)),
        avail=mix(episodes.avail, obs_pad, rng.random(episodes.avail.shape) < 0.5),
        actions=mix(episodes.actions, step_pad, rng.integers(0, k, size=episodes.actions.shape)),
        reward=mix(episodes.reward, step_pad, 1000 * rng.normal(size=episodes.reward.shape)),
        terminal=mix(episodes.terminal, step_pad, rng.random(episodes.terminal.shape) < 0.5),
        filled=episodes.filled,
    )


def numpy_td_lambda(reward, terminal, lengths, next_value, next_entropy_term, gamma, lam):
    """Plain loop reference for the soft TD(lambda) recursion (docs/algorithm.md)."""
    B, T = reward.shape
    out = np.zeros((B, T))
    for b in range(B):
        g_next = 0.0
        for t in reversed(range(lengths[b])):
            if terminal[b, t]:
                g = reward[b, t]
            elif t == lengths[b] - 1:
                g = reward[b, t] + gamma * next_value[b, t]
            else:
                g = reward[b, t] + gamma * ((1 - lam) * next_value[b, t]
                                            + lam * (g_next - next_entropy_term[b, t]))
            out[b, t] = g
            g_next = g
    return out


def short_episodes(seed: int, batch: int, spec: EnvSpec, max_len: int = 5) -> tuple[Episodes, np.ndarray]:
    """Random episodes, most of them short (at most ``max_len`` steps), one full-length."""
    episodes, lengths = random_episodes(seed, batch, spec)
    rng = np.random.default_rng(seed)
    lengths = np.minimum(lengths, rng.integers(1, max_len + 1, size=batch))
    lengths[0] = spec.episode_limit
    filled = np.arange(spec.episode_limit)[None, :] < lengths[:, None]
    terminal = np.asarray(episodes.terminal) | (rng.random(batch) < 0.5)[:, None]
    terminal = terminal & (np.arange(spec.episode_limit)[None, :] == lengths[:, None] - 1)
    return episodes._replace(filled=jnp.asarray(filled), terminal=jnp.asarray(terminal),
                             reward=episodes.reward * filled), lengths


def q_and_states(seed: int, batch: int = 512, n: int = 4, k: int = 7, s: int = 12):
    """Random Q-values [batch, n, k] (scale 3) and states [batch, s] for network properties."""
    import jax

    kq, ks = jax.random.split(jax.random.PRNGKey(seed))
    return 3.0 * jax.random.normal(kq, (batch, n, k)), jax.random.normal(ks, (batch, s))


def perturbed(params, seed: int, scale: float):
    """``params`` plus Gaussian noise of ``scale`` on every leaf."""
    import jax

    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    return jax.tree.unflatten(tree, [p + scale * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)])


# Run directories of made-up metrics, for the commands that read runs (plot, marl_eval).
NUM_EVALS = 6


def fake_win_rate(run: int, seed: int, k: int) -> float:
    """``make_run``'s win rate of seed ``seed`` at evaluation ``k`` of run ``run``."""
    return min(1.0, 0.1 * k + 0.05 * seed + 0.02 * run)


def fake_return(run: int, seed: int, k: int) -> float:
    """``make_run``'s return of seed ``seed`` at evaluation ``k`` of run ``run``."""
    return 2.0 * k + seed - run


def make_run(root: Path, name: str, alg: str, env: str = "smax_5v5", num_seeds: int = 3,
             run: int = 0, wins: bool = True) -> Path:
    """A run directory like meigm_jax.train writes: seeds interleaved per evaluation,
    env_steps differing slightly between seeds."""
    run_dir = root / name
    run_dir.mkdir(parents=True)
    config = {"alg": {"name": alg}, "env": {"name": env}, "seed": 0, "num_seeds": num_seeds,
              "wandb": {"mode": "offline"}}
    (run_dir / "config.json").write_text(json.dumps(config, indent=2))
    lines = []
    for k in range(NUM_EVALS):
        for s in range(num_seeds):
            rec = {"seed": 0, "seed_index": s, "env_steps": 1000 * (k + 1) + 7 * s,
                   "updates": 10 * k, "test_return": fake_return(run, s, k), "test_length": 50,
                   "loss_q": 0.5, "loss_opt": None, "misalignment_gap": None}
            if wins:
                rec["test_win_rate"] = fake_win_rate(run, s, k)
            lines.append(json.dumps(rec))
    (run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return run_dir


# A SMAX run small enough to compile and train in a test: the CLI test, the
# in-process SMAX tests and the Table 2 cell share its programs through the cache.
SMAX_TINY = ["+env=smax_5v5", "num_seeds=2", "num_envs=4", "batch_size_run=4", "batch_size=4",
             "buffer_size=16", "total_timesteps=1200", "test_interval=600", "test_episodes=4"]
