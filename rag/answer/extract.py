"""Extractive answers: the sentences of the retrieved passages that best answer the question.

Each sentence is scored by its embedding similarity to the question, how much of the
question's (IDF-weighted) vocabulary it shares, how many of the question's word pairs it
has side by side, whether it holds the kind of thing asked for (a name for "who", a number
for "how many", a date for "when"), whether a new name stands beside the phrase a
"which X" question asks about, and, for questions about "now", its article's date. When
even the best sentence scores under the calibrated threshold the answer abstains.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from rag.answer.conflicts import asked_slot, find_conflicts, rare_terms
from rag.answer.short import focus_phrase, parse, question_kind
from rag.answer.short import rank as rank_candidates
from rag.answer.values import ranked_values, typed_kind
from rag.text.chunk import sentence_spans
from rag.text.dates import closeness
from rag.text.lexical import bm25_tokens, match_sequence, match_tokens
from rag.tuning import (
    APPOSITIVE_WEIGHT,
    APPOSITIVE_WINDOW,
    CONFLICT_RANKED_DEPTH,
    DENSE_SENTENCE_WEIGHT,
    HAND_THRESHOLD,
    LEXICAL_WEIGHT,
    MAX_CANDIDATES,
    PHRASE_WEIGHT,
    POOL_RANK_PENALTY,
    POOL_TOP_PASSAGE_BONUS,
    RANK_PENALTY,
    READER_CANDIDATES,
    READER_THRESHOLD,
    RECENT_WEIGHT,
    RERANK_DEPTH,
    RUNNER_UP_RATIO,
    TYPE_WEIGHT,
)
from rag.types import Citation, Evidence, Hit, Sentence, ShortAnswer

NOT_FOUND = "Not found in the corpus: the retrieved passages do not answer this question."
_NAME = re.compile(r"\b[A-Z][a-z]+(?:[\s-][A-Z][a-z]+)*\b")
_NUMBER = re.compile(r"\b\d[\d,.]*\b|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|dozen|hundred|thousand|million|billion)\b", re.I)
_DATE = re.compile(
    r"\b(?:1[89]\d\d|20\d\d)\b|\b(?:January|February|March|April|May|June|July|August|September|October|November|December"
    r"|Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|yesterday|today|last (?:week|month|year))\b"
)


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


def citations_for(hits: list[Hit]) -> list[Citation]:
    return [h.citation(i) for i, h in enumerate(hits, 1)]


def candidate_sentences(hits: list[Hit]) -> list[Sentence]:
    """Sentences of the passages; one copy of a sentence that overlapping passages share."""
    out, seen = [], set()
    for n, h in enumerate(hits, 1):
        for s, e in sentence_spans(h.chunk.text):
            text = h.chunk.text[s:e]
            key = (h.chunk.doc_id, h.chunk.start + s)
            if len(text) >= 20 and len(text.split()) >= 4 and key not in seen:
                seen.add(key)
                headline = bool(h.chunk.title) and " ".join(text.split()) == " ".join(h.chunk.title.split())
                out.append(Sentence(n, h.chunk.start + s, h.chunk.start + e, text, date=h.chunk.date, headline=headline))
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
    ranked = sorted(sentences, key=lambda s: -(s.lexical + (POOL_TOP_PASSAGE_BONUS if s.n == 1 else 0.0)
                                                - POOL_RANK_PENALTY * s.n))
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
    recent = closeness([s.date for s in pool], reference_day)
    for s, v, r in zip(pool, vecs[1:], recent):
        s.dense = float(np.dot(vecs[0], v))
        s.appositive = _appositive(s.text, asked, names, q_words) if asked else 0.0
        s.score = (DENSE_SENTENCE_WEIGHT * s.dense + LEXICAL_WEIGHT * s.lexical + PHRASE_WEIGHT * s.phrase
                   + TYPE_WEIGHT * _type_match(kind, s.text, q_words) + APPOSITIVE_WEIGHT * s.appositive
                   + RECENT_WEIGHT * float(r) - RANK_PENALTY * (s.n - 1))


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
    recent = closeness([s.date for s in pool], reference_day)
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
    """The best sentence, plus runners-up that score nearly as well and add something new.

    A headline is a summary, not evidence a reader can check: when it scores best, the best
    sentence of its article's body that adds something joins it however it scores (else the
    answer would hang on whether that sentence scored just over or just under the runner-up
    bar, which rounding in the vectors decides: int8 against float32)."""
    if not sentences:
        return "", []
    chosen = [sentences[0]]
    known = set(bm25_tokens(question)) | set(bm25_tokens(sentences[0].text))
    for s in sentences[1:]:
        if len(chosen) >= max_sentences:
            break
        if s.score < RUNNER_UP_RATIO * chosen[0].score and not (chosen[0].headline and s.n == chosen[0].n
                                                                and not s.headline):
            continue
        words = set(bm25_tokens(s.text))
        if len(words - known) >= 2:
            chosen.append(s)
            known |= words
    return " ".join(f"{s.text} [{s.n}]" for s in chosen), chosen


# ---------------------------------------------------------------- the answer step


@dataclass
class Reading:
    """What the answer step made of the retrieved passages."""

    ranked: list[Hit]  # the passages, the best-evidenced of the top RERANK_DEPTH first
    text: str  # the answer (NOT_FOUND when it abstains)
    evidence: list[Evidence]  # the answer's sentences ([] when it abstains)
    confidence: float
    abstained: bool
    conflicts: list = field(default_factory=list)  # values the sources give differently (conflicts.Conflict)
    shown: int = 0  # passages to show: the top k, then those only a conflict cites
    short: ShortAnswer | None = None  # the name, number, date... asked for, when the ranker is sure enough
    parsed: list = field(default_factory=list)  # the sentences read for short answers (short_answer.Parsed)
    candidates: list = field(default_factory=list)  # their candidate answers, most probable first


def abstain_threshold(reader, setting: float | None = None) -> float:
    """Below this best-sentence score the answer abstains: ``setting`` when given, else the one
    calibrated for the scorer in use (the learned reader's own, or the hand-written scorer's)."""
    if setting is not None:
        return setting
    if reader is None:
        return HAND_THRESHOLD
    return reader.threshold if reader.threshold is not None else READER_THRESHOLD


def read(query: str, question: str, ranked: list[Hit], k: int, embedder, idf, reader=None,
         reference_day: str = "", threshold: float | None = None, short=None, conflicts: bool = True) -> Reading:
    """Pick the answer sentences of the top passages, or abstain.

    ``query`` is the standalone question (a follow-up joined with its context), ``question``
    the turn as asked. The sentences of the top ``RERANK_DEPTH`` passages are scored (by
    ``reader``, the learned reader, or the hand-written scorer); those passages are then
    ordered by their best sentence. The answer is the best sentence of the top
    ``k`` passages plus a runner-up that adds something; below ``threshold`` (default: the
    scorer's calibrated one) it abstains.

    With ``short`` (a ``short_answer.ShortReader``), a question that asks for a name, place,
    number, date or thing gets a short answer: the ranker's most probable candidate of the best
    sentences of the ``k`` passages, when above its calibrated threshold; the answer's first
    sentence is then the best one that gives it. ``conflicts``: whether the values the sources
    give are compared here (the span reader compares its own, ``conflicts.read_conflicts``).
    """
    if threshold is None:
        threshold = abstain_threshold(reader)
    pool, rest = ranked[:RERANK_DEPTH], ranked[RERANK_DEPTH:]
    candidates = candidate_sentences(pool)
    if reader is not None:
        sentences = read_sentences(query, question, candidates, reader, idf, embedder, reference_day)
    else:
        sentences = score_sentences(query, question, candidates, embedder, idf, reference_day)
    best: dict[int, float] = {}
    for s in sentences:
        best[s.n] = max(best.get(s.n, -1.0), s.score)
    order = sorted(range(len(pool)), key=lambda i: (-best.get(i + 1, -1.0), i))
    renumber = {old + 1: new + 1 for new, old in enumerate(order)}
    for s in sentences:
        s.n = renumber[s.n]
    ranked = [pool[i] for i in order] + rest
    shown = [s for s in sentences if s.n <= k]
    parsed, cands = _short_candidates(query, question, shown, ranked, short, reference_day)
    top = cands[0] if cands else None
    text, chosen = compose(question, shown)
    score, answer = confidence(shown, chosen), None
    if top is not None and top.probability >= short.sentence_threshold:
        # the best candidate's best sentence comes first (it says the answer, if anything does)
        support = top.parsed.sentence
        text, chosen = compose(question, [support] + [s for s in shown if s is not support])
        if top.probability >= short.threshold:
            hit = ranked[support.n - 1].chunk
            answer = ShortAnswer(top.text, support.n, hit.doc_id, support.start + top.start,
                                 support.start + top.end, round(top.probability, 4))
    if answer is None and score < threshold:  # a short answer this likely is given, whatever the sentences score
        return Reading(ranked, NOT_FOUND, [], score, True, parsed=parsed, candidates=cands)
    evidence = [Evidence(s.n, ranked[s.n - 1].chunk.doc_id, s.start, s.end) for s in chosen]
    # Values are read from every scored passage, not only the k shown: the reports that differ
    # are rarely all among the first few. A passage only a conflict cites is shown after the k.
    scored = [s for s in sentences if s.score > -1.0]
    slot, found = asked_slot(question)[0], []
    if conflicts and (slot or typed_kind(question)):  # else no values are read, by a slot or by the ranker
        rare = rare_terms(question, idf, [h.chunk.title + " " + h.chunk.text for h in ranked])
        values = ranked_values(query, question, scored, ranked[:CONFLICT_RANKED_DEPTH], short, rare, parsed,
                               reference_day, slot)
        found = find_conflicts(question, scored, ranked, rare,
                               embed=embedder.encode_short if embedder is not None else None, ranked=values)
    return with_conflicts(Reading(ranked, text, evidence, score, False, [], k, answer, parsed, cands), found, k)


def with_conflicts(reading: Reading, conflicts: list, k: int) -> Reading:
    """``reading`` with ``conflicts`` (their citations numbering ``reading.ranked``): a passage
    only a conflict cites is shown after the first ``k``, and the citations renumbered so."""
    ranked = reading.ranked
    extra = sorted({n for c in conflicts for v in c.values for n in v.citations if n > k})
    if extra:
        order = list(range(1, k + 1)) + extra + [n for n in range(k + 1, len(ranked) + 1) if n not in extra]
        renumber = {old: new for new, old in enumerate(order, 1)}
        reading.ranked = [ranked[n - 1] for n in order]
        for c in conflicts:
            for v in c.values:
                v.citations = [renumber[n] for n in v.citations]
    reading.conflicts, reading.shown = conflicts, max(reading.shown, k + len(extra))
    return reading


def _short_candidates(query: str, question: str, shown: list[Sentence], ranked: list[Hit], short,
                      reference_day: str):
    """(the sentences parsed for short answers, their candidates most probable first)."""
    if short is None or question_kind(question) == "explain":
        return [], []
    pool = sorted((s for s in shown if s.score > -1.0), key=lambda s: -s.score)[:short.sentences]
    if not pool:
        return [], []
    parsed = parse(pool, short.pipeline())
    if short.ranker is None:
        return parsed, []
    passages = [(h.chunk.doc_id, h.chunk.text) for h in ranked[:RERANK_DEPTH]]
    return parsed, rank_candidates(query, parsed, passages, short.ranker, reference_day, question)
