"""The code's shape: no import cycles, the library free of the UI, one entry point that applies its settings."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import rag
from rag import QuestionError, Rag, RagError

REPO = Path(__file__).resolve().parent.parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """Every import (top-level or inside a function) between modules of rag/ and ui/."""
    files = sorted((REPO / "rag").rglob("*.py")) + sorted((REPO / "ui").rglob("*.py"))
    modules = {_module_name(f): f for f in files}
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
                # "from . import answer" imports the submodule rag.answer
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
            if n.count(".") == 0 and m.startswith(n + "."):
                continue  # a submodule reaching its package's __init__ is how Python loads it
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


def test_no_module_imports_one_that_imports_it_back():
    graph = import_graph()
    assert "rag.index" in graph and "ui.app" in graph  # the walk found the code
    assert _cycle(graph) == [], " -> ".join(_cycle(graph))


def test_the_cycle_check_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) == []


def test_the_library_imports_nothing_from_the_ui():
    assert not {m for m in import_graph() if m.startswith("rag")} & {
        t for m, ts in import_graph().items() if m.startswith("rag") and m != "rag.cli" for t in ts if t.startswith("ui")}
    code = "import rag, rag.api, sys; print(sorted(m for m in sys.modules if m == 'ui' or m.startswith('ui.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO / "tests")
    assert out.stdout.strip() == "[]"


def test_the_ui_uses_only_the_public_api():
    graph = import_graph()
    used = {t for m, ts in graph.items() if m.startswith("ui") for t in ts if t.startswith("rag")}
    assert used <= {"rag"}, used  # no rag.cli, no rag.chunk: only what `import rag` exports


def test_the_servers_use_only_the_public_api():
    graph = import_graph()
    for server in ("rag.server", "rag.mcp_server"):
        assert {t for t in graph[server] if t.startswith("rag")} == {"rag"}, (server, graph[server])


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
