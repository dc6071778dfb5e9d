"""The optimisers of the three parameter groups, and how a learned temperature is bounded.

theta (the agent and the mixer) and phi (the logit transform) are each
trained by Adam behind a gradient clip (or one clip over both,
``grad_clip_scope=joint``); log alpha by Adam alone.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import optax

from meigm_jax.algorithm.hyper import Hyperparameters, hyperparameters
from meigm_jax.config.schema import TrainConfig
from meigm_jax.types import OptimiserStates, Params

# log alpha is projected into these bounds after each step. Where the target
# entropy cannot be reached (e.g. two actions with identical values keep the
# entropy above it), log alpha would otherwise fall until exp() underflows to
# an alpha of exactly 0; 1e-8 is already a greedy policy for any Q gap.
LOG_ALPHA_BOUNDS = (-18.42, 18.42)


def log_alpha_bounds(cfg: TrainConfig) -> tuple[float, float]:
    """Where a learned log alpha is projected after each step: ``alpha_min``
    and ``alpha_max`` where set, within ``LOG_ALPHA_BOUNDS``."""
    low, high = LOG_ALPHA_BOUNDS
    if cfg.alpha_min is not None:
        low = max(low, math.log(cfg.alpha_min))
    if cfg.alpha_max is not None:
        high = min(high, math.log(cfg.alpha_max))
    return low, high


class Optimisers(NamedTuple):
    q: optax.GradientTransformation
    transform: optax.GradientTransformation
    alpha: optax.GradientTransformation


def build_optimisers(cfg: TrainConfig, hyper: Hyperparameters | None = None) -> Optimisers:
    """The three groups' optimisers; learning rates from ``hyper`` (default: the config's)."""
    hyper = hyperparameters(cfg) if hyper is None else hyper
    # Adam on every parameter group; alpha is learned as log alpha with
    # Adam (as in SAC), without clipping. With grad_clip_scope=joint the
    # update clips theta and phi together before these (make_update); the
    # identity has the clip's (empty) state, so the states keep one shape.
    clip = (optax.clip_by_global_norm(cfg.grad_clip) if cfg.grad_clip_scope == "group"
            else optax.identity())
    return Optimisers(
        q=optax.chain(clip, optax.adam(hyper.lr)),
        transform=optax.chain(clip, optax.adam(hyper.opt_lr)),
        alpha=optax.adam(hyper.alpha_lr),
    )


def init_optimiser_states(opts: Optimisers, params: Params) -> OptimiserStates:
    return OptimiserStates(
        q=opts.q.init((params.agent, params.mixer)),
        transform=opts.transform.init(params.transform),
        alpha=opts.alpha.init(params.log_alpha),
    )


def joint_clip(grads: Params, max_norm: float) -> Params:
    """Clip theta's and phi's gradients to one global norm, as one optimiser
    over all parameters would (``grad_clip_scope=joint``); log alpha's
    gradient is left alone, as it always is."""
    clip = optax.clip_by_global_norm(max_norm)
    (agent, mixer, transform), _ = clip.update((grads.agent, grads.mixer, grads.transform),
                                               clip.init(None))
    return grads._replace(agent=agent, mixer=mixer, transform=transform)
