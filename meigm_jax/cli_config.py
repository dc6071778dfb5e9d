"""Turning command-line overrides into a validated ``TrainConfig``.

Hydra reports a bad override with a multi-line message and exit code 1. The
launcher checks the overrides first, composes them with Hydra's compose API
and validates the result, so that any bad input ends in one line naming the
key and what is allowed, with exit code 2, before anything is compiled.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterable

from hydra.core.config_store import ConfigStore

from meigm_jax.config import ConfigError, TrainConfig, defaults_dict, from_dict

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
GROUPS = ("alg", "env")
EXIT_BAD_INPUT = 2


def register_base() -> None:
    """Make ``TrainConfig``'s defaults Hydra's ``base`` config."""
    ConfigStore.instance().store(name="base", node=defaults_dict())


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def _leaf_keys(tree: dict, prefix: str = "") -> set[str]:
    keys = set()
    for name, value in tree.items():
        keys.add(prefix + name)
        if isinstance(value, dict):
            keys |= _leaf_keys(value, prefix + name + ".")
    return keys


def with_default_env(overrides: list[str]) -> list[str]:
    """No ``+env=`` given: the matrix game, a run that finishes in minutes on a CPU."""
    if any(o.lstrip("+~").split("=", 1)[0] == "env" for o in overrides):
        return overrides
    return overrides + ["+env=matrix_game"]


def check_overrides(overrides: Iterable[str]) -> None:
    """Reject unknown keys and group options with a ConfigError (one line)."""
    known = _leaf_keys(defaults_dict())
    for override in overrides:
        if override.startswith("-") or "=" not in override:
            continue
        key, value = override.split("=", 1)
        key = key.lstrip("+~")
        if key.startswith("hydra.") or key == "hydra":
            continue
        if key in GROUPS:
            options = group_options(key)
            for choice in value.split(","):
                if choice not in options:
                    raise ConfigError(
                        f"config error: unknown {key} '{choice}'; allowed: {', '.join(options)}")
            if key == "env" and not override.startswith("+"):
                raise ConfigError(f"config error: choose the environment with '+env={value}' (with a +)")
            continue
        if key not in known:
            allowed = ", ".join(sorted(k for k in known if "." not in k or k.startswith(key.split(".")[0] + ".")))
            raise ConfigError(f"config error: unknown key '{key}'; allowed: {allowed}")


def compose_config(overrides: list[str]) -> dict[str, Any]:
    """Compose with Hydra exactly as the run will, without starting a run."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    register_base()
    plain = [o for o in overrides if not o.startswith("-") and not o.lstrip("+~").startswith("hydra.")]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        node = compose(config_name="config", overrides=plain)
    return OmegaConf.to_container(node, resolve=True)


def from_composed(data: dict[str, Any]) -> TrainConfig:
    """A composed Hydra config (plain data) to a validated ``TrainConfig``."""
    return from_dict({key: value for key, value in data.items() if key != "hydra"})


def load(overrides: list[str]) -> TrainConfig:
    check_overrides(overrides)
    try:
        data = compose_config(overrides)
    except ConfigError:
        raise
    except Exception as exc:  # Hydra / OmegaConf errors: keep their first line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"config error: {first}") from exc
    return from_composed(data)


def exit_bad_input(message: str) -> None:
    print(message, file=sys.stderr)
    raise SystemExit(EXIT_BAD_INPUT)
