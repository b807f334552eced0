"""The packages' import rules, read from the source: no cycles, and each layer imports only what it may.

docs/architecture.md draws the same rules. Imports inside functions and under TYPE_CHECKING count: a
cycle through a function-level import is still two modules that need each other.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "memp_mcp"

# (modules under this prefix, prefixes they must not import)
FORBIDDEN = [
    ("memp_mcp.engine", ("memp_mcp.server", "memp_mcp.hooks", "memp_mcp.cli", "memp_mcp.bench", "mcp")),
    (
        "memp_mcp.store",
        ("memp_mcp.engine", "memp_mcp.server", "memp_mcp.hooks", "memp_mcp.cli", "memp_mcp.bench", "mcp"),
    ),
    ("memp_mcp.server", ("memp_mcp.hooks", "memp_mcp.cli", "memp_mcp.bench")),
    ("memp_mcp.hooks", ("memp_mcp.cli", "memp_mcp.bench", "mcp")),
    ("memp_mcp.embedding", ("memp_mcp.engine", "memp_mcp.server", "memp_mcp.hooks", "memp_mcp.cli", "mcp")),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imported(name: str, path: Path) -> Iterator[str]:
    """The modules `name` imports: a submodule where `from package import submodule` names one."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                yield candidate if candidate in MODULES else base


GRAPH = {name: sorted({m for m in imported(name, path) if m != name}) for name, path in MODULES.items()}


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def test_no_two_modules_of_the_package_need_each_other() -> None:
    internal = {name: [m for m in targets if m in MODULES] for name, targets in GRAPH.items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in internal[node]:
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in sorted(internal):
        if name not in state:
            visit(name, [name])
    assert cycles == []


@pytest.mark.parametrize(("layer", "forbidden"), FORBIDDEN, ids=[layer for layer, _ in FORBIDDEN])
def test_each_layer_imports_only_what_it_may(layer: str, forbidden: tuple[str, ...]) -> None:
    broken = [
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        if within(name, layer)
        for target in targets
        if any(within(target, prefix) for prefix in forbidden)
    ]
    assert broken == []


def test_only_the_console_script_imports_the_command_line_and_only_it_and_the_cli_import_benchmarks() -> None:
    into_cli = [
        n
        for n, targets in GRAPH.items()
        if not within(n, "memp_mcp.cli") and any(within(t, "memp_mcp.cli") for t in targets)
    ]
    assert into_cli == ["memp_mcp.entry"]
    into_bench = [
        n
        for n, targets in GRAPH.items()
        if not within(n, "memp_mcp.bench") and not within(n, "memp_mcp.cli")
        if any(within(t, "memp_mcp.bench") for t in targets)
    ]
    assert into_bench == []


def test_the_graph_reads_imports_the_way_python_resolves_them() -> None:
    # The rules above are only as good as this reading: a function-level import, a `from package
    # import submodule` and a relative import all count.
    assert "memp_mcp.hooks.command" in GRAPH["memp_mcp.hooks.warm_server"]
    assert "memp_mcp.hooks.client" in GRAPH["memp_mcp.entry"]
    assert "memp_mcp.cli" in GRAPH["memp_mcp.entry"]
