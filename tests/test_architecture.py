"""The package's shape holds: stages import one way, nothing imports in a circle, no giant
functions or modules, few loose modules at the top. Read from the source, not by importing it."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "factory_kit"

# What each stage may import (besides itself). Flow: cli -> evaluate/ship -> run -> recipe -> data -> core.
ALLOWED = {
    "core": set(),
    "data": {"core"},
    "synth": {"core", "data"},
    "select": {"core", "data"},
    "recipe": {"core", "data"},
    "run": {"core", "data", "recipe"},
    "evaluate": {"core", "data", "recipe", "run"},
    "ship": {"core", "data", "recipe", "run", "evaluate"},
    "cli": {"core", "data", "synth", "select", "recipe", "run", "evaluate", "ship"},
}
LOOSE_MODULES = {"__init__", "__main__"}
MAX_FUNCTION_LINES = 150
MAX_MODULE_LINES = 700


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every factory_kit module ``name`` imports, at the top or inside functions."""
    is_pkg = path.name == "__init__.py"
    package = name.split(".") if is_pkg else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        found.update(t for t in targets if t in known and t != name)
    return found


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {name: _imports(name, path, known) for name, path in mods.items()}


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_stages_import_one_way():
    wrong = []
    for mod, targets in _graph().items():
        stage = _stage(mod)
        if stage in LOOSE_MODULES or stage == "":
            continue
        assert stage in ALLOWED, f"{mod}: stage `{stage}` is not in the architecture table (tests/test_architecture.py)"
        for t in targets:
            other = _stage(t)
            if other and other != stage and other not in ALLOWED[stage]:
                wrong.append(f"{mod} -> {t}")
    assert not wrong, "imports against the flow:\n" + "\n".join(sorted(wrong))


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
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
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _without_package_inits(graph):
    """A package's ``__init__`` re-exporting its own modules is not a circle worth reporting."""
    return {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in graph.items()}


def test_no_import_circles_between_modules():
    assert _cycles(_without_package_inits(_graph())) == []


def test_no_import_circles_between_stages():
    stages: dict[str, set[str]] = {}
    for mod, targets in _graph().items():
        stages.setdefault(_stage(mod), set()).update(_stage(t) for t in targets if _stage(t) != _stage(mod))
    assert _cycles(stages) == []


def test_architecture_check_catches_a_circle_and_a_wrong_way_import():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert "core" not in ALLOWED["core"] and "run" not in ALLOWED["recipe"] and "cli" not in ALLOWED["run"]


def test_few_loose_modules_at_the_top():
    loose = {p.stem for p in PACKAGE.glob("*.py")}
    assert loose <= LOOSE_MODULES, f"loose modules at the package top: {sorted(loose - LOOSE_MODULES)}"
    stages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert stages <= set(ALLOWED), f"subpackages missing from the architecture table: {sorted(stages - set(ALLOWED))}"


def test_no_giant_functions_or_modules():
    too_long = []
    for name, path in _modules().items():
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > MAX_MODULE_LINES:
            too_long.append(f"{name}: {text.count(chr(10))} lines (max {MAX_MODULE_LINES})")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}.{node.name}: {length} lines (max {MAX_FUNCTION_LINES})")
    assert not too_long, "\n".join(too_long)
