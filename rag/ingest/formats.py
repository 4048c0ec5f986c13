"""PDF, DOCX and HTML files as text with their metadata, and the front matter of a text file."""

from __future__ import annotations

import contextlib
import io
import logging
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from rag.errors import CorpusError
from rag.ingest.documents import brief
from rag.ingest.markup import join_lines
from rag.types import SkippedInput


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Silence a library's own warnings about a damaged file: we report the outcome ourselves."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR + 10)
    try:
        yield
    finally:
        logger.setLevel(level)


def read_pdf(path: Path, raw: bytes) -> tuple[str, dict[str, str], list[int]] | SkippedInput:
    """Text of each page (its lines joined into paragraphs) joined with a blank line, the PDF's title
    and date, and where pages 2, 3, ... start."""
    try:
        import pypdf
        from pypdf.errors import DependencyError, FileNotDecryptedError
    except ImportError as e:
        raise CorpusError(f"reading PDF needs pypdf ({e}); pip install -e .") from None

    where = str(path)
    with _quiet("pypdf"):
        try:
            reader = pypdf.PdfReader(io.BytesIO(raw))
            if reader.is_encrypted and not reader.decrypt(""):
                return SkippedInput(where, 0, "encrypted PDF (needs a password); save a copy without the password")
            texts = [join_lines((page.extract_text() or "").strip()) for page in reader.pages]
        except (FileNotDecryptedError, DependencyError) as e:
            return SkippedInput(where, 0, f"encrypted PDF that cannot be opened ({e}); save a copy without the password")
        except Exception as e:  # pypdf raises many kinds of errors on a damaged file
            return SkippedInput(where, 0, f"cannot read PDF: {brief(e)} (damaged or not really a PDF?)")
        try:
            info = reader.metadata or {}
            title = str(info.get("/Title") or "").strip()
            created = str(info.get("/CreationDate") or "").strip()
        except Exception:  # a damaged info dictionary costs the metadata, not the text
            title = created = ""
    if not texts:
        return SkippedInput(where, 0, "PDF has no pages")
    if not any(texts):
        return SkippedInput(where, 0, "no text layer (scanned PDF?); run OCR first")
    pages: list[int] = []
    offset = 0
    for text in texts[:-1]:
        offset += len(text) + 2
        pages.append(offset)
    meta: dict[str, str] = {}
    if title:
        meta["title"] = title
    if created:
        meta["date"] = _pdf_date(created)
    return "\n\n".join(texts), meta, pages


def _pdf_date(value: str) -> str:
    """``D:20230105120000+01'00'`` -> ``2023-01-05`` (the value itself when it is not in that form)."""
    m = re.match(r"(?:D:)?(\d{4})(\d{2})?(\d{2})?", value)
    if not m:
        return value
    return "-".join(g for g in m.groups() if g)


_PYTHON_DOCX_TEMPLATE_DATE = datetime(2013, 12, 23, 23, 15, tzinfo=timezone.utc)


def read_docx(path: Path, raw: bytes) -> tuple[str, dict[str, str], list[int]] | SkippedInput:
    """Paragraphs and table rows in document order, joined with a blank line; title and creation date."""
    try:
        import docx
        from docx.table import Table
    except ImportError as e:
        raise CorpusError(f"reading DOCX needs python-docx ({e}); pip install -e .") from None

    where = str(path)
    if raw.startswith(b"\xd0\xcf\x11\xe0"):  # an OLE container: old .doc, or an encrypted .docx
        return SkippedInput(
            where, 0, "not a .docx file inside (password-protected, or an old .doc renamed?); save it as .docx"
        )
    try:
        document = docx.Document(io.BytesIO(raw))
        blocks: list[str] = []
        for block in document.iter_inner_content():
            if isinstance(block, Table):
                blocks.extend(_table_rows(block))
            else:
                blocks.append(block.text.strip())
        text = "\n\n".join(b for b in blocks if b)
    except Exception as e:  # python-docx / zipfile / lxml raise many kinds of errors on a damaged file
        return SkippedInput(where, 0, f"cannot read DOCX: {brief(e)} (damaged or not really a Word file?)")
    if not text.strip():
        return SkippedInput(where, 0, "empty file (no text in the document)")
    meta: dict[str, str] = {}
    try:
        props = document.core_properties
        if (props.title or "").strip():
            meta["title"] = props.title.strip()
        created = props.created
        if created and not (created == _PYTHON_DOCX_TEMPLATE_DATE and props.author == "python-docx"):
            meta["date"] = created.date().isoformat()
    except Exception:  # damaged document properties cost the metadata, not the text
        pass
    return text, meta, []


def _table_rows(table) -> list[str]:
    rows = []
    for row in table.rows:
        cells: list[str] = []
        for cell in row.cells:
            value = cell.text.strip()
            if value and (not cells or cells[-1] != value):  # a merged cell repeats in each column it spans
                cells.append(value)
        rows.append(" | ".join(cells))
    return rows


def html_to_text(html: str) -> tuple[str, dict[str, str]]:
    try:
        import trafilatura
    except ImportError as e:
        raise CorpusError(f"reading HTML needs trafilatura and lxml_html_clean ({e}); pip install -e .") from None

    text = trafilatura.extract(
        html, include_comments=False, include_tables=False, favor_precision=True, with_metadata=False
    ) or ""
    meta: dict[str, str] = {}
    md = trafilatura.extract_metadata(html)
    if md is not None:
        for key, attr in (("title", "title"), ("date", "date"), ("source", "sitename"), ("url", "url")):
            value = getattr(md, attr, None)
            if value:
                meta[key] = str(value)
    return text, meta


def split_front_matter(text: str) -> tuple[str, dict[str, str]]:
    """``---\\ntitle: ...\\ndate: ...\\n---\\n`` at the top of a .txt/.md file."""
    m = re.match(r"---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(\r?\n|$)", text, re.S)
    if not m:
        return text, {}
    meta = {}
    for line in m.group(1).splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            meta[key.strip().lower()] = value.strip().strip("\"'")
    return text[m.end():], meta
