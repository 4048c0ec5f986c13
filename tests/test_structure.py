"""The code's shape: no import cycles, the library free of the UI, one entry point that applies its settings."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import rag
from rag import QuestionError, Rag, RagError

REPO = Path(__file__).resolve().parent.parent


def _module_name(path: Path, root: Path = REPO) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def import_graph(root: Path = REPO) -> dict[str, set[str]]:
    """Every import (top-level or inside a function) between modules of ``root``/rag/."""
    files = sorted((root / "rag").rglob("*.py"))
    modules = {_module_name(f, root): f for f in files}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    pkg = package.split(".")
                    pkg = pkg[: len(pkg) - (node.level - 1)]
                    base = ".".join(pkg + ([base] if base else []))
                # "from rag.answer import extract" imports the submodule rag.answer.extract
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for t in targets:
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t and t != name:
                    graph[name].add(t)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str]:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if m.startswith(n + ".") and n == "rag":
                continue  # a module reaching the package's __init__ (the public API) is how Python loads it
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (found := visit(n)):
                return found
        stack.pop()
        state[m] = 2
        return []

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return []


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


# The surfaces: each a way in for users, none importing another (the launcher starts the servers).
SURFACES = ("rag.surfaces.cli", "rag.surfaces.http", "rag.surfaces.mcp", "rag.surfaces.ui")
# What every surface shares besides the public API: the one text renderer and progress printer.
SHARED = {"rag.surfaces.render", "rag.surfaces.progress", "rag.surfaces.schema", "rag.surfaces"}


def surface_of(module: str) -> str:
    return next((s for s in SURFACES if _inside(module, s)), "")


def cross_surface_imports(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    """Imports of one surface by another (the CLI starting the browser chat, the UI rendering
    with the CLI's helpers)."""
    return {(m, t) for m, ts in graph.items() for t in ts
            if surface_of(m) and surface_of(t) and surface_of(m) != surface_of(t)}


def ui_imports(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    """Imports of the browser UI by anything but the UI and the launcher."""
    return {(m, t) for m, ts in graph.items() for t in ts
            if _inside(t, "rag.surfaces.ui") and not _inside(m, "rag.surfaces.ui") and m != "rag.launcher"}


def private_imports(graph: dict[str, set[str]], client: str, allowed: set[str]) -> set[tuple[str, str]]:
    """Imports by the modules of ``client`` of anything in rag but the public API and ``allowed``."""
    return {(m, t) for m, ts in graph.items() if _inside(m, client) for t in ts
            if _inside(t, "rag") and t != "rag" and not _inside(t, client) and t not in allowed}


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += graph.get(m, ())
    return seen


def test_no_module_imports_one_that_imports_it_back():
    graph = import_graph()
    assert {"rag.index.build", "rag.surfaces.ui.app", "rag.surfaces.cli"} <= set(graph)  # the walk found the code
    assert _cycle(graph) == [], " -> ".join(_cycle(graph))


def test_the_checks_find_what_they_look_for():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) == []
    bad = {"rag.api": {"rag.surfaces.ui.handlers", "rag.index.build"}, "rag.surfaces.cli": {"rag.surfaces.ui.app"},
           "rag.surfaces.ui.app": {"rag.surfaces.ui.handlers", "rag.index.build"},
           "rag.surfaces.ui.handlers": {"rag", "rag.surfaces.render"}, "rag.index.build": {"rag.tools.metrics"},
           "rag.tools.metrics": set(), "rag": {"rag.api"}}
    assert ui_imports(bad) == {("rag.api", "rag.surfaces.ui.handlers"), ("rag.surfaces.cli", "rag.surfaces.ui.app")}
    assert cross_surface_imports(bad) == {("rag.surfaces.cli", "rag.surfaces.ui.app")}
    assert private_imports(bad, "rag.surfaces.ui", SHARED) == {("rag.surfaces.ui.app", "rag.index.build")}
    assert "rag.tools.metrics" in reachable(bad, "rag.api")


def test_a_planted_import_of_one_surface_by_another_is_found(tmp_path: Path):
    """The check reads the code as it is: a copy of rag/ with the CLI importing the HTTP server fails it."""
    shutil.copytree(REPO / "rag", tmp_path / "rag", ignore=shutil.ignore_patterns("models", "__pycache__"))
    cli = tmp_path / "rag" / "surfaces" / "cli.py"
    cli.write_text(cli.read_text() + "\n\ndef _planted():\n    from rag.surfaces.http import run\n    return run\n")
    assert cross_surface_imports(import_graph(tmp_path)) == {("rag.surfaces.cli", "rag.surfaces.http")}
    assert cross_surface_imports(import_graph()) == set()


def test_no_surface_imports_another():
    graph = import_graph()
    assert {m for m in graph if surface_of(m)} >= {"rag.surfaces.cli", "rag.surfaces.http", "rag.surfaces.mcp",
                                                   "rag.surfaces.ui.app", "rag.surfaces.ui.handlers"}
    assert cross_surface_imports(graph) == set()


def test_the_library_imports_nothing_from_the_ui():
    assert ui_imports(import_graph()) == set()
    code = "import rag, rag.api, sys; print(sorted(m for m in sys.modules if m.startswith('rag.surfaces.ui')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO / "tests")
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("surface", SURFACES)
def test_every_surface_uses_only_the_public_api(surface: str):
    # the public API and the renderer every surface shares; the CLI also runs the tools
    # (eval, bench, train: programs of their own, never on the query path)
    graph = import_graph()
    allowed = SHARED | ({m for m in graph if _inside(m, "rag.tools")} if surface == "rag.surfaces.cli" else set())
    assert private_imports(graph, surface, allowed) == set(), surface


def test_the_query_path_needs_no_tool():
    """Benchmarks, evaluation and training are not imported to answer a question."""
    used = reachable(import_graph(), "rag")
    assert not {m for m in used if _inside(m, "rag.tools")}, sorted(m for m in used if _inside(m, "rag.tools"))


def test_keyword_overrides_are_applied_to_the_settings_given(fake_settings):
    r = Rag(fake_settings, k=3, rerank="learned")
    assert (r.settings.k, r.settings.rerank) == (3, "learned")
    assert r.settings.index_dir == fake_settings.index_dir  # the rest is kept
    with pytest.raises(RagError, match="k must be at least 1"):
        Rag(fake_settings, k=0)
    with pytest.raises(RagError, match="unknown setting: colour"):
        Rag(fake_settings, colour="red")


def test_a_question_longer_than_the_limit_is_refused_with_the_limit(fake_rag):
    with pytest.raises(QuestionError, match=r"20,00\d characters long; the limit is 2,000"):
        fake_rag.ask("why " * 5000 + "?")
    with pytest.raises(QuestionError, match="limit"):
        fake_rag.search("why " * 5000)


def test_public_names_are_exported():
    for name in ("Rag", "Settings", "Filters", "FilterError", "Conversation", "Answer", "Evidence", "RagIndexError"):
        assert hasattr(rag, name)
