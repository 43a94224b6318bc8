"""The package's layers point down: no subpackage imports one that imports it back, counting
imports inside functions too (a deferred import is still a dependency)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "surrogate"
# From the bottom: each part may import only parts on its own floor or below.
FLOORS = [
    {"_cache", "_paths", "_imports", "_version", "_errors", "_toml"},
    {"data", "store"},
    {"models", "personas"},
    {"experiments", "analysis", "training"},
    {"agents", "options"},
    {"testing"},
    {"organisms"},
    {"jobs"},
    {"cli", "__init__"},
]


def _part(module: str) -> str:
    """The subpackage (or top-level module) of a dotted name inside surrogate (`from surrogate
    import __version__` names the package itself)."""
    parts = module.split(".")
    if len(parts) < 2 or not ((PACKAGE / parts[1]).is_dir() or (PACKAGE / f"{parts[1]}.py").is_file()):
        return "__init__"
    return parts[1]


def _imports() -> dict[tuple[str, str], list[str]]:
    """(importing part, imported part) -> where, for every import in the package."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        package = module if rel.name == "__init__" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                    if node.module is None:  # from . import x: the submodules themselves
                        targets = [f"{target}.{a.name}" for a in node.names]
                    else:
                        targets = [target]
                elif node.module and node.module.startswith("surrogate"):
                    targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("surrogate")]
            for target in targets:
                a, b = _part(module), _part(target)
                if a != b:
                    edges[(a, b)].append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    return edges


def test_no_subpackage_imports_one_that_imports_it_back():
    edges = _imports()
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt in path:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif len(path) < 12:
                visit(nxt, path + [nxt])

    for start in sorted(graph):
        visit(start, [start])
    assert not cycles, [(c, [edges[(c[i], c[i + 1])][0] for i in range(len(c) - 1)]) for c in cycles[:3]]


def test_every_import_points_down_or_across():
    floor = {part: k for k, parts in enumerate(FLOORS) for part in parts}
    present = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
               if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()))}
    assert present <= set(floor), f"parts without a floor: {sorted(present - set(floor))}"
    up = {(a, b): where[0] for (a, b), where in _imports().items() if floor[b] > floor[a]}
    assert not up, up
