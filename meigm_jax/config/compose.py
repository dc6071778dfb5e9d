"""Turning command-line overrides into a validated ``TrainConfig``.

Hydra's schema is ``TrainConfig`` itself (``config.hydra_schema``), so Hydra
knows every key's type. Hydra reports a bad override with a multi-line
message and exit code 1; the launcher checks the overrides first, composes
them once with Hydra's compose API and validates the result, so that any bad
input ends in one line naming the key and what is allowed, with exit code 2,
before anything is created or compiled. A single run then goes on with that
composed config (``meigm_jax.train``); only a multirun lets Hydra compose
each of its jobs.
"""

from __future__ import annotations

from typing import Any, Iterable

from hydra.core.config_store import ConfigStore

from meigm_jax.config import (CONFIG_DIR, ConfigError, TrainConfig, defaults_dict, env_family, from_dict,
                              hydra_schema, type_error)

GROUPS = ("alg", "env")
DEFAULT_ENV = "matrix_game"


def register_base() -> None:
    """Make ``TrainConfig`` (typed, with its defaults) Hydra's ``base`` config."""
    ConfigStore.instance().store(name="base", node=hydra_schema())


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def _leaf_keys(tree: dict, prefix: str = "") -> set[str]:
    keys = set()
    for name, value in tree.items():
        keys.add(prefix + name)
        if isinstance(value, dict):
            keys |= _leaf_keys(value, prefix + name + ".")
    return keys


def override_key(override: str) -> str:
    """The key an override sets: ``+env=smax_5v5`` -> ``env``."""
    return override.lstrip("+~").split("=", 1)[0]


def with_default_env(overrides: list[str]) -> list[str]:
    """No ``+env=`` given: the matrix game, a run that finishes in minutes on a CPU."""
    if any(override_key(o) == "env" for o in overrides):
        return overrides
    return overrides + [f"+env={DEFAULT_ENV}"]


def preset_options(env: str) -> dict[str, str]:
    """The presets an env has, by name: the folder under configs/preset/
    that holds each (the env's own, else its family's, e.g. ``overcooked``)."""
    found = {}
    for folder in (env_family(env), env):  # the env's own file wins
        found.update({p.stem: folder for p in (CONFIG_DIR / "preset" / folder).glob("*.yaml")})
    return found


def with_preset(overrides: list[str]) -> list[str]:
    """``preset=NAME`` selects a settings file for the chosen env
    (configs/preset/<env or family>/NAME.yaml, a Hydra config group). It is
    applied after the env file and before the other overrides' values, so
    the env's defaults give way to it and any key=value still wins; Hydra
    appends a ``+group`` override after the ``+env`` one, hence the rewrite."""
    presets = [o for o in overrides if override_key(o) == "preset"]
    if not presets:
        return overrides
    env = next((o.split("=", 1)[1] for o in overrides if override_key(o) == "env"), DEFAULT_ENV)
    name = presets[-1].split("=", 1)[1]
    options = preset_options(env)
    if name not in options:
        allowed = ", ".join(sorted(options)) or "none (this env has no presets)"
        raise ConfigError(f"config error: preset={name!r} is not allowed for {env}; allowed: {allowed}")
    rest = [o for o in overrides if o not in presets]
    return rest + [f"+preset/{options[name]}@_global_={name}"]


def check_overrides(overrides: Iterable[str]) -> None:
    """Reject unknown keys and group options with a ConfigError (one line)."""
    known = _leaf_keys(defaults_dict())
    for override in overrides:
        if override.startswith("-") or "=" not in override:
            continue
        key, value = override.split("=", 1)
        key = key.lstrip("+~")
        if key.startswith("hydra.") or key == "hydra" or key.startswith("preset/"):
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
        if key.startswith("sweep.") and key not in known:
            raise ConfigError(unsweepable(key.removeprefix("sweep."), known))
        if key not in known:
            allowed = ", ".join(sorted(k for k in known if "." not in k or k.startswith(key.split(".")[0] + ".")))
            raise ConfigError(f"config error: unknown key '{key}'; allowed: {allowed}")


def unsweepable(key: str, known: set[str]) -> str:
    """The line refusing ``sweep.<key>``: why the key cannot be traced, and what can."""
    from meigm_jax.config.schema import swept_keys

    allowed = ", ".join(f"sweep.{k}" for k in swept_keys()) + ", sweep.mode"
    if key in known:
        return (f"config error: sweep.{key} is not allowed: {key} changes the program's shapes or code, so "
                f"its values cannot share one program (sweep it with Hydra's -m: {key}=A,B); allowed: {allowed}")
    return f"config error: unknown key 'sweep.{key}'; allowed: {allowed}"


def _override_value(overrides: list[str], key: str) -> Any:
    """The value an override gave ``key``, parsed as Hydra reads plain values."""
    import yaml

    for override in reversed(overrides):
        name, _, value = override.partition("=")
        if name.lstrip("+~") == key:
            try:
                return yaml.safe_load(value)
            except yaml.YAMLError:
                return value
    return None


def compose(overrides: list[str], with_hydra: bool = False):
    """Compose once with Hydra, as a run will: the config node (with Hydra's
    own ``hydra`` node when ``with_hydra``). Call within ``hydra_context()``."""
    from hydra import compose as hydra_compose

    if not with_hydra:
        overrides = [o for o in overrides if not o.lstrip("+~").startswith("hydra.")]
    plain = [o for o in overrides if not o.startswith("-")]
    try:
        return hydra_compose(config_name="config", overrides=plain, return_hydra_config=with_hydra)
    except Exception as exc:
        from omegaconf.errors import ValidationError

        cause = exc.__cause__
        if isinstance(cause, ValidationError) and cause.full_key:  # a value of the wrong type
            raise type_error(cause.full_key, _override_value(overrides, cause.full_key)) from exc
        # Other Hydra / OmegaConf errors: keep their first line.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"config error: {first}") from exc


def hydra_context(job_name: str = "train"):
    """Hydra's global state for ``compose``, with this project's configs."""
    from hydra import initialize_config_dir

    register_base()
    return initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3", job_name=job_name)


def from_composed(node) -> TrainConfig:
    """A composed Hydra config to a validated ``TrainConfig``."""
    from omegaconf import OmegaConf

    plain = lambda value: OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    return from_dict({key: plain(node[key]) for key in node if key != "hydra"})


def load(overrides: list[str]) -> TrainConfig:
    """Overrides to a validated ``TrainConfig``; ConfigError (one line) on bad input."""
    overrides = with_preset(overrides)
    check_overrides(overrides)
    with hydra_context():
        return from_composed(compose(overrides))

