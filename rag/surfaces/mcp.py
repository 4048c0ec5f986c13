"""The archive as an MCP server (``python -m rag mcp``): tools ``search``, ``ask``, ``timeline`` and
``get_document``.

Built on the official MCP SDK's high-level ``MCPServer`` (mcp 2.x), over stdio (the default: the
client starts the command and talks on its standard input and output) or streamable HTTP at
``http://HOST:PORT/mcp`` (127.0.0.1 by default). Every tool returns structured content, checked
against its published output schema, and the same result as readable text with the citations.
A problem the caller can fix (a bad date, an empty question, an unknown article) comes back as a
tool error carrying the library's message.

Nothing but the protocol may reach standard output while serving stdio: indexing before serving
runs with the process's standard output sent to standard error, progress and notes go to ``log``
(standard error), and while serving the SDK keeps stray writes off the wire.

Calls only the public API (``rag.__init__``).
"""

import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, nullcontext
from typing import Annotated

from pydantic import BaseModel, Field

from rag import (
    LOOPBACK_HOSTS,
    Answer,
    Conversation,
    Filters,
    MissingExtraError,
    Rag,
    RagError,
    Settings,
    SkippedInput,
    __version__,
    citation_markers,
    document_dict,
    search_dict,
)
from rag.surfaces import render
from rag.surfaces.schema import AskResult, DocumentResult, Passage, SearchResult, TimelineResult

try:
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.types import CallToolResult, TextContent, ToolAnnotations
except ImportError as e:  # absent, or mcp 1.x (FastMCP, no mcpserver)
    try:
        from importlib.metadata import version

        _installed = version("mcp")
    except Exception:  # noqa: BLE001 - not installed at all
        raise MissingExtraError("mcp", "serve") from e
    raise RagError(f"mcp {_installed} is installed; 'python -m rag mcp' needs mcp 2 or later "
                   "(pip install -U 'mcp>=2')") from e

TRANSPORTS = ("stdio", "http")
MAX_K = 50
HTTP_PATH = "/mcp"
DATE_HELP = "YYYY-MM-DD, YYYY-MM or YYYY"


class HistoryTurn(BaseModel):
    """An earlier turn of the conversation: what was asked and the answer ``ask`` gave."""

    question: str
    answer: str = Field("", description="the earlier answer's text, [n] markers included")
    standalone_question: str = Field("", description="the earlier result's standalone_question, if it had one")


# ---------------------------------------------------------------- tool descriptions

SEARCH_HELP = """Find passages in the news archive that match a query, best first.

Use it to read the evidence yourself: to see what the articles say about a topic, person or
event, to compare reports, or when `ask` abstained. Each result is a numbered passage [n] with
its article's title, date, source, doc_id and the exact character span (start-end). When you use
a passage, cite it to the user as [n] with its title, source and date; call get_document with
the doc_id (and a wider span) to read more around it."""

ASK_HELP = """Answer a question from the news archive, with numbered citations.

Use it first for a factual question about the events, people and places the articles cover.
The answer's sentences are quoted from the articles and end with [n] markers that refer to
citations[n-1] (title, date, source, doc_id, exact span). When you relay the answer, keep the
[n] markers and list the cited sources so the user can check them. When `abstained` is true the
articles do not answer the question: say so rather than answering from memory (search may still
find related passages)."""

DOCUMENT_HELP = """Read one article of the archive by its doc_id (from a search or ask result), whole or
characters start-end of it.

Use it to check a citation in context or read around a passage: the passage [n] of a result is
exactly text[start:end] of its article. Returns the article's title, date, source, url and length."""

TIMELINE_HELP = """List what happened when: the dated events about a person, organisation, place or topic,
oldest first, each quoted from the articles with its sources.

Use it for "what happened when" questions, a chronology or the history of someone or something
(e.g. query "Araghchi", "Istanbul peace talks"). Other spellings of a name the articles use are
found too (`variants`). Each entry has a date (`precision` day, week, month or year; `basis`
'stated' when the sentence gives it, such as 'last week' resolved against its article's date,
else 'article': the article's own date), the sentence that says what happened, its source
(title, source, date, doc_id, exact span start-end) and `also`: other articles reporting it.
When you relay events, give their dates as the entries qualify them and cite each one's sources
(title, source, date) so the user can check them; call get_document to read around a sentence.
k limits the list to the k events reported by the most articles (0: all)."""

_QUERY = "what to look for: a question or keywords"
_K = f"how many passages (1-{MAX_K})"
_SINCE = f"only articles dated on or after this day ({DATE_HELP}); empty: no limit"
_UNTIL = f"only articles dated on or before this day ({DATE_HELP}); empty: no limit"
_SOURCE = "only articles whose source (publisher) contains this text, ignoring case; empty: any source"
_DAY = ("the day a question about 'now' ('this week', 'recently') refers to, YYYY-MM-DD; "
        "empty: the newest article's date")
