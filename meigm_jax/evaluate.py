"""Evaluation of a saved run: ``python -m meigm_jax.evaluate run_dir=PATH [episodes=N] [render=true] [policy=soft]``.

Loads the run's config and newest checkpoint, runs ``episodes`` greedy
(or, with ``policy=soft``, sampled from a soft algorithm's policy at its
learned temperature), decentralised episodes per seed (all seeds in one vmapped program) and
prints per seed and overall: win rate (envs with wins), return and episode
length. ``render=true`` also writes a GIF of one episode of seed 0
(``out=FILE.gif``; default ``RUN/episode.gif``) through jaxmarl's
visualisers (SMAX, Overcooked).

``run_dir`` may also be one value of a sweep (``RUN/<key>=<value>``): its
parameters are that value's rows of the sweep's checkpoint.

Other keys: ``seed=K`` (evaluation randomness; default 0).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import NamedTuple

from meigm_jax.programs import compile_cache
from meigm_jax.running import arguments, console
from meigm_jax.running import run_dir as run_dirs
from meigm_jax.config import from_dict
from meigm_jax.errors import CheckpointError, ConfigError, report

POLICIES = ("greedy", "soft")


class EvalArgs(NamedTuple):
    run_dir: Path
    episodes: int | None
    render: bool
    out: Path | None
    seed: int
    policy: str = "greedy"


def _run_dir(text: str) -> Path:
    run_dir = Path(text)
    if not run_dirs.has_config(run_dir):
        raise ConfigError(f"evaluate error: run_dir={run_dir} holds no run (no {run_dirs.CONFIG})")
    return run_dir


def parser() -> arguments.Parser:
    """The command's arguments, all ``key=value``."""
    parse = arguments.Parser("python -m meigm_jax.evaluate", "Evaluate the newest checkpoint of a run.",
                             error_prefix="evaluate error:")
    parse.add_key("run_dir", (_run_dir, None), required=True, metavar="PATH",
                  help="a directory written by meigm_jax.train")
    parse.add_key("episodes", arguments.integer(1), metavar="N",
                  help="episodes per seed (default: the run's test_episodes)")
    parse.add_key("render", arguments.boolean(), default=False, metavar="BOOL",
                  help="also write a GIF of one episode of seed 0")
    parse.add_key("out", (Path, None), metavar="FILE.gif", help="the GIF (default: RUN/episode.gif)")
    parse.add_key("seed", arguments.integer(0), default=0, metavar="K", help="the evaluation's randomness")
    parse.add_key("policy", arguments.choice(POLICIES), default="greedy", metavar="NAME",
                  help="greedy, or sampled from a soft algorithm's policy")
    return parse


def parse_args(argv: list[str]) -> EvalArgs:
    args = parser().parse_args(argv)
    return EvalArgs(args.run_dir, args.episodes, args.render, args.out, args.seed, args.policy)


def evaluate_run(args: EvalArgs) -> list[dict]:
    """Per-seed greedy results of the run's newest checkpoint."""
    import jax
    import numpy as np

    from meigm_jax.running.checkpoint import restore_latest
    from meigm_jax.programs.jax_trainer import make_train

    cfg = from_dict(run_dirs.read_config(args.run_dir))
    compile_cache.enable(cfg.compile_cache)  # before anything compiles
    if args.episodes is not None:
        cfg = dataclasses.replace(cfg, test_episodes=args.episodes)
    trainer = make_train(cfg)
    if args.policy == "soft" and not cfg.is_soft:
        raise ConfigError(f"evaluate error: policy=soft is not allowed for alg {cfg.alg.name}; "
                          "allowed: greedy (an epsilon-greedy algorithm has no soft policy)")
    if args.render and not hasattr(trainer.env, "render_gif"):
        raise ConfigError(f"evaluate error: render=true is not available for {cfg.env.name}; "
                          "allowed: smax_* and overcooked_* runs")
    source = run_dirs.checkpoint_source(args.run_dir)
    saved_runs = cfg.num_seeds if source.saved_runs is None else source.saved_runs
    template = jax.eval_shape(jax.vmap(trainer.init), jax.random.split(jax.random.PRNGKey(0), saved_runs))
    try:
        # Parameters and counters only: the replay (up to GiBs) is not read.
        state, meta = restore_latest(source.directory, template, fields=("params", "counters"))
    except CheckpointError as exc:
        raise ConfigError(f"evaluate error: {exc}") from exc
    if source.rows is not None:  # one value of a sweep: its seeds' rows
        state = jax.tree.map(lambda x: x[source.rows], state)
    base = jax.random.PRNGKey(args.seed)
    keys = jax.vmap(lambda i: jax.random.fold_in(base, i))(np.arange(cfg.num_seeds))
    result = jax.jit(jax.vmap(lambda params, key: play(trainer, params, key, args.policy)))(state.params, keys)
    stats = jax.tree.map(np.asarray, result.stats)
    rows = []
    for i in range(cfg.num_seeds):
        row = {"seed_index": i, "env_steps": int(np.asarray(state.counters.env_steps)[i]),
               "episodes": int(stats.episodes[i]),
               "return": float(stats.return_sum[i] / stats.episodes[i]),
               "length": float(stats.length_sum[i] / stats.episodes[i])}
        if trainer.spec.has_win:
            row["win_rate"] = float(stats.win_sum[i] / stats.episodes[i])
        rows.append(row)
    console.print_evaluation(cfg.alg.name, cfg.env.name, trainer.spec.has_win, rows, meta, args.policy)
    if args.render:
        path = args.out or args.run_dir / "episode.gif"
        frames = render_episode(trainer, jax.tree.map(lambda x: x[0], state.params), base, path, args.policy)
        print(f"wrote {path} ({frames} frames, one {args.policy} episode of seed 0)")
    return rows


def play(trainer, params, key, policy: str):
    """The evaluation episodes of one seed: the trainer's greedy ones, or soft ones."""
    if policy == "greedy":
        return trainer.evaluate(params, key)
    from meigm_jax.algorithm.rollout import make_act, rollout

    cfg = trainer.config
    return rollout(trainer.env, make_act(trainer.nets, params, "soft"), cfg.hidden_dim, cfg.test_episodes,
                   key, record=False)


def render_episode(trainer, params, key, path: Path, policy: str = "greedy") -> int:
    """One episode of one env, replayed through the env's visualiser into a GIF."""
    import jax
    import numpy as np

    from meigm_jax.algorithm.rollout import make_act, rollout

    act = make_act(trainer.nets, params, policy)
    hidden_dim = trainer.config.hidden_dim
    trace = jax.jit(lambda k: rollout(trainer.env, act, hidden_dim, 1, k, record=False,
                                      trace=True).trace)(key)
    first_env = lambda x: np.asarray(x)[:, 0]
    length = int(first_env(trace.alive).sum())
    states = [jax.tree.map(lambda x, t=t: x[t, 0], trace.env_states) for t in range(length)]
    states.append(jax.tree.map(lambda x: x[0], trace.final_env_state))
    return trainer.env.render_gif(states, first_env(trace.step_keys)[:length],
                                  first_env(trace.actions)[:length], Path(path))


def main(argv: list[str] | None = None) -> list[dict]:
    """The command: bad input ends it with one line on stderr and exit code 2."""
    try:
        args = parse_args(list(sys.argv[1:] if argv is None else argv))
        return evaluate_run(args)
    except ConfigError as exc:
        sys.exit(report(exc))


if __name__ == "__main__":
    main()
