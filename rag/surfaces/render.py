"""Answers, passages and timelines as text: the one renderer of the CLI, the MCP server and the
browser chat (which escapes and links what it takes from here).

``width`` wraps the text for a terminal; 0 leaves lines whole (a client wraps them itself).
"""

from __future__ import annotations

import textwrap

from rag import Answer, Citation, Filters, Timeline, TimelineEntry

EXTRACTIVE_UNGROUNDED = "Extractive answer (the model's answer cites no passage):"
EXTRACTIVE_FAILED = "Extractive answer (the model's answer could not be used):"
ABSTAINED_NOTE = "(The articles do not answer this; the closest passages follow.)"


def _fill(text: str, width: int, indent: str = "", subsequent: str | None = None) -> str:
    if not width:
        return indent + text
    # Lines break between words only: "post-occupation" stays one word, as the article wrote it.
    return textwrap.fill(text, width, initial_indent=indent, break_on_hyphens=False,
                         subsequent_indent=indent if subsequent is None else subsequent)


def cites(numbers) -> str:
    return "".join(f"[{n}]" for n in numbers)


def conflict_rows(conflict) -> list[str]:
    """One line per value: "7,000 as of 2018-12-31 [2]"; values of the same days add their dates."""
    if conflict.kind == "update":
        return [f"{v.value} as of {v.as_of or 'an undated article'} {cites(v.citations)}" for v in conflict.values]
    return [f"{v.value} {cites(v.citations)}" + (f" ({', '.join(v.dates)})" if v.dates else "") for v in conflict.values]


def recent_note(day: str) -> str:
    """What a question about "now" was answered with."""
    return f"a question about recent events: articles dated near {day} come first"


def span_line(s) -> str:
    """``Title (source, date, page 3) doc_id chars a-b`` of a cited passage or a timeline source."""
    meta = ", ".join(x for x in (s.source, s.date, f"page {s.page}" if s.page else "") if x)
    return f"{s.title or '(untitled)'}" + (f" ({meta})" if meta else "") + f" {s.doc_id} chars {s.start}-{s.end}"


def quoted(text: str, width: int = 0, limit: int = 0) -> str:
    """A passage, quoted and indented; cut at a word past ``limit`` characters when one is given."""
    text = " ".join(text.split())
    if limit and len(text) > limit:
        text = text[:limit - 3].rsplit(" ", 1)[0] + "..."
    return _fill(f"“{text}”", width, "    ")


def sources_text(citations: list[Citation], width: int = 0, scores: bool = False, limit: int = 300) -> str:
    lines = ["Sources:"]
    for c in citations:
        lines += [f"[{c.n}] {span_line(c)}" + (f" score {c.score:.4f}" if scores else ""), quoted(c.text, width, limit)]
    return "\n".join(lines)


def answer_text(answer: Answer, width: int = 0, streamed: bool = False, warnings: bool = False,
                day_setting: str = "the reference day") -> str:
    """The short answer (when there is one), the answer, what stands in for an LLM answer that could
    not be used, notes, the values the sources give differently, and the sources. ``streamed``: the
    model's answer was already shown as it was written; ``warnings``: the warnings go inline;
    ``day_setting``: how this surface sets the day a question about "now" refers to."""
    blocks = []
    short = answer.short_line()
    if answer.llm_tokens:  # the model answered: its checked answer stands
        if not streamed:
            blocks.append(_fill(answer.answer, width))
        if answer.ungrounded and answer.extractive_answer:
            blocks.append(EXTRACTIVE_UNGROUNDED + "\n" + _fill(answer.extractive_answer, width))
    elif streamed:  # the model stopped part-way (a warning says why): the extractive answer stands
        blocks.append(EXTRACTIVE_FAILED + "\n" + _fill(answer.answer, width))
    else:
        blocks.append((short + "\n" if short else "") + _fill(answer.answer, width))
    notes = [f"warning: {w}" for w in answer.warnings] if warnings else []
    if answer.standalone_question and answer.standalone_question != answer.question:
        notes.append(f"(Read as: {answer.standalone_question})")  # a follow-up, with what it refers to
    if answer.abstained and answer.citations:
        notes.append(ABSTAINED_NOTE)
    if answer.reference_day:
        notes.append(f"({recent_note(answer.reference_day)}; {day_setting} sets the day.)")
    if notes:
        blocks.append("\n".join(notes))
    for c in answer.conflicts:
        blocks.append(c.headline + "\n" + "\n".join(_fill(r, width, "  - ", "    ") for r in conflict_rows(c)))
    if answer.citations:
        blocks.append(sources_text(answer.citations, width, scores=True))
    return ("\n" if streamed else "") + "\n\n".join(blocks)


def search_text(query: str, citations: list[Citation], width: int = 0) -> str:
    if not citations:
        return f"No passage matches {query.strip()!r}."
    lines = [f"{len(citations)} passage{'s' if len(citations) != 1 else ''} for {query.strip()!r}, best first:"]
    for c in citations:
        lines += ["", f"[{c.n}] {span_line(c)} score {c.score:.4f}", quoted(c.text, width)]
    return "\n".join(lines)


def how_dated(entry: TimelineEntry) -> str:
    """How the date was obtained: "“Last week” in an article of 2018-12-31", or "article date"."""
    if entry.basis != "stated":
        return "article date"
    article = f"an article of {entry.source.date}" if entry.source.date else "an undated article"
    return f"“{entry.stated}” in {article}"


def timeline_text(timeline: Timeline, filters: Filters = Filters(), width: int = 0) -> str:
    """One block per event: its date and how it was dated, the sentence, its source and the others reporting it."""
    query = timeline.query.strip()
    if not timeline.entries:
        where = f" among the articles that pass the filters ({filters.describe()})" if filters else ""
        return f"No dated event about {query!r} found{where}."
    spelled = "; ".join(f"{w} also spelled {', '.join(vs)}" for w, vs in timeline.variants.items())
    lines = [f"Timeline of {query!r}: {timeline.summary()}, oldest first" + (f" ({spelled})" if spelled else "") + ":"]
    for e in timeline.entries:
        lines += ["", f"{e.when} ({how_dated(e)})", quoted(e.text, width), f"    source: {span_line(e.source)}"]
        lines += [f"    also: {span_line(s)}" for s in e.also]
    return "\n".join(lines)


def document_text(out: dict) -> str:
    """A document or a span of it (``Rag.document_span``)."""
    meta = ", ".join(x for x in (out["source"], out["date"]) if x)
    head = f"{out['title'] or '(untitled)'}" + (f" ({meta})" if meta else "")
    span = f"{out['doc_id']} chars {out['start']}-{out['end']} of {out['length']}"
    return "\n".join([head, span] + ([out["url"]] if out["url"] else []) + ["", out["text"]])
