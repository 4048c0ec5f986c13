"""The MCP server (``python -m rag mcp``), driven by the MCP SDK's own clients.

Fast tests connect the SDK's ``Client`` in-process to ``build_server`` over the fake-model index.
Slow ones start the real command as a subprocess and talk to it over stdio (``stdio_client`` and
``ClientSession``) or streamable HTTP, against the session's real index. Every wait is bounded.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import pytest
from conftest import REPO, clean_env
from mcp import ClientSession, StdioServerParameters
from mcp.client.client import Client
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

import rag
from rag import Answer
from rag.config import DEFAULT_CORPUS
from rag.surfaces.mcp import build_server

QUESTION = "Who offered to mediate between Kabul and Islamabad?"
IRAN_DOC = "004_f1ed5df54c6c908a"
TOOLS = {"search", "ask", "timeline", "get_document"}
STARTUP_S = 240  # the server indexes (when it must) and loads the model before answering
CALL_S = 120


def _text(result) -> str:
    return "\n".join(block.text for block in result.content if block.type == "text")


# ---------------------------------------------------------------- in-process, fake model


def _in_process(r: rag.Rag, steps: Callable[[Client], Awaitable[None]]) -> None:
    async def main() -> None:
        with anyio.fail_after(CALL_S):
            async with Client(build_server(r, warm=False)) as client:
                await steps(client)

    anyio.run(main)


def test_tools_listed_with_input_and_output_schemas(fake_rag: rag.Rag):
    async def steps(client: Client) -> None:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == TOOLS
        assert tools["ask"].input_schema["required"] == ["question"]
        assert set(tools["ask"].input_schema["properties"]) == {"question", "k", "since", "until", "source",
                                                                 "reference_day", "history"}
        history = tools["ask"].input_schema["properties"]["history"]
        assert history["type"] == "array" and history["default"] == []
        assert tools["search"].input_schema["required"] == ["query"]
        assert set(tools["get_document"].input_schema["properties"]) == {"doc_id", "start", "end"}
        assert {"answer", "abstained", "citations", "evidence"} <= set(tools["ask"].output_schema["required"])
        assert tools["search"].output_schema["required"] == ["results"]
        timeline = tools["timeline"]
        assert timeline.input_schema["required"] == ["query"]
        assert set(timeline.input_schema["properties"]) == {"query", "k", "all_events", "since", "until", "source"}
        assert timeline.input_schema["properties"]["k"]["default"] == 0
        assert set(timeline.output_schema["required"]) == {"query", "variants", "articles", "main_only", "min_sources", "more", "entries"}
        entry = timeline.output_schema["$defs"]["TimelineEvent"]
        assert set(entry["required"]) == {"date", "precision", "basis", "stated", "text", "source", "also"}
        assert "page" not in timeline.output_schema["$defs"]["TimelineSource"]["required"]
        for t in tools.values():
            assert t.annotations.read_only_hint and t.description
        assert "[n]" in tools["ask"].description and "doc_id" in tools["get_document"].description
        assert "what happened when" in timeline.description.lower() and "cite" in timeline.description
        assert "`timeline`" in (client.instructions or "")
        assert "5 news articles" in (client.instructions or "")

    _in_process(fake_rag, steps)


def test_search_and_document_in_process(fake_rag: rag.Rag):
    async def steps(client: Client) -> None:
        found = await client.call_tool("search", {"query": "Istanbul peace talks", "k": 3})
        assert not found.is_error, _text(found)
        results = found.structured_content["results"]
        assert [p["n"] for p in results] == [1, 2, 3]
        first = results[0]
        assert set(first) >= {"n", "doc_id", "title", "date", "source", "url", "start", "end", "text", "score"}
        assert f"[1] {first['title']}" in _text(found) and f"{first['doc_id']} chars {first['start']}-" in _text(found)

        span = await client.call_tool("get_document", {"doc_id": first["doc_id"], "start": first["start"],
                                                       "end": first["end"]})
        assert not span.is_error, _text(span)
        assert span.structured_content["text"] == first["text"]
        whole = await client.call_tool("get_document", {"doc_id": first["doc_id"]})
        doc = whole.structured_content
        assert doc["start"] == 0 and doc["end"] == doc["length"] == len(doc["text"])
        assert doc["text"] == fake_rag.document(first["doc_id"])["text"]
        assert doc["text"][first["start"]:first["end"]] == first["text"]
        past = await client.call_tool("get_document", {"doc_id": first["doc_id"], "start": 10, "end": 10**9})
        assert past.is_error and f"the document has {doc['length']:,} characters" in _text(past)  # as over HTTP

        none = await client.call_tool("search", {"query": "Istanbul", "since": "2030"})
        assert not none.is_error and none.structured_content == {"results": []}

    _in_process(fake_rag, steps)


def test_timeline_in_process(fake_rag: rag.Rag):
    async def steps(client: Client) -> None:
        result = await client.call_tool("timeline", {"query": "Araghchi"})
        assert not result.is_error, _text(result)
        out = result.structured_content
        assert out == fake_rag.timeline("Araghchi").to_dict()
        assert out["query"] == "Araghchi" and out["variants"] == {"Araghchi": ["Araqchi"]}
        dates = [e["date"] for e in out["entries"]]
        assert dates == sorted(dates) and {d[:4] for d in dates} >= {"2018", "2025"}
        for e in out["entries"]:
            for src in [e["source"], *e["also"]]:
                assert src["text"] == fake_rag.document(src["doc_id"])["text"][src["start"]:src["end"]]
        text = _text(result)
        assert text.startswith("Timeline of 'Araghchi': ") and "Araghchi also spelled Araqchi" in text
        assert "week of 2018-12-24 (“Last week” in an article of 2018-12-31)" in text
        for e in out["entries"]:
            src = e["source"]
            assert e["text"].split()[0] in text
            assert f"source: {src['title']} ({src['source']}, {src['date']}) {src['doc_id']} " \
                   f"chars {src['start']}-{src['end']}" in text
        assert text.count("source: ") == len(out["entries"])

        top = await client.call_tool("timeline", {"query": "Araghchi", "k": 1, "since": "2025", "source": "trends"})
        assert not top.is_error and [e["date"] for e in top.structured_content["entries"]] == ["2025-11-09"]
        none = await client.call_tool("timeline", {"query": "Araghchi", "until": "1990"})
        assert not none.is_error and none.structured_content["entries"] == []
        assert "No dated event about 'Araghchi' found" in _text(none)

    _in_process(fake_rag, steps)


def test_errors_are_tool_errors_with_the_library_message(fake_rag: rag.Rag):
    async def steps(client: Client) -> None:
        cases = [
            ("ask", {"question": "What happened?", "since": "yesterday"}, "since: not a date: 'yesterday'"),
            ("search", {"query": "talks", "until": "2023-13"}, "until: not a date"),
            ("ask", {"question": "   "}, "the question is empty"),
            ("ask", {"question": "why " * 600}, "the limit is 2,000"),
            ("ask", {"question": "What happened this week?", "reference_day": "soon"}, "reference day: not a date"),
            ("get_document", {"doc_id": "no_such_doc"}, "no article with doc_id 'no_such_doc'"),
            ("get_document", {"doc_id": "004_f1ed5df54c6c908a", "start": 50, "end": 10}, "bad span 50-10"),
            ("search", {"query": "talks", "k": 0}, "greater than or equal to 1"),
            ("timeline", {"query": "  "}, "the question is empty"),
            ("timeline", {"query": "Araghchi", "since": "yesterday"}, "since: not a date: 'yesterday'"),
            ("timeline", {"query": "Araghchi", "k": -1}, "greater than or equal to 0"),
        ]
        for name, args, message in cases:
            result = await client.call_tool(name, args)
            assert result.is_error, (name, args)
            assert message in _text(result), _text(result)
            assert "Traceback" not in _text(result)

    _in_process(fake_rag, steps)


# ---------------------------------------------------------------- a real subprocess over stdio


def _stdio(args: list[str], steps: Callable[[ClientSession], Awaitable[None]], errlog: Path) -> None:
    """Run ``python -m rag mcp ARGS`` and ``steps`` against it over stdio; the server's standard error
    goes to ``errlog`` (and into the failure message)."""
    params = StdioServerParameters(command=sys.executable, args=["-m", "rag", "mcp", *args], cwd=str(REPO),
                                   env=clean_env())

    garbled: list[Exception] = []  # lines on the server's standard output that are not protocol messages

    async def on_message(message) -> None:
        if isinstance(message, Exception):
            garbled.append(message)

    async def main() -> None:
        with errlog.open("w") as err, anyio.fail_after(STARTUP_S + 4 * CALL_S):
            async with stdio_client(params, errlog=err) as (read, write), \
                    ClientSession(read, write, read_timeout_seconds=STARTUP_S, message_handler=on_message) as session:
                init = await session.initialize()
                assert init.server_info.name == "rag"
                await steps(session)
        assert not garbled, f"the server wrote other things than MCP messages to stdout: {garbled}"

    try:
        anyio.run(main)
    except BaseException:
        print(f"server stderr:\n{errlog.read_text() if errlog.exists() else ''}", file=sys.stderr)
        raise


def test_stdio_ask_search_and_document(real_rag: rag.Rag, tmp_path: Path):
    article = real_rag.document(IRAN_DOC)["text"]

    async def steps(session: ClientSession) -> None:
        listed = await session.list_tools()
        tools = {t.name: t for t in listed.tools}
        assert set(tools) == TOOLS
        assert all(t.input_schema["type"] == "object" and t.output_schema for t in tools.values())

        answer = await session.call_tool("ask", {"question": QUESTION})
        assert not answer.is_error, _text(answer)
        out = answer.structured_content
        assert out["question"] == QUESTION and not out["abstained"]
        assert "[1]" in out["answer"] and "Araghchi" in out["answer"]
        assert IRAN_DOC in [c["doc_id"] for c in out["citations"]]
        assert out["evidence"] and out["evidence"][0]["doc_id"] == out["citations"][out["evidence"][0]["n"] - 1]["doc_id"]
        text = _text(answer)
        short = out.get("short_answer")
        first = f"Answer: {short['text']} [{short['n']}]\n" if short else ""
        assert text.startswith(first + out["answer"]) and "Sources:" in text
        c1 = out["citations"][0]
        assert f"[1] {c1['title']} ({c1['source']}, {c1['date']}) {c1['doc_id']} chars {c1['start']}-{c1['end']}" in text

        # a follow-up with the conversation so far: read as one standalone question
        follow = await session.call_tool("ask", {"question": "which Pakistani minister did he speak with by phone?",
                                                 "history": [{"question": QUESTION, "answer": out["answer"]}]})
        assert not follow.is_error, _text(follow)
        read_as = follow.structured_content["standalone_question"]
        assert "Araghchi" in read_as and " he " not in read_as and f"(Read as: {read_as})" in _text(follow)
        assert "Ishaq Dar" in follow.structured_content["answer"]

        cited = next(c for c in out["citations"] if c["doc_id"] == IRAN_DOC)
        span = await session.call_tool("get_document", {"doc_id": IRAN_DOC, "start": cited["start"], "end": cited["end"]})
        assert not span.is_error, _text(span)
        doc = span.structured_content
        assert doc["text"] == article[cited["start"]:cited["end"]] == cited["text"]
        assert (doc["doc_id"], doc["start"], doc["end"], doc["length"]) == (IRAN_DOC, cited["start"], cited["end"],
                                                                            len(article))
        assert doc["title"] == cited["title"] and doc["source"] == "Trends-US" and doc["date"] == "2025-11-09"

        found = await session.call_tool("search", {"query": "Iran mediation offer", "k": 3, "source": "trends"})
        assert not found.is_error, _text(found)
        results = found.structured_content["results"]
        assert 1 <= len(results) <= 3 and all(p["source"] == "Trends-US" for p in results)
        assert results[0]["text"] == real_rag.document(results[0]["doc_id"])["text"][results[0]["start"]:results[0]["end"]]

        events = await session.call_tool("timeline", {"query": "Araghchi"})
        assert not events.is_error, _text(events)
        timeline = events.structured_content
        assert timeline == real_rag.timeline("Araghchi").to_dict()
        assert timeline["variants"] == {"Araghchi": ["Araqchi"]}
        assert [e["date"] for e in timeline["entries"]] == ["2018-12-24", "2018-12-31", "2025-11-09"]
        assert "(“Last week” in an article of 2018-12-31)" in _text(events)

        bad_date = await session.call_tool("ask", {"question": QUESTION, "until": "last year"})
        assert bad_date.is_error and "until: not a date: 'last year'" in _text(bad_date)
        unknown = await session.call_tool("get_document", {"doc_id": "999_nothing"})
        assert unknown.is_error and "no article with doc_id '999_nothing'" in _text(unknown)
        again = await session.call_tool("get_document", {"doc_id": IRAN_DOC, "start": 0, "end": 9})
        assert not again.is_error and again.structured_content["text"] == "Trends-US"  # errors leave it serving

    errlog = tmp_path / "stderr.txt"
    _stdio(["--index-dir", str(real_rag.settings.index_path)], steps, errlog)
    assert "rag MCP server on stdio" in errlog.read_text()


@pytest.mark.slow
def test_stdio_builds_a_missing_index_then_notes_a_stale_one(tmp_path: Path):
    """Indexing before serving writes nothing to the protocol channel; a stale index answers, with a note."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(DEFAULT_CORPUS / f"{IRAN_DOC}.txt", corpus)
    args = ["--corpus", str(corpus), "--index-dir", str(tmp_path / "idx")]

    async def steps(session: ClientSession) -> None:
        found = await session.call_tool("search", {"query": "Araghchi", "k": 2})
        assert not found.is_error, _text(found)
        assert {p["doc_id"] for p in found.structured_content["results"]} == {IRAN_DOC}

    first = tmp_path / "first.txt"
    _stdio(args, steps, first)
    log = first.read_text()
    assert "Indexing" in log and ": 1 documents, " in log and "Embedding" in log

    shutil.copy(DEFAULT_CORPUS / "000_22d48636f63afd97.txt", corpus)  # the corpus changed: the index is stale
    second = tmp_path / "second.txt"
    _stdio(args, steps, second)
    log = second.read_text()
    assert "out of date" in log and "Indexed" not in log


