"""Sources that disagree, read per article by the span reader: for a question that asks for one
value (a number, a sum, a measure, the holder of an office, the date of one event), the reader
answers it from each of the top articles separately, and the values are compared as amounts,
names (spelling variants merged) or days (``conflicts.conflicts_of``).

An article's value is the reader's most probable span of the kind asked in the article's best
passage, counted only from ``CONFLICT_SPAN_PROBABILITY`` (chosen on the tuned half of
eval/conflict_questions.jsonl): a date that some sentence mentions is not the date of the event
asked about unless the reader points at it. Nothing is compared for a question the answer
abstains on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag.answer.conflicts import (
    _COST_SENTENCE,
    _DEAD,
    _DEAD_WORDS,
    _MEASURES,
    Conflict,
    _asked_verb,
    _numbers_near,
    _similar_words,
    _word_vectors,
    asked_slot,
    conflicts_of,
    holders,
    plain_question,
    rare_terms,
)
from rag.answer.values import counts, money_values, name_key, on_topic, same_name
from rag.text.chunk import sentence_spans
from rag.text.dates import dates_in, day_number
from rag.text.lexical import bm25_tokens, coverage, match_sequence
from rag.tuning import (
    CONFLICT_ARTICLES,
    CONFLICT_DEPTH,
    CONFLICT_PASSAGES,
    CONFLICT_SPAN_PROBABILITY,
)
from rag.types import Hit

# The questions whose values the reader reads per article: the date of one event. For counts,
# sums, measures and office holders the slot patterns found more conflicts on the tuned half
# (recall 0.5 against at best 0.4, docs/timelines.md) and stay.
READER_SLOTS = frozenset({"date"})
SAME_EVENT_DAYS = 3  # two dates of one event, as reports give it (the evaluation's tolerance too)
_PREPOSITION = re.compile(r"(?:on|in|since|from|until|by|during)\s+", re.I)


@dataclass
class ReadValue:
    """One article's answer as the reader reads it: the value's key and how the article writes it."""

    doc_id: str
    key: object
    written: str
    n: int  # the passage's rank in ``ranked`` (1-based)
    date: str  # the article's date
    probability: float


def candidates(kind: str, counted: str, stems: list[str], sentence: str, date: str, similar=None, verb=frozenset(),
               said=None, where: set[str] | None = None) -> list[tuple[int, int, object, str]]:
    """The values of the ``kind`` asked that ``sentence`` gives, each as (start, end, key, as
    written): every date it states; a count standing by what is counted (and the participle
    asked); a sum of money in a sentence of costs; a measure; a name given the office."""
    out = []
    if kind == "date":
        for a, b, day, precision, words in dates_in(sentence, date):
            key = day[:7] if precision in ("month", "week") else day[:4] if precision == "year" else day
            lead = _PREPOSITION.match(sentence, a)  # the reader points at "Thursday", not "on Thursday"
            out.append((lead.end() if lead else a, b, key, f"{key} (“{words}”)"))
    elif kind == "number":
        if stems is _DEAD and not _DEAD_WORDS.search(sentence):
            return []  # "4,000 people gathered" is no death toll
        near = {written for written, _ in _numbers_near(sentence, stems, similar, verb, said)}
        out = [(m.start(), m.end(), value, m.group(0)) for m, value in counts(sentence) if m.group(0) in near]
    elif kind == "money":
        if _COST_SENTENCE.search(sentence):
            out = [(m.start(), m.end(), key, m.group(0).strip()) for m, key in money_values(sentence)]
    elif kind == "measure":
        out = [(m.start(), m.end(), m.group(1), m.group(0)) for m in _MEASURES[counted][1].finditer(sentence)]
    elif kind == "name":
        for name in dict.fromkeys(holders(sentence, counted, where)):
            i = sentence.find(name)
            if i >= 0:
                out.append((i, i + len(name), name_key(name), name))
    return out


def article_values(question: str, ranked: list[Hit], reader, idf=None, embed=None, depth: int = CONFLICT_DEPTH,
                   articles: int = CONFLICT_ARTICLES) -> list[ReadValue]:
    """Each of the top ``articles`` articles' answer to ``question``: among the values of the kind
    asked that its best-ranked passage (among the first ``depth`` of ``ranked``) gives in sentences
    about the question's rarest terms (``candidates``), the one ``reader`` finds most probable as
    the answer, with that probability. ``embed`` (single words) lets a count be of what the
    question counts in other words ("ballots" for "votes")."""
    kind, stems, counted = asked_slot(question)
    if not kind:
        return []
    vectors = _word_vectors(embed) if embed is not None else None
    similar = _similar_words(counted, vectors) if vectors is not None and kind == "number" else None
    asked_verb = _asked_verb(question)
    verb = set(match_sequence(asked_verb))
    said = _similar_words(asked_verb, vectors) if verb and vectors is not None else None
    count_verb = frozenset() if stems is _DEAD else verb
    where = set(match_sequence(plain_question(question)))
    pool = ranked[:depth]
    rare = rare_terms(question, idf, [h.chunk.title + " " + h.chunk.text for h in pool]) if idf else []
    chosen: dict[str, list[int]] = {}  # an article's passages read, best-ranked first
    for i, h in enumerate(pool):
        mine = chosen.get(h.chunk.doc_id)
        if mine is None and len(chosen) < articles and on_topic(h.chunk.text, h.chunk, rare, or_title=True):
            chosen[h.chunk.doc_id] = [i]
        elif mine is not None and len(mine) < CONFLICT_PASSAGES:
            mine.append(i)
    units, texts, targets, found = [], [], [], []
    for doc_id, passages in chosen.items():
        for u, i in enumerate(passages):
            chunk = pool[i].chunk
            # the reader reads the headline ("Death toll rises to 67") before the article's first passage
            head = f"{chunk.title}. " if u == 0 and chunk.title else ""
            text = head + chunk.text
            spans, values = [], []
            parts = ([(0, len(head) - 1)] if head else []) + [(len(head) + a, len(head) + b)
                                                               for a, b in sentence_spans(chunk.text)]
            for a, b in parts:
                sentence = text[a:b]
                if not on_topic(sentence, chunk, rare, or_title=a >= len(head)):
                    continue
                for cs, ce, key, written in candidates(kind, counted, stems, sentence, chunk.date, similar,
                                                       count_verb, said, where):
                    spans.append((a + cs, a + ce))
                    values.append((key, written))
            units.append((doc_id, i))
            texts.append(text)
            targets.append(spans)
            found.append(values)
    if not any(targets):
        return []
    cover = [coverage(question, set(bm25_tokens(t)), idf) for t in texts] if idf else None
    probabilities = reader.score(question, texts, targets, cover)
    best: dict[str, ReadValue] = {}
    for j, (doc_id, i) in enumerate(units):
        for t, p in enumerate(probabilities[j]):
            if doc_id not in best or p > best[doc_id].probability:
                key, written = found[j][t]
                best[doc_id] = ReadValue(doc_id, key, written, i + 1, pool[i].chunk.date, p)
    return list(best.values())


def read_conflicts(question: str, ranked: list[Hit], reader, idf=None, embed=None,
                   threshold: float | None = None) -> list[Conflict]:
    """The values the top articles give for what ``question`` asks, when two or more differ
    (each read by the reader from at least ``threshold``); [] for other questions."""
    kind, _, counted = asked_slot(question)
    threshold = CONFLICT_SPAN_PROBABILITY if threshold is None else threshold
    values = [v for v in article_values(question, ranked, reader, idf, embed) if v.probability >= threshold]
    what = {"number": f"the number of {counted}", "name": f"the {counted}", "measure": f"the {counted}",
            "money": f"the {counted}"}.get(kind, "the date")
    same = same_name if kind == "name" else same_day if kind == "date" else None
    return conflicts_of([(v.doc_id, v.key, v.written, v.n, v.date) for v in values], what, same)


def same_day(a: str, b: str) -> bool:
    """Dates of one event as two articles give them: one within the other ("2022-11" and
    "2022-11-11": "last week" and "on Friday"), or days at most ``SAME_EVENT_DAYS`` apart
    (a report dated "Thursday" in one time zone and "Friday" in another)."""
    if a.startswith(b) or b.startswith(a):
        return True
    da, db = day_number(a), day_number(b)
    return bool(da and db) and abs(da - db) <= SAME_EVENT_DAYS

