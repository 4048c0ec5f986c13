"""Timelines: the dated events about a person, organisation, place or topic, oldest first, each cited.

1. **Spellings**: each name in the query is widened to the spellings the archive holds
   (Araghchi, Araqchi: one edit apart, both capitalised in the articles).
2. **Passages**: every passage whose BM25 terms hold the query (no near-duplicate collapse:
   syndicated copies are the sources of one entry, not lost).
3. **Sentences**: those that name the subject; per article and event date, the one that best
   says what happened.
4. **Dates**: a date the sentence states ("on December 24, 2018", "in March 2019", "last
   week", "on Monday"; ``dates.stated_date``) resolved against the article's date, else the
   article's date; each entry says which.
5. **Events**: sentences from different articles with close dates that say the same thing
   are one entry with several sources.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .chunk import sentence_spans
from .dates import day_number, stated_date
from .filters import Filters
from .lexical import bm25_tokens, stopwords, words
from .retrieve import BM25Retriever
from .tuning import (
    TIMELINE_MAX_PASSAGES,
    TIMELINE_SAME_EVENT_COSINE,
    TIMELINE_SAME_EVENT_DAYS,
    TIMELINE_SAME_EVENT_OVERLAP,
)
from .types import paged_dict

_EVENT_VERB = re.compile(
    r"\b(?:\w{3,}ed|said|says|met|held|took|began|won|lost|left|led|made|gave|told|came|went|became|"
    r"announced|agreed|signed|called|visited|arrived|killed|died|elected|appointed|resigned|launched|"
    r"offered|urged|warned|confirmed|denied|rejected|pledged|expected|will|plans?|sold|bought|paid|struck|hit|"
    r"fled|fell|rose|ran|sent|brought|caught|fought|spoke|wrote|chose|broke|built|shot|stood|sat|set|put|cut|"
    r"quit|won|beat|began|begun|drew|drove|flew|grew|knew|saw|swore|threw|wore|meets|says|visits)\b", re.I)


@dataclass
class Source:
    """An article reporting an event: where the sentence is (``start``-``end`` in the article)."""

    doc_id: str
    title: str
    date: str
    source: str
    url: str
    start: int
    end: int
    text: str
    page: int = 0

    def to_dict(self) -> dict:
        return paged_dict(self)


@dataclass
class TimelineEntry:
    """One event: when, what (a sentence), who reported it first, and the other reports."""

    date: str  # ISO day (the first day of the month or year for a coarser date)
    precision: str  # day | week | month | year
    basis: str  # stated (a date the sentence gives, resolved against the article's date) | article
    stated: str  # the words that gave the date ("last week", "December 24, 2018"); "" for basis article
    text: str  # the sentence that says what happened
    source: Source
    also: list[Source] = field(default_factory=list)  # other articles reporting the same event

    @property
    def sources(self) -> list[Source]:
        return [self.source, *self.also]

    @property
    def when(self) -> str:
        """The date as precise as it is known: "2018-12-31", "week of 2018-12-24", "2018-12", "2018"."""
        return self.date_as_known(self.date, self.precision)

    @staticmethod
    def date_as_known(date: str, precision: str) -> str:
        """``date`` (ISO) shown to its ``precision`` (day, week, month or year)."""
        if precision == "month":
            return date[:7]
        if precision == "year":
            return date[:4]
        return f"week of {date}" if precision == "week" else date

    def to_dict(self) -> dict:
        return {"date": self.date, "precision": self.precision, "basis": self.basis, "stated": self.stated,
                "text": self.text, "source": self.source.to_dict(), "also": [s.to_dict() for s in self.also]}


@dataclass
class Timeline:
    """What ``Rag.timeline`` returns."""

    query: str
    variants: dict[str, list[str]] = field(default_factory=dict)  # a query word -> other spellings found
    entries: list[TimelineEntry] = field(default_factory=list)
    articles: int = 0  # articles read that name the subject

    def to_dict(self) -> dict:
        return {"query": self.query, "variants": self.variants, "articles": self.articles,
                "entries": [e.to_dict() for e in self.entries]}


# ---------------------------------------------------------------- spellings


def edit_distance(a: str, b: str, limit: int) -> int:
    """Levenshtein distance of ``a`` and ``b``, or ``limit + 1`` once it is known to exceed ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
        if min(cur) > limit:
            return limit + 1
        prev = cur
    return prev[-1]


def spelling_variants(term: str, vocabulary) -> list[str]:
    """Indexed words that may be another spelling of the name ``term``: the same first two
    letters and one edit apart (two for names of 8+ letters: Araghchi, Araqchi)."""
    if len(term) < 6 or not term.isalpha():
        return []
    limit = 2 if len(term) >= 8 else 1
    return sorted(w for w in vocabulary if w != term and w[:2] == term[:2] and w.isalpha()
                  and len(w) >= 6 and edit_distance(term, w, limit) <= limit)


def _capitalised_in(word: str, texts: list[str]) -> str:
    """The word as written with a capital in ``texts`` ("Araqchi"), or "" when it never is."""
    pattern = re.compile(rf"\b({re.escape(word)})\w*\b", re.I)
    for t in texts:
        for m in pattern.finditer(t):
            if m.group(1)[:1].isupper():
                return m.group(1)
    return ""


# ---------------------------------------------------------------- building


