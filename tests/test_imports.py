"""The package's import structure: no import cycles, and a validation core that imports no family.

The graph is read from the source with ``ast`` (top-level and function-level
imports alike, since a deferred import that closes a cycle only hides it), so
it covers modules the tests never import.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "fastrec"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE
# the modules every family may build on; they must not reach back into a family
CORE = ("fastrec._validation",)
FAMILIES = (
    "bench",
    "cli",
    "cluster",
    "datasets",
    "metrics",
    "mf",
    "model_selection",
    "recommenders",
    "scoring",
    "similarity",
)


def module_names() -> dict[str, Path]:
    """Dotted name of every module of the package -> its file."""
    names = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules that module ``name`` (at ``path``) imports anywhere in its body.

    ``from pkg import x`` counts as an import of the submodule ``pkg.x`` when
    there is one, else of ``pkg`` itself.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                found.add(sub if sub in known else module)
    return {m for m in found if m in known and m != name}


def import_graph() -> dict[str, set[str]]:
    names = module_names()
    known = set(names)
    return {name: imported_modules(name, path, known) for name, path in names.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as [a, b, ..., a], or None; iterative depth-first search."""
    state: dict[str, int] = {}  # 1 on the current path, 2 finished
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            successor = next(stack[-1], None)
            if successor is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(successor) == 1:
                return path[path.index(successor) :] + [successor]
            elif not state.get(successor):
                state[successor] = 1
                path.append(successor)
                stack.append(iter(sorted(graph[successor])))
    return None


def test_graph_reader_sees_relative_and_deferred_imports(tmp_path):
    # the reader must catch the forms a cycle hides behind, or the next test proves nothing
    pkg = tmp_path / PACKAGE
    (pkg / "fam").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "core.py").write_text("def f():\n    from fastrec.fam import mod\n")
    (pkg / "fam" / "__init__.py").write_text("from .mod import g\n")
    (pkg / "fam" / "mod.py").write_text("from .. import core\nimport fastrec.core as c\n")
    known = {"fastrec", "fastrec.core", "fastrec.fam", "fastrec.fam.mod"}
    assert imported_modules("fastrec.core", pkg / "core.py", known) == {"fastrec.fam.mod"}
    assert imported_modules("fastrec.fam", pkg / "fam" / "__init__.py", known) == {"fastrec.fam.mod"}
    assert imported_modules("fastrec.fam.mod", pkg / "fam" / "mod.py", known) == {"fastrec.core"}
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_cycles():
    graph = import_graph()
    assert "fastrec._validation" in graph and graph["fastrec"]  # the reader found the package
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def family_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """``graph`` with each family's modules merged into one node (the root package left out)."""

    def node(module: str) -> str:
        return ".".join(module.split(".")[:2])

    merged: dict[str, set[str]] = {}
    for module, imported in graph.items():
        if module == PACKAGE:  # the root re-exports every family: an edge to it is no dependency
            continue
        merged.setdefault(node(module), set()).update(
            node(m) for m in imported if m != PACKAGE and node(m) != node(module)
        )
    return merged


# Hybrid.load reads the files of every model, MatrixFactorization's among them, while
# MatrixFactorization is a Recommender: the one dependency between families both ways.
ALLOWED_FAMILY_EDGES = {("fastrec.recommenders", "fastrec.mf")}


def test_no_import_cycles_between_families():
    graph = family_graph(import_graph())
    assert "fastrec.bench" in graph["fastrec.cli"]  # `fastrec bench` runs the benchmarks
    for source, target in ALLOWED_FAMILY_EDGES:
        graph[source].discard(target)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle between families: " + " -> ".join(cycle or [])


def test_validation_core_imports_no_family():
    graph = import_graph()
    for core in CORE:
        families = sorted(m for m in graph[core] if m.split(".")[1] in FAMILIES or m == PACKAGE)
        assert not families, f"{core} imports {families}; family checks belong in the family"
