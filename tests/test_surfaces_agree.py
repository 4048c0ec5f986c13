"""Every surface is one program: ``rag ask``, ``rag ask --json``, the HTTP API's ``/v1/ask`` and the
MCP ``ask`` tool give the same answer to the same question, each started as a user starts it (a
subprocess over the same index; real HTTP and stdio clients)."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time

import anyio
import httpx
import pytest
from conftest import REPO, clean_env
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from rag.config import DEFAULT_CORPUS

QUESTIONS = ["Who offered to mediate between Kabul and Islamabad?", "When did Iran confirm talks with the Taliban?"]
START_S = 240


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def same(d: dict) -> dict:
    """The answer object without what may differ between two runs: the timings and retrieval scores."""
    out = {k: v for k, v in d.items() if k != "timings_ms"}
    out["citations"] = [{k: v for k, v in c.items() if k != "score"} for c in d["citations"]]
    return out


def text_answer(stdout: str) -> tuple[str, str, list[tuple[int, str, int, int]]]:
    """(the short-answer line, the answer, the sources as (n, doc_id, start, end)) from ``rag ask``'s text."""
    body, _, sources = stdout.partition("\nSources:\n")
    lines = body.strip().splitlines()
    short = lines.pop(0) if lines and lines[0].startswith("Answer: ") else ""
    cited = [(int(n), doc_id, int(a), int(b)) for n, doc_id, a, b in
             re.findall(r"^\[(\d+)\] .* (\S+) chars (\d+)-(\d+)", sources, re.M)]
    return short, " ".join(" ".join(lines).split()), cited


@pytest.mark.slow
def test_cli_text_json_http_and_mcp_give_the_same_answer(real_rag, run_cli):
    index = ["--index-dir", str(real_rag.settings.index_path), "--corpus", str(DEFAULT_CORPUS)]
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "rag", "serve", "--port", str(port), *index], cwd=REPO,
                              env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        cli_json, cli_text = {}, {}
        for q in QUESTIONS:
            proc = run_cli("ask", q, "--json", *index)
            assert proc.returncode == 0, proc.stderr
            cli_json[q] = json.loads(proc.stdout)
            proc = run_cli("ask", q, *index)
            assert proc.returncode == 0, proc.stderr
            cli_text[q] = text_answer(proc.stdout)

        deadline = time.monotonic() + START_S
        while True:
            assert server.poll() is None, server.stderr.read()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json().get("status") == "ok":
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the HTTP server did not start"
            time.sleep(0.2)
        http = {q: httpx.post(f"http://127.0.0.1:{port}/v1/ask", json={"question": q}, timeout=120).json()
                for q in QUESTIONS}
    finally:
        server.terminate()
        server.wait(10)

    mcp: dict[str, dict] = {}

    async def ask_all() -> None:
        params = StdioServerParameters(command=sys.executable, args=["-m", "rag", "mcp", *index], cwd=str(REPO),
                                       env=clean_env())
        with anyio.fail_after(START_S):
            async with stdio_client(params, errlog=subprocess.DEVNULL) as (read, write), \
                    ClientSession(read, write) as session:
                await session.initialize()
                for q in QUESTIONS:
                    result = await session.call_tool("ask", {"question": q})
                    assert not result.is_error, result.content
                    mcp[q] = result.structured_content

    anyio.run(ask_all)

    for q in QUESTIONS:
        d = cli_json[q]
        assert d["citations"] and d["answer"]
        assert same(http[q]) == same(d), q
        assert same(mcp[q]) == same(d), q
        short, answer, cited = cli_text[q]
        if d.get("short_answer"):
            assert short == f"Answer: {d['short_answer']['text']} [{d['short_answer']['n']}]"
        assert answer == " ".join(d["answer"].split())
        assert cited == [(c["n"], c["doc_id"], c["start"], c["end"]) for c in d["citations"]]
