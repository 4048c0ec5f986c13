"""Lexical matching: words, stems, stopwords, British/American spelling, BM25 and IDF.

One tokenizer serves both sides: BM25 indexes passages with ``bm25_tokens`` and scores
queries with it; the answer step matches a question with a sentence through
``match_sequence`` (the same stems after mapping British spellings to American ones).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

WORD = re.compile(r"(?u)\b\w\w+\b")
# Scripts written without spaces between words: Han with Japanese kana, and Hangul (whose
# spaced units carry particles). A run of them is indexed as its characters and their pairs.
_CJK = "\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\U00020000-\U0002ebef"
_HANGUL = "\u1100-\u11ff\u3130-\u318f\uac00-\ud7af"
_CJK_RUN = re.compile(f"[{_CJK}]+|[{_HANGUL}]+")
_ANY_WORD = re.compile(r"(?u)\w+")


@lru_cache(maxsize=1)
def _stemmer() -> Callable[[str], str]:
    try:
        import Stemmer

        return Stemmer.Stemmer("english").stemWord
    except ImportError:
        return lambda w: w


@lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def words(text: str) -> list[str]:
    """Lower-cased words of two or more characters."""
    return WORD.findall(text.lower())


def bm25_tokens(text: str) -> list[str]:
    """Lower-cased, stemmed words without English stopwords; Chinese, Japanese and Korean, which
    do not space their words, as characters and character pairs (on 38 hand-written Chinese
    questions over 18 articles, the right article first for 35; pairs alone 34, jieba's words 33)."""
    stem, stop = _stemmer(), stopwords()
    ws = words(text)
    if text.isascii() or not any(not w.isascii() and _CJK_RUN.search(w) for w in ws):  # faster than a search
        return [stem(w) for w in ws if w not in stop]
    out: list[str] = []
    for word in _ANY_WORD.findall(text.lower()):
        pos = 0
        for run in _CJK_RUN.finditer(word):
            out.extend(_word_tokens(word[pos:run.start()], stem, stop))
            r = run.group(0)
            for i in range(len(r)):  # each character, then the pair it starts
                out.extend((r[i], r[i : i + 2]) if i + 1 < len(r) else (r[i],))
            pos = run.end()
        out.extend(_word_tokens(word[pos:], stem, stop))
    return out


def _word_tokens(w: str, stem: Callable[[str], str], stop: frozenset[str]) -> list[str]:
    """``w`` as ``bm25_tokens`` gives a non-CJK word: stemmed, or nothing for a stopword or one character."""
    return [stem(w)] if len(w) >= 2 and w not in stop else []


# British spellings mapped to American ones before matching a question to a sentence, so
# "defence minister" finds "Defense Minister" (news archives mix both). Both sides go
# through the same mapping, so a word it mangles ("promise" -> "promize") still matches itself.
_UK_US = [
    (re.compile(r"\b(\w{3,})is(e|es|ed|ing|ation|ations)\b"), r"\1iz\2"),
    (re.compile(r"\b(\w{2,})ys(e|es|ed|ing)\b"), r"\1yz\2"),  # analyse, paralyse
    (re.compile(r"\b(de|of)fence(s)?\b"), r"\1fense\2"),
    (re.compile(r"\blicence(s)?\b"), r"license\1"),
    (re.compile(r"\b(col|fav|hon|lab|neighb|behavi|harb|rum|arm|vig|hum|flav|sav|endeav)our"), r"\1or"),
    (re.compile(r"\b(cent|theat|met|lit|fib)re(s|d)?\b"), r"\1er\2"),
    (re.compile(r"\bprogramme(s)?\b"), r"program\1"),
    (re.compile(r"\b(travel|cancel|model|label|fuel|signal|counsel|total|level|channel)l(ed|ing|er|ers)\b"), r"\1\2"),
    (re.compile(r"\bgrey\b"), "gray"),
    (re.compile(r"\bsceptic"), "skeptic"),
    (re.compile(r"\bjudgement"), "judgment"),
]


def american(text: str) -> str:
    """``text`` lower-cased with British spellings mapped to American ones."""
    low = text.lower()
    for pattern, repl in _UK_US:
        low = pattern.sub(repl, low)
    return low


def match_sequence(text: str) -> list[str]:
    """The stems used to match a question with a sentence (BM25 tokens, American spelling)."""
    return bm25_tokens(american(text))


def match_tokens(text: str) -> set[str]:
    return set(match_sequence(text))


# ---------------------------------------------------------------- BM25 on disk


def build_bm25(texts: list[str], folder: Path) -> None:
    """A bm25s index of ``texts`` (row i = chunk id i) saved in ``folder``."""
    build_bm25_tokens([bm25_tokens(t) or ["<empty>"] for t in texts], folder)


def build_bm25_tokens(corpus_tokens: list[list[str]], folder: Path) -> None:
    """A bm25s index of texts given as their ``bm25_tokens`` (row i = chunk id i) saved in ``folder``."""
    import bm25s

    retriever = bm25s.BM25()
    if corpus_tokens:
        retriever.index(corpus_tokens, show_progress=False)
    retriever.save(str(folder))


def load_bm25(folder: Path):
    """The bm25s index in ``folder``, its score matrix memory-mapped: a query reads only the
    columns of its words, so a large index is served without holding it in RAM."""
    import bm25s

    return bm25s.BM25.load(str(folder), mmap=True)


def make_idf(n_docs: int, df_lookup: Callable[[str], int]) -> Callable[[str], float]:
    """An IDF function from a document-frequency lookup; unseen words count as rare."""

    def idf(term: str) -> float:
        df = df_lookup(term)
        return math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))

    return idf