# The filters and the reference day, declared once for the tools that take them
_Since = Annotated[str, Field(description=_SINCE)]
_Until = Annotated[str, Field(description=_UNTIL)]
_Source = Annotated[str, Field(description=_SOURCE)]
_Day = Annotated[str, Field(description=_DAY)]

_READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True,
                             open_world_hint=False)


# ---------------------------------------------------------------- the server


def build_server(rag: Rag, log: Callable[[str], None] = lambda m: None, warm: bool = True) -> MCPServer:
    """An MCPServer serving ``rag`` (whose index must be usable); with ``warm``, the model loads
    in the background once serving starts."""

    @asynccontextmanager
    async def lifespan(_server: MCPServer):
        if warm:
            threading.Thread(target=_warm, args=(rag, log), name="rag-warm", daemon=True).start()
        yield {}

    server = MCPServer(
        name="rag",
        title="News archive",
        version=__version__,
        instructions=_instructions(rag),
        log_level="WARNING",  # the SDK logs to standard error; INFO would log every request
        lifespan=lifespan,
    )

    @server.tool(annotations=_READ_ONLY, description=SEARCH_HELP)
    def search(
        query: Annotated[str, Field(description=_QUERY)],
        k: Annotated[int, Field(ge=1, le=MAX_K, description=_K)] = 5,
        since: _Since = "",
        until: _Until = "",
        source: _Source = "",
        reference_day: _Day = "",
    ) -> Annotated[CallToolResult, SearchResult]:
        with _tool_errors():
            hits = rag.search(query, k=k, filters=_filters(since, until, source), reference_day=reference_day)
        citations = [h.citation(n) for n, h in enumerate(hits, 1)]
        return _result(render.search_text(query, citations), search_dict(hits))

    @server.tool(annotations=_READ_ONLY, description=ASK_HELP)
    def ask(
        question: Annotated[str, Field(description="the question, in words")],
        k: Annotated[int, Field(ge=1, le=MAX_K, description=_K + " the answer may cite")] = 5,
        since: _Since = "",
        until: _Until = "",
        source: _Source = "",
        reference_day: _Day = "",
        history: Annotated[list[HistoryTurn], Field(description="earlier turns of this conversation, oldest first: "
                                                               "a follow-up ('whom did she defeat?') is read with "
                                                               "them as one standalone question")] = [],  # noqa: B006
    ) -> Annotated[CallToolResult, AskResult]:
        with _tool_errors():
            conversation = Conversation()
            for turn in history:
                conversation.add(turn.question, Answer(question=turn.question, answer=turn.answer,
                                                       abstained=not citation_markers(turn.answer),
                                                       standalone_question=turn.standalone_question))
            answer = rag.ask(question, k=k, filters=_filters(since, until, source), reference_day=reference_day,
                             conversation=conversation)
        return _result(render.answer_text(answer, warnings=True, day_setting="the reference_day argument"), answer.to_dict())

    @server.tool(annotations=_READ_ONLY, description=TIMELINE_HELP)
    def timeline(
        query: Annotated[str, Field(description="the person, organisation, place or topic, e.g. 'Araghchi'")],
        k: Annotated[int, Field(ge=0, description="0: no limit; N: the N events reported by the most "
                                                  "articles (still oldest first)")] = 0,
        all_events: Annotated[bool, Field(description="false: the main events (reported by 3+ articles; every "
                                                      "event in a small archive); true: every event")] = False,
        since: _Since = "",
        until: _Until = "",
        source: _Source = "",
    ) -> Annotated[CallToolResult, TimelineResult]:
        with _tool_errors():
            filters = _filters(since, until, source)
            found = rag.timeline(query, filters=filters, limit=k, all_events=all_events)
        return _result(render.timeline_text(found, filters), found.to_dict())

    @server.tool(name="get_document", annotations=_READ_ONLY, description=DOCUMENT_HELP)
    def get_document(
        doc_id: Annotated[str, Field(description="the article's id, as in a search or ask result")],
        start: Annotated[int | None, Field(ge=0, description="first character to return; default 0")] = None,
        end: Annotated[int | None, Field(ge=0, description="character after the last to return; "
                                                         "default: the end of the article")] = None,
    ) -> Annotated[CallToolResult, DocumentResult]:
        with _tool_errors():
            doc = rag.document(doc_id.strip(), start, end)
        if doc is None:
            raise ToolError(f"no article with doc_id {doc_id!r}; use a doc_id from a search or ask result")
        out = document_dict(doc)
        return _result(render.document_text(out), out)

    return server


