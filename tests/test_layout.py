"""The packages follow the pipeline: each imports only those before it in LAYERS."""

from __future__ import annotations

import ast
from pathlib import Path

import vigil.base

ROOT = Path(vigil.base.__file__).parent.parent
# Lowest first. vigil itself holds only these packages and the compiled core.
LAYERS = (
    "base",
    "intake",
    "config",
    "ops",
    "rules",
    "engine",
    "connectors",
    "flows",
    "evaluate",
    "app",
)
ANYWHERE = ("vigil", "vigil._native")


def imported(path: Path, package: str) -> set[str]:
    """The vigil modules a file imports, absolute."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                names.add(".".join([*base, *([node.module] if node.module else [])]))
            else:
                names.add(node.module or "")
    return {name for name in names if name == "vigil" or name.startswith("vigil.")}


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_vigil_holds_only_its_packages() -> None:
    loose = sorted(p.name for p in ROOT.glob("*.py") if p.name != "__init__.py")
    packages = sorted(p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file())
    assert loose == []
    assert packages == sorted(LAYERS)


def test_each_package_imports_only_the_packages_before_it() -> None:
    wrong = []
    files = 0
    for index, layer in enumerate(LAYERS):
        allowed = set(LAYERS[: index + 1])
        for path in sorted((ROOT / layer).glob("*.py")):  # follows the links to flows/ etc.
            files += 1
            for module in imported(path, f"vigil.{layer}"):
                if module in ANYWHERE:
                    continue
                if layer_of(module) not in allowed:
                    wrong.append(f"vigil.{layer}.{path.stem} imports {module}")
    assert files > 40
    assert wrong == []


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.py"
    wrong.write_text("from vigil.engine.shard import ShardEngine\nfrom . import words\n")
    assert imported(wrong, "vigil.base") == {"vigil.engine.shard", "vigil.base"}
    assert layer_of("vigil.engine.shard") not in LAYERS[:1]
