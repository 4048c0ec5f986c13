"""Read a corpus (folders, .txt/.md/.html/.pdf/.docx/.jsonl/.jsonl.gz files) into Documents.

Bad input never stops ingestion: each unreadable file or JSONL line becomes a
``SkippedInput`` naming the file and line, and the rest is read. An input that is
read but has a problem (a legacy encoding, a date that is not a date, a file too
big to be one article) is kept and reported as a warning. ``read_corpus`` reports
both as soon as they are found through ``on_issue``.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rag.config import Settings
from rag.errors import CorpusError
from rag.ingest.documents import Warn, make_document, too_much_text
from rag.ingest.encodings import decode
from rag.ingest.formats import html_to_text, read_docx, read_pdf, split_front_matter
from rag.ingest.jsonl import read_jsonl
from rag.ingest.markup import markdown_to_text
from rag.types import Document, SkippedInput

TEXT_SUFFIXES = (".txt", ".md", ".markdown")
HTML_SUFFIXES = (".html", ".htm")
PDF_SUFFIXES = (".pdf",)
DOCX_SUFFIXES = (".docx",)
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz")
SUFFIXES_HELP = ".txt, .md, .html, .pdf, .docx, .jsonl or .jsonl.gz"
METADATA_FILE = "metadata.json"
MARKDOWN_SUFFIXES = (".md", ".markdown")
# The most a single-article file may weigh before it is read (decimal MB). Text and HTML are
# mostly their text; a PDF or DOCX is mostly images and fonts. JSONL has no file limit: it is
# read one line (one article) at a time. A bigger file is skipped with a warning.
MAX_FILE_BYTES = {"text": 50_000_000, "HTML": 50_000_000, "PDF": 200_000_000, "DOCX": 200_000_000}
OUTSIZED_CHARS = 5_000_000  # a single (non-JSONL) article longer than this is kept with a warning
# Rough characters per indexed chunk (about 4 characters a token), for the outsized-article warning.
_CHARS_PER_CHUNK = 4 * (Settings.chunk_tokens - Settings.chunk_overlap)
# Legacy encodings preferred when the detector finds them as plausible as its first choice
# (it tends to pick cp1250 for Western European text, turning "naïve" into "naďve").

IssueCallback = Callable[[SkippedInput, bool], None]


@dataclass
class IngestResult:
    documents: list[Document] = field(default_factory=list)
    skipped: list[SkippedInput] = field(default_factory=list)  # inputs not read
    files: list[Path] = field(default_factory=list)
    warnings: list[SkippedInput] = field(default_factory=list)  # inputs read and kept, with a problem


def supported(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith(TEXT_SUFFIXES + HTML_SUFFIXES + PDF_SUFFIXES + DOCX_SUFFIXES + JSONL_SUFFIXES)




def check_paths(paths: list[Path]) -> None:
    """A ``CorpusError`` naming the first of ``paths`` that does not exist."""
    for p in paths:
        if not p.exists():
            raise CorpusError(f"corpus path not found: {p}")


def list_files(paths: list[Path]) -> list[Path]:
    """The supported files under ``paths`` (folders read recursively), sorted."""
    check_paths(paths)
    found: list[Path] = []
    for p in paths:
        if p.is_dir():
            found.extend(
                f
                for f in sorted(p.rglob("*"))
                if f.is_file() and supported(f) and not _hidden(f.relative_to(p))
            )
        elif supported(p):
            found.append(p)
        else:
            raise CorpusError(f"{p}: unsupported file type (use {SUFFIXES_HELP})")
    return found


def read_corpus(
    paths: list[Path], files: list[Path] | None = None, on_issue: IssueCallback | None = None
) -> IngestResult:
    """Read every document under ``paths``; raise CorpusError if there is none at all.

    ``files`` is ``list_files(paths)`` when the caller has already listed them.
    ``on_issue(issue, skipped)`` is called as soon as a problem is found: ``skipped`` is True
    for an input that was not read (also in ``result.skipped``), False for one kept with a
    warning (also in ``result.warnings``).
    """
    result = IngestResult(files=list_files(paths) if files is None else files)
    result.documents = list(iter_corpus(paths, result, on_issue))
    return result


def iter_corpus(paths: list[Path], result: IngestResult, on_issue: IssueCallback | None = None) -> Iterator[Document]:
    """The documents of ``result.files`` one at a time (memory does not grow with the corpus);
    skipped inputs and warnings go to ``result`` and ``on_issue`` as they are found. Raises
    CorpusError at the end when no document could be read."""
    files = result.files
    if not files:
        raise CorpusError(
            "no readable articles in " + ", ".join(str(p) for p in paths) + f" (expected {SUFFIXES_HELP} files)"
        )

    def report(issue: SkippedInput, skipped: bool) -> None:
        (result.skipped if skipped else result.warnings).append(issue)
        if on_issue is not None:
            on_issue(issue, skipped)

    def warn(issue: SkippedInput) -> None:
        report(issue, False)

    seen_ids: dict[str, str] = {}
    meta_cache: dict[Path, dict] = {}
    for f in files:
        for item in _read_file(f, meta_cache, warn):
            if isinstance(item, SkippedInput):
                report(item, True)
                continue
            if item.doc_id in seen_ids and not item.line:
                # Same file name in two folders: qualify the id with its folder.
                item.doc_id = f"{Path(item.path).parent.name}/{item.doc_id}"
            if item.doc_id in seen_ids:
                report(
                    SkippedInput(item.path, item.line,
                                 f"duplicate document id {item.doc_id!r} (first in {seen_ids[item.doc_id]}); skipped"),
                    True,
                )
                continue
            seen_ids[item.doc_id] = item.path + (f":{item.line}" if item.line else "")
            yield item
    if not seen_ids:
        reasons = "; ".join(str(s) for s in result.skipped[:3])
        raise CorpusError(f"no readable articles in {', '.join(map(str, paths))}: {reasons}")


def count_documents(files: list[Path]) -> int:
    """About how many documents ``files`` hold, for progress: a line per record of a JSONL file
    (read fast, without parsing), one per other file."""
    total = 0
    for f in files:
        if not f.name.lower().endswith((".jsonl", ".jsonl.gz")):
            total += 1
            continue
        try:
            opener = gzip.open if f.name.lower().endswith(".gz") else open
            with opener(f, "rb") as fh:
                total += sum(1 for line in fh if line.strip())
        except (OSError, EOFError, zlib.error):
            total += 1
    return total


def _hidden(rel: Path) -> bool:
    return any(part.startswith(".") for part in rel.parts)


# ---------------------------------------------------------------- single-article files


def check_file(path: Path) -> str:
    """Why the corpus reader would take no article from ``path`` (its first reason), or "" when it
    takes one or more: what an upload is checked with before it is saved."""
    first = ""
    for item in _read_file(path, {}, lambda issue: None):
        if isinstance(item, Document):
            return ""
        first = first or item.reason
    return first or "no article found"


def _read_file(path: Path, meta_cache: dict[Path, dict], warn: Warn) -> Iterator[Document | SkippedInput]:
    name = path.name.lower()
    try:
        size = path.stat().st_size
        kind = _kind(name)
        if kind in MAX_FILE_BYTES and size > MAX_FILE_BYTES[kind]:
            yield SkippedInput(
                str(path), 0,
                f"file too large for one article: {_mb(size)} (the limit for a {kind} file is "
                f"{_mb(MAX_FILE_BYTES[kind])}); split it into articles, or use JSONL (no file size limit)",
            )
            return
        if name.endswith(JSONL_SUFFIXES):
            yield from read_jsonl(path, warn)
            return
        raw = path.read_bytes()
    except OSError as e:
        yield SkippedInput(str(path), 0, f"cannot read file: {e.strerror or e}")
        return
    meta = dict(_folder_metadata(path.parent, meta_cache).get(path.stem, {}))
    pages: list[int] = []
    if name.endswith(PDF_SUFFIXES + DOCX_SUFFIXES):
        if not raw.strip():
            yield SkippedInput(str(path), 0, "empty file")
            return
        read = read_pdf if name.endswith(PDF_SUFFIXES) else read_docx
        got = read(path, raw)
        if isinstance(got, SkippedInput):
            yield got
            return
        body, file_meta, pages = got
        for key, value in file_meta.items():
            meta.setdefault(key, value)
    else:
        text_or_skip = decode(path, raw, warn)
        if isinstance(text_or_skip, SkippedInput):
            yield text_or_skip
            return
        if name.endswith(HTML_SUFFIXES):
            body, html_meta = html_to_text(text_or_skip)
            for key, value in html_meta.items():
                meta.setdefault(key, value)
        else:
            body, front = split_front_matter(text_or_skip)
            meta = {**meta, **front}
            if name.endswith(MARKDOWN_SUFFIXES):
                body = markdown_to_text(body)
        if not body.strip():
            what = "no article text found in HTML" if name.endswith(HTML_SUFFIXES) else "empty file"
            yield SkippedInput(str(path), 0, what)
            return
    if (too_much := too_much_text(str(path), 0, body)) is not None:
        yield too_much
        return
    if len(body) > OUTSIZED_CHARS:
        mb = len(body.encode("utf-8", "surrogatepass")) / 1_000_000
        warn(SkippedInput(
            str(path), 0,
            f"{mb:.1f} MB of text in one article (about {len(body) // _CHARS_PER_CHUNK:,} chunks); "
            "is it really one article? Split it or use JSONL",
        ))
    doc = make_document(path.stem, body, meta, str(path), 0, warn)
    doc.pages = pages
    yield doc


def _kind(name: str) -> str:
    """The format of a (lower-cased) file name, as ``MAX_FILE_BYTES`` names it ("JSONL" has no limit)."""
    if name.endswith(JSONL_SUFFIXES):
        return "JSONL"
    if name.endswith(PDF_SUFFIXES):
        return "PDF"
    if name.endswith(DOCX_SUFFIXES):
        return "DOCX"
    return "HTML" if name.endswith(HTML_SUFFIXES) else "text"


def _mb(n: int) -> str:
    return f"{n / 1_000_000:,.1f} MB".replace(".0 MB", " MB")














# ---------------------------------------------------------------- PDF and DOCX








# python-docx stamps documents made from its own template with this creation date and author.








# ---------------------------------------------------------------- JSONL


















# ---------------------------------------------------------------- documents and metadata










def _folder_metadata(folder: Path, cache: dict[Path, dict]) -> dict:
    if folder not in cache:
        meta_path = folder / METADATA_FILE
        data: dict = {}
        if meta_path.is_file():
            try:
                data = json.loads(meta_path.read_text(encoding="utf-8"))
                if not isinstance(data, dict):
                    raise ValueError("top level is not an object")
            except (ValueError, OSError) as e:
                raise CorpusError(f"{meta_path}: cannot read metadata ({e})") from None
        cache[folder] = {k: v for k, v in data.items() if isinstance(v, dict)}
    return cache[folder]


