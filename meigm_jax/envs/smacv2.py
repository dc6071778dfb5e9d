"""Official SMACv2 as an environment of the registry: StarCraft II in worker processes.

``make_env("smacv2_<race>_<size>")`` gives a ``HostEnv``: it names the
worker factory and each worker's SMACv2 arguments, and its spec says that
the env is stepped on the host. The run loop then trains through
``meigm_jax.programs.host.host_loop`` (the worker pool and the host program live in
``meigm_jax.programs.host``; what the env is lives here). A missing install is found
here, when the env is made, so a run stops in one line before anything is
created.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

from meigm_jax.errors import ConfigError
from meigm_jax.envs.base import EnvSpec
from meigm_jax.envs import smacv2_scenarios as scenarios

SMACV2_FACTORY = "smacv2.env:StarCraftCapabilityEnvWrapper"
INSTALL_HINT = ("pip install -e .[sc2] (pysc2 and smacv2 from github.com/oxwhirl/smacv2), "
                "StarCraft II 4.10 with the SMAC maps in $SC2PATH/Maps/SMAC_Maps, and SC2PATH set")


def _default_sc2_path() -> Path:
    if sys.platform == "darwin":
        return Path("/Applications/StarCraft II")
    if sys.platform.startswith("win"):
        return Path("C:/Program Files (x86)/StarCraft II")
    return Path.home() / "StarCraftII"  # pysc2's default on Linux


def missing_install() -> str | None:
    """One line naming what an official SMACv2 run lacks here, or None."""
    missing = [pkg for pkg in ("smacv2", "pysc2") if importlib.util.find_spec(pkg) is None]
    if missing:
        return f"error: official SMACv2 runs need {' and '.join(missing)}, not installed; install: {INSTALL_HINT}"
    sc2 = Path(os.environ["SC2PATH"]) if os.environ.get("SC2PATH") else _default_sc2_path()
    if not sc2.is_dir():
        return f"error: StarCraft II not found at {sc2} (SC2PATH); install: {INSTALL_HINT}"
    if not (sc2 / "Maps" / "SMAC_Maps").is_dir():
        return f"error: SMAC maps not found in {sc2 / 'Maps' / 'SMAC_Maps'}; install: {INSTALL_HINT}"
    return None


class HostEnv:
    """An env whose episodes worker processes step: ``factory(**worker_kwargs(i, seed))``
    in worker i of a run with config ``seed``.

    ``factory`` is ``"module:callable"`` returning an object with SMACv2's
    env API. The spec's sizes are zero until the workers report them
    (``host_loop`` replaces it with the reported one).
    """

    def __init__(self, name: str, factory: str, worker_kwargs: Callable[[int, int], Mapping[str, Any]],
                 expect_episode_limit: int | None = None):
        self.factory, self.worker_kwargs = factory, worker_kwargs
        self.expect_episode_limit = expect_episode_limit
        self.spec = EnvSpec(name=name, num_agents=0, num_actions=0, obs_shape=(0,), state_dim=0,
                            episode_limit=0, has_win=True, host_stepped=True)


def smacv2_env(name: str) -> HostEnv:
    """Official SMACv2 scenario ``name``; ConfigError (one line) when the install is missing."""
    message = missing_install()
    if message:
        raise ConfigError(message)
    scenarios.parse(name)
    return HostEnv(name, SMACV2_FACTORY, lambda i, seed: scenarios.env_args(name, seed=seed * 10_007 + i),
                   expect_episode_limit=scenarios.EPISODE_LIMIT)
