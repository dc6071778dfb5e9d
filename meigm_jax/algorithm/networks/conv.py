"""A stride-1, SAME-padded 2-D convolution computed as patches times a matrix.

Seeds are ``vmap``ped over whole train programs, so each seed's convolution
has its own kernel. ``vmap`` turns ``lax.conv`` with a batched kernel into a
grouped convolution (one group per seed), which XLA's CPU backend runs far
slower than the same work as one matrix product per seed; inside the
training program it is slow even for one seed. Here the patch extraction
has no parameters, so ``vmap`` only adds a batch axis to it, and the kernel
meets the patches in a matrix product, which ``vmap`` batches
(``benchmarks/conv_vmap.py``: 7-10 times the env steps per second of the
CNN torso on a CPU). Parameters are named and shaped as ``nn.Conv``'s
(``kernel`` [kh, kw, in, out], ``bias`` [out]); the output equals
``nn.Conv``'s up to float rounding.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


class PatchConv(nn.Module):
    """``nn.Conv(features, kernel_size, padding="SAME")`` as shifted views times a matrix."""

    features: int
    kernel_size: tuple[int, int]
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
    bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """[..., H, W, C] -> [..., H, W, features]; any leading axes."""
        in_channels = x.shape[-1]
        kernel = self.param("kernel", self.kernel_init, (*self.kernel_size, in_channels, self.features))
        bias = self.param("bias", self.bias_init, (self.features,))
        kh, kw = self.kernel_size
        height, width = x.shape[-3:-1]
        # SAME padding, then each kernel offset's shifted view of the grid
        # (slices, not lax's patch extractor, which is itself a grouped
        # convolution): features ordered (kh, kw, in) as the kernel's rows.
        pad = [(0, 0)] * (x.ndim - 3) + [((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2), (0, 0)]
        padded = jnp.pad(x, pad)
        patches = jnp.concatenate([padded[..., i:i + height, j:j + width, :]
                                   for i in range(kh) for j in range(kw)], axis=-1)
        return patches @ kernel.reshape(-1, self.features) + bias
