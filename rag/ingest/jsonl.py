"""JSONL corpora (plain or gzipped): one article a line, read one line at a time, each bad line
skipped with its line number and the rest read."""

from __future__ import annotations

import gzip
import io
import json
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from rag.ingest.documents import Warn, make_document, too_much_text
from rag.ingest.encodings import LineDecoder, bom_encoding, codec_label, utf16_without_bom
from rag.types import Document, SkippedInput


class _ReadError(Exception):
    """An error reading the file (not one line of it), after ``lines`` lines and ``records`` documents."""


def read_jsonl(path: Path, warn: Warn) -> Iterator[Document | SkippedInput]:
    gz = path.name.lower().endswith(".gz")
    opener = gzip.open if gz else open
    stem = path.name.split(".")[0]
    where = str(path)
    lineno = records = 0
    try:
        with opener(path, "rb") as fh:
            head = fh.peek(8192)[:8192]
            encoding = bom_encoding(head[:4]) or utf16_without_bom(head)
            if encoding and encoding != "utf_8_sig":
                warn(SkippedInput(where, 0, f"not UTF-8; read as {codec_label(encoding)}"))
                lines: Iterable[str | bytes] = io.TextIOWrapper(fh, encoding=encoding, newline="\n")
            else:
                lines = _Lines(fh)
            decoder = LineDecoder(where, warn)
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
        what = f"not valid {codec_label(e.encoding.replace('-', '_'))}: {e.reason}"
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


def _jsonl_line(where: str, stem: str, lineno: int, text: str, warn: Warn) -> Document | SkippedInput:
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
    if (too_much := too_much_text(where, lineno, body)) is not None:
        return too_much
    doc_id = str(obj.get("id") or f"{stem}-{lineno}")
    meta = {k: obj[k] for k in ("title", "date", "source", "url") if isinstance(obj.get(k), str)}
    date = obj.get("date")
    if date is not None and not isinstance(date, str):
        warn(SkippedInput(where, lineno, f"\"date\" is {_json_kind(date)}, not a string; the article is kept undated"))
    return make_document(doc_id, body, meta, where, lineno, warn)
