"""The CNN torso's convolutions with vmapped seeds: lax.conv against patches x matrix.

    python benchmarks/conv_vmap.py [--seeds 1 3] [--images 8 1344] [--repeats 10] \
        [--train-chunks 2] [--chunk-steps 4000]

First table: as medians of repeated jitted calls, the forward and backward
pass of the torso's two 3x3 convolutions (32 channels, ReLU) over
``--images`` Overcooked cramped_room grids per seed (8: one acting step of
the CPU preset's 4 envs x 2 agents; 1344: its gradient step's batch of 32
windows x 21 steps x 2 agents), with one set of weights per seed and the
seeds ``vmap``ped as the trainer does. ``flax nn.Conv`` lowers to
``lax.conv``, which ``vmap`` makes a grouped convolution; ``PatchConv``
(``meigm_jax.algorithm.networks.conv``, the torso's) extracts patches without weights
and multiplies them by each seed's kernel matrix.

Second table: the whole training program, ``+env=overcooked_cramped_room
preset=cpu agent.torso=cnn`` (ME-QMIX), with the torso's convolution as it
is and with ``nn.Conv`` in its place: env steps per second over
``--train-chunks`` chunks of ``--chunk-steps`` after the first (which fills
the replay and is not timed). ``--train-chunks 0`` skips it.
"""

from __future__ import annotations

import argparse
import os
import platform

import flax.linen as nn
import jax
import jax.numpy as jnp

from meigm_jax.config.compose import load
from meigm_jax.envs import make_env
from meigm_jax.algorithm.networks import agent
from meigm_jax.algorithm.networks.conv import PatchConv
from meigm_jax.algorithm.networks.init import TORCH_KERNEL_INIT, torch_bias_init
from tables import print_table
from timing import timed, timed_chunks


class Torso(nn.Module):
    patches: bool

    @nn.compact
    def __call__(self, x):
        for _ in range(2):
            layer = PatchConv(32, (3, 3)) if self.patches else nn.Conv(32, (3, 3), padding="SAME")
            x = nn.relu(layer(x))
        return x


def step_fn(module: nn.Module):
    """vmapped over seeds: the gradient of a scalar of the torso's output w.r.t. its weights."""
    def loss(params, x):
        return jnp.mean(module.apply(params, x) ** 2)

    return jax.jit(jax.vmap(jax.grad(loss)))


def lax_conv(features: int, in_channels: int, kernel_size: tuple[int, int], name: str | None = None):
    """The torso's convolution as ``nn.Conv`` (the same initialisation)."""
    return nn.Conv(features, kernel_size, padding="SAME", kernel_init=TORCH_KERNEL_INIT,
                   bias_init=torch_bias_init(in_channels * kernel_size[0] * kernel_size[1]), name=name)


def train_sps(seeds: int, chunks: int, chunk_steps: int) -> float:
    cfg = load(["+env=overcooked_cramped_room", "preset=cpu", "alg=me_qmix", "agent.torso=cnn",
                f"num_seeds={seeds}", f"test_interval={chunk_steps}",
                f"total_timesteps={chunk_steps * (chunks + 1)}"])
    run = timed_chunks(cfg, chunks)
    return run.env_steps / run.seconds


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--images", type=int, nargs="+", default=[8, 1344])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--train-chunks", type=int, default=2)
    parser.add_argument("--chunk-steps", type=int, default=4000)
    args = parser.parse_args(argv)
    obs_shape = make_env("overcooked_cramped_room").spec.obs_shape
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
          f"jax {jax.__version__} on {jax.default_backend()}\n")
    rows = []
    for images in args.images:
        for seeds in args.seeds:
            x = jax.random.uniform(jax.random.PRNGKey(0), (seeds, images, *obs_shape))
            keys = jax.random.split(jax.random.PRNGKey(1), seeds)
            times = {}
            for patches in (False, True):
                module = Torso(patches)
                params = jax.vmap(module.init)(keys, x[:, :1])
                times[patches], _ = timed(step_fn(module), params, x, repeats=args.repeats)
            rows.append([f"{images} x {tuple(obs_shape)}", str(seeds), f"{1e3 * times[False]:.2f}",
                         f"{1e3 * times[True]:.2f}", f"{times[False] / times[True]:.2f}"])
    print("The torso's two convolutions, forward + backward, per call")
    print_table(["grids per seed", "seeds", "lax.conv ms", "PatchConv ms", "lax.conv / PatchConv"], rows)
    if args.train_chunks <= 0:
        return
    rows = []
    for seeds in args.seeds:
        sps = {"patches": train_sps(seeds, args.train_chunks, args.chunk_steps)}
        patch_conv, agent.conv = agent.conv, lax_conv
        try:
            sps["lax"] = train_sps(seeds, args.train_chunks, args.chunk_steps)
        finally:
            agent.conv = patch_conv
        rows.append([str(seeds), f"{sps['lax']:,.0f}", f"{sps['patches']:,.0f}",
                     f"{sps['patches'] / sps['lax']:.2f}"])
    print(f"\nTraining, overcooked_cramped_room preset=cpu agent.torso=cnn, ME-QMIX: env steps per second "
          f"(all seeds) over {args.train_chunks} chunks of {args.chunk_steps:,}")
    print_table(["seeds", "nn.Conv env steps/s", "PatchConv env steps/s", "PatchConv / nn.Conv"], rows)


if __name__ == "__main__":
    main()
