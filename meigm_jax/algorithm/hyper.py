"""The scalar hyperparameters a sweep may trace, as the learner reads them.

``Hyperparameters`` holds every key of ``config.schema.SweepConfig``. For a
run alone they are the config's Python numbers, compiled in as before; in a
sweep the swept ones are traced arrays, one value per run of the vmapped
axis (``meigm_jax.programs.program``), so that one program trains them all.
The learner reads these keys from here, never from the config.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple

import jax

from meigm_jax.config.schema import TrainConfig, key_value, swept_keys

Number = float | jax.Array


class Hyperparameters(NamedTuple):
    lr: Number
    opt_lr: Number
    alpha_lr: Number
    init_alpha: Number
    fixed_alpha: Number | None
    td_lambda: Number
    gamma: Number
    target_tau: Number
    epsilon_start: Number
    epsilon_finish: Number
    target_entropy_coef: Number
    target_entropy_start_coef: Number | None

    @property
    def alpha_at_start(self) -> Number:
        """The temperature a run starts at (``TrainConfig.alpha_at_start``)."""
        return self.init_alpha if self.fixed_alpha is None else self.fixed_alpha


def _field(dotted: str) -> str:
    return dotted.rsplit(".", 1)[-1]


def hyperparameters(cfg: TrainConfig, traced: Mapping[str, jax.Array] | None = None) -> Hyperparameters:
    """The config's values, with ``traced`` (dotted key -> array) in place of the swept ones."""
    values = {_field(dotted): key_value(cfg, dotted) for dotted in swept_keys()}
    values.update({_field(key): value for key, value in (traced or {}).items()})
    return Hyperparameters(**values)