# ---------------------------------------------------------------- streamable HTTP


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(proc: subprocess.Popen, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"nothing listens on port {port} after {timeout:.0f}s")


def test_streamable_http(real_rag: rag.Rag, tmp_path: Path):
    port = _free_port()
    errlog = tmp_path / "stderr.txt"
    with errlog.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rag", "mcp", "--transport", "http", "--port", str(port),
             "--index-dir", str(real_rag.settings.index_path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, cwd=REPO, env=clean_env())
    try:
        _wait_for_port(proc, port, STARTUP_S)

        async def main() -> None:
            with anyio.fail_after(STARTUP_S):
                async with streamable_http_client(f"http://127.0.0.1:{port}/mcp") as (read, write), \
                        ClientSession(read, write, read_timeout_seconds=CALL_S) as session:
                    await session.initialize()
                    assert {t.name for t in (await session.list_tools()).tools} == TOOLS
                    found = await session.call_tool("search", {"query": QUESTION, "k": 2})
                    assert not found.is_error, _text(found)
                    assert IRAN_DOC in [p["doc_id"] for p in found.structured_content["results"]]
                    assert "[1] " in _text(found)

        anyio.run(main)
        assert f"http://127.0.0.1:{port}/mcp" in errlog.read_text()
    except BaseException:
        print(f"server stderr:\n{errlog.read_text()}", file=sys.stderr)
        raise
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def test_http_port_in_use_is_a_clear_error(run_cli, tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli("mcp", "--transport", "http", "--port", str(port),
                       "--index-dir", str(tmp_path / "idx"), timeout=60)
    assert done.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert not (tmp_path / "idx").exists()  # refused before any indexing


def test_the_ask_text_shows_sources_that_differ():
    from rag.answer.conflicts import Conflict, ConflictValue
    from rag.surfaces.mcp import AskResult
    from rag.surfaces.render import answer_text

    out = {"question": "q", "answer": "About 14,000 [1]", "abstained": False, "citations": [], "evidence": [],
           "timings_ms": {}, "conflicts": [{"what": "the number of US troops", "kind": "update", "values": [
               {"value": "14,000", "as_of": "2019-01-23", "citations": [1], "dates": ["2019-01-23"], "doc_ids": ["a"]},
               {"value": "7,000", "as_of": "2018-12-31", "citations": [2], "dates": ["2018-12-31"], "doc_ids": ["b"]}]}]}
    assert AskResult.model_validate(out).conflicts[0].values[1].value == "7,000"
    answer = Answer(question="q", answer=out["answer"], abstained=False, conflicts=[
        Conflict(c["what"], c["kind"], [ConflictValue(**v) for v in c["values"]]) for c in out["conflicts"]])
    assert answer.to_dict() == out  # the text and the structured result say the same
    text = answer_text(answer)
    assert "differently over time (newest first)" in text and "7,000 as of 2018-12-31 [2]" in text