def build_timeline(index, embedder, query: str, filters: Filters = Filters(), max_passages: int = TIMELINE_MAX_PASSAGES,
                   progress: Callable[[int, int, str], None] | None = None) -> Timeline:
    """The timeline of ``query`` over ``index`` (an ``IndexReader``)."""
    bm25 = index.bm25
    stop = stopwords()
    q_words = [w for w in words(query) if w not in stop]
    vocab = bm25.vocab_dict
    variants: dict[str, list[str]] = {}
    for w in q_words:
        found = [v for v in spelling_variants(w, vocab) if v not in q_words]
        if found:
            variants[w] = found
    expanded = " ".join([query, *(v for vs in variants.values() for v in vs)])
    scores = BM25Retriever(index).all_scores(expanded, filters)
    timeline = Timeline(query=query)
    if scores is None:
        return timeline
    ids = np.flatnonzero(scores > 0)
    ids = ids[np.argsort(-scores[ids], kind="stable")][:max_passages]
    chunks = index.chunks([int(i) for i in ids])
    texts = [c.text for c in chunks.values()]
    # A variant counts when the archive writes it as a name (capitalised), like the query word,
    # and, for a name of several words, next to one of the others ("Alexey Navalny", not "Walken").
    shown: dict[str, list[str]] = {}
    for w, vs in variants.items():
        others = [o for o in q_words if o != w]
        kept = [_capitalised_in(v, texts) for v in vs if not others or _beside(v, others, texts)]
        kept = [k for k in kept if k]
        if kept:
            shown[w] = kept
    timeline.variants = {(_capitalised_in(w, texts) or w): vs for w, vs in shown.items()}
    names = _subject_patterns(q_words, shown)
    candidates = _sentences(chunks, names, progress)
    timeline.articles = len({s.doc_id for s, _ in candidates})
    entries = _one_per_article_and_day(candidates)
    timeline.entries = _merge_reports(entries, embedder)
    return timeline


def _beside(word: str, others: list[str], texts: list[str]) -> bool:
    """True when ``word`` stands within two words of one of ``others`` somewhere in ``texts``."""
    near = re.compile(rf"\b(?:{'|'.join(map(re.escape, others))})\W+(?:\w+\W+){{0,1}}{re.escape(word)}\w*"
                      rf"|\b{re.escape(word)}\w*\W+(?:\w+\W+){{0,1}}(?:{'|'.join(map(re.escape, others))})", re.I)
    return any(near.search(t) for t in texts)


def _subject_patterns(q_words: list[str], variants: dict[str, list[str]]) -> list[re.Pattern]:
    """One pattern per query word (with its spellings); a sentence names the subject when it
    matches the rarest-looking one: the longest word, for a multi-word subject."""
    if not q_words:
        return []
    key = max(q_words, key=len)
    forms = [key, *(v.lower() for v in variants.get(key, []))]
    return [re.compile(r"\b(?:" + "|".join(re.escape(f) for f in forms) + r")\w*", re.I)]


def _sentences(chunks: dict, names: list[re.Pattern], progress) -> list[tuple[Source, tuple[str, str, str]]]:
    out, seen = [], set()
    items = list(chunks.values())
    for i, c in enumerate(items, 1):
        for s, e in sentence_spans(c.text):
            text = c.text[s:e].strip()
            key = (c.doc_id, c.start + s)
            if key in seen or len(text.split()) < 6 or not all(p.search(text) for p in names):
                continue
            if not _EVENT_VERB.search(text):
                continue
            seen.add(key)
            src = Source(c.doc_id, c.title, c.date, c.source, c.url, c.start + s, c.start + s + len(text), text, c.page)
            out.append((src, stated_date(text, c.date)))
        if progress and (i % 50 == 0 or i == len(items)):
            progress(i, len(items), "Reading")
    return out


def _one_per_article_and_day(candidates) -> list[TimelineEntry]:
    """One entry per article and event date: the sentence that states its date, else the first."""
    best: dict[tuple[str, str], TimelineEntry] = {}
    for src, (day, precision, words_) in candidates:
        if day:
            entry = TimelineEntry(day, precision, "stated", words_, src.text, src)
        elif src.date:
            entry = TimelineEntry(src.date, "day", "article", "", src.text, src)
        else:
            continue  # undated article, no stated date: nothing to place on a timeline
        key = (src.doc_id, entry.date)
        cur = best.get(key)
        if cur is None or (entry.basis == "stated" and cur.basis != "stated"):
            best[key] = entry
    return sorted(best.values(), key=lambda e: (e.date, e.source.date, e.source.doc_id, e.source.start))


def _merge_reports(entries: list[TimelineEntry], embedder) -> list[TimelineEntry]:
    """Entries from different articles with close dates that say the same thing become one."""
    if not entries:
        return []
    vecs = embedder.encode_short([e.text for e in entries])
    stems = [set(bm25_tokens(e.text)) for e in entries]
    merged: list[int] = []  # indices of the entries kept, in date order
    for i, e in enumerate(entries):
        home = None
        for j in reversed(merged):
            k = entries[j]
            if day_number(e.date) - day_number(k.date) > TIMELINE_SAME_EVENT_DAYS:
                break
            if e.source.doc_id in {s.doc_id for s in k.sources}:
                continue
            overlap = len(stems[i] & stems[j]) / max(1, min(len(stems[i]), len(stems[j])))
            if float(vecs[i] @ vecs[j]) >= TIMELINE_SAME_EVENT_COSINE or overlap >= TIMELINE_SAME_EVENT_OVERLAP:
                home = j
                break
        if home is None:
            merged.append(i)
        else:
            entries[home].also.append(e.source)
    out = [entries[j] for j in merged]
    for e in out:  # the first report leads; the others follow by date
        e.also.sort(key=lambda s: (s.date, s.doc_id))
    return out
