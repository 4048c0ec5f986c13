"""Extractive answers: the sentences of the retrieved passages that best answer the question.

Each sentence is scored by its embedding similarity to the question, how much of the
question's (IDF-weighted) vocabulary it shares, how many of the question's word pairs it
has side by side, whether it holds the kind of thing asked for (a name for "who", a number
for "how many", a date for "when"), whether a new name stands beside the phrase a
"which X" question asks about, and, for questions about "now", its article's date. When
even the best sentence scores under the calibrated threshold the answer abstains.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from .chunk import sentence_spans
from .retrieve import RECENCY_WEIGHT, bm25_tokens, day_number, recency_bonus
from .types import Citation, Hit

HAND_THRESHOLD = 0.42  # the hand-written scorer's abstention threshold (calibrated on seed + RealTime QA, docs/measurements.md)
READER_THRESHOLD = 0.5  # for a reader folder that carries no calibrated threshold
NOT_FOUND = "Not found in the corpus: the retrieved passages do not answer this question."
MAX_CANDIDATES = 24  # sentences the hand-written scorer embeds
READER_CANDIDATES = 24  # sentences the learned reader scores (measured: docs/reader.md)
PHRASE_WEIGHT = 0.2
APPOSITIVE_WEIGHT = 0.15
APPOSITIVE_WINDOW = 4
RECENT_WEIGHT = 0.1  # most a sentence gains for coming from an article of the day asked about
_NAME = re.compile(r"\b[A-Z][a-z]+(?:[\s-][A-Z][a-z]+)*\b")
_NUMBER = re.compile(r"\b\d[\d,.]*\b|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|dozen|hundred|thousand|million|billion)\b", re.I)
_DATE = re.compile(
    r"\b(?:1[89]\d\d|20\d\d)\b|\b(?:January|February|March|April|May|June|July|August|September|October|November|December"
    r"|Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|yesterday|today|last (?:week|month|year))\b"
)


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


def match_sequence(text: str) -> list[str]:
    """The stems used to match a question with a sentence (BM25 tokens, American spelling)."""
    low = text.lower()
    for pattern, repl in _UK_US:
        low = pattern.sub(repl, low)
    return bm25_tokens(low)


def match_tokens(text: str) -> set[str]:
    return set(match_sequence(text))


def _canonical(words: list[str], names: set[str]) -> list[str]:
    """``words`` with each derived form of a question name replaced by that name."""
    out = []
    for w in words:
        if w not in names and len(w) >= 4:
            w = next((t for t in names if w.startswith(t) or t.startswith(w)), w)
        out.append(w)
    return out


def _bigrams(words: list[str]) -> set[tuple[str, str]]:
    return set(zip(words, words[1:]))


def name_stems(question: str) -> set[str]:
    """Stems of the question's capitalised words, for matching their derived forms."""
    words = re.findall(r"\b[A-Z][\w'’-]*", question)
    if question[:1].isupper():
        words = words[1:]  # "Which", "Who": capitalised only because it starts the question
    return {t for w in words for t in match_tokens(w) if len(t) >= 4}


@dataclass
class Sentence:
    n: int  # citation number of the passage it comes from
    start: int  # span in the document
    end: int
    text: str
    score: float = 0.0
    dense: float = 0.0
    lexical: float = 0.0
    phrase: float = 0.0  # share of the question's word pairs that the sentence has side by side
    appositive: float = 0.0  # share of the question's focus phrase beside a new name
    date: str = ""  # the article's date
    chance: float = 0.0  # the learned reader's probability that the sentence answers (0 without it)


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
                out.append(Sentence(n, h.chunk.start + s, h.chunk.start + e, text, date=h.chunk.date))
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


def _new_names(sentence: str, q_words: set[str]) -> list[re.Match]:
    """The capitalised names in ``sentence`` that are not made of the question's words."""
    return [m for m in _NAME.finditer(sentence) if not set(m.group(0).lower().split()) <= q_words]


def _type_match(kind: str, sentence: str, q_words: set[str]) -> float:
    if not kind:
        return 0.0
    if kind == "number":
        return 1.0 if _NUMBER.search(sentence) else 0.0
    if kind == "date":
        return 1.0 if _DATE.search(sentence) else 0.0
    return 1.0 if _new_names(sentence, q_words) else 0.0


_FOCUS = re.compile(r"\b(?:which|what)\s+((?:[\w'’-]+\s+){0,5}[\w'’-]+)", re.I)
_FOCUS_STOP = re.compile(r"(?:is|are|was|were|did|does|do|has|have|had|will|would|could|can|may|might|"
                         r"\w+ed|said|says|spoke|told|the|a|an|of|in|on|at|by|to|for|from|with|that|who|whose)$", re.I)


def focus_phrase(question: str) -> str:
    """The noun phrase a which/what question asks about: "Which Pakistani foreign minister
    spoke ..." -> "Pakistani foreign minister"; "" for other questions."""
    m = _FOCUS.search(question)
    if not m:
        return ""
    words = []
    for w in m.group(1).split():
        if _FOCUS_STOP.fullmatch(w) and "-" not in w:
            break
        words.append(w)
    return " ".join(words)


def _appositive(sentence: str, focus: dict[str, float], names: set[str], q_words: set[str]) -> float:
    """How much of the question's (IDF-weighted) focus phrase stands right beside a name the
    question lacks: "Pakistani Foreign Minister Ishaq Dar" for "Which Pakistani foreign minister ...?"."""
    words = sentence.split()
    best = 0.0
    for m in _new_names(sentence, q_words):
        first = len(sentence[: m.start()].split())
        last = first + len(m.group(0).split())
        near = set(_canonical(match_sequence(" ".join(words[max(0, first - APPOSITIVE_WINDOW): last + APPOSITIVE_WINDOW])), names))
        best = max(best, _coverage(focus, near))
    return best


