"""``python -m rag serve``: the HTTP API on FastAPI + uvicorn (the ``serve`` extra).

OpenAI-compatible ``POST /v1/chat/completions`` (streamed or not; citations in
``message.annotations`` and ``message.citations``), ``GET /v1/models``, and the tool's own
``POST /v1/search``, ``POST /v1/ask``, ``POST /v1/timeline``, ``GET /v1/documents/{doc_id}``,
``POST /v1/documents`` and ``GET /healthz``. Every error is ``{"error": {"message", "type", "code"}}`` with its status.
Only the public API (``import rag``) is used.

One module of ~740 lines on purpose: the routes, the request limits, the error mapping and
the streaming of one HTTP API read together; each route only calls ``Rag``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import closing
from typing import Any, Literal
from urllib.parse import quote

from rag import (
    LOOPBACK_HOSTS,
    MAX_UPLOAD_BYTES,
    UPLOAD_SUFFIXES,
    Answer,
    AskEvent,
    Conversation,
    CorpusError,
    FilterError,
    Filters,
    MissingExtraError,
    QuestionError,
    Rag,
    RagError,
    RagIndexError,
    Settings,
    SpanError,
    Startup,
    UnknownModelError,
    __version__,
    citation_markers,
    document_dict,
    llm_backends,
    search_dict,
)

try:
    import uvicorn
    from fastapi import FastAPI, File, Query, Request, UploadFile
    from fastapi.exceptions import RequestValidationError
    from fastapi.openapi.utils import get_openapi
    from fastapi.responses import JSONResponse, StreamingResponse
    from pydantic import BaseModel, ConfigDict, Field
    from starlette.datastructures import Headers
    from starlette.exceptions import HTTPException

    from rag.surfaces.schema import AskResult, DocumentResult, SearchResult, TimelineResult
except ImportError as e:  # the 'serve' extra is not installed
    raise MissingExtraError(e.name or "fastapi", "serve") from None

MODEL = "rag"  # the extractive answer; "rag:<backend>" is an LLM backend's answer
MAX_JSON_BYTES = 1024 * 1024  # a JSON request body
MAX_UPLOAD_BODY = 5 * MAX_UPLOAD_BYTES  # a multipart upload, all files together
MAX_K = 50
RETRY_AFTER_S = 5  # told to clients while the index is built
REMEMBERED_ANSWERS = 1024  # answers whose evidence a follow-up can use


# ---------------------------------------------------------------- request bodies


class ScopeFields(BaseModel):
    """Which articles count: the filters shared by search, ask, chat and timeline."""

    since: str | None = Field(None, description="only articles dated on or after this day (YYYY-MM-DD, YYYY-MM or YYYY)")
    until: str | None = Field(None, description="only articles dated on or before this day (YYYY-MM-DD, YYYY-MM or YYYY)")
    source: str | list[str] | None = Field(None, description="only articles whose source contains this name (or one of these)")

    def filters(self) -> Filters:
        sources = (self.source,) if isinstance(self.source, str) else tuple(self.source or ())
        return Filters(since=self.since or "", until=self.until or "", sources=sources)


class FilterFields(ScopeFields):
    """Search filters and options shared by search, ask and chat."""

    k: int | None = Field(None, ge=1, le=MAX_K, description="passages to retrieve and cite (default: the server's k, 5)")
    reference_day: str | None = Field(None, description="the day a question about 'this week' refers to "
                                                        "(default: the newest article's date)")


class SearchRequest(FilterFields):
    query: str = Field(description="what to look for")


class TimelineRequest(ScopeFields):
    query: str = Field(description="the person, organisation, place or topic whose dated events to list")
    k: int | None = Field(None, ge=0, description="0 or absent: no limit; N: the N events reported by the most "
                                                  "articles (still oldest first)")
    all: bool = Field(False, description="false: the main events (reported by 3+ articles; every event in a small "
                                         "archive); true: every event")


class AskRequest(FilterFields):
    question: str = Field(description="the question")
    llm: str | None = Field(None, description="answer backend: none (extractive, the default), openai, llamacpp")


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str = Field(description="'text' parts are read; others are ignored")
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "\n".join(p.text for p in self.content if p.type in ("text", "input_text") and p.text)
        return self.content or ""


class ChatRequest(FilterFields):
    """An OpenAI chat completion request; other OpenAI fields (temperature, ...) are accepted and ignored."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(MODEL, description="'rag' (extractive answer) or 'rag:<backend>' (rag:openai, rag:llamacpp)")
    messages: list[ChatMessage] = Field(min_length=1, description="earlier turns, then the question (last, role user)")
    stream: bool | None = Field(False, description="send server-sent events (chat.completion.chunk), then [DONE]")


