"""A sweep's runs: what ``sweep.<key>=[v1,v2,...]`` asks for, each value as
the config of the run it stands for.

A sweep of scalar hyperparameters is one compiled program
(``meigm_jax.programs.program``): its values are traced beside the seeds.
Here it is plain data: ``points`` lists the swept values, one dict per
value (``product`` of the swept keys by default, or ``zip``);
``point_config`` is the config of a value's lone run, which the value in
the sweep trains exactly as; ``point_name`` names its run directory
(``alpha_lr=0.03``). ``check_sweep`` refuses, in one line, a sweep that
cannot be one program or that changes nothing.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Callable

from meigm_jax.config.schema import SWEEP_MODES, SweepConfig, TrainConfig, key_value, swept_keys
from meigm_jax.errors import ConfigError

Point = dict[str, float]  # dotted key -> value


def _set(tree: Any, dotted: str, value: Any) -> Any:
    head, _, rest = dotted.partition(".")
    return dataclasses.replace(tree, **{head: _set(getattr(tree, head), rest, value) if rest else value})


def swept(cfg: TrainConfig) -> dict[str, tuple[float, ...]]:
    """The swept keys and their values, in the schema's order."""
    return {key: values for key in swept_keys() if (values := key_value(cfg.sweep, key)) is not None}


def points(cfg: TrainConfig) -> list[Point]:
    """One dict per value of the sweep, in order (``[{}]`` when nothing is swept)."""
    lists = swept(cfg)
    if cfg.sweep.mode == "zip":
        return [dict(zip(lists, values)) for values in zip(*lists.values())]
    return [dict(zip(lists, values)) for values in itertools.product(*lists.values())]


def is_sweep(cfg: TrainConfig) -> bool:
    return bool(swept(cfg))


def run_count(cfg: TrainConfig) -> int:
    """Runs of the program: seeds x swept values."""
    return cfg.num_seeds * len(points(cfg))


def point_config(cfg: TrainConfig, point: Point) -> TrainConfig:
    """The config of the run a value of the sweep stands for: ``cfg`` with
    the value's keys set and nothing swept."""
    for key, value in point.items():
        cfg = _set(cfg, key, value)
    return dataclasses.replace(cfg, sweep=SweepConfig())


def _number(value: float) -> str:
    return repr(int(value)) if value == int(value) and abs(value) >= 1 else repr(value)


def point_name(point: Point) -> str:
    """A value's run directory name: ``alpha_lr=0.03``; keys joined by ``,``."""
    return ",".join(f"{key}={_number(value)}" for key, value in point.items())


# What decides a run's code among the swept keys: the values of a sweep
# must agree on each, or they would be different programs.
CODE_PATHS: dict[str, Callable[[TrainConfig], bool]] = {
    "a learned temperature (alpha_lr > 0 and no fixed_alpha)": lambda c: c.learns_alpha,
    "Polyak target updates (target_tau > 0) against hard copies (0)": lambda c: c.target_tau > 0,
}

# A swept key the run would never read changes nothing: refused, with why.
UNUSED: dict[str, tuple[Callable[[TrainConfig], bool], str]] = {
    "epsilon_start": (lambda c: c.is_soft, "acts softly and has no epsilon"),
    "epsilon_finish": (lambda c: c.is_soft, "acts softly and has no epsilon"),
    "opt_lr": (lambda c: not c.is_soft, "is epsilon-greedy and has no logit transform"),
    "fixed_alpha": (lambda c: not c.is_soft, "is epsilon-greedy and has no temperature"),
    "alpha_lr": (lambda c: not c.learns_alpha, "does not learn its temperature"),
    "init_alpha": (lambda c: not c.is_soft or c.fixed_alpha is not None, "starts at fixed_alpha"),
    "env.target_entropy_coef": (lambda c: not c.learns_alpha, "does not learn its temperature"),
    "env.target_entropy_start_coef": (lambda c: not c.learns_alpha, "does not learn its temperature"),
}


def check_sweep(cfg: TrainConfig, check_ranges: Callable[[TrainConfig], None]) -> None:
    """Refuse a sweep that is not one program of runs that differ: one
    ConfigError line naming the key. ``check_ranges`` checks one value's
    config as any config is checked."""
    lists = swept(cfg)
    if cfg.sweep.mode not in SWEEP_MODES:
        raise ConfigError(f"config error: sweep.mode={cfg.sweep.mode!r} is not allowed; allowed: "
                          f"{', '.join(SWEEP_MODES)}")
    if not lists:
        return
    if cfg.sweep.mode == "zip" and len({len(v) for v in lists.values()}) > 1:
        lengths = ", ".join(f"sweep.{k} has {len(v)}" for k, v in lists.items())
        raise ConfigError(f"config error: sweep.mode='zip' needs lists of one length ({lengths}); "
                          "allowed: equally long lists, or sweep.mode=product")
    for point in points(cfg):
        try:
            check_ranges(point_config(cfg, point))
        except ConfigError as exc:
            raise ConfigError(f"{exc} (in the sweep's value {point_name(point)})") from None
    first = {key: values[0] for key, values in lists.items()}
    for key, values in lists.items():
        if len(set(values)) != len(values):
            raise ConfigError(f"config error: sweep.{key}={list(values)} is not allowed; allowed: distinct values")
        configs = [point_config(cfg, {**first, key: value}) for value in values]
        unused, why = UNUSED.get(key, (lambda c: False, ""))
        if unused(configs[0]):
            raise ConfigError(f"config error: sweep.{key} is not allowed for alg {cfg.alg.name}, which {why}; "
                              "allowed: a key the run reads")
        for path, decides in CODE_PATHS.items():
            if len({decides(c) for c in configs}) > 1:
                raise ConfigError(f"config error: sweep.{key}={list(values)} is not allowed: its values compile "
                                  f"different programs ({path}); allowed: values on one side, or Hydra's -m")
