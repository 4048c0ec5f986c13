"""What the browser chat does, without the page: answer, draw timelines, take in uploads, render, start
the index. (Just over 500 lines: every handler of the one page, each small.)

Plain functions over the public ``rag`` API, testable without a browser; ``rag/surfaces/ui/app.py`` lays
out the page and wires these to its events. Everything an article (or a user) wrote is
escaped before it is displayed: the chat renders Markdown and HTML, so every ASCII
punctuation character of such text becomes an HTML numeric entity (``<`` -> ``&#60;``,
``!`` -> ``&#33;``) and only the markup made here (the [n] citation links, notes) is live.
"""

from __future__ import annotations

import html
import importlib.util
import os
import string
import threading
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from rag import (
    Answer,
    Conversation,
    Filters,
    QuestionError,
    Rag,
    RagError,
    SkippedInput,
    Timeline,
    Upload,
    citation_markers,
)
from rag.surfaces import render

EXAMPLE = "Who offered to mediate between Kabul and Islamabad?"  # about the shipped corpus's article below
EXAMPLE_DOC = ("004_f1ed5df54c6c908a", "Iran Offers to Mediate Between Kabul and Islamabad to Revive Stalled Peace Talks")
MAX_EXAMPLE_TITLE = 120  # characters of a title quoted in an example question
TIMELINE_EXAMPLE = "Araghchi"
TIMELINE_HINT = ("Type a person, organisation, place or topic and press “Show timeline”, for example: "
                 + TIMELINE_EXAMPLE)
ASK_HINT = "Please type a question about the articles"
EMPTY_HINT = ASK_HINT + ", for example: " + EXAMPLE  # the hint over the shipped corpus (see empty_hint)
LLM_CHOICES = {"none (extractive)": "none", "openai-compatible server (RAG_LLM_URL)": "openai"}
if importlib.util.find_spec("llama_cpp") is not None:  # the `llm` extra is installed
    LLM_CHOICES["llamacpp (local GGUF)"] = "llamacpp"
CONTEXT_CHARS = 600  # article text shown on each side of a cited passage
MAX_SHOWN_QUESTION = 2_000  # a longer question is shown cut in the chat (the library refuses it anyway)

Log = Callable[[str], None]


# ---------------------------------------------------------------- escaping


_ENTITIES = {ord(c): f"&#{ord(c)};" for c in string.punctuation}


def escape_text(text: str) -> str:
    """``text`` as inert Markdown and HTML: each ASCII punctuation character as a numeric entity.

    No tag, image, link, emphasis, heading, list, table or entity survives; the browser
    shows the characters as they were written.
    """
    return (text or "").translate(_ENTITIES)


def answer_markdown(text: str, n_citations: int | None = None) -> str:
    """The answer escaped, with each ``[n]`` (1 <= n <= ``n_citations``) a link that opens source n."""
    out, pos = [], 0
    for m in citation_markers(text):
        links = [f"[[{n}]](#src-{n})" for n in m.numbers if n_citations is None or 1 <= n <= n_citations]
        if links:
            out.append(escape_text(text[pos:m.start]))
            out.append("".join(links))
            pos = m.end
    out.append(escape_text((text or "")[pos:]))
    return "".join(out)


def _note(text: str) -> str:
    return f"*Note: {escape_text(text)}*"


# ---------------------------------------------------------------- the sources panel


def _segments(text: str, offset: int, lo: int, hi: int, mark: tuple[int, int],
              bold: list[tuple[int, int]], short: tuple[int, int] = (0, 0)) -> str:
    """``text[lo:hi]`` (article offsets; ``text`` starts at ``offset``) escaped, ``mark`` in <mark>,
    the ``bold`` spans in <strong class="answer">, the ``short`` answer's span in <u class="short">."""
    cuts = {lo, hi}
    for s, e in [mark, *bold, short]:
        cuts.update(x for x in (s, e) if lo < x < hi)
    points = sorted(cuts)
    out, in_mark, in_bold = [], False, False
    for a, b in zip(points, points[1:]):
        marked = mark[0] <= a < mark[1]
        bolded = any(s <= a < e for s, e in bold)
        if in_bold and (not bolded or marked != in_mark):  # one <strong> a sentence, closed inside <mark>
            out.append("</strong>")
            in_bold = False
        if marked != in_mark:
            out.append("<mark>" if marked else "</mark>")
            in_mark = marked
        if bolded and not in_bold:
            out.append('<strong class="answer">')
            in_bold = True
        piece = html.escape(text[a - offset:b - offset])
        if short[0] <= a < short[1]:
            piece = f'<u class="short">{piece}</u>'
        out.append(piece)
    if in_bold:
        out.append("</strong>")
    if in_mark:
        out.append("</mark>")
    return "".join(out)


