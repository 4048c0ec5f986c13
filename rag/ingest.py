"""Read a corpus (folders, .txt/.md/.html/.jsonl/.jsonl.gz files) into Documents.

Bad input never stops ingestion: each unreadable file or JSONL line becomes a
``SkippedInput`` naming the file and line, and the rest is read.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlparse

from .errors import CorpusError
from .types import Document, SkippedInput

TEXT_SUFFIXES = (".txt", ".md", ".markdown")
HTML_SUFFIXES = (".html", ".htm")
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz")
METADATA_FILE = "metadata.json"
MAX_FILE_BYTES = 50_000_000


@dataclass
class IngestResult:
    documents: list[Document] = field(default_factory=list)
    skipped: list[SkippedInput] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def supported(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith(TEXT_SUFFIXES + HTML_SUFFIXES + JSONL_SUFFIXES)


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
            raise CorpusError(
                f"{p}: unsupported file type (use .txt, .md, .html, .jsonl or .jsonl.gz)"
            )
    return found


def read_corpus(paths: list[Path], files: list[Path] | None = None) -> IngestResult:
    """Read every document under ``paths``; raise CorpusError if there is none at all.

    ``files`` is ``list_files(paths)`` when the caller has already listed them.
    """
    files = list_files(paths) if files is None else files
    result = IngestResult(files=files)
    if not files:
        raise CorpusError(
            "no readable articles in " + ", ".join(str(p) for p in paths)
            + " (expected .txt, .md, .html, .jsonl or .jsonl.gz files)"
        )
    seen_ids: dict[str, str] = {}
    meta_cache: dict[Path, dict] = {}
    for f in files:
        for item in _read_file(f, meta_cache):
            if isinstance(item, SkippedInput):
                result.skipped.append(item)
                continue
            if item.doc_id in seen_ids and not item.line:
                # Same file name in two folders: qualify the id with its folder.
                item.doc_id = f"{Path(item.path).parent.name}/{item.doc_id}"
            if item.doc_id in seen_ids:
                result.skipped.append(
                    SkippedInput(item.path, item.line,
                                 f"duplicate document id {item.doc_id!r} (first in {seen_ids[item.doc_id]}); skipped")
                )
                continue
            seen_ids[item.doc_id] = item.path + (f":{item.line}" if item.line else "")
            result.documents.append(item)
    if not result.documents:
        reasons = "; ".join(str(s) for s in result.skipped[:3])
        raise CorpusError(f"no readable articles in {', '.join(map(str, paths))}: {reasons}")
    return result


def _hidden(rel: Path) -> bool:
    return any(part.startswith(".") for part in rel.parts)


def _read_file(path: Path, meta_cache: dict[Path, dict]) -> Iterator[Document | SkippedInput]:
    name = path.name.lower()
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES and not name.endswith(JSONL_SUFFIXES):
            yield SkippedInput(str(path), 0, f"file too large ({size} bytes)")
            return
        if name.endswith(JSONL_SUFFIXES):
            yield from _read_jsonl(path)
            return
        raw = path.read_bytes()
    except OSError as e:
        yield SkippedInput(str(path), 0, f"cannot read file: {e.strerror or e}")
        return
    text_or_skip = _decode(path, raw)
    if isinstance(text_or_skip, SkippedInput):
        yield text_or_skip
        return
    meta = dict(_folder_metadata(path.parent, meta_cache).get(path.stem, {}))
    if name.endswith(HTML_SUFFIXES):
        body, html_meta = _html_to_text(text_or_skip)
        for key, value in html_meta.items():
            meta.setdefault(key, value)
    else:
        body, front = _split_front_matter(text_or_skip)
        meta = {**meta, **front}
    if not body.strip():
        what = "no article text found in HTML" if name.endswith(HTML_SUFFIXES) else "empty file"
        yield SkippedInput(str(path), 0, what)
        return
    yield _document(path.stem, body, meta, str(path), 0)


def _decode(path: Path, raw: bytes) -> str | SkippedInput:
    if not raw.strip():
        return SkippedInput(str(path), 0, "empty file")
    if b"\x00" in raw[:8192]:
        return SkippedInput(str(path), 0, "binary file (contains NUL bytes)")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        return SkippedInput(
            str(path), line, f"not valid UTF-8 (byte 0x{raw[e.start]:02x} at offset {e.start}); re-save it as UTF-8"
        )


def _read_jsonl(path: Path) -> Iterator[Document | SkippedInput]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    stem = path.name.split(".")[0]
    try:
        with opener(path, "rb") as fh:
            for lineno, raw in enumerate(fh, 1):
                if not raw.strip():
                    continue
                yield _jsonl_line(path, stem, lineno, raw)
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as e:
        yield SkippedInput(str(path), 0, f"cannot read file: {e}")


def _jsonl_line(path: Path, stem: str, lineno: int, raw: bytes) -> Document | SkippedInput:
    where = str(path)
    try:
        obj = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return SkippedInput(where, lineno, "line is not valid UTF-8")
    except json.JSONDecodeError as e:
        return SkippedInput(where, lineno, f"not valid JSON ({e.msg})")
    if not isinstance(obj, dict):
        return SkippedInput(where, lineno, "line is not a JSON object")
    text = obj.get("text")
    if not isinstance(text, str) or not text.strip():
        return SkippedInput(where, lineno, "no \"text\" field (or it is empty)")
    doc_id = str(obj.get("id") or f"{stem}-{lineno}")
    meta = {k: obj[k] for k in ("title", "date", "source", "url") if isinstance(obj.get(k), str)}
    return _document(doc_id, text, meta, where, lineno)


def _document(doc_id: str, text: str, meta: dict, path: str, line: int) -> Document:
    url = str(meta.get("url") or "")
    source = str(meta.get("source") or "") or _domain(url)
    return Document(
        doc_id=doc_id,
        text=text,
        title=str(meta.get("title") or "").strip() or _first_line_title(text),
        date=normalize_date(str(meta.get("date") or "")),
        source=source,
        url=url,
        path=path,
        line=line,
    )


def normalize_date(value: str) -> str:
    """``2023/01/05``, ``2023-01-05T10:00Z``, ``5 January 2023`` -> ``2023-01-05``; else ""."""
    value = value.strip()
    m = re.match(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})", value)
    if m:
        y, mo, d = (int(g) for g in m.groups())
        try:
            return datetime(y, mo, d).strftime("%Y-%m-%d")
        except ValueError:
            return ""
    for fmt in ("%d %B %Y", "%B %d, %Y", "%b %d, %Y", "%d %b %Y", "%Y-%m", "%Y"):
        try:
            return datetime.strptime(value, fmt).strftime("%Y-%m-%d")
        except ValueError:
            continue
    return ""


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
