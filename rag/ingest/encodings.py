"""The encoding of a file or a JSONL line: a byte-order mark, UTF-8, UTF-16 without a mark, or a
legacy code page guessed from a sample (and said in a warning)."""

from __future__ import annotations

import codecs
from pathlib import Path

from rag.ingest.documents import Warn
from rag.types import SkippedInput

DETECT_SAMPLE_BYTES = 1_000_000  # bytes of a non-UTF-8 file (or its non-UTF-8 JSONL lines) the encoding is guessed from


_PREFERRED_ENCODINGS = ("cp1252", "latin_1", "iso8859_15")


_BOMS = (  # longest first: the UTF-32-LE BOM starts with the UTF-16-LE one
    (codecs.BOM_UTF32_LE, "utf_32"),
    (codecs.BOM_UTF32_BE, "utf_32"),
    (codecs.BOM_UTF8, "utf_8_sig"),
    (codecs.BOM_UTF16_LE, "utf_16"),
    (codecs.BOM_UTF16_BE, "utf_16"),
)


def decode(path: Path, raw: bytes, warn: Warn) -> str | SkippedInput:
    """The text of a file: UTF-8, a BOM's encoding, or (with a warning) a detected legacy encoding."""
    if not raw.strip():
        return SkippedInput(str(path), 0, "empty file")
    encoding = bom_encoding(raw[:4]) or utf16_without_bom(raw[:8192])
    if encoding:
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as e:
            return SkippedInput(str(path), 0, f"not valid {codec_label(encoding)} ({e.reason} at byte {e.start})")
        if not text.strip():
            return SkippedInput(str(path), 0, "empty file")
        if encoding != "utf_8_sig":
            warn(SkippedInput(str(path), 0, f"not UTF-8; read as {codec_label(encoding)}"))
        return text
    if b"\x00" in raw[:8192]:
        return SkippedInput(str(path), 0, "binary file (contains NUL bytes)")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        where = f"byte 0x{raw[e.start]:02x} at offset {e.start}, line {line}"
    encoding = detect_encoding(raw[:DETECT_SAMPLE_BYTES])
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


def bom_encoding(head: bytes) -> str:
    return next((enc for bom, enc in _BOMS if head.startswith(bom)), "")


def utf16_without_bom(sample: bytes) -> str:
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


def detect_encoding(sample: bytes) -> str:
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


def codec_label(encoding: str) -> str:
    return {"utf_8_sig": "UTF-8", "utf_16": "UTF-16", "utf_16_le": "UTF-16-LE", "utf_16_be": "UTF-16-BE",
            "utf_32": "UTF-32"}.get(encoding, encoding)


def is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class LineDecoder:
    """Decode JSONL lines: UTF-8, else the encoding guessed from the file's non-UTF-8 lines (with one warning)."""

    def __init__(self, where: str, warn: Warn) -> None:
        self.where = where
        self.warn = warn
        self.encoding: str | None = None  # None: not guessed yet; "": nothing fits

    def decode(self, raw: bytes, lineno: int, lines) -> str | SkippedInput:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            bad = e
        if self.encoding is None:
            sample = [raw] + [b for b in lines.peek(DETECT_SAMPLE_BYTES) if not is_utf8(b)]
            self.encoding = detect_encoding(b"".join(sample)[:DETECT_SAMPLE_BYTES])
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