def passage_in_context(article: str, start: int, end: int, passage: str,
                       answer_spans: list[tuple[int, int]] = (), short: tuple[int, int] = (0, 0)) -> str:
    """The passage in <mark> with up to CONTEXT_CHARS of its article on either side, all escaped;
    ``answer_spans`` (article offsets: the answer's sentences) in bold, ``short`` (the short
    answer's span) underlined inside them."""
    if not article or article[start:end] != passage:  # the article changed: show the passage alone
        return _segments(passage, start, start, start + len(passage), (start, start + len(passage)),
                         list(answer_spans), short)
    lo, hi = max(0, start - CONTEXT_CHARS), min(len(article), end + CONTEXT_CHARS)
    if lo > 0:  # start and end on a word boundary
        lo = article.find(" ", lo, start) + 1 or lo
    if hi < len(article):
        cut = article.rfind(" ", end, hi)
        hi = cut if cut > 0 else hi
    body = _segments(article, 0, lo, hi, (start, end), list(answer_spans), short)
    return ("…" if lo > 0 else "") + body + ("…" if hi < len(article) else "")


def where_in_article(answer: Answer) -> dict[int, tuple[str, str]]:
    """For each citation n: which of its article's cited passages it is ("passage 2 of 3 cited
    from this article"; "" when it is the only one) and where it lies ("page 3" or
    "characters 1,200–1,800")."""
    by_doc: dict[str, list] = {}
    for c in answer.citations:
        by_doc.setdefault(c.doc_id, []).append(c)
    out = {}
    for cited in by_doc.values():
        cited = sorted(cited, key=lambda c: (c.start, c.n))
        for i, c in enumerate(cited, 1):
            part = f"passage {i} of {len(cited)} cited from this article" if len(cited) > 1 else ""
            out[c.n] = part, f"page {c.page}" if c.page else f"characters {c.start:,}–{c.end:,}"
    return out


def sources_html(rag: Rag, answer: Answer | None) -> str:
    """Each cited passage as a <details>, in the order they answer the question: title, date,
    source, which part of the article it is, and the passage in its article."""
    if answer is None:
        return '<div class="src"><p>Sources appear here after a question.</p></div>'
    if not answer.citations:
        return '<div class="src"><p>No passage to show for this question.</p></div>'
    where = where_in_article(answer)
    parts = ['<div class="src"><p class="order">Passages in the order they answer the question; '
             "the answer's sentences are in bold, the short answer underlined.</p>"]
    for c in answer.citations:
        doc = rag.document(c.doc_id) or {}
        spans = [(e.start, e.end) for e in answer.evidence if e.doc_id == c.doc_id and e.start < c.end and e.end > c.start]
        sa = answer.short_answer
        short = (sa.start, sa.end) if sa and not answer.abstained and sa.n == c.n else (0, 0)
        body = passage_in_context(doc.get("text") or "", c.start, c.end, c.text, spans, short)
        part, location = where[c.n]
        meta = [html.escape(x) for x in (c.date, c.source) if x] or ["no date or source"]
        meta.append(html.escape(location))
        if c.url.startswith(("http://", "https://")):
            meta.append(f'<a href="{html.escape(c.url)}" target="_blank" rel="noopener noreferrer">link</a>')
        meta.append(html.escape(c.doc_id))
        part_html = f' <span class="part">· {html.escape(part)}</span>' if part else ""
        parts.append(
            f'<details id="src-{c.n}" class="citation"><summary>[{c.n}] {html.escape(c.title or c.doc_id)}'
            f'{part_html}</summary><div class="meta">{" · ".join(meta)}</div>'
            f'<div class="article">{body}</div></details>'
        )
    parts.append("</div>")
    return "".join(parts)


# ---------------------------------------------------------------- inputs


def parse_filters(since: str, until: str, source: str) -> Filters:
    """Filters from the settings panel; the library checks the dates (``FilterError``)."""
    source = (source or "").strip()
    return Filters(since=(since or "").strip(), until=(until or "").strip(), sources=(source,) if source else ())


