"""Read a corpus (folders, .txt/.md/.html/.pdf/.docx/.jsonl/.jsonl.gz files) into Documents.

Bad input never stops ingestion: each unreadable file or JSONL line becomes a
``SkippedInput`` naming the file and line, and the rest is read. An input that is
read but has a problem (a legacy encoding, a date that is not a date, a file too
big to be one article) is kept and reported as a warning. ``read_corpus`` reports
both as soon as they are found through ``on_issue``.
"""

from __future__ import annotations

import codecs
import contextlib
import gzip
import io
import json
import logging
import re
import zlib
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlparse

from rag.config import Settings
from rag.errors import CorpusError
from rag.ingest.markup import join_lines, markdown_to_text
from rag.text.dates import parse_date
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
MAX_ARTICLE_CHARS = 50_000_000  # an article (any format, a JSONL record too) with more text is skipped
OUTSIZED_CHARS = 5_000_000  # a single (non-JSONL) article longer than this is kept with a warning
DETECT_SAMPLE_BYTES = 1_000_000  # bytes of a non-UTF-8 file (or its non-UTF-8 JSONL lines) the encoding is guessed from
# Rough characters per indexed chunk (about 4 characters a token), for the outsized-article warning.
_CHARS_PER_CHUNK = 4 * (Settings.chunk_tokens - Settings.chunk_overlap)
# Legacy encodings preferred when the detector finds them as plausible as its first choice
# (it tends to pick cp1250 for Western European text, turning "naïve" into "naďve").
_PREFERRED_ENCODINGS = ("cp1252", "latin_1", "iso8859_15")
_BOMS = (  # longest first: the UTF-32-LE BOM starts with the UTF-16-LE one
    (codecs.BOM_UTF32_LE, "utf_32"),
    (codecs.BOM_UTF32_BE, "utf_32"),
    (codecs.BOM_UTF8, "utf_8_sig"),
    (codecs.BOM_UTF16_LE, "utf_16"),
    (codecs.BOM_UTF16_BE, "utf_16"),
)

IssueCallback = Callable[[SkippedInput, bool], None]
_Warn = Callable[[SkippedInput], None]


@dataclass
class IngestResult:
    documents: list[Document] = field(default_factory=list)
    skipped: list[SkippedInput] = field(default_factory=list)  # inputs not read
    files: list[Path] = field(default_factory=list)
    warnings: list[SkippedInput] = field(default_factory=list)  # inputs read and kept, with a problem


