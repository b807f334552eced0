"""The packages' import rules, read from the source: no cycles, and each layer imports only what it may.

docs/architecture.md draws the same rules. Imports inside functions and under TYPE_CHECKING count: a
cycle through a function-level import is still two modules that need each other.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "memp_mcp"

# Each layer imports only layers below it (a package, or a top-level module, names a layer).
LAYERS = [
    ("memp_mcp.entry",),
    ("memp_mcp.cli",),
    ("memp_mcp.bench",),
    ("memp_mcp.hooks",),
    ("memp_mcp.server",),
    ("memp_mcp.engine",),
    ("memp_mcp.store", "memp_mcp.embedding"),
    (
        "memp_mcp.config",
        "memp_mcp.models",
        "memp_mcp.errors",
        "memp_mcp.text",
        "memp_mcp.paths",
        "memp_mcp.project",
        "memp_mcp.model_fetch",
        "memp_mcp.principals",
        "memp_mcp",
    ),
]
# The domain knows nothing of MCP, and the hooks run without the SDK.
WITHOUT_THE_SDK = ("memp_mcp.engine", "memp_mcp.store", "memp_mcp.embedding", "memp_mcp.hooks")


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


def home(module: str) -> tuple[int, str]:
    """(the index of `module`'s layer in LAYERS, the package or module of that layer it belongs to)."""
    return max(
        (len(name), index, name) for index, names in enumerate(LAYERS) for name in names if within(module, name)
    )[1:]


def test_every_module_has_a_layer() -> None:
    assert [name for name in MODULES if not any(within(name, n) for names in LAYERS for n in names)] == []


def test_each_layer_imports_only_the_layers_below_it() -> None:
    bottom = len(LAYERS) - 1
    upward = []
    for name, targets in GRAPH.items():
        layer, package = home(name)
        for target in (t for t in targets if t in MODULES):
            target_layer, target_package = home(target)
            sideways = target_layer == layer and target_package != package and layer != bottom
            if target_layer < layer or sideways:
                upward.append(f"{name} imports {target}")
    assert upward == []


def test_the_domain_and_the_hooks_import_nothing_of_the_mcp_sdk() -> None:
    sdk = [
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        if any(within(name, prefix) for prefix in WITHOUT_THE_SDK)
        for target in targets
        if within(target, "mcp")
    ]
    assert sdk == []


def test_only_the_console_script_imports_the_command_line() -> None:
    assert [
        n
        for n, targets in GRAPH.items()
        if not within(n, "memp_mcp.cli") and any(within(t, "memp_mcp.cli") for t in targets)
    ] == ["memp_mcp.entry"]


def test_only_the_driver_imports_a_sqlite_library() -> None:
    # One SQLite library per process (memp_mcp/store/driver.py says why): a module that imported the
    # stdlib sqlite3 or sqlean itself could open the memory file with the other copy of SQLite.
    libraries = ("sqlite3", "sqlean", "pysqlite3", "apsw")
    found = sorted(
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        if name != "memp_mcp.store.driver"
        for target in targets
        if any(within(target, library) for library in libraries)
    )
    assert found == []
    assert "sqlite3" in GRAPH["memp_mcp.store.driver"]  # the reading sees the one that does


def test_the_graph_reads_imports_the_way_python_resolves_them() -> None:
    # The rules above are only as good as this reading: a function-level import, a `from package
    # import submodule` and a relative import all count.
    assert "memp_mcp.hooks.command" in GRAPH["memp_mcp.hooks.warm_server"]
    assert "memp_mcp.hooks.client" in GRAPH["memp_mcp.entry"]
    assert "memp_mcp.cli" in GRAPH["memp_mcp.entry"]
