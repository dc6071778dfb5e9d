"""What a gradient step's agent unroll costs, by batch size and stored length.

    python benchmarks/unroll_cost.py [--env smax_5v5] [--batches 8,32,128] [--lengths 26,51,101]

Times the forward pass and the gradient of the shared GRU agent unrolled over
B episodes of T stored steps (``meigm_jax.algorithm.networks.agent.unroll``, as the
learner runs it), with the env's observation and action sizes. If the time
per step-row stays flat as B and T grow, the unroll is bound by compute, and
every padded step a batch carries costs as much as a real one. If it falls,
fixed per-step overheads dominate. The last column backpropagates to the
observations only: the same recurrence without the parameters' gradients,
which scan accumulates step by step.
"""

from __future__ import annotations

import argparse
import platform

import jax
import jax.numpy as jnp

from meigm_jax.config.compose import load
from meigm_jax.algorithm.networks.agent import agent_extras, unroll
from meigm_jax.programs.jax_trainer import make_train
from tables import print_table
from timing import timed


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="smax_5v5")
    parser.add_argument("--batches", default="8,32,128")
    parser.add_argument("--lengths", default="26,51,101")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    trainer = make_train(load([f"+env={args.env}", "num_seeds=1", "num_envs=1", "batch_size=1",
                               "buffer_size=1"]))
    spec, agent = trainer.spec, trainer.nets.agent
    params = trainer.init(jax.random.PRNGKey(0)).params.agent
    rows = []
    for length in (int(t) for t in args.lengths.split(",")):
        for batch in (int(b) for b in args.batches.split(",")):
            key = jax.random.PRNGKey(batch * 1000 + length)
            obs = jax.random.normal(key, (batch, length, spec.num_agents, *spec.obs_shape))
            extras = agent_extras(jnp.zeros((batch, length, spec.num_agents, spec.num_actions)))
            forward = jax.jit(lambda p, o: unroll(agent, p, o, extras).sum())
            loss = lambda p, o: (unroll(agent, p, o, extras) ** 2).mean()
            fwd_s, _ = timed(forward, params, obs, repeats=args.repeats)
            grad_s, _ = timed(jax.jit(jax.grad(loss)), params, obs, repeats=args.repeats)
            input_s, _ = timed(jax.jit(jax.grad(loss, argnums=1)), params, obs, repeats=args.repeats)
            step_rows = batch * length
            rows.append([length, batch, f"{1e3 * fwd_s:.1f}", f"{1e3 * grad_s:.1f}",
                         f"{1e6 * fwd_s / step_rows:.2f}", f"{1e6 * grad_s / step_rows:.2f}",
                         f"{1e3 * input_s:.1f}"])
    device = jax.devices()[0]
    print(f"{args.env} agent (hidden {agent.hidden_dim}, {spec.num_agents} agents); {device.platform} "
          f"({device.device_kind}), {platform.processor() or platform.machine()}, jax {jax.__version__}\n")
    print_table(["T", "B", "forward ms", "gradient ms", "forward us / (B x T)", "gradient us / (B x T)",
                 "gradient to inputs only ms"], rows)


if __name__ == "__main__":
    main()
