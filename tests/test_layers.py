"""Imports run one way: no two modules of hvaelab import each other, directly or around a longer
loop, and every import goes down the layers listed in the developer guide
(docs/developer/architecture.md, "Which way imports run").

Every import statement counts: module level, inside functions, and under ``TYPE_CHECKING``.
The graph is read from the source (AST), so nothing is imported to build it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hvaelab"

# Top to bottom: a module may import its own layer (without a loop) and the layers below it,
# never one above. A layer is a list of modules or packages (a package covers its submodules).
LAYERS: list[tuple[str, list[str]]] = [
    ("entry points", ["hvaelab.__main__", "hvaelab.cli"]),
    ("dashboards", ["hvaelab.app"]),
    ("applications", ["hvaelab.onnx_export", "hvaelab.detector", "hvaelab.train"]),
    ("checkpoints", ["hvaelab.checkpoint"]),
    (
        "on top of scoring",
        [
            "hvaelab.evaluate",
            "hvaelab.example_report",
            "hvaelab.mean_path",
            "hvaelab.partial_tables",
            "hvaelab.second_stage",
        ],
    ),
    ("scoring", ["hvaelab.scores"]),
    (
        "bounds and statistics",
        ["hvaelab.bounds", "hvaelab.example_stats", "hvaelab.latents", "hvaelab.correlation"],
    ),
    ("models", ["hvaelab.model"]),
    ("data", ["hvaelab.data"]),
    (
        "foundation",
        [
            "hvaelab",  # the package itself: __version__
            "hvaelab.artifacts",
            "hvaelab.complexity",
            "hvaelab.config",
            "hvaelab.device",
            "hvaelab.distributed",
            "hvaelab.metrics",
            "hvaelab.noise",
            "hvaelab.package_files",
            "hvaelab.pvalues",
            "hvaelab.score_names",
            "hvaelab.toy",
            "hvaelab.verdict",
            "hvaelab.volume_change",
        ],
    ),
]


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _targets(name: str, path: Path, node: ast.Import | ast.ImportFrom, known) -> Iterator[str]:
    if isinstance(node, ast.Import):
        candidates = [a.name for a in node.names]
    else:
        if node.level:
            base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        # `from pkg import sub` imports the submodule pkg.sub when there is one
        candidates = [
            f"{target}.{a.name}" if f"{target}.{a.name}" in known else target for a in node.names
        ]
    for c in candidates:
        while c and c not in known:
            c = c.rpartition(".")[0]
        if c and c != name:
            yield c


def import_graph() -> dict[str, set[str]]:
    """Module -> the hvaelab modules it imports anywhere (functions and TYPE_CHECKING too)."""
    known = modules()
    graph: dict[str, set[str]] = {m: set() for m in known}
    for name, path in known.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                graph[name].update(_targets(name, path, node, known))
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def layer_of(module: str) -> int | None:
    """The index in LAYERS (0 = top) of ``module``: the longest listed prefix decides."""
    best, best_len = None, -1
    for i, (_, members) in enumerate(LAYERS):
        for m in members:
            if (module == m or module.startswith(m + ".")) and len(m) > best_len:
                best, best_len = i, len(m)
    return best


def test_no_import_cycles_anywhere_in_hvaelab():
    """Every pair or loop of modules that import each other, lazily or not, is listed."""
    loops = cycles(import_graph())
    assert not loops, "modules that import each other (make the imports run one way):\n" + (
        "\n".join(" <-> ".join(c) for c in loops)
    )


def test_every_module_has_a_layer():
    missing = [m for m in modules() if layer_of(m) is None]
    assert not missing, f"place these modules in a layer of tests/test_layers.py: {missing}"


def test_imports_go_down_the_layers():
    graph = import_graph()
    upward = []
    for a, targets in sorted(graph.items()):
        la = layer_of(a)
        for b in sorted(targets):
            lb = layer_of(b)
            if la is not None and lb is not None and lb < la:
                upward.append(f"{a} ({LAYERS[la][0]}) imports {b} ({LAYERS[lb][0]})")
    assert not upward, "imports that go up the layers:\n" + "\n".join(upward)


def test_the_architecture_page_lists_the_layers():
    """The developer guide states the same layers as this test, in the same order."""
    page = (ROOT / "docs" / "developer" / "architecture.md").read_text()
    section = page[page.index("## Which way imports run") :]
    positions = [section.index(f"**{name}**") for name, _ in LAYERS]
    assert positions == sorted(positions), "the page lists the layers in another order"
    for _, members in LAYERS:
        for m in members:
            short = m.removeprefix("hvaelab.") if m != "hvaelab" else "hvaelab"
            assert f"`{short}`" in section, f"{m} is not on the architecture page's layer list"


def test_cycle_finder_finds_loops():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(g) == [["a", "b", "c"]]
