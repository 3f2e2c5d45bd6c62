"""The import graph of ``src/scpdiff``: no cycles, imports only towards lower-ranked packages, and a
package top that holds only the five modules named in docs/architecture.md.

The graph is built from the source with :mod:`ast` (nothing is imported or executed), so a
module that would fail to import is still checked. Every ``import`` statement counts, those inside
functions too: a lazy import still ties two modules together, and a cycle through one only waits
for the call that closes it.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "scpdiff"

# The allowed import direction, cited by docs/architecture.md: a module may import its own package
# or a package of LOWER rank, nothing else. A package is the top-level module or sub-package
# (``scpdiff.priors`` covers every module under ``scpdiff/priors/``); ``scpdiff`` is the root
# ``__init__`` alone.
RANKS: dict[str, int] = {
    "scpdiff": 0,
    "scpdiff.errors": 0,
    "scpdiff.utils": 1,
    "scpdiff.registry": 2,
    "scpdiff.models": 3,
    "scpdiff.datasets": 3,
    "scpdiff.segmenters": 3,
    "scpdiff.latents": 4,
    "scpdiff.priors": 5,
    "scpdiff.config": 6,
    "scpdiff.sampling": 7,
    "scpdiff.metrics": 7,
    "scpdiff.training": 7,
    "scpdiff.reporting": 7,
    "scpdiff.userstudy": 8,
    "scpdiff.planning": 8,
    "scpdiff.commands": 9,
    "scpdiff.cli": 10,
    "scpdiff.__main__": 11,
}

# The only modules allowed at the top of the package (everything else lives in a sub-package).
TOP_MODULES = frozenset({"__init__", "__main__", "cli", "errors", "registry"})


# --------------------------------------------------------------------------- the checker


@dataclass(frozen=True)
class Edge:
    source: str  # importing module, dotted
    target: str  # imported module, dotted (a sub-module when ``from pkg import name`` names one)
    path: Path  # file of the importing module
    line: int


@dataclass
class Graph:
    package: str
    root: Path  # the folder of the package (``src/scpdiff``)
    modules: dict[str, Path] = field(default_factory=dict)  # dotted name -> file
    edges: list[Edge] = field(default_factory=list)

    def where(self, edge: Edge) -> str:
        return f"{edge.path.relative_to(self.root.parent)}:{edge.line}"


def module_name(path: Path, root: Path, package: str) -> str:
    """``root/priors/joint.py`` -> ``package.priors.joint``; a package's ``__init__`` is the package."""
    parts = [package, *path.relative_to(root).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve_relative(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute name of ``from {'.' * level}{name} import ...`` written in ``module``."""
    base = module.split(".")
    if not is_package:  # a plain module's ``.`` is the package that holds it
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    if not base:
        raise ValueError(f"relative import beyond the top package in {module}")
    return ".".join(base + ([name] if name else []))


def _closest_module(name: str, modules: dict[str, Path]) -> str | None:
    """``import a.b.c`` names a module; keep the longest prefix that is one of ours."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def build_graph(root: Path, package: str) -> Graph:
    """Parse every ``.py`` under ``root`` (the folder of ``package``) into a module -> module graph."""
    graph = Graph(package=package, root=root)
    files = sorted(root.rglob("*.py"))
    for path in files:
        graph.modules[module_name(path, root, package)] = path
    for path in files:
        source = module_name(path, root, package)
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):  # every depth: imports inside functions count
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = _resolve_relative(source, is_package, node.level, node.module)
                else:
                    base = node.module or ""
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    # ``from pkg import name`` imports the sub-module pkg.name when there is one
                    targets.append(sub if alias.name != "*" and sub in graph.modules else base)
            for target in targets:
                resolved = _closest_module(target, graph.modules)
                if resolved is not None and resolved != source:
                    graph.edges.append(Edge(source, resolved, path, node.lineno))
    return graph


def find_cycles(graph: Graph) -> list[list[Edge]]:
    """One cycle per strongly connected component of more than one module (Tarjan), as its edges."""
    succ: dict[str, dict[str, Edge]] = {m: {} for m in graph.modules}
    for edge in graph.edges:
        succ[edge.source].setdefault(edge.target, edge)

    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def strongconnect(v: str) -> None:  # recursion depth <= number of modules (about a hundred)
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in succ[v]:
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(succ):
        if v not in index:
            strongconnect(v)

    cycles = []
    for component in components:
        start = min(component)
        # breadth-first inside the component: the shortest way from ``start`` back to itself
        parent: dict[str, Edge] = {}
        frontier = [start]
        seen = {start}
        closing: Edge | None = None
        while frontier and closing is None:
            nxt = []
            for v in frontier:
                for w, edge in sorted(succ[v].items()):
                    if w == start:
                        closing = edge
                        break
                    if w in component and w not in seen:
                        seen.add(w)
                        parent[w] = edge
                        nxt.append(w)
                if closing is not None:
                    break
            frontier = nxt
        path = [closing]
        while path[-1].source != start:
            path.append(parent[path[-1].source])
        cycles.append(path[::-1])
    return cycles


def package_of(module: str, ranks: dict[str, int]) -> str | None:
    """The ranked package a module belongs to (``scpdiff.priors.joint`` -> ``scpdiff.priors``)."""
    parts = module.split(".")
    name = parts[0] if len(parts) == 1 else ".".join(parts[:2])
    return name if name in ranks else None


def rank_violations(graph: Graph, ranks: dict[str, int]) -> list[str]:
    """Imports that do not go to the module's own package or to a lower-ranked one, and modules
    whose package has no rank (an unranked package would escape the check)."""
    problems = []
    for module, path in sorted(graph.modules.items()):
        if package_of(module, ranks) is None:
            problems.append(f"{path.relative_to(graph.root.parent)}: {module} belongs to no ranked package")
    for edge in graph.edges:
        src, dst = package_of(edge.source, ranks), package_of(edge.target, ranks)
        if src is None or dst is None or src == dst:
            continue
        if ranks[dst] >= ranks[src]:
            problems.append(
                f"{graph.where(edge)}: {src} (rank {ranks[src]}) imports {edge.target} of {dst} "
                f"(rank {ranks[dst]}); only lower ranks may be imported"
            )
    return problems


def stray_top_modules(root: Path, allowed: frozenset[str]) -> list[str]:
    return sorted(p.name for p in root.glob("*.py") if p.stem not in allowed)


def format_cycle(graph: Graph, cycle: list[Edge]) -> str:
    chain = " -> ".join([cycle[0].source] + [e.target for e in cycle])
    return chain + "  (" + ", ".join(graph.where(e) for e in cycle) + ")"


# --------------------------------------------------------------------------- the package itself


@pytest.fixture(scope="module")
def graph() -> Graph:
    return build_graph(SRC / PACKAGE, PACKAGE)


def test_the_package_has_no_import_cycle(graph):
    cycles = [format_cycle(graph, c) for c in find_cycles(graph)]
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_imports_go_only_to_lower_ranked_packages(graph):
    problems = rank_violations(graph, RANKS)
    assert not problems, "imports against the ranks (tests/test_import_graph.py RANKS):\n" + "\n".join(problems)


def test_the_package_top_holds_only_the_named_modules():
    stray = stray_top_modules(SRC / PACKAGE, TOP_MODULES)
    assert not stray, f"modules at the top of src/{PACKAGE}/ beyond {sorted(TOP_MODULES)}: {stray}"


def test_every_ranked_package_exists():
    # a renamed package left in RANKS would make the table cite a layout that is gone
    missing = [
        name for name in RANKS
        if name != PACKAGE and not (SRC / Path(*name.split("."))).with_suffix(".py").exists()
        and not (SRC / Path(*name.split(".")) / "__init__.py").exists()
    ]
    assert not missing, f"RANKS names packages that do not exist: {missing}"


# --------------------------------------------------------------------------- the checker on a tiny package


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


TINY_RANKS = {"pkg": 0, "pkg.errors": 0, "pkg.utils": 0, "pkg.models": 1, "pkg.cli": 2}


def test_the_checker_accepts_a_clean_package(tmp_path):
    root = _write(tmp_path / "pkg", {
        "__init__.py": "",
        "errors.py": "",
        "cli.py": "from .models import a\nfrom pkg.utils import files\n",
        "utils/__init__.py": "",
        "utils/files.py": "import os\n",
        "models/__init__.py": "from .a import thing\n",
        "models/a.py": "from ..utils.files import os\nthing = 1\n",
    })
    graph = build_graph(root, "pkg")
    assert find_cycles(graph) == []
    assert rank_violations(graph, TINY_RANKS) == []
    assert stray_top_modules(root, frozenset({"__init__", "cli", "errors"})) == []
    edges = {(e.source, e.target) for e in graph.edges}
    # relative and absolute imports resolve to modules; ``from pkg.utils import files`` is the sub-module
    assert edges == {
        ("pkg.cli", "pkg.models.a"),
        ("pkg.cli", "pkg.utils.files"),
        ("pkg.models", "pkg.models.a"),
        ("pkg.models.a", "pkg.utils.files"),
    }


def test_the_checker_catches_a_cycle_through_a_lazy_import(tmp_path):
    root = _write(tmp_path / "pkg", {
        "__init__.py": "",
        "models/__init__.py": "",
        "models/a.py": "from . import b\n",
        "models/b.py": "def f():\n    from .c import x\n",
        "models/c.py": "import pkg.models.a\nx = 1\n",
    })
    graph = build_graph(root, "pkg")
    cycles = find_cycles(graph)
    assert len(cycles) == 1
    text = format_cycle(graph, cycles[0])
    assert text.startswith("pkg.models.a -> pkg.models.b -> pkg.models.c -> pkg.models.a")
    assert "pkg/models/b.py:2" in text  # the import inside the function, with its line


def test_the_checker_catches_an_upward_import(tmp_path):
    root = _write(tmp_path / "pkg", {
        "__init__.py": "",
        "errors.py": "",
        "utils/__init__.py": "",
        "utils/files.py": "import os\n\n\ndef f():\n    from ..models import a\n",
        "models/__init__.py": "",
        "models/a.py": "from pkg import errors\n",
    })
    graph = build_graph(root, "pkg")
    problems = rank_violations(graph, TINY_RANKS)
    assert len(problems) == 1
    assert problems[0].startswith("pkg/utils/files.py:5: pkg.utils (rank 0) imports pkg.models.a of pkg.models (rank 1)")


def test_the_checker_rejects_same_rank_neighbours_and_unranked_modules(tmp_path):
    root = _write(tmp_path / "pkg", {
        "__init__.py": "",
        "errors.py": "",
        "utils/__init__.py": "from ..errors import E\n",
        "loose.py": "",
    })
    graph = build_graph(root, "pkg")
    problems = rank_violations(graph, TINY_RANKS)
    assert any(p.startswith("pkg/utils/__init__.py:1: pkg.utils (rank 0) imports pkg.errors") for p in problems)
    assert any("pkg.loose belongs to no ranked package" in p for p in problems)
    assert stray_top_modules(root, frozenset({"__init__", "errors"})) == ["loose.py"]
