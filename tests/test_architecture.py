"""The layering holds: common ← ingest ← bot (core, services) ← bot.channels and bot.console; no import cycles.

The import graph is read from the source (every `import`, also inside functions), so a cycle dodged by
an import inside a function is still found; one fresh interpreter then imports every module.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import PROJECT

PACKAGES = ("common", "ingest", "bot")


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((PROJECT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(PROJECT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Project modules imported anywhere in the file (type-checking-only imports excluded)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports_of(path, known) - {name} for name, path in mods.items()}


def test_no_import_cycles() -> None:
    g = graph()
    # package __init__ modules are namespaces here; an edge to one is an edge to nothing
    inits = {m for m in g if (PROJECT / Path(*m.split("."))).is_dir()}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, path: list[str]) -> bool:
        state[node] = 1
        for dep in sorted(g[node] - inits):
            if state.get(dep) == 1:
                cycle.extend(path[path.index(dep):] + [dep] if dep in path else [node, dep])
                return True
            if state.get(dep) is None and visit(dep, [*path, dep]):
                return True
        state[node] = 2
        return False

    for start in sorted(g):
        if state.get(start) is None and visit(start, [start]):
            break
    assert not cycle, " → ".join(cycle)


def test_dependencies_point_one_way() -> None:
    violations = []
    for module, deps in graph().items():
        for dep in deps:
            if module.startswith("common") and not dep.startswith("common"):
                violations.append(f"{module} → {dep} (common imports nothing of ours)")
            if module.startswith("ingest") and dep.startswith("bot"):
                violations.append(f"{module} → {dep} (ingest never imports bot)")
            if module.startswith("bot.channels") and dep.startswith("ingest"):
                violations.append(f"{module} → {dep} (channels use bot.kb_admin, never ingest)")
            if module.startswith("bot.core") and dep.startswith("bot.channels"):
                violations.append(f"{module} → {dep} (the core never imports a channel)")
            if module.startswith("bot.console") and dep.startswith(("ingest", "bot.channels")):
                violations.append(f"{module} → {dep} (the console uses the core services, never ingest or a channel)")
            if dep.startswith("bot.console") and not module.startswith(("bot.console", "bot.server")):
                violations.append(f"{module} → {dep} (only the server mounts the console)")
    assert not violations, "\n".join(violations)


def test_the_checks_above_can_fail(tmp_path: Path) -> None:
    """The graph reader sees imports inside functions (the way cycles used to be dodged)."""
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from bot.core.hub import Hub\n    return Hub\n", encoding="utf-8")
    assert "bot.core.hub" in imports_of(source, set(modules()))


def test_every_module_imports_in_a_fresh_interpreter() -> None:
    names = sorted(modules())
    code = "import importlib, sys\nfor n in sys.argv[1:]:\n    importlib.import_module(n)\n"
    done = subprocess.run([sys.executable, "-c", code, *reversed(names)], cwd=PROJECT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