def bm25_idf(bm25) -> Callable[[str], float]:
    """IDF over a loaded bm25s index's vocabulary (document = chunk)."""
    indptr, vocab = bm25.scores["indptr"], bm25.vocab_dict
    n = int(bm25.scores["num_docs"])

    def df(term: str) -> int:
        i = vocab.get(term)
        return 0 if i is None else int(indptr[i + 1] - indptr[i])

    return make_idf(n, df)


# ---------------------------------------------------------------- near-duplicates


def shingles(text: str, n: int = 4) -> set[int]:
    """Hashes of the text's ``n``-word runs, for near-duplicate tests."""
    ws = words(text)
    if len(ws) < n:
        return {hash(" ".join(ws))}
    return {hash(" ".join(ws[i : i + n])) for i in range(len(ws) - n + 1)}


def jaccard(a: set[int], b: set[int]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def script(text: str) -> str:
    """The writing system most of ``text``'s letters are in: "latin", "cjk" (Chinese, Japanese,
    Korean), "arabic", "cyrillic", "greek", "hebrew", "devanagari" or "other"."""
    counts: dict[str, int] = {}
    for ch in text:
        if not ch.isalpha():
            continue
        o = ord(ch)
        if unspaced(ch):
            s = "cjk"
        elif o < 0x250 or 0x1E00 <= o < 0x1F00:
            s = "latin"
        elif 0x370 <= o < 0x400:
            s = "greek"
        elif 0x400 <= o < 0x530:
            s = "cyrillic"
        elif 0x590 <= o < 0x600:
            s = "hebrew"
        elif 0x600 <= o < 0x780 or 0xFB50 <= o < 0xFE00 or 0xFE70 <= o < 0xFF00:
            s = "arabic"
        elif 0x900 <= o < 0x980:
            s = "devanagari"
        else:
            s = "other"
        counts[s] = counts.get(s, 0) + 1
    return max(counts, key=counts.get) if counts else "latin"


def unspaced(char: str) -> bool:
    """True for a character of a script written without spaces (Han, kana, Hangul): a word of its own."""
    return bool(_CJK_RUN.match(char))


def coverage(question: str, words: set[str], idf: Callable[[str], float]) -> float:
    """The IDF-weighted share of the question's words found in ``words`` (a text's ``bm25_tokens``)."""
    terms = {t: idf(t) for t in bm25_tokens(question)}
    total = sum(terms.values())
    if total <= 0:
        return 0.0
    return sum(w for t, w in terms.items() if t in words) / total