# ---------------------------------------------------------------- errors


class ApiError(Exception):
    """An error response: status, message, OpenAI-style type and code, extra headers."""

    TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
             405: "invalid_request_error", 413: "invalid_request_error", 429: "rate_limit_error",
             503: "service_unavailable", 504: "timeout"}

    def __init__(self, status: int, message: str, code: str = "", headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}

    def body(self) -> dict:
        kind = self.TYPES.get(self.status, "server_error" if self.status >= 500 else "invalid_request_error")
        return {"error": {"message": self.message, "type": kind, "code": self.code or None}}

    def response(self, **extra: object) -> JSONResponse:
        return JSONResponse({**extra, **self.body()}, status_code=self.status, headers=self.headers)


def api_error(e: Exception) -> ApiError:
    """The response for an exception raised while answering."""
    if isinstance(e, ApiError):
        return e
    if isinstance(e, (UnknownModelError, MissingExtraError)):
        return ApiError(404, str(e), "model_not_found")
    if isinstance(e, QuestionError):
        return ApiError(400, str(e), "invalid_filter" if isinstance(e, FilterError) else "invalid_question")
    if isinstance(e, (RagIndexError, CorpusError)):
        return ApiError(503, str(e), "index_unavailable")
    if isinstance(e, RagError):
        return ApiError(400, str(e), "invalid_request")
    return ApiError(500, f"internal error ({type(e).__name__}); the server log has the details", "internal_error")


class _Abandoned(Exception):
    """Raised in a worker when nobody waits for its answer any more (timeout or disconnect)."""


# ---------------------------------------------------------------- work on threads


class _Job:
    """One blocking call on a worker thread; its tokens and result arrive on the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.abandoned = threading.Event()

    def put(self, kind: str, value: object) -> None:
        if not self.abandoned.is_set():
            try:
                self._loop.call_soon_threadsafe(self._events.put_nowait, (kind, value))
            except RuntimeError:  # the event loop has closed
                pass

    def check(self) -> None:
        """Raise _Abandoned in the worker when nobody waits for the result any more."""
        if self.abandoned.is_set():
            raise _Abandoned()

    def follow(self, events: Iterator[AskEvent]) -> Answer:
        """Send ``Rag.ask_stream``'s tokens to the request as they come; the Answer. When the
        request is abandoned the stream is closed at the next event, and the model stops."""
        with closing(events):
            for event in events:
                self.check()
                if event.kind == "token" and event.text:
                    self.put("token", event.text)
        return event.answer

    async def next(self, deadline: float | None) -> tuple[str, Any]:
        """("token", text) or ("done", result); raises the worker's error, or 504 past ``deadline``."""
        try:
            timeout = None if deadline is None else max(0.0, deadline - self._loop.time())
            kind, value = await asyncio.wait_for(self._events.get(), timeout)
        except asyncio.TimeoutError:
            self.abandoned.set()
            raise ApiError(504, "the answer took too long; try a narrower question or again later",
                           "answer_timeout") from None
        if kind == "error":
            raise value
        return kind, value

    async def result(self, deadline: float | None) -> Any:
        try:
            while True:
                kind, value = await self.next(deadline)
                if kind == "done":
                    return value
        finally:
            self.abandoned.set()


