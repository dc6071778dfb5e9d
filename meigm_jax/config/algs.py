"""The named algorithms: one file each under ``configs/alg/``, the one place
their parts are written. Hydra applies the file chosen with ``alg=NAME``;
``from_dict`` fills a named algorithm's parts from the same file where its
data leaves them out, so a config given as plain data (tests, a saved run)
means what the command line means."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
ALG_DIR = CONFIG_DIR / "alg"
# An alg.name without a file: the parts are exactly the keys given.
CUSTOM = "custom"


def alg_names() -> tuple[str, ...]:
    """The named algorithms: the files under configs/alg/, sorted."""
    return tuple(sorted(p.stem for p in ALG_DIR.glob("*.yaml")))


@functools.lru_cache(maxsize=None)
def _read(path: Path) -> dict[str, Any]:
    import yaml

    data = yaml.safe_load(path.read_text()) or {}
    data.pop("defaults", None)  # Hydra's composition list, not a key
    return data


def alg_parts(name: Any) -> dict[str, Any]:
    """The keys the file of algorithm ``name`` sets, nested as in the
    config ({} for a name without a file)."""
    if not isinstance(name, str) or name not in alg_names():
        return {}
    return copy.deepcopy(_read(ALG_DIR / f"{name}.yaml"))
