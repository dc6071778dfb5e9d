"""Initialisation as in PyTorch, the framework of pymarl2 (the paper's code base).

PyTorch's ``nn.Linear``, ``nn.Conv2d`` and ``nn.GRUCell`` draw every weight and
bias from U(-1/sqrt(fan_in), 1/sqrt(fan_in)). Flax's defaults (lecun-normal
kernels, zero biases) give hypernetworks whose outputs are several times
larger: an untrained QMIX mixer's dQ_tot/dQ_i is about 2.5 instead of 0.5,
and the OPT's initial slope, which acts as an inverse temperature, grows
with it. The layers below start as pymarl2's do.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from meigm_jax.algorithm.networks.conv import PatchConv

# U(+-sqrt(3 * scale / fan_in)) with scale 1/3 is U(+-1/sqrt(fan_in)); flax
# computes fan_in from the kernel's shape (inputs x receptive field).
TORCH_KERNEL_INIT = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def torch_bias_init(fan_in: int) -> nn.initializers.Initializer:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): a bias cannot see its layer's fan_in, so it is given."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def linear(features: int, fan_in: int, name: str | None = None) -> nn.Dense:
    """``nn.Dense`` initialised as PyTorch's ``nn.Linear(fan_in, features)``."""
    return nn.Dense(features, kernel_init=TORCH_KERNEL_INIT, bias_init=torch_bias_init(fan_in),
                    name=name)


def conv(features: int, in_channels: int, kernel_size: tuple[int, int],
         name: str | None = None) -> PatchConv:
    """A stride-1, SAME-padded convolution initialised as PyTorch's ``nn.Conv2d``."""
    fan_in = in_channels * math.prod(kernel_size)
    return PatchConv(features, kernel_size, kernel_init=TORCH_KERNEL_INIT,
                     bias_init=torch_bias_init(fan_in), name=name)


def gru_cell(hidden_dim: int, name: str | None = None) -> nn.GRUCell:
    """``nn.GRUCell`` initialised as PyTorch's: every weight and bias U(+-1/sqrt(H)).

    Flax's cell has one bias where PyTorch sums two (input and hidden) for
    the reset and update gates; each is drawn from the same bound. This also
    avoids flax's default orthogonal recurrent init: three QR decompositions
    in one vmapped program deadlock XLA's CPU runtime now and then
    (jax 0.10.2), which hung vmapped seeds.
    """
    return nn.GRUCell(hidden_dim, kernel_init=TORCH_KERNEL_INIT,
                      recurrent_kernel_init=TORCH_KERNEL_INIT,
                      bias_init=torch_bias_init(hidden_dim), name=name)