class _Workers:
    """Runs blocking calls on threads: ``running`` at once, ``waiting`` more queued, the rest refused (429)."""

    def __init__(self, running: int, waiting: int) -> None:
        if running < 1 or waiting < 0:
            raise RagError("max_concurrent must be at least 1 and queue at least 0")
        self._slots = threading.BoundedSemaphore(running)
        self._lock = threading.Lock()
        self._admitted = 0
        self.capacity = running + waiting

    def start(self, fn: Callable[[_Job], object]) -> _Job:
        """``fn(job)`` on a worker thread; ApiError(429) when the queue is full."""
        with self._lock:
            if self._admitted >= self.capacity:
                raise ApiError(429, "the server is busy answering other questions; try again shortly",
                               "too_many_requests", {"Retry-After": "1"})
            self._admitted += 1
        job = _Job(asyncio.get_running_loop())
        threading.Thread(target=self._run, args=(job, fn), name="rag-worker", daemon=True).start()
        return job

    def _run(self, job: _Job, fn: Callable[[_Job], object]) -> None:
        kind, value = "done", None
        try:
            with self._slots:
                if job.abandoned.is_set():
                    return
                value = fn(job)
        except Exception as e:  # noqa: BLE001 - handed to the request, which answers with its status
            kind, value = "error", e
        finally:
            with self._lock:  # free the place before the answer goes out, so the client may ask again at once
                self._admitted -= 1
        job.put(kind, value)


# ---------------------------------------------------------------- the API's state


class _Server:
    """What the endpoints share: the Rag, the workers, the index build, recent answers."""

    def __init__(self, rag: Rag, max_concurrent: int, queue: int, answer_timeout: float | None) -> None:
        self.rag = rag
        self.workers = _Workers(max_concurrent, queue)
        self.answer_timeout = answer_timeout
        self.startup: Startup | None = None  # Rag.start's, when this server made the index usable
        self._answers: OrderedDict[str, Answer] = OrderedDict()
        self._answers_lock = threading.Lock()

    def deadline(self) -> float | None:
        return None if not self.answer_timeout else asyncio.get_running_loop().time() + self.answer_timeout

    def require_index(self) -> None:
        startup = self.startup
        if startup is None:
            return
        if startup.building:
            raise ApiError(503, f"the index is being built ({startup.building}); try again shortly", "index_building",
                           {"Retry-After": str(RETRY_AFTER_S)})
        if startup.error and not startup.usable:
            raise ApiError(503, f"the index could not be built: {startup.error}", "index_unavailable")

    def prepare_index(self, log: Callable[[str], None]) -> None:
        """``Rag.start("serve")``: a missing index is built (requests get 503 meanwhile) and a
        stale one updated, in the background; then the model is loaded ahead of the first question."""
        self.startup = self.rag.start("serve", log=log)

    def remember(self, content: str, answer: Answer) -> None:
        """Keep what a follow-up needs of an answer sent as ``content``."""
        kept = Answer(question=answer.question, answer=answer.answer, abstained=answer.abstained,
                      evidence=list(answer.evidence))
        with self._answers_lock:
            self._answers[content.strip()] = kept
            while len(self._answers) > REMEMBERED_ANSWERS:
                self._answers.popitem(last=False)

    def recall(self, question: str, content: str) -> Answer:
        """The earlier answer sent as ``content``, or one made from its text (no evidence)."""
        with self._answers_lock:
            known = self._answers.get(content.strip())
        if known is not None:
            return known
        return Answer(question=question, answer=content, abstained=not citation_markers(content))  # cites nothing

    def conversation(self, messages: list[ChatMessage]) -> tuple[str, Conversation]:
        """The question (the last message, the user's) and the earlier user/assistant turns."""
        turns = [m for m in messages if m.role in ("user", "assistant")]
        if not turns or turns[-1].role != "user":
            raise ApiError(400, "the last message must be the user's question", "invalid_messages")
        conversation = Conversation()
        for prev, reply in zip(turns[:-1], turns[1:-1]):
            if prev.role == "user" and reply.role == "assistant":
                conversation.add(prev.text(), self.recall(prev.text(), reply.text()))
        return turns[-1].text(), conversation


def _filters(body: ScopeFields) -> Filters:
    try:
        return body.filters()
    except FilterError as e:
        raise ApiError(400, str(e), "invalid_filter") from None


