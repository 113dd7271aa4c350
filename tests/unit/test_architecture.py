"""The shape of the code: imports go one way (no cycle among the project's modules, counting
every import, also those inside functions), no private name is used across modules, and
modules stay small.  Built from the source with ``ast``; nothing is imported."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ROOT

PACKAGES = ("runners", "parsl_configs", "hydra_plugins")
#: Lines a module may have ("modules stay under ~400 lines").
MAX_LINES = 420
#: Programs that run ON the machine, standalone (stdlib + mpi4py/numpy), not modules of
#: the runner: their size is the benchmark's.
PROGRAMS = ("runners/benches/",)


def modules() -> dict[str, Path]:
    """``{dotted name: file}`` of every module of the project (and ``run``)."""
    found = {"run": ROOT / "run.py"}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = modules()


def resolve(module: str, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    is_package = MODULES[module].name == "__init__.py"
    base = base if is_package else base[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports(module: str) -> Iterator[tuple[str, list[str], int]]:
    """``(imported module, names, line)`` for every import of a module, anywhere in it,
    resolved to project modules (``from pkg import mod`` counts as importing ``pkg.mod``)."""
    tree = ast.parse(MODULES[module].read_text(), str(MODULES[module]))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES:
                    yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            target = resolve(module, node)
            if target not in MODULES:
                continue
            names = [a.name for a in node.names]
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            for sub in subs:
                yield sub, [], node.lineno
            rest = [n for n in names if f"{target}.{n}" not in MODULES]
            if rest or not subs:
                yield target, rest, node.lineno


def graph() -> dict[str, set[str]]:
    """Module → the project modules it imports (a package's ``__init__`` is a module too)."""
    return {m: {t for t, _, _ in imports(m) if t != m} for m in MODULES}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_graph_is_built_from_every_import() -> None:
    """The checker sees imports inside functions and ``from package import module``."""
    edges = graph()
    assert "runners.run.experiment" in edges["run"]                  # inside main()
    assert "runners.sweep.launch" in edges["hydra_plugins.bench_launcher.parsl_launcher"]
    assert "parsl_configs.schedulers" in edges["parsl_configs.scheduler"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles() -> None:
    found = cycles(graph())
    assert not found, "import cycles: " + "; ".join(" -> ".join(c) for c in found)


def private_uses(module: str) -> Iterator[str]:
    """``_name``s of other project modules that ``module`` imports or reads as attributes."""
    tree = ast.parse(MODULES[module].read_text())
    aliases: dict[str, str] = {}
    for target, names, line in imports(module):
        if target == module:
            continue
        for name in names:
            if name.startswith("_") and not name.startswith("__"):
                yield f"{module}:{line} imports {target}.{name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES:
                    aliases[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom):
            target = resolve(module, node)
            for alias in node.names:
                if f"{target}.{alias.name}" in MODULES:
                    aliases[alias.asname or alias.name] = f"{target}.{alias.name}"
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in aliases and node.attr.startswith("_")
                and not node.attr.startswith("__")):
            yield f"{module}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}"


def test_private_names_are_found(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The checker sees ``from m import _x`` and ``m._x`` of another project module."""
    (tmp_path / "a.py").write_text("from b import _hidden\nimport b\nb._state = 1\n")
    (tmp_path / "b.py").write_text("_hidden = 1\n_state = 0\n")
    monkeypatch.setitem(MODULES, "a", tmp_path / "a.py")
    monkeypatch.setitem(MODULES, "b", tmp_path / "b.py")
    assert sorted(private_uses("a")) == ["a:1 imports b._hidden", "a:3 uses b._state"]


def test_no_private_names_across_modules() -> None:
    found = [use for m in MODULES for use in private_uses(m)]
    assert not found, "private names used across modules: " + "; ".join(found)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_stay_small(name: str) -> None:
    path = MODULES[name]
    if str(path.relative_to(ROOT)).startswith(PROGRAMS):
        return
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines; split it"


def test_mlflow_is_imported_only_by_the_tracking_package() -> None:
    outside = []
    for name, path in MODULES.items():
        if name.startswith("runners.tracking"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            outside += [f"{name}:{node.lineno}" for n in names
                        if n == "mlflow" or n.startswith("mlflow.")]
    assert not outside, f"mlflow imported outside runners/tracking/: {outside}"


def test_no_kind_name_is_tested_outside_the_kinds_package() -> None:
    """Nothing outside ``runners/kinds/`` compares ``bench.kind`` (or ``kind``) to a name."""
    kinds = {p.stem for p in (ROOT / "runners" / "kinds").glob("*.py")} - {
        "__init__", "base", "registry"}
    found = []
    for name, path in MODULES.items():
        if name.startswith("runners.kinds"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Compare):
                continue
            parts = [node.left, *node.comparators]
            texts = {ast.unparse(p) for p in parts}
            named = any(isinstance(p, ast.Constant) and p.value in kinds for p in parts) or any(
                isinstance(p, ast.Tuple | ast.List | ast.Set) and any(
                    isinstance(e, ast.Constant) and e.value in kinds for e in p.elts)
                for p in parts)
            if named and any(t.endswith("kind") for t in texts):
                found.append(f"{name}:{node.lineno}: {ast.unparse(node)}")
    assert not found, f"a benchmark kind's name tested outside runners/kinds/: {found}"
