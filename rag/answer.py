"""Extractive answers: the sentences of the retrieved passages that best answer the question.

Each sentence is scored by its embedding similarity to the question, how much of the
question's (IDF-weighted) vocabulary it shares, and whether it holds the kind of thing
asked for (a name for "who", a number for "how many", a date for "when"). When even
the best sentence scores under the calibrated threshold the answer abstains.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from .chunk import sentence_spans
from .retrieve import bm25_tokens
from .types import Citation, Hit

NOT_FOUND = "Not found in the corpus: the retrieved passages do not answer this question."
MAX_CANDIDATES = 24
_NAME = re.compile(r"\b[A-Z][a-z]+(?:[\s-][A-Z][a-z]+)*\b")
_NUMBER = re.compile(r"\b\d[\d,.]*\b|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|dozen|hundred|thousand|million|billion)\b", re.I)
_DATE = re.compile(
    r"\b(?:1[89]\d\d|20\d\d)\b|\b(?:January|February|March|April|May|June|July|August|September|October|November|December"
    r"|Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|yesterday|today|last (?:week|month|year))\b"
)


@dataclass
class Sentence:
    n: int  # citation number of the passage it comes from
    start: int  # span in the document
    end: int
    text: str
    score: float = 0.0
    dense: float = 0.0
    lexical: float = 0.0


def citations_for(hits: list[Hit]) -> list[Citation]:
    return [
        Citation(
            n=i, doc_id=h.chunk.doc_id, title=h.chunk.title, date=h.chunk.date, source=h.chunk.source,
            start=h.chunk.start, end=h.chunk.end, text=h.chunk.text, score=round(h.score, 6), url=h.chunk.url,
        )
        for i, h in enumerate(hits, 1)
    ]


def candidate_sentences(hits: list[Hit]) -> list[Sentence]:
    """Sentences of the passages; one copy of a sentence that overlapping passages share."""
    out, seen = [], set()
    for n, h in enumerate(hits, 1):
        for s, e in sentence_spans(h.chunk.text):
            text = h.chunk.text[s:e]
            key = (h.chunk.doc_id, h.chunk.start + s)
            if len(text) >= 20 and len(text.split()) >= 4 and key not in seen:
                seen.add(key)
                out.append(Sentence(n, h.chunk.start + s, h.chunk.start + e, text))
    return out


def answer_type(question: str) -> str:
    q = question.lower().strip()
    if re.match(r"(who|whom|whose)\b", q) or re.search(r"\b(which|what) (country|person|group|leader|minister|official|organi[sz]ation|company|team|city|nation)\b", q):
        return "name"
    if re.search(r"\bhow (many|much|long|old|far)\b|\bwhat (number|percentage|share)\b", q):
        return "number"
    if re.match(r"when\b", q) or re.search(r"\bwhat (year|date|day|month)\b", q):
        return "date"
    if re.match(r"where\b", q):
        return "name"
    return ""


def _type_match(kind: str, sentence: str, question: str) -> float:
    if not kind:
        return 0.0
    if kind == "number":
        return 1.0 if _NUMBER.search(sentence) else 0.0
    if kind == "date":
        return 1.0 if _DATE.search(sentence) else 0.0
    q_words = set(re.findall(r"\w+", question.lower()))
    names = [m.group(0) for m in _NAME.finditer(sentence)]
    new = [n for n in names if not set(n.lower().split()) <= q_words]
    return 1.0 if new else 0.0


def score_sentences(question: str, focus: str, sentences: list[Sentence], embedder, idf) -> list[Sentence]:
    """Score candidates; ``question`` may carry conversation context, ``focus`` is the turn itself."""
    if not sentences:
        return []
    q_terms = _weighted_terms(question, idf)
    f_terms = _weighted_terms(focus, idf)
    for s in sentences:
        words = set(bm25_tokens(s.text))
        s.lexical = 0.5 * _coverage(q_terms, words) + 0.5 * _coverage(f_terms, words) if focus != question else _coverage(q_terms, words)
    # Embed only the lexically most promising sentences (and every one of the top passage).
    ranked = sorted(sentences, key=lambda s: (-(s.lexical + (0.3 if s.n == 1 else 0.0) - 0.02 * s.n)))
    pool = ranked[:MAX_CANDIDATES]
    vecs = embedder.encode_short([question] + [s.text for s in pool])
    kind = answer_type(focus)
    for s, v in zip(pool, vecs[1:]):
        s.dense = float(np.dot(vecs[0], v))
        s.score = 0.55 * s.dense + 0.35 * s.lexical + 0.10 * _type_match(kind, s.text, focus) - 0.01 * (s.n - 1)
    for s in ranked[MAX_CANDIDATES:]:
        s.score = -1.0
    return sorted(sentences, key=lambda s: -s.score)


def _weighted_terms(text: str, idf) -> dict[str, float]:
    terms = {}
    for t in bm25_tokens(text):
        terms[t] = idf(t)
    return terms


def _coverage(terms: dict[str, float], words: set[str]) -> float:
    total = sum(terms.values())
    if total <= 0:
        return 0.0
    return sum(w for t, w in terms.items() if t in words) / total


def compose(question: str, sentences: list[Sentence], max_sentences: int = 2) -> tuple[str, list[Sentence]]:
    """The best sentence, plus runners-up that score nearly as well and add something new."""
    if not sentences:
        return "", []
    chosen = [sentences[0]]
    known = set(bm25_tokens(question)) | set(bm25_tokens(sentences[0].text))
    for s in sentences[1:]:
        if len(chosen) >= max_sentences or s.score < 0.8 * chosen[0].score:
            break
        words = set(bm25_tokens(s.text))
        if len(words - known) >= 2:
            chosen.append(s)
            known |= words
    return " ".join(f"{s.text} [{s.n}]" for s in chosen), chosen


def make_idf(n_docs: int, df_lookup):
    """An IDF function over the index's BM25 vocabulary; unseen words count as rare."""

    def idf(term: str) -> float:
        df = df_lookup(term)
        return math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))

    return idf