def _backend(model: str) -> str:
    """The LLM backend a chat ``model`` names ("none" for the extractive answer); 404 for other names."""
    if model == MODEL:
        return "none"
    prefix, _, name = model.partition(":")
    if prefix != MODEL or not name or name == "none":
        raise ApiError(404, f"the model {model!r} does not exist; use '{MODEL}' or '{MODEL}:<backend>' "
                            f"({', '.join(f'{MODEL}:{b}' for b in llm_backends() if b != 'none')})", "model_not_found")
    return name


def _tokens(text: str) -> int:
    """An approximate token count: one per four characters."""
    return (len(text) + 3) // 4


def _shape(model: type) -> dict:
    """A route's response model: the shared output schema, keys a result leaves out left out."""
    return {"response_model": model, "response_model_exclude_unset": True}


def citation_url(c) -> str:
    """The article's url, else a stable URI of the cited span."""
    return c.url or f"rag://documents/{quote(c.doc_id, safe='/')}#{c.start}-{c.end}"


def annotations(text: str, answer: Answer, offset: int = 0) -> list[dict]:
    """A ``url_citation`` for each [n] marker in ``text`` (found at ``offset`` in the message)."""
    by_n = {c.n: c for c in answer.citations}
    out = []
    for m in citation_markers(text):
        for n in m.numbers:
            c = by_n.get(n)
            if c is not None:
                out.append({"type": "url_citation", "url_citation": {
                    "start_index": offset + m.start, "end_index": offset + m.end,
                    "title": c.title, "url": citation_url(c)}})
    return out


def extras(answer: Answer) -> dict:
    """``x_rag``: what the answer adds to an OpenAI completion (abstained, evidence, timings, LLM notes)."""
    out = {k: v for k, v in answer.to_dict().items() if k not in ("question", "answer", "citations")}
    out.update(confidence=round(float(answer.confidence), 6), standalone_question=answer.standalone_question)
    return out


# ---------------------------------------------------------------- guard: API key and body size


class _Guard:
    """Pure ASGI middleware: the API key (all paths but /healthz), then the request body's size."""

    def __init__(self, app, api_key: str) -> None:
        self.app, self.api_key = app, api_key

    def _authorized(self, headers: Headers) -> bool:
        scheme, _, given = headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.api_key.encode())

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if self.api_key and scope["path"] != "/healthz" and not self._authorized(headers):
            error = ApiError(401, "missing or wrong API key: send 'Authorization: Bearer <RAG_API_KEY>'",
                             "invalid_api_key", {"WWW-Authenticate": "Bearer"})
            await error.response()(scope, receive, send)
            return
        limit = MAX_UPLOAD_BODY if scope["path"] == "/v1/documents" else MAX_JSON_BYTES
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            error = _too_large(limit) if length.isdigit() else ApiError(400, "bad Content-Length", "invalid_request")
            await error.response()(scope, receive, send)
            return
        received = 0

        async def limited():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:  # a body sent without (or beyond) its Content-Length
                    raise HTTPException(413, _too_large(limit).message)
            return message

        await self.app(scope, limited, send)


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"the request body is over the limit of {limit:,} bytes", "request_too_large")


# ---------------------------------------------------------------- the app


