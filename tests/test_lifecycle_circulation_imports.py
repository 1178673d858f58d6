"""Which imports the lifecycle core and the circulation service allow (issue 17): no
circles between their modules (imports inside functions count), the pure core never
imports the service, a web framework or a database driver, the service never imports
``gateway/``, and no module of any room (every top-level package and ``tools/``; not
``tests/`` or ``bench/``) grows past ~1,000 lines."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROOMS = ("lifecycle", "circulation")
# every room the size rule covers (issue 17): the packages of the wheel and tools/
ALL_ROOMS = ("gateway", "sru", "search", "indexers", "connectors", "z3950", "sip2", "lifecycle", "circulation",
             "config", "tools")
MAX_LINES = 1000


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for room in ROOMS for p in sorted((ROOT / room).rglob("*.py"))}


def imported(path: Path, name: str, known: set[str]) -> set[str]:
    """Every module ``name`` (at ``path``) imports, anywhere in the file, as absolute
    names; ``from package import submodule`` counts as importing the submodule."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            subs = {f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in known}
            out.update(subs or {mod})
            if len(subs) < len(node.names):
                out.add(mod)
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imported(path, name, known) for name, path in mods.items()}


def test_no_import_circles_in_lifecycle_and_circulation():
    full = graph()
    g = {m: {d for d in deps if d in full and d != m} for m, deps in full.items()}
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g[v]:
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
                cycles.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    assert cycles == [], f"import circles: {cycles}"


def test_the_graph_sees_relative_and_function_level_imports():
    g = graph()
    assert "circulation.routing" in g["circulation.holds"]          # from . import notices, routing
    assert "circulation.routing" in g["circulation.partners"]
    assert "lifecycle.reasons" in g["lifecycle.policies.placing"]   # from ..reasons import ...
    assert "circulation.partners" in g["circulation"]               # the leg's registration


def test_routing_knows_no_leg_and_partners_are_imported_only_by_the_package():
    g = graph()
    importers = sorted(m for m, deps in g.items() if "circulation.partners" in deps)
    assert importers == ["circulation"]
    for low in ("circulation.routing", "circulation.store", "circulation.schema", "circulation.notices"):
        assert not {"circulation.holds", "circulation.partners", "circulation.loans", "circulation.jobs"} & g[low], low


FORBIDDEN_IN_CORE = {"aiohttp", "sqlalchemy", "sqlite3", "psycopg", "psycopg2", "asyncpg", "aiosqlite",
                     "elasticsearch", "gateway", "circulation", "smtplib", "socket", "jinja2"}


@pytest.mark.parametrize("name", sorted(m for m in modules() if m.startswith("lifecycle")))
def test_the_lifecycle_core_stays_pure(name):
    deps = imported(modules()[name], name, set(modules()))
    bad = sorted(d for d in deps if d.split(".")[0] in FORBIDDEN_IN_CORE)
    assert bad == [], f"{name} imports {bad}"


@pytest.mark.parametrize("name", sorted(m for m in modules() if m.startswith("circulation")))
def test_the_service_never_imports_the_gateway(name):
    deps = imported(modules()[name], name, set(modules()))
    assert not [d for d in deps if d.split(".")[0] in ("gateway", "aiohttp")], name


def room_files() -> dict[str, Path]:
    return {str(p.relative_to(ROOT)): p for room in ALL_ROOMS for p in sorted((ROOT / room).rglob("*.py"))}


def test_every_room_is_a_package_of_the_wheel_or_tools():
    import tomllib
    found = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    packaged = {pattern.rstrip("*") for pattern in found["include"]}
    assert packaged | {"tools"} == set(ALL_ROOMS)
    assert len(room_files()) > 100


@pytest.mark.parametrize("name", sorted(room_files()))
def test_no_module_is_over_a_thousand_lines(name):
    n = len(room_files()[name].read_text().splitlines())
    assert n <= MAX_LINES, f"{name} has {n} lines"
