"""The layers hold: the config and the context import nothing from the front ends, and no
``daemon`` modules import each other in a circle (imports inside functions included)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import daemon

ROOT = Path(daemon.__file__).parent
FRONT_ENDS = ("daemon.app", "daemon.cli", "daemon.service", "daemon.web")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(name: str) -> set[str]:
    """The daemon modules ``name`` imports at run time, wherever the import statement is
    (module level or inside a function); ``if TYPE_CHECKING:`` blocks are not run."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking_only(child):
                for sub in child.orelse:
                    visit(sub)
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                for alias in child.names:  # a submodule, else a name of the module
                    sub = f"{base}.{alias.name}"
                    found.add(sub if sub in MODULES else base)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: imports(name) for name in MODULES}


def test_the_graph_is_read() -> None:
    assert "daemon.config_values" in GRAPH["daemon.config"]
    assert "daemon.generation.supervisor" in GRAPH["daemon.app"]  # a function-level import
    assert "daemon.app" not in GRAPH["daemon.generation.supervisor"]


def test_config_and_context_import_no_front_end() -> None:
    lower = [m for m in MODULES if m in ("daemon.config", "daemon.config_values",
                                         "daemon.config_checks") or m.startswith("daemon.context")]
    assert len(lower) > 5
    for name in lower:
        upward = {m for m in GRAPH[name] if m.startswith(FRONT_ENDS)}
        assert not upward, f"{name} imports {sorted(upward)}"


def test_config_imports_only_the_bottom_layer() -> None:
    allowed = {"daemon", "daemon.errors", "daemon.timeparse", "daemon.clock", "daemon.priority",
               "daemon.config_values", "daemon.config_checks", "daemon.recurrence"}
    for name in ("daemon.config", "daemon.config_values", "daemon.config_checks"):
        assert GRAPH[name] <= allowed, f"{name} imports {sorted(GRAPH[name] - allowed)}"


def test_no_import_cycles() -> None:
    """Tarjan's strongly connected components: every one must be a single module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(GRAPH[node]):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for name in sorted(GRAPH):
        if name not in index:
            connect(name)
    assert not cycles, "import cycles: " + "; ".join(" ↔ ".join(c) for c in cycles)


IDLE_DAEMON = ("daemon.service", "daemon.context.source")
NOT_AT_START = ("requests", "urllib3", "icalendar", "daemon.calendars.parse",
                "daemon.calendars.write")
HTTP_OUTPUTS = ("daemon.outputs.ntfy", "daemon.outputs.webhook")


def test_the_daemon_starts_without_requests_urllib3_or_the_calendar_parser() -> None:
    """Idle memory: the daemon's start-up imports no HTTP library (urllib3 loads with the first
    fetch or an HTTP output, and requests never) and no iCalendar library (loaded when a
    subscription is synced or a calendar is read)."""
    probe = (f"import importlib, sys\nfor name in {IDLE_DAEMON!r}:\n"
             "    importlib.import_module(name)\n"
             f"print(sorted(m for m in {NOT_AT_START!r} if m in sys.modules))\n"
             f"for name in {HTTP_OUTPUTS!r}:\n"
             "    importlib.import_module(name)\n"
             "print(sorted(m for m in ('requests', 'icalendar') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, timeout=60)
    assert done.stdout.strip().splitlines()[-2:] == ["[]", "[]"], done.stdout
