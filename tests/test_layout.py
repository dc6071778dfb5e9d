"""The package's layers: every import, at module level or inside a function, goes down."""

from __future__ import annotations

import ast

from helpers import ROOT

# Lower numbers are lower layers; the commands are the top-level modules.
LAYERS = {
    "meigm_jax.errors": 0, "meigm_jax.types": 0,
    "meigm_jax.config.schema": 1, "meigm_jax.envs": 1,
    "meigm_jax.algorithm": 2,
    # The config package beyond its schema: checking a composed config needs
    # the registries (networks, envs) that own the names.
    "meigm_jax.config": 2.5,
    "meigm_jax.programs": 3,
    "meigm_jax.running": 4,
    "meigm_jax.reporting": 5,
}
COMMANDS = 6


def layer(module: str) -> float | None:
    if not module.startswith("meigm_jax.") and module != "meigm_jax":
        return None
    parts = module.split(".")
    for n in range(len(parts), 1, -1):
        prefix = ".".join(parts[:n])
        if prefix in LAYERS:
            return LAYERS[prefix]
    return COMMANDS if len(parts) == 2 else None


def imports(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "meigm_jax":  # from meigm_jax import errors
                yield node.lineno, *(f"meigm_jax.{a.name}" for a in node.names)
            else:
                yield node.lineno, node.module
        elif isinstance(node, ast.Import):
            yield node.lineno, *(a.name for a in node.names)


def test_imports_go_down_the_layers():
    package = ROOT / "meigm_jax"
    upward, modules = [], 0
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        own = layer(module)
        if own is None:
            continue
        modules += 1
        for line, *names in imports(ast.parse(path.read_text())):
            for name in names:
                other = layer(name)
                if other is not None and other > own:
                    upward.append(f"{module}:{line} imports {name}")
    assert modules > 50
    assert upward == []


def test_the_layer_table_knows_every_subpackage():
    subpackages = {p.name for p in (ROOT / "meigm_jax").iterdir() if (p / "__init__.py").is_file()}
    assert subpackages == {"config", "envs", "algorithm", "programs", "running", "reporting"}
    assert layer("meigm_jax.train") == COMMANDS and layer("meigm_jax.algorithm.networks.opt") == 2
