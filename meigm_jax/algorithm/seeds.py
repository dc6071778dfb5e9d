"""The seed axis: the seeds of a sweep, one vmapped axis of one program.

A sweep's seeds are a ``vmap`` axis named ``SEED_AXIS`` (``meigm_jax.programs.program``
binds it, one block of seeds per device); ``any_seed`` and ``all_seeds``
are its collectives. The seeds' keys and how many devices they are
spread over are decided here too.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from meigm_jax.config.schema import TrainConfig

# The vmap axis of a sweep's seeds (meigm_jax.programs.program binds it over each
# device's block of seeds). Where it is bound, the seeds agree on one batch
# layout per gradient step, so the layout's branch really branches instead
# of running every layout for all. Nothing stores the name: checkpoints hold
# the state's arrays, not how they were computed.
SEED_AXIS = "seeds"


def all_seeds(flag: jax.Array) -> jax.Array:
    """``flag`` for every seed of the sweep (itself outside a named seed vmap)."""
    try:
        return jax.lax.pmin(flag.astype(jnp.int32), SEED_AXIS).astype(bool)
    except NameError:  # a single seed, or a vmap without the axis name
        return flag


def any_seed(flag: jax.Array) -> jax.Array:
    """``flag`` for some seed of the sweep (itself outside a named seed vmap)."""
    try:
        return jax.lax.pmax(flag.astype(jnp.int32), SEED_AXIS).astype(bool)
    except NameError:
        return flag


def seed_keys(cfg: TrainConfig) -> jax.Array:
    """One key per seed; seed i of a sweep is the same run whatever num_seeds is."""
    base = jax.random.PRNGKey(cfg.seed)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(cfg.num_seeds))


def seed_device_count(num_seeds: int, num_devices: int) -> int:
    """How many devices the seeds are spread over: as many as divide them evenly."""
    return math.gcd(num_seeds, num_devices)