def create_app(rag: Rag, api_key: str = "", max_concurrent: int = 4, queue: int = 64,
               answer_timeout: float | None = 120.0, prepare_index: bool = False,
               log: Callable[[str], None] = lambda m: None) -> FastAPI:
    """The API over ``rag``.

    ``api_key``: required as ``Authorization: Bearer`` on every path but /healthz. At most
    ``max_concurrent`` answers (chat, ask, search, timeline, upload) run at once and ``queue`` more wait;
    others get 429. An answer slower than ``answer_timeout`` seconds gets 504. With
    ``prepare_index``, a missing index is built in the background (503 meanwhile) and a stale
    one updated while the old one answers.
    """
    server = _Server(rag, max_concurrent, queue, answer_timeout)
    app = FastAPI(title="rag", version=__version__,
                  description="Answers about a collection of news articles, with cited passages. "
                              "Errors are {\"error\": {\"message\", \"type\", \"code\"}}.")
    app.state.rag_server = server

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, e: ApiError) -> JSONResponse:
        return e.response()

    @app.exception_handler(RagError)
    async def _rag_error(request: Request, e: RagError) -> JSONResponse:
        return api_error(e).response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        problems = []
        for err in e.errors()[:5]:
            if err.get("type") == "json_invalid":
                problems.append(f"the body is not valid JSON ({(err.get('ctx') or {}).get('error', 'decode error')})")
                continue
            where = ".".join(str(p) for p in err.get("loc", ())[1:]) or "body"
            problems.append(f"{where}: {err.get('msg', 'invalid')}")
        return ApiError(400, "; ".join(problems) or "invalid request", "invalid_request").response()

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, e: HTTPException) -> JSONResponse:
        code = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}
        return ApiError(e.status_code, str(e.detail), code.get(e.status_code, "http_error"),
                        dict(e.headers or {})).response()

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, e: Exception) -> JSONResponse:
        log(f"Error: unexpected {type(e).__name__} on {request.url.path}: {e}")
        return api_error(e).response()

    @app.get("/healthz", summary="Liveness and index state (no API key needed)")
    def healthz() -> dict:
        """``{"status": "ok", "documents": N, "index": "current" | "stale"}``; 503 while the index is built."""
        try:
            server.require_index()
            state = rag.index_state()
            if not state.usable:
                raise ApiError(503, f"no usable index: {state.reason}", "index_unavailable")
            documents = sum(n for _, n in rag.sources())
        except Exception as e:  # noqa: BLE001 - the health check reports, never fails
            building = server.startup.building if server.startup else ""
            return api_error(e).response(status="building" if building else "error", index=building or "unavailable")
        return {"status": "ok", "documents": documents, "index": state.state}

    @app.get("/v1/models", summary="The answer backends, as OpenAI models")
    async def models() -> dict:
        """``rag`` (the extractive answer) and ``rag:<backend>`` for each LLM backend."""
        return {"object": "list", "data": [_model(m) for m in _model_names()]}

    @app.get("/v1/models/{model}", summary="One model")
    async def model(model: str) -> dict:
        if model not in _model_names():
            raise ApiError(404, f"the model {model!r} does not exist", "model_not_found")
        return _model(model)

    @app.post("/v1/chat/completions", summary="OpenAI-compatible chat: the answer with [n] citations")
    async def chat(body: ChatRequest):
        """The last user message is the question; earlier user/assistant turns make follow-ups work.

        Filters ride as extra fields (``k``, ``since``, ``until``, ``source``, ``reference_day``).
        Citations: ``choices[0].message.annotations`` (``url_citation`` spans of the [n] markers),
        ``choices[0].message.citations`` and top-level ``citations`` (full passages); ``x_rag``
        holds abstained, evidence and timings. ``usage`` counts are approximate (characters / 4).
        A stream sends the citations in a last chunk's ``delta`` before ``data: [DONE]``.
        """
        server.require_index()
        llm = _backend(body.model)
        question, conversation = server.conversation(body.messages)
        filters = _filters(body)

        job = server.workers.start(lambda job: job.follow(rag.ask_stream(
            question, k=body.k, filters=filters, conversation=conversation, llm=llm,
            reference_day=body.reference_day or "")))
        deadline = server.deadline()
        prompt = _tokens(" ".join(m.text() for m in body.messages if m.role in ("user", "assistant")))
        reply = _Reply(body.model, prompt)
        if not body.stream:
            result = await job.result(deadline)
            server.remember(result.answer, result)
            return reply.completion(result)
        try:
            first = await job.next(deadline)
        except BaseException:
            job.abandoned.set()
            raise
        return StreamingResponse(reply.stream(job, first, deadline, server.remember), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.post("/v1/search", summary="The passages that best match a query", **_shape(SearchResult))
    async def search(body: SearchRequest) -> dict:
        """``{"results": [{n, doc_id, title, date, source, url, start, end, text, score, page}]}``, best first:
        the MCP ``search`` tool's object."""
        server.require_index()
        filters = _filters(body)
        job = server.workers.start(lambda _: rag.search(body.query, k=body.k, filters=filters,
                                                        reference_day=body.reference_day or ""))
        return search_dict(await job.result(server.deadline()))

    @app.post("/v1/timeline", summary="The dated events about a person, organisation, place or topic, each cited",
              **_shape(TimelineResult))
    async def timeline(body: TimelineRequest) -> dict:
        """Exactly the ``timeline --json`` object: ``{"query", "variants", "articles", "entries": [{"date",
        "precision", "basis", "stated", "text", "source": {doc_id, title, date, source, url, start, end, text},
        "also": [...]}]}``, oldest first; each source's ``text`` is its article's ``text[start:end]``."""
        server.require_index()
        filters = _filters(body)

        def events(job: _Job) -> dict:
            # the progress calls check that the client still waits (a timeout or disconnect stops the work)
            found = rag.timeline(body.query, filters=filters, limit=body.k or 0, all_events=body.all,
                                 progress=lambda done, total, stage: job.check())
            return found.to_dict()

        return await server.workers.start(events).result(server.deadline())

    @app.post("/v1/ask", summary="The answer as `python -m rag ask --json` prints it", **_shape(AskResult))
    async def ask(body: AskRequest) -> dict:
        """Exactly the ``ask --json`` object: question, answer, abstained, citations, evidence, timings_ms, ..."""
        server.require_index()
        filters = _filters(body)

        result = await server.workers.start(lambda job: job.follow(rag.ask_stream(
            body.question, k=body.k, filters=filters, llm=body.llm,
            reference_day=body.reference_day or ""))).result(server.deadline())
        return result.to_dict()

    @app.get("/v1/documents/{doc_id:path}", summary="An indexed article, or a span of it", **_shape(DocumentResult))
    def document(doc_id: str, start: int | None = Query(None, ge=0, description="first character of the span"),
                 end: int | None = Query(None, ge=0, description="character after the span")) -> dict:
        """Metadata and ``text`` (the whole article, or ``text[start:end]`` with ``start``/``end``): the
        MCP ``get_document`` tool's object."""
        server.require_index()
        try:
            doc = rag.document(doc_id, start, end)
        except SpanError as e:
            raise ApiError(400, str(e), "invalid_span") from None
        if doc is None:
            raise ApiError(404, f"no indexed document has the id {doc_id!r}", "document_not_found")
        return document_dict(doc)

    @app.post("/v1/documents", summary="Add articles: upload files, index them")
    async def upload(files: list[UploadFile] = File(description=f"articles ({', '.join(UPLOAD_SUFFIXES)}), "
                                                                f"at most {MAX_UPLOAD_BYTES // 2**20} MB each")) -> dict:
        """``{"uploads": [{name, saved, problem, documents, skipped, warnings}], "documents": N}``."""
        server.require_index()
        contents = []
        for f in files:
            data = await f.read(MAX_UPLOAD_BYTES + 1)
            if len(data) > MAX_UPLOAD_BYTES:
                raise ApiError(413, f"{f.filename}: over the limit of {MAX_UPLOAD_BYTES // 2**20} MB per file",
                               "file_too_large")
            contents.append((f.filename or "", data))
        uploads, report = await server.workers.start(lambda _: rag.add_documents(contents)).result(None)
        return {"uploads": [u.to_dict() for u in uploads], "documents": report.documents}

    def _openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            if api_key:
                schema.setdefault("components", {})["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
                schema["security"] = [{"bearer": []}]
                schema["paths"]["/healthz"]["get"]["security"] = []
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = _openapi
    app.add_middleware(_Guard, api_key=api_key)
    if prepare_index:
        server.prepare_index(log)
    return app


def _model_names() -> list[str]:
    return [MODEL, *(f"{MODEL}:{b}" for b in llm_backends() if b != 'none')]


def _model(name: str) -> dict:
    return {"id": name, "object": "model", "created": 0, "owned_by": "rag"}


class _Reply:
    """An OpenAI chat completion (or its chunks) made from an Answer."""

    def __init__(self, model: str, prompt_tokens: int) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model
        self.prompt_tokens = prompt_tokens

    def _usage(self, answer: Answer, content: str) -> dict:
        completion = answer.llm_tokens or _tokens(content)
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": completion,
                "total_tokens": self.prompt_tokens + completion}

    def completion(self, answer: Answer) -> dict:
        citations = [c.to_dict() for c in answer.citations]
        content = answer.reply()
        message = {"role": "assistant", "content": content, "refusal": None,
                   "annotations": annotations(content, answer), "citations": citations}
        return {"id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}],
                "citations": citations, "usage": self._usage(answer, content), "x_rag": extras(answer)}

    def _chunk(self, delta: dict, finish: str | None = None, **extra: object) -> str:
        body = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra}
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    async def stream(self, job: _Job, first: tuple[str, Any], deadline: float | None,
                     remember: Callable[[str, Answer], None]) -> AsyncIterator[str]:
        """The tokens as they come (the extractive answer in one piece), then the citations, then [DONE]."""
        try:
            yield self._chunk({"role": "assistant", "content": ""})
            sent, (kind, value) = "", first
            while kind == "token":
                text = value if sent else value.lstrip()
                if text:
                    sent += text
                    yield self._chunk({"content": text})
                kind, value = await job.next(deadline)
            answer: Answer = value
            offset, content = 0, answer.reply()
            if sent.strip() != content:
                # The LLM failed part-way, or markers to no passage were removed: what stands follows.
                offset = len(sent) + 2 if sent else 0
                tail = ("\n\n" if sent else "") + content
                sent += tail
                yield self._chunk({"content": tail})
            remember(sent, answer)
            citations = [c.to_dict() for c in answer.citations]
            yield self._chunk({"annotations": annotations(content, answer, offset), "citations": citations},
                              "stop", citations=citations, usage=self._usage(answer, sent), x_rag=extras(answer))
        except Exception as e:  # noqa: BLE001 - the status is sent: the error goes in the stream
            yield f"data: {json.dumps(api_error(e).body(), ensure_ascii=False)}\n\n"
        finally:
            job.abandoned.set()
        yield "data: [DONE]\n\n"


