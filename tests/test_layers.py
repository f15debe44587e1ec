"""The layer rule: the core (``b24desk/``) imports nothing of the web layer -- no Flask, click or
werkzeug, and none of ``app``, ``web``, ``reports``, ``webhooks`` or ``demo`` -- so it can be run,
tested and reused without a web framework. Imports are read from the source with ``ast`` (also
those inside functions, and module names passed to ``importlib.import_module``/``__import__``), and
the core is imported for real in a fresh interpreter to see what it pulls in.

Also here: the import cycles the layering removed stay removed, and pyproject.toml pins the same
dependencies as requirements*.txt (``./dev`` installs from those)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "b24desk"
WEB = ("flask", "click", "werkzeug", "jinja2", "app", "web", "reports", "webhooks", "demo")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """``(line, absolute module name)`` of every import in ``source`` (a module named ``module``)."""
    package = module if is_package else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.append((node.lineno, name))
            out += [(node.lineno, f"{name}.{a.name}") for a in node.names if a.name != "*"]
        elif isinstance(node, ast.Call):
            f = node.func
            called = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            if (
                called in ("import_module", "__import__")
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                out.append((node.lineno, node.args[0].value))
    return out


def web_imports(source: str, module: str, is_package: bool = False) -> list[str]:
    return [f"line {line}: {name}" for line, name in imports(source, module, is_package) if name.split(".")[0] in WEB]


def core_files() -> list[Path]:
    return sorted(CORE.rglob("*.py"))


def test_the_core_imports_no_web_layer():
    bad = {}
    for path in core_files():
        found = web_imports(path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py")
        if found:
            bad[str(path.relative_to(ROOT))] = found
    assert len(core_files()) > 40  # the walk really saw the core
    assert bad == {}, f"the core must not import the web layer: {bad}"


@pytest.mark.parametrize(
    "snippet",
    [
        "import flask",
        "from flask import g",
        "from click.core import ParameterSource",
        "import werkzeug.exceptions",
        "from app import create_app",
        "import web.server",
        "from reports.warm import Warmer",
        "import webhooks",
        "import demo",
        "def f():\n    from web.db import get_db",
        "import importlib\nimportlib.import_module('reports.push')",
        "__import__('demo')",
    ],
)
def test_the_rule_sees_every_form_of_import(snippet):
    assert web_imports(snippet, "b24desk.some_module")


def test_relative_imports_resolve_inside_the_core():
    assert web_imports("from .. import flask", "b24desk.kpi.x") == []  # b24desk.flask, not flask
    assert [n for _, n in imports("from ..store import open_db", "b24desk.push.x")] == [
        "b24desk.store",
        "b24desk.store.open_db",
    ]
    assert [n for _, n in imports("from . import data", "b24desk.push", is_package=True)] == [
        "b24desk.push",
        "b24desk.push.data",
    ]


def test_importing_the_core_loads_no_web_module():
    """Every core module imported in a fresh interpreter: no Flask, werkzeug or web package gets
    loaded (click is not asked here: sqlite-utils, a core dependency, imports it itself)."""
    code = (
        "import importlib, pkgutil, sys, b24desk\n"
        "for m in pkgutil.walk_packages(b24desk.__path__, 'b24desk.'):\n"
        "    if not m.name.endswith('__main__'):\n"
        "        importlib.import_module(m.name)\n"
        "print(' '.join(sorted({k.split('.')[0] for k in sys.modules})))"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    loaded = set(res.stdout.split())
    assert "b24desk" in loaded and "sqlite_utils" in loaded
    assert loaded & {"flask", "werkzeug", "jinja2", "app", "web", "reports", "webhooks", "demo"} == set()


def test_no_module_imports_the_app_module():
    """``app.py`` is only what ``flask --app app`` finds; the blueprints take ``get_db`` from web.db."""
    bad = []
    for folder in ("b24desk", "web", "reports", "webhooks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            names = imports(path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py")
            bad += [f"{path.relative_to(ROOT)}:{line}" for line, n in names if n == "app" or n.startswith("app.")]
    assert bad == []


def _graph() -> dict[str, set[str]]:
    mods = {module_name(p): p for p in core_files()}
    graph = {}
    for mod, path in mods.items():
        deps = set()
        for _, name in imports(path.read_text(encoding="utf-8"), mod, path.name == "__init__.py"):
            while name and name not in mods:
                name = name.rpartition(".")[0]
            if name and name != mod and not mod.startswith(name + "."):  # a package's own __init__
                deps.add(name)
        graph[mod] = deps
    return graph


@pytest.mark.parametrize(
    "a, b",
    [
        ("b24desk.client", "b24desk.installations"),
        ("b24desk.inbox", "b24desk.scheduler"),
        ("b24desk.push.digests", "b24desk.push.alerts"),
    ],
)
def test_the_cycles_the_layering_broke_stay_broken(a, b):
    g = _graph()
    assert not (b in g[a] and a in g[b]), f"{a} and {b} import each other"


def _pins(lines) -> dict[str, str]:
    out = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            out[re.sub(r"[-_.]+", "-", name).lower()] = version
    return out


def test_pyproject_pins_what_the_requirement_files_pin():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime = _pins((ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines())
    dev = _pins((ROOT / "requirements-dev.txt").read_text(encoding="utf-8").splitlines())
    assert _pins(project["dependencies"]) == runtime
    assert _pins(project["optional-dependencies"]["dev"]) == dev
    assert all(runtime.values()) and all(dev.values())  # every one pinned (==)


def test_the_core_has_no_import_cycle():
    """Not even through imports inside functions: each module can be read after those it uses."""
    g = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(mod: str, path: list[str]) -> None:
        state[mod] = 1
        for dep in sorted(g[mod]):
            if state.get(dep) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(dep) :] + [dep]))
            if dep not in state:
                visit(dep, path + [dep])
        state[mod] = 2

    for mod in sorted(g):
        if mod not in state:
            visit(mod, [mod])
    assert len(g) > 40 and any(g.values())