def source_choices(rag: Rag) -> list[tuple[str, str]]:
    """The source dropdown: every indexed source with its number of articles."""
    try:
        sources = rag.sources()
    except RagError:
        sources = []
    return [("All sources", "")] + [
        (f"{name} ({count} article{'s' if count != 1 else ''})", name) for name, count in sources if name]


def llm_label(name: str) -> str:
    """The dropdown label of the backend ``name`` (the first one when it is not offered)."""
    return next((label for label, n in LLM_CHOICES.items() if n == name), next(iter(LLM_CHOICES)))


# ---------------------------------------------------------------- asking


@dataclass
class Reply:
    """What a chat turn shows: the messages, the conversation, the sources panel (None: as it
    was) and the question box (emptied after a question; kept when it must be fixed)."""

    history: list[dict]
    conversation: Conversation
    sources: str | None = None
    question: str = ""


def answer_message(answer: Answer) -> str:
    """The answer as chat Markdown: escaped text, [n] links, notes, timing."""
    n = len(answer.citations)
    text = answer_markdown(answer.answer, n)
    if answer.short_line():
        text = f"**Answer: {escape_text(answer.short_answer.text)}** " + answer_markdown(f"[{answer.short_answer.n}]", n) + "\n\n" + text
    if answer.ungrounded and answer.extractive_answer:
        text += ("\n\n**Extractive answer (the model's answer cites no passage):** "
                 + answer_markdown(answer.extractive_answer, n))
    notes = list(answer.warnings) if answer.citations else []  # no passage: the answer says why
    if answer.standalone_question and answer.standalone_question != answer.question:
        notes.append(f"Read as: {answer.standalone_question}")  # a follow-up, with what it refers to
    if answer.reference_day:
        notes.append(f"{render.recent_note(answer.reference_day)} (“Reference day” in Search settings sets the day)")
    if notes:
        text += "\n\n" + "\n\n".join(_note(w) for w in notes)
    for c in answer.conflicts:
        rows = [answer_markdown(row, n) for row in render.conflict_rows(c)]
        text += "\n\n**" + escape_text(c.headline) + "**\n" + "\n".join(f"- {r}" for r in rows)
    if answer.citations:
        text += f"\n\n<sub>{answer.timings_ms.get('total', 0):.0f} ms · click [n] to open its source</sub>"
    return text