# ---------------------------------------------------------------- the command


def check_bind(host: str, api_key: str) -> None:
    """RagError when ``host`` is not a loopback address and no API key guards the API."""
    if host not in LOOPBACK_HOSTS and not api_key:
        raise RagError(f"refusing to serve on {host} without an API key: set RAG_API_KEY (clients send "
                       "'Authorization: Bearer <key>') or bind 127.0.0.1")


def run(settings: Settings, host: str = "127.0.0.1", port: int = 8000, log: Callable[[str], None] = print) -> None:
    """Serve the API until interrupted: build a missing index in the background (503 meanwhile),
    update a stale one while it answers.

    ``RAG_API_KEY`` guards the API; ``RAG_SERVE_MAX_CONCURRENT`` (4), ``RAG_SERVE_QUEUE`` (64)
    and ``RAG_SERVE_TIMEOUT`` (120 s) tune the limits.
    """
    api_key = os.environ.get("RAG_API_KEY", "")
    check_bind(host, api_key)
    limits = {name: _env_number(f"RAG_SERVE_{name.upper()}", default)
              for name, default in (("max_concurrent", 4), ("queue", 64), ("timeout", 120.0))}
    rag = Rag(settings)
    # Rag.start (in create_app) checks the settings and the corpus before the port is taken
    app = create_app(rag, api_key=api_key, max_concurrent=int(limits["max_concurrent"]), queue=int(limits["queue"]),
                     answer_timeout=limits["timeout"], prepare_index=True, log=log)
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    log(f"Serving the rag API on http://{shown}:{port}/v1 (OpenAPI: /openapi.json; "
        f"{'API key required' if api_key else 'no API key'}); Ctrl-C stops it.")
    uvicorn.run(app, host=host.strip("[]"), port=port, log_level="warning")


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise RagError(f"{name}={raw!r} is not a number") from None
    if value < 0:
        raise RagError(f"{name} must not be negative (got {raw})")
    return value