def lexical_pool(question: str, focus: str, sentences: list[Sentence], idf, size: int = MAX_CANDIDATES) -> list[Sentence]:
    """Set each sentence's lexical and phrase match; return the ``size`` most promising ones
    (every sentence of the top passage comes first), the candidates a scorer reads."""
    q_terms = _weighted_terms(question, idf)
    f_terms = _weighted_terms(focus, idf)
    names = name_stems(question) | name_stems(focus)
    pairs = _bigrams(_canonical(match_sequence(focus), names))
    for s in sentences:
        seq = _canonical(match_sequence(s.text), names)
        words = set(seq)
        s.lexical = (0.5 * _coverage(q_terms, words) + 0.5 * _coverage(f_terms, words)
                     if focus != question else _coverage(q_terms, words))
        s.phrase = len(pairs & _bigrams(seq)) / len(pairs) if pairs else 0.0
        s.score = -1.0
    ranked = sorted(sentences, key=lambda s: (-(s.lexical + (0.3 if s.n == 1 else 0.0) - 0.02 * s.n)))
    return ranked[:size]


def score_sentences(question: str, focus: str, sentences: list[Sentence], embedder, idf,
                    reference_day: str = "") -> list[Sentence]:
    """The hand-written scorer (``--rerank none``); ``question`` may carry conversation context,
    ``focus`` is the turn itself.

    ``reference_day`` (ISO) is set for a question about "now": sentences from articles
    dated near it gain up to ``RECENT_WEIGHT``, as passages do in retrieval.
    """
    if not sentences:
        return []
    _hand_score(question, focus, lexical_pool(question, focus, sentences, idf), embedder, idf, reference_day)
    return sorted(sentences, key=lambda s: -s.score)


def _hand_score(question: str, focus: str, pool: list[Sentence], embedder, idf, reference_day: str) -> None:
    """Set ``score`` of the sentences of ``pool`` (already through ``lexical_pool``)."""
    names = name_stems(question) | name_stems(focus)
    asked = {t: idf(t) for t in _canonical(match_sequence(focus_phrase(focus)), names)}
    q_words = set(re.findall(r"\w+", focus.lower()))
    # Embed only the lexically most promising sentences (and every one of the top passage).
    vecs = embedder.encode_short([question] + [s.text for s in pool])
    kind = answer_type(focus)
    recent = _recency(pool, reference_day)
    for s, v, r in zip(pool, vecs[1:], recent):
        s.dense = float(np.dot(vecs[0], v))
        s.appositive = _appositive(s.text, asked, names, q_words) if asked else 0.0
        s.score = (0.55 * s.dense + 0.35 * s.lexical + PHRASE_WEIGHT * s.phrase + 0.10 * _type_match(kind, s.text, q_words)
                   + APPOSITIVE_WEIGHT * s.appositive + RECENT_WEIGHT * float(r) - 0.01 * (s.n - 1))


def read_sentences(question: str, focus: str, sentences: list[Sentence], reader, idf, embedder=None,
                   reference_day: str = "", size: int = READER_CANDIDATES) -> list[Sentence]:
    """The learned scorer: the cross-encoder's chance that each candidate answers ``question``.

    A reader whose folder carries a fitted combiner (``reader.combiner``) orders the
    sentences by the cross-encoder's logit mixed with the hand-written score and the passage
    rank (weights fitted on the validation year; docs/reader.md). Each sentence's ``chance`` stays the
    reader's own probability, which abstention reads (``confidence``).
    """
    if not sentences:
        return []
    pool = lexical_pool(question, focus, sentences, idf, size)
    logits = reader.logits(question, [s.text for s in pool])
    combiner = getattr(reader, "combiner", None)
    if combiner and "old" in combiner["features"]:
        _hand_score(question, focus, pool, embedder, idf, reference_day)
    recent = _recency(pool, reference_day)
    for s, z, r in zip(pool, logits, recent):
        # Trained positives share a content word with the question (train_data); a sentence
        # that shares none is not taken as evidence that the question is answered.
        s.chance = _sigmoid(z) if s.lexical > 0 else 1e-6
        if combiner:
            values = {"logit": float(z), "old": s.score, "inv_n": 1.0 / s.n, "recent": float(r),
                      "lexical": s.lexical, "phrase": s.phrase}
            z = sum(w * values[f] for f, w in zip(combiner["features"], combiner["weights"])) + combiner["bias"]
        s.score = _sigmoid(z)
    return sorted(sentences, key=lambda s: -s.score)


def _sigmoid(z: float) -> float:
    return float(1.0 / (1.0 + np.exp(-z)))


def _recency(sentences: list[Sentence], reference_day: str) -> np.ndarray:
    """0..1 per sentence: how close its article's date is to ``reference_day`` (0 when unset)."""
    reference = day_number(reference_day) if reference_day else 0
    if not reference:
        return np.zeros(len(sentences), dtype=np.float32)
    days = np.array([day_number(s.date) for s in sentences], dtype=np.int64)
    return recency_bonus(days, reference) / RECENCY_WEIGHT


def _weighted_terms(text: str, idf) -> dict[str, float]:
    return {t: idf(t) for t in match_tokens(text)}


def _coverage(terms: dict[str, float], words: set[str]) -> float:
    total = sum(terms.values())
    if total <= 0:
        return 0.0
    return sum(w for t, w in terms.items() if t in words) / total


def confidence(sentences: list[Sentence], chosen: list[Sentence]) -> float:
    """How sure the answer is: the reader's best probability, else the best sentence's score."""
    chances = [s.chance for s in sentences if s.chance > 0]
    if chances:
        return max(chances)
    return chosen[0].score if chosen else 0.0


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