def message_text(message: dict) -> str:
    """The text of a chat message: its content, or (as the page sends it back) its text parts joined."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else [content]
    return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in parts if p is not None)


def _shown_question(question: str) -> str:
    if len(question) > MAX_SHOWN_QUESTION:
        question = question[:MAX_SHOWN_QUESTION] + f"… ({len(question):,} characters)"
    return escape_text(question)


def example_questions(rag: Rag, n: int = 1) -> list[str]:
    """Up to ``n`` questions this index can answer, to offer as examples: the shipped example when the
    article it asks about is indexed (the sample corpus), else questions about the newest articles'
    titles; none for an empty index."""
    try:
        shipped = rag.document(EXAMPLE_DOC[0])
        if shipped is not None and shipped.get("title") == EXAMPLE_DOC[1]:
            return [EXAMPLE][:n]
        newest = rag.newest_documents(n * 3)  # some may have no usable title
    except RagError:  # no usable index: nothing to offer
        return []
    questions = []
    for doc in newest:
        title = " ".join((doc.get("title") or "").split())
        if not title or title == doc["doc_id"]:
            continue
        if len(title) > MAX_EXAMPLE_TITLE:
            title = title[:MAX_EXAMPLE_TITLE].rsplit(" ", 1)[0] + "…"
        question = f"What does “{title}” report?"
        if question not in questions:
            questions.append(question)
    return questions[:n]


def empty_hint(rag: Rag) -> str:
    """What an empty question is answered with: a request for one, with an example when there is one."""
    examples = example_questions(rag)
    if not examples:
        return ASK_HINT + "."
    # An article's title is escaped like all article text; the shipped example is our own.
    return EMPTY_HINT if examples[0] == EXAMPLE else f"{ASK_HINT}, for example: {escape_text(examples[0])}"


def respond(rag: Rag, message: str, history: list | None, conversation: Conversation | None, k: float = 0,
            since: str = "", until: str = "", source: str = "", llm: str = "none",
            reference_day: str = "") -> Iterator[Reply]:
    """One chat turn. An extractive answer is shown as soon as it is computed; an LLM's streams
    as it is generated. A problem with the question or settings is explained, the question kept."""
    history = list(history or [])
    conversation = conversation or Conversation()
    if not (message or "").strip():  # no empty bubble: a hint, once
        hint = empty_hint(rag)
        if not history or message_text(history[-1]) != hint:
            history.append({"role": "assistant", "content": hint})
        yield Reply(history, conversation, None, "")
        return
    history.append({"role": "user", "content": _shown_question(message)})

    def say(text: str, sources: str | None = None, box: str = "") -> Reply:
        return Reply(history + [{"role": "assistant", "content": text}], conversation, sources, box)

    backend = LLM_CHOICES.get(llm, llm or "none")
    try:
        filters = parse_filters(since, until, source)
        kwargs = dict(k=int(k or rag.settings.k), filters=filters, conversation=conversation,
                      reference_day=(reference_day or "").strip(), llm=backend)
        if backend != "none":
            yield say("…")
        # Gradio runs each step on a worker thread; when it closes or drops this generator (the
        # page went away), the stream is closed with it and the model stops.
        written = ""
        with closing(rag.ask_stream(message, **kwargs)) as events:
            for event in events:
                if event.kind == "token":
                    written += event.text
                    yield say(answer_markdown(written) + " …")
        yield say(answer_message(event.answer), sources_html(rag, event.answer))
    except QuestionError as e:  # FilterError too: a bad date, a question too long
        yield say(f"Please fix this and ask again: {escape_text(str(e))}", box=message)
    except RagError as e:
        yield say(f"Sorry, that did not work: {escape_text(str(e))}", box=message)
    except Exception as e:  # noqa: BLE001 - the page must stay up whatever goes wrong
        yield say(f"Sorry, something went wrong ({escape_text(f'{type(e).__name__}: {e}')}). Please try again.",
                  box=message)


# ---------------------------------------------------------------- timelines


def _tl_message(text: str) -> str:
    return f'<div class="src tl"><p class="tl-message">{html.escape(text)}</p></div>'


def _report_html(rag: Rag, s, label: str) -> str:
    """One article reporting an event: a <details> with its title, source and date, the sentence
    marked in its article."""
    doc = rag.document(s.doc_id) or {}
    body = passage_in_context(doc.get("text") or "", s.start, s.end, s.text)
    about = " · ".join(html.escape(x) for x in (s.source, s.date) if x) or "no date or source"
    meta = [f"page {s.page}" if s.page else f"characters {s.start:,}–{s.end:,}"]
    if s.url.startswith(("http://", "https://")):
        meta.append(f'<a href="{html.escape(s.url)}" target="_blank" rel="noopener noreferrer">link</a>')
    meta.append(html.escape(s.doc_id))
    return (f'<details class="report"><summary><span class="tl-label">{html.escape(label)}</span> '
            f'{html.escape(s.title or s.doc_id)} <span class="part">· {about}</span></summary>'
            f'<div class="meta">{" · ".join(meta)}</div><div class="article">{body}</div></details>')


def timeline_html(rag: Rag, timeline: Timeline | None, filters: Filters = Filters()) -> str:
    """The timeline as HTML: a header (how many events, from how many articles, the other
    spellings found), then one entry per event, oldest first: its date and how it was obtained,
    the sentence, and the articles reporting it, each readable in context. All text escaped."""
    if timeline is None:
        return _tl_message(TIMELINE_HINT)
    with_filters = f" with the filters ({filters.describe()})" if filters else ""
    if not timeline.entries:
        return _tl_message(f"No dated event about '{timeline.query}' found{with_filters}.")
    spellings = [v for vs in timeline.variants.values() for v in vs]
    header = f"Timeline of '{timeline.query}': {timeline.summary()}"
    if spellings:
        header += f" (also spelled {', '.join(spellings)})"
    parts = ['<div class="src tl">', f'<p class="tl-header">{html.escape(header)}</p>']
    if filters:
        parts.append(f'<p class="order">Articles {html.escape(filters.describe())}.</p>')
    parts.append('<p class="order">Oldest first; open an article to read the sentence in its context.</p>'
                 '<ol class="tl-events">')
    for i, e in enumerate(timeline.entries, 1):
        reports = [_report_html(rag, e.source, "Reported by")]
        reports += [_report_html(rag, s, "Also reported by") for s in e.also]
        parts.append(
            f'<li class="tl-event" id="tl-{i}" data-date="{html.escape(e.date)}">'
            f'<div class="tl-when"><span class="tl-date">{html.escape(e.when)}</span> '
            f'<span class="tl-how">· {html.escape(render.how_dated(e))}</span></div>'
            f'<p class="tl-text">{html.escape(e.text)}</p>{"".join(reports)}</li>')
    parts.append("</ol></div>")
    return "".join(parts)


def show_timeline(rag: Rag, query: str, since: str = "", until: str = "", source: str = "",
                  progress: Callable[[int, int, str], None] | None = None, all_events: bool = False) -> str:
    """The Timeline view for ``query`` under the date and source filters, as HTML; a problem
    with the query or the filters is explained instead."""
    if not (query or "").strip():
        return _tl_message(TIMELINE_HINT)
    try:
        filters = parse_filters(since, until, source)
        return timeline_html(rag, rag.timeline(query, filters, all_events=all_events, progress=progress), filters)
    except QuestionError as e:  # FilterError too: a bad date; a query too long
        return _tl_message(f"Please fix this and try again: {e}")
    except RagError as e:
        return _tl_message(f"Sorry, that did not work: {e}")
    except Exception as e:  # noqa: BLE001 - the page must stay up whatever goes wrong
        return _tl_message(f"Sorry, something went wrong ({type(e).__name__}: {e}). Please try again.")


# ---------------------------------------------------------------- uploads


def upload_message(rag: Rag, uploads: list[Upload], report=None, error: str = "") -> str:
    """The chat message about an upload: one line per file (what it was saved as, how many
    documents it gave, its problems), then the index's size."""
    lines: list[tuple[int, str]] = []  # (indent, text)
    for u in uploads:
        if not u.saved:
            lines.append((0, f"{u.name}: {u.problem}"))
            continue
        if report is None:
            lines.append((0, f"Saved {u.name} as {u.saved}, but it is not indexed yet: {error}"))
            continue
        n = len(u.documents)
        if u.skipped and not n:
            lines.append((0, f"{u.name} (saved as {u.saved}) could not be read: "
                             + "; ".join(i.reason for i in u.skipped)))
            continue
        count = f"{n} document{'s' if n != 1 else ''} indexed" if n else "no new document (its text is already indexed)"
        lines.append((0, f"Added {u.name} (saved as {u.saved}): {count}"))
        lines += [(1, f"{'line ' + str(i.line) + ': ' if i.line else ''}{'skipped: ' if i in u.skipped else ''}{i.reason}")
                  for i in u.skipped + u.warnings]
    out = "\n".join("    " * indent + "- " + escape_text(text) for indent, text in lines)
    if report is not None and any(u.saved for u in uploads):
        out += f"\n\nThe index now holds {report.documents:,} documents ({report.seconds:.1f}s); you can ask about them."
    return out or "No file was uploaded."


