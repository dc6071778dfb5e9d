"""Rollout with the policy against the raw env, same num_envs.

    python benchmarks/rollout_ratio.py [--envs smax_5v5,overcooked_cramped_room] [--num-envs 16,128]

For each env and number of envs: raw env steps/s with uniformly random
available actions, then one recorded rollout (as the trainer runs it) with
each acting policy: greedy (evaluation: the agent network alone),
epsilon-greedy (QMIX/QPLEX/VDN) and soft (ME-*: agent network, OPT on the
global state, masked softmax and a sample). Times are medians over repeats,
compile excluded.

The ratio compares stepped env steps (what each call computes): num_envs x
episode limit for the raw env, num_envs x the rollout's steps for ours (a
rollout stops when its longest episode ends). "real steps/s" counts only
steps inside episodes, what training gets.
"""

from __future__ import annotations

import argparse
import platform

import jax

from meigm_jax.config.compose import load
from meigm_jax.programs.jax_trainer import make_train
from tables import print_table
from timing import policy_episodes, random_episodes, timed

ACTING = ("greedy", "epsilon_greedy", "soft")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", default="smax_5v5,overcooked_cramped_room")
    parser.add_argument("--num-envs", default="16,128")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args(argv)
    rows = []
    for name in args.envs.split(","):
        for num_envs in (int(e) for e in args.num_envs.split(",")):
            cfg = load([f"+env={name}", f"num_envs={num_envs}", "num_seeds=1",
                        "batch_size=1", f"buffer_size={num_envs}"])
            trainer = make_train(cfg)
            env, steps = trainer.env, num_envs * trainer.spec.episode_limit
            raw_s, _ = timed(jax.jit(random_episodes(env, num_envs)), jax.random.PRNGKey(0),
                             repeats=args.repeats)
            raw = steps / raw_s
            rows.append([name, num_envs, "raw env, random actions", f"{raw:,.0f}", "1.00", "-"])
            params = trainer.init(jax.random.PRNGKey(0)).params
            for mode in ACTING:
                run = jax.jit(policy_episodes(trainer, mode, num_envs))
                seconds, _ = timed(run, params, jax.random.PRNGKey(1), repeats=args.repeats)
                stepped, real = (int(x) for x in run(params, jax.random.PRNGKey(1)))
                rows.append([name, num_envs, f"rollout, {mode} acting", f"{stepped / seconds:,.0f}",
                             f"{stepped / seconds / raw:.2f}", f"{real / seconds:,.0f}"])
    device = jax.devices()[0]
    print(f"{device.platform} ({device.device_kind}), {platform.processor() or platform.machine()}, "
          f"jax {jax.__version__}; ratio = rollout stepped steps/s / raw env steps/s\n")
    print_table(["env", "num_envs", "what", "stepped env steps/s", "ratio", "real steps/s"], rows)


if __name__ == "__main__":
    main()