def supported(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith(TEXT_SUFFIXES + HTML_SUFFIXES + PDF_SUFFIXES + DOCX_SUFFIXES + JSONL_SUFFIXES)


def page_of(pages: list[int], offset: int) -> int:
    """The 1-based page holding character ``offset`` of a document whose ``Document.pages`` is ``pages``.

    Only meaningful for PDFs: a document with no page starts (any non-PDF, or a one-page PDF) gives 1.
    """
    return bisect_right(pages, offset) + 1


def list_files(paths: list[Path]) -> list[Path]:
    """The supported files under ``paths`` (folders read recursively), sorted."""
    found: list[Path] = []
    for p in paths:
        if not p.exists():
            raise CorpusError(f"corpus path not found: {p}")
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


def _read_file(path: Path, meta_cache: dict[Path, dict], warn: _Warn) -> Iterator[Document | SkippedInput]:
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
            yield from _read_jsonl(path, warn)
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
        read = _read_pdf if name.endswith(PDF_SUFFIXES) else _read_docx
        got = read(path, raw)
        if isinstance(got, SkippedInput):
            yield got
            return
        body, file_meta, pages = got
        for key, value in file_meta.items():
            meta.setdefault(key, value)
    else:
        text_or_skip = _decode(path, raw, warn)
        if isinstance(text_or_skip, SkippedInput):
            yield text_or_skip
            return
        if name.endswith(HTML_SUFFIXES):
            body, html_meta = _html_to_text(text_or_skip)
            for key, value in html_meta.items():
                meta.setdefault(key, value)
        else:
            body, front = _split_front_matter(text_or_skip)
            meta = {**meta, **front}
            if name.endswith(MARKDOWN_SUFFIXES):
                body = markdown_to_text(body)
        if not body.strip():
            what = "no article text found in HTML" if name.endswith(HTML_SUFFIXES) else "empty file"
            yield SkippedInput(str(path), 0, what)
            return
    if len(body) > MAX_ARTICLE_CHARS:
        yield _too_much_text(str(path), 0, body)
        return
    if len(body) > OUTSIZED_CHARS:
        mb = len(body.encode("utf-8", "surrogatepass")) / 1_000_000
        warn(SkippedInput(
            str(path), 0,
            f"{mb:.1f} MB of text in one article (about {len(body) // _CHARS_PER_CHUNK:,} chunks); "
            "is it really one article? Split it or use JSONL",
        ))
    doc = _document(path.stem, body, meta, str(path), 0, warn)
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


def _too_much_text(where: str, line: int, text: str) -> SkippedInput:
    return SkippedInput(
        where, line,
        f"article too large: {len(text):,} characters of text (the limit is {MAX_ARTICLE_CHARS:,}); split it into articles",
    )


def _decode(path: Path, raw: bytes, warn: _Warn) -> str | SkippedInput:
    """The text of a file: UTF-8, a BOM's encoding, or (with a warning) a detected legacy encoding."""
    if not raw.strip():
        return SkippedInput(str(path), 0, "empty file")
    encoding = _bom_encoding(raw[:4]) or _utf16_without_bom(raw[:8192])
    if encoding:
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as e:
            return SkippedInput(str(path), 0, f"not valid {_codec_label(encoding)} ({e.reason} at byte {e.start})")
        if not text.strip():
            return SkippedInput(str(path), 0, "empty file")
        if encoding != "utf_8_sig":
            warn(SkippedInput(str(path), 0, f"not UTF-8; read as {_codec_label(encoding)}"))
        return text
    if b"\x00" in raw[:8192]:
        return SkippedInput(str(path), 0, "binary file (contains NUL bytes)")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        where = f"byte 0x{raw[e.start]:02x} at offset {e.start}, line {line}"
    encoding = _detect_encoding(raw[:DETECT_SAMPLE_BYTES])
    if encoding:
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:  # the sample fitted, a later byte does not
            encoding = ""
    if not encoding:
        return SkippedInput(
            str(path), line, f"not valid UTF-8 ({where}) and no other text encoding fits; re-save it as UTF-8"
        )
    warn(SkippedInput(str(path), 0, f"not UTF-8; read as {encoding}"))
    return text


def _bom_encoding(head: bytes) -> str:
    return next((enc for bom, enc in _BOMS if head.startswith(bom)), "")


def _utf16_without_bom(sample: bytes) -> str:
    """``utf_16_le``/``utf_16_be`` when ``sample`` looks like mostly-ASCII UTF-16 text with no BOM, else ""."""
    sample = sample[: len(sample) // 2 * 2]
    if len(sample) < 8:
        return ""
    even, odd = sample[0::2], sample[1::2]
    n = len(even)

    def nul_share(b: bytes) -> float:
        return b.count(0) / n

    if nul_share(odd) > 0.9 and nul_share(even) < 0.1:
        return "utf_16_le"
    if nul_share(even) > 0.9 and nul_share(odd) < 0.1:
        return "utf_16_be"
    return ""


def _detect_encoding(sample: bytes) -> str:
    """The legacy encoding ``sample`` is most likely in (charset-normalizer), or "" when none fits."""
    from charset_normalizer import from_bytes

    matches = list(from_bytes(sample))
    if not matches:
        return ""
    best = matches[0]
    plausible = [m for m in matches if m.chaos <= best.chaos + 0.01]
    for preferred in _PREFERRED_ENCODINGS:
        if any(preferred in m.could_be_from_charset for m in plausible):
            return preferred
    return best.encoding


def _codec_label(encoding: str) -> str:
    return {"utf_8_sig": "UTF-8", "utf_16": "UTF-16", "utf_16_le": "UTF-16-LE", "utf_16_be": "UTF-16-BE",
            "utf_32": "UTF-32"}.get(encoding, encoding)


# ---------------------------------------------------------------- PDF and DOCX


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


def _read_pdf(path: Path, raw: bytes) -> tuple[str, dict[str, str], list[int]] | SkippedInput:
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
            return SkippedInput(where, 0, f"cannot read PDF: {_brief(e)} (damaged or not really a PDF?)")
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


# python-docx stamps documents made from its own template with this creation date and author.
_PYTHON_DOCX_TEMPLATE_DATE = datetime(2013, 12, 23, 23, 15, tzinfo=timezone.utc)


def _read_docx(path: Path, raw: bytes) -> tuple[str, dict[str, str], list[int]] | SkippedInput:
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
        return SkippedInput(where, 0, f"cannot read DOCX: {_brief(e)} (damaged or not really a Word file?)")
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


def _brief(e: Exception) -> str:
    text = str(e).strip() or type(e).__name__
    return text if len(text) <= 160 else text[:157] + "..."


# ---------------------------------------------------------------- JSONL


class _ReadError(Exception):
    """An error reading the file (not one line of it), after ``lines`` lines and ``records`` documents."""


def _read_jsonl(path: Path, warn: _Warn) -> Iterator[Document | SkippedInput]:
    gz = path.name.lower().endswith(".gz")
    opener = gzip.open if gz else open
    stem = path.name.split(".")[0]
    where = str(path)
    lineno = records = 0
    try:
        with opener(path, "rb") as fh:
            head = fh.peek(8192)[:8192]
            encoding = _bom_encoding(head[:4]) or _utf16_without_bom(head)
            if encoding and encoding != "utf_8_sig":
                warn(SkippedInput(where, 0, f"not UTF-8; read as {_codec_label(encoding)}"))
                lines: Iterable[str | bytes] = io.TextIOWrapper(fh, encoding=encoding, newline="\n")
            else:
                lines = _Lines(fh)
            decoder = _LineDecoder(where, warn)
            for lineno, raw in enumerate(lines, 1):
                text = raw if isinstance(raw, str) else decoder.decode(raw, lineno, lines)
                if isinstance(text, SkippedInput):
                    yield text
                    continue
                if lineno == 1:
                    text = text.removeprefix("\ufeff")
                if not text.strip():
                    continue
                item = _jsonl_line(where, stem, lineno, text, warn)
                records += isinstance(item, Document)
                yield item
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as e:
        yield SkippedInput(where, 0, _read_error_message(e, lineno, records))


def _read_error_message(e: Exception, lineno: int, records: int) -> str:
    read = f"{records} record{'s' if records != 1 else ''} before it {'were' if records != 1 else 'was'} read"
    if isinstance(e, EOFError):
        if not lineno:
            return "cannot read file: it is cut off before the end of its first line (compressed data ended early)"
        return f"the file is cut off after line {lineno} (compressed data ended early); {read}"
    if isinstance(e, gzip.BadGzipFile) and not lineno:
        return "cannot read file: not a gzip file (it does not start with the gzip signature)"
    if isinstance(e, (zlib.error, gzip.BadGzipFile)):
        what = f"corrupt compressed data ({e})"
    elif isinstance(e, UnicodeDecodeError):
        what = f"not valid {_codec_label(e.encoding.replace('-', '_'))}: {e.reason}"
    else:
        what = getattr(e, "strerror", None) or str(e)
    if not lineno:
        return f"cannot read file: {what}"
    return f"cannot read the file after line {lineno} ({what}); {read}"


class _Lines:
    """Byte lines of a file that can look ahead (to guess the encoding of non-UTF-8 lines).

    A read error met while looking ahead is raised when the lines before it have been consumed.
    """

    def __init__(self, fh) -> None:
        self._it = iter(fh)
        self._ahead: list[bytes] = []
        self._error: BaseException | None = None

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self._ahead:
            return self._ahead.pop(0)
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return next(self._it)

    def peek(self, limit: int) -> list[bytes]:
        """Up to ``limit`` bytes of the lines after the current one (read now, returned later by ``next``)."""
        size = sum(len(b) for b in self._ahead)
        while size < limit and self._error is None:
            try:
                line = next(self._it)
            except StopIteration:
                break
            except (OSError, EOFError, zlib.error) as e:
                self._error = e
                break
            self._ahead.append(line)
            size += len(line)
        return list(self._ahead)


class _LineDecoder:
    """Decode JSONL lines: UTF-8, else the encoding guessed from the file's non-UTF-8 lines (with one warning)."""

    def __init__(self, where: str, warn: _Warn) -> None:
        self.where = where
        self.warn = warn
        self.encoding: str | None = None  # None: not guessed yet; "": nothing fits

    def decode(self, raw: bytes, lineno: int, lines) -> str | SkippedInput:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            bad = e
        if self.encoding is None:
            sample = [raw] + [b for b in lines.peek(DETECT_SAMPLE_BYTES) if not _is_utf8(b)]
            self.encoding = _detect_encoding(b"".join(sample)[:DETECT_SAMPLE_BYTES])
            if self.encoding:
                self.warn(SkippedInput(self.where, 0, f"not UTF-8 (first at line {lineno}); read as {self.encoding}"))
        if self.encoding:
            try:
                return raw.decode(self.encoding)
            except UnicodeDecodeError:
                pass
        return SkippedInput(
            self.where, lineno,
            f"line is not valid UTF-8 (byte 0x{raw[bad.start]:02x} at column {bad.start + 1}) "
            "and no other text encoding fits; re-save the file as UTF-8",
        )


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _jsonl_line(where: str, stem: str, lineno: int, text: str, warn: _Warn) -> Document | SkippedInput:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        return SkippedInput(where, lineno, f"not valid JSON ({e.msg})")
    if not isinstance(obj, dict):
        return SkippedInput(where, lineno, "line is not a JSON object")
    if "text" not in obj:
        return SkippedInput(where, lineno, "no \"text\" field")
    body = obj["text"]
    if not isinstance(body, str):
        return SkippedInput(where, lineno, f"\"text\" is {_json_kind(body)}, not a string")
    if not body.strip():
        return SkippedInput(where, lineno, "\"text\" is empty")
    if len(body) > MAX_ARTICLE_CHARS:
        return _too_much_text(where, lineno, body)
    doc_id = str(obj.get("id") or f"{stem}-{lineno}")
    meta = {k: obj[k] for k in ("title", "date", "source", "url") if isinstance(obj.get(k), str)}
    date = obj.get("date")
    if date is not None and not isinstance(date, str):
        warn(SkippedInput(where, lineno, f"\"date\" is {_json_kind(date)}, not a string; the article is kept undated"))
    return _document(doc_id, body, meta, where, lineno, warn)


# ---------------------------------------------------------------- documents and metadata


def _document(doc_id: str, text: str, meta: dict, path: str, line: int, warn: _Warn) -> Document:
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


def _split_front_matter(text: str) -> tuple[str, dict[str, str]]:
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


def _html_to_text(html: str) -> tuple[str, dict[str, str]]:
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