def upload(rag: Rag, files: list[str] | None, history: list | None,
           progress: Callable[[int, int, str], None] | None = None) -> list[dict]:
    """Add the uploaded files to the corpus (``Rag.add_documents``) and post a message about them."""
    history = list(history or [])
    files = [f for f in (files or []) if f]
    if not files:
        return history
    try:
        uploads, report = rag.add_documents([(Path(f).name, Path(f).read_bytes()) for f in files], progress=progress)
        text = upload_message(rag, uploads, report)
    except RagError as e:
        text = f"Upload failed: {escape_text(str(e))}"
    except Exception as e:  # noqa: BLE001 - the page must stay up
        text = f"Upload failed: {escape_text(f'{type(e).__name__}: {e}')}"
    return history + [{"role": "assistant", "content": text}]


# ---------------------------------------------------------------- starting


def auth_from_env() -> tuple[str, str] | None:
    """``RAG_UI_AUTH=user:password`` turns on the login page."""
    raw = os.environ.get("RAG_UI_AUTH", "")
    if not raw:
        return None
    user, sep, password = raw.partition(":")
    if not (sep and user and password):
        raise RagError("RAG_UI_AUTH must look like user:password")
    return user, password


def _issue_logger(log: Log) -> Callable[[SkippedInput, bool], None]:
    return lambda item, skipped: log(f"warning: {'skipped ' if skipped else ''}{item}")


def prepare_index(rag: Rag, log: Log = print) -> threading.Thread | None:
    """``Rag.start("background")``: no usable index, build it now; a stale one answers at once
    and is updated in a background thread; then the models load in it (the thread, returned)."""
    return rag.start("background", log=log, on_issue=_issue_logger(log)).updating
