"""An article as a ``Document``: its metadata from a record or file, and the limits on its text."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlparse

from rag.text.dates import parse_date
from rag.types import Document, SkippedInput

Warn = Callable[[SkippedInput], None]


MAX_ARTICLE_CHARS = 50_000_000  # an article (any format, a JSONL record too) with more text is skipped


def too_much_text(where: str, line: int, text: str) -> SkippedInput | None:
    """Why an article with this much text is skipped, or None when it is within the limit."""
    if len(text) <= MAX_ARTICLE_CHARS:
        return None
    return SkippedInput(
        where, line,
        f"article too large: {len(text):,} characters of text (the limit is {MAX_ARTICLE_CHARS:,}); split it into articles",
    )


def make_document(doc_id: str, text: str, meta: dict, path: str, line: int, warn: Warn) -> Document:
    url = str(meta.get("url") or "")
    source = str(meta.get("source") or "") or _domain(url)
    raw_date = str(meta.get("date") or "").strip()
    date = parse_date(raw_date)
    if raw_date and not date:
        shown = raw_date if len(raw_date) <= 60 else raw_date[:57] + "..."
        warn(SkippedInput(path, line, f"date {shown!r} is not a date; the article is kept undated"))
    return Document(
        doc_id=doc_id,
        text=text,
        title=str(meta.get("title") or "").strip() or _first_line_title(text),
        date=date,
        source=source,
        url=url,
        path=path,
        line=line,
    )


def _domain(url: str) -> str:
    host = urlparse(url).netloc.lower()
    return host[4:] if host.startswith("www.") else host


def _first_line_title(text: str) -> str:
    line = text.strip().split("\n", 1)[0].strip()
    return line if len(line) <= 120 else line[:117].rsplit(" ", 1)[0] + "..."


def brief(e: Exception) -> str:
    text = str(e).strip() or type(e).__name__
    return text if len(text) <= 160 else text[:157] + "..."