def _instructions(rag: Rag) -> str:
    stats = rag.stats()
    what = "news articles"
    if stats.get("indexed"):
        what = f"{stats['documents']} news articles"
        days = stats.get("date_range") or []
        if len(days) == 2 and days[0]:
            what += f" dated {days[0]} to {days[1]}"
    return (f"An offline archive of {what}. Use `ask` for a question about them: it answers with sentences "
            "quoted from the articles, each marked [n] for the passage it comes from; keep the markers and name "
            "the cited sources (title, source, date) when you relay it, and do not fill in an answer the tool "
            "abstained on. Use `timeline` for what happened when about a person, organisation, place or topic: "
            "dated events, each with its sources to cite. Use `search` to read the passages on a topic yourself, "
            "and `get_document` to read an article, or a span of it, by doc_id.")


@contextmanager
def _tool_errors() -> Iterator[None]:
    """A problem the caller can fix becomes a tool error with the library's message."""
    try:
        yield
    except RagError as e:
        raise ToolError(str(e)) from None


def _filters(since: str, until: str, source: str) -> Filters:
    return Filters(since=since.strip(), until=until.strip(), sources=(source,) if source.strip() else ())


def _result(text: str, structured: dict) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured)


# ---------------------------------------------------------------- running


def run(settings: Settings, transport: str = "stdio", host: str = "127.0.0.1", port: int = 8001,
        log: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True)) -> None:
    """Make the index usable, then serve MCP over ``transport`` ("stdio" or "http") until the client
    leaves (stdio) or the process is interrupted (http). Everything but the protocol goes to ``log``."""
    if transport not in TRANSPORTS:
        raise RagError(f"unknown transport {transport!r}; use {' or '.join(TRANSPORTS)}")
    rag = Rag(settings)
    if transport == "http":
        _check_port(host, port)
    with _stdout_to_stderr() if transport == "stdio" else nullcontext():
        _prepare(rag, log)
        server = build_server(rag, log)
    if transport == "stdio":
        log(f"rag MCP server on stdio (index {settings.index_path})")
        server.run("stdio")
        return
    if host not in LOOPBACK_HOSTS:
        log(f"warning: serving on {host} without authentication: anyone who can reach port {port} can read the archive")
    shown = f"[{host}]" if ":" in host else host
    log(f"rag MCP server at http://{shown}:{port}{HTTP_PATH} (streamable HTTP; index {settings.index_path})")
    server.run("streamable-http", host=host, port=port, streamable_http_path=HTTP_PATH)


def _prepare(rag: Rag, log: Callable[[str], None]) -> None:
    """Build the index when missing (or built for other settings); a stale one answers, with a note."""

    def on_issue(item: SkippedInput, skipped: bool) -> None:
        log(f"warning: {'skipped ' if skipped else ''}{item}")

    rag.start("wait", progress=_Progress(log), log=log, on_issue=on_issue)


class _Progress:
    """``progress(done, total, stage)`` as a log line every few seconds and at the end of each stage."""

    def __init__(self, log: Callable[[str], None], every_s: float = 5.0) -> None:
        self.log, self.every_s = log, every_s
        self.stage, self.last = "", 0.0

    def __call__(self, done: int, total: int, stage: str | None = None) -> None:
        now = time.monotonic()
        stage = stage or self.stage or "Indexing"
        if stage != self.stage or done >= total or now - self.last >= self.every_s:
            self.stage, self.last = stage, now
            self.log(f"{stage}: {done}/{total} ({100 * done / max(total, 1):.0f}%)")


def _warm(rag: Rag, log: Callable[[str], None]) -> None:
    try:
        rag.warm()
    except Exception as e:  # noqa: BLE001 - questions still work, on the numpy encoder
        log(f"warning: could not preload the model ({type(e).__name__}: {e}); answering without it")


@contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send the process's standard output (file descriptor 1, so C libraries too) to standard error."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file: nothing can reach the pipe through it
        yield
        return
    sys.stdout.flush()
    saved = os.dup(fd)
    try:
        os.dup2(sys.stderr.fileno(), fd)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, fd)
        os.close(saved)


def _check_port(host: str, port: int) -> None:
    """A clear error now, rather than the web server's log line later, when the port is taken."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as e:
        raise RagError(f"cannot listen on {host}:{port}: {e}") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(address)
        except OSError as e:
            raise RagError(f"cannot listen on {host}:{port}: {e.strerror or e} (use --port)") from None


__all__ = ["AskResult", "DocumentResult", "Passage", "SearchResult", "TimelineResult", "build_server", "run"]
