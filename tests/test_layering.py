"""Imports flow one way (docs/design.md §3): training -> ltzoo.methods -> ltzoo.losses | data | augment | models ->
ltzoo.registry | hub. Read from the source with `ast`, so a module imported lazily inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ltzoo"

# bottom first; a module may import its own layer and the layers below it, never one above
LAYERS: list[set[str]] = [
    {"registry", "hub", "benchmarks", "precision", "options"},
    {"losses", "data", "augment", "models", "scheduler"},
    {"methods"},
    {"", "factory", "evaluate", "evaluation", "validate", "cli", "cam_overlay", "hub_server"},  # "": ltzoo/__init__
]
LAYER_OF = {part: level for level, parts in enumerate(LAYERS) for part in parts}
SOURCES = sorted(PACKAGE.rglob("*.py"))


def _module(path: Path) -> str:
    """'ltzoo.data.cifar' for ltzoo/data/cifar.py, 'ltzoo.data' for ltzoo/data/__init__.py."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in a file, relative ones resolved; `from ltzoo import registry`
    counts as `ltzoo.registry`."""
    module = _module(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            found += [(node.lineno, f"{base}.{alias.name}" if _is_module(f"{base}.{alias.name}") else base)
                      for alias in node.names]
    return found


def _is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _part(module: str) -> str:
    """The top-level part of ltzoo a module belongs to: 'data' for ltzoo.data.cifar, '' for ltzoo itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_part_of_ltzoo_has_a_layer():
    parts = {_part(_module(path)) for path in SOURCES}
    assert parts <= set(LAYER_OF), f"give {sorted(parts - set(LAYER_OF))} a layer in LAYERS"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_no_import_runs_up_a_layer(path: Path):
    source = _part(_module(path))
    upward = [f"line {line}: {name}" for line, name in _imports(path)
              if name.split(".")[0] == "ltzoo" and LAYER_OF[_part(name)] > LAYER_OF[source]]
    assert not upward, f"{path.name} (layer {LAYER_OF[source]}) imports from a higher layer: {upward}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_ltzoo_imports_neither_accelerate_nor_training(path: Path):
    banned = [f"line {line}: {name}" for line, name in _imports(path)
              if name.split(".")[0] in ("accelerate", "training")]
    assert not banned, f"{path.name} imports what only training/ may: {banned}"


def test_the_import_reader_resolves_each_spelling_the_package_uses():
    """The checks above are only as good as `_imports`."""
    assert "ltzoo.registry" in {name for _, name in _imports(PACKAGE / "hub.py")}  # `from . import registry`
    factory = {name for _, name in _imports(PACKAGE / "factory.py")}
    assert "ltzoo.models" in factory  # `from .models import build_train_heads`
    assert "ltzoo.evaluation.posthoc" in factory  # inside a function
    assert "ltzoo.registry" in {name for _, name in _imports(PACKAGE / "evaluation" / "report.py")}  # from ltzoo import
