"""The package's dependencies point one way: data → models → generate → arms → eval → report → audit/cli.

Read from the source (no import runs): every own-module import, at the top of a file or inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import safealign

PACKAGE = Path(safealign.__file__).parent

# Each module's layer; a module may import its own layer or a lower one, never a higher one.
LAYERS = [
    ("safealign", "safealign.errors", "safealign.io", "safealign.progress", "safealign.hub"),
    ("safealign.config", "safealign.data"),
    ("safealign.models", "safealign.losses"),
    ("safealign.generate",),
    ("safealign.arms",),
    ("safealign.eval",),
    ("safealign.report",),
    ("safealign.audit",),
    ("safealign.cli",),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def own_imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported module, line, at top level) for every import of a safealign module in `path`."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("safealign"):
            for alias in node.names:  # `from safealign.eval.judges import hub` imports a module
                candidate = f"{node.module}.{alias.name}"
                target = candidate if candidate in MODULES else node.module
                found.append((target, node.lineno, id(node) in top))
        elif isinstance(node, ast.Import):
            found += [(a.name, node.lineno, id(node) in top) for a in node.names if a.name.startswith("safealign")]
    return found


FILES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
MODULES = set(FILES)


def layer(module: str) -> int:
    best = None
    for rank, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (rank, len(prefix))
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best[0]


def test_every_module_has_a_layer():
    for module in MODULES:
        layer(module)


def test_no_own_module_import_inside_a_function():
    inside = [f"{FILES[m].relative_to(PACKAGE)}:{line} imports {target}"
              for m in MODULES for target, line, at_top in own_imports(FILES[m]) if not at_top]
    assert not inside, "own-module imports belong at the top of the file:\n" + "\n".join(inside)


def test_dependencies_point_one_way():
    upward = [f"{m} (layer {layer(m)}) imports {target} (layer {layer(target)})"
              for m in MODULES for target, _, _ in own_imports(FILES[m]) if layer(target) > layer(m)]
    assert not upward, "\n".join(upward)


def test_no_import_cycle():
    graph = {m: {t for t, _, _ in own_imports(FILES[m]) if t in MODULES and t != m} for m in MODULES}
    # a package's __init__ that re-exports its submodules is not a cycle with them
    for m, targets in graph.items():
        graph[m] = {t for t in targets if not (FILES[m].name == "__init__.py" and t.startswith(m + "."))}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path + [node, nxt]
            if nxt not in state and (cycle := visit(nxt, path + [node])):
                return cycle
        state[node] = 2
        return None

    for module in sorted(graph):
        if module not in state:
            cycle = visit(module, [])
            assert cycle is None, " -> ".join(cycle[cycle.index(cycle[-1]):])


def test_the_checks_catch_an_upward_import(tmp_path):
    """The layer check is not vacuous: an arm importing eval would be caught."""
    assert layer("safealign.eval.judges.harm") > layer("safealign.arms.safe_rlhf")
    assert layer("safealign.data.curate") < layer("safealign.models")
