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

from rag.filters import Filters
from rag.search.retrieve import BM25Retriever
from rag.text.chunk import sentence_spans
from rag.text.dates import day_number, stated_date
from rag.text.lexical import bm25_tokens, stopwords, words
from rag.tuning import (
    TIMELINE_AHEAD_DAYS,
    TIMELINE_FOLLOW_UP_COSINE,
    TIMELINE_MAIN_SOURCES,
    TIMELINE_MAX_PASSAGES,
    TIMELINE_REPORTED_DAYS,
    TIMELINE_SAME_EVENT_COSINE,
    TIMELINE_SAME_EVENT_DAYS,
    TIMELINE_SAME_EVENT_OVERLAP,
)
from rag.types import paged_dict

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
    def reported_at_the_time(self) -> bool:
        """Whether an article reports it from ``TIMELINE_AHEAD_DAYS`` before it ("will take office
        on January 1") to ``TIMELINE_REPORTED_DAYS`` after it; not only as background years later."""
        day = day_number(self.date)
        return not day or any(day - TIMELINE_AHEAD_DAYS <= day_number(s.date) <= day + TIMELINE_REPORTED_DAYS
                              for s in self.sources if s.date)

    @property
    def when(self) -> str:
        """The date as precise as it is known: "2018-12-31", "week of 2018-12-24", "2018-12", "2018"."""
        if self.precision == "month":
            return self.date[:7]
        if self.precision == "year":
            return self.date[:4]
        return f"week of {self.date}" if self.precision == "week" else self.date

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
    main_only: bool = False  # True: only the main events are listed (reported by ``min_sources`` articles)
    min_sources: int = 1
    more: int = 0  # events left out (reported by fewer articles, or past the limit)

    def to_dict(self) -> dict:
        return {"query": self.query, "variants": self.variants, "articles": self.articles,
                "main_only": self.main_only, "min_sources": self.min_sources, "more": self.more,
                "entries": [e.to_dict() for e in self.entries]}

    def summary(self) -> str:
        """ "4 main events (each reported by 3+ articles) from 41 articles; 23 more reported by fewer articles" """
        n, articles, more = len(self.entries), self.articles, self.more
        what = (f"{n} main event{'s' * (n != 1)} (each reported by {self.min_sources}+ articles)"
                if self.main_only else f"{n} event{'s' * (n != 1)}")
        rest = f"; {more} more reported by fewer articles" if more else ""
        return f"{what} from {articles} article{'s' * (articles != 1)}{rest}"

    def keep_main(self, min_sources: int = TIMELINE_MAIN_SOURCES) -> None:
        """Keep the main events: those reported by at least ``min_sources`` articles. When fewer
        than two are (a small archive), those reported by one article fewer, and so on.

        An event is something that happened at a time its sentence says ("died on Thursday",
        "was arrested in February"). An entry dated only by its article's date is mostly
        background ("the jailed opposition leader ..."): it is a main event only when more
        than ``min_sources`` articles report it, or when the events whose sentences say when
        are too few (under two, however few articles report them). So is an event no article
        reported at the time, only years later ("the last coronation took place on June 2, 1953"
        in 2022): background, listed with every event."""
        events = [e for e in self.entries if (e.basis == "stated" and e.reported_at_the_time)
                  or len(e.sources) > min_sources]
        for pool in (events, self.entries):
            for least in range(min_sources, 1, -1):
                main = [e for e in pool if len(e.sources) >= least]
                if len(main) >= 2:
                    if len(main) < len(self.entries):
                        self.more += len(self.entries) - len(main)
                        self.entries, self.main_only, self.min_sources = main, True, least
                    return

    def keep_most_reported(self, limit: int) -> None:
        """Keep the ``limit`` events reported by the most articles, still oldest first."""
        if 0 < limit < len(self.entries):
            keep = sorted(range(len(self.entries)), key=lambda i: (-len(self.entries[i].sources), i))[:limit]
            self.more += len(self.entries) - limit
            self.entries = [self.entries[i] for i in sorted(keep)]


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
    letters and one edit apart (two for names of 8+ letters: Araghchi, Araqchi). The word's own
    stem ("hurrican" of "Hurricane", "nichol" of "Nichols") is the same word, not a spelling."""
    if len(term) < 6 or not term.isalpha():
        return []
    limit = 2 if len(term) >= 8 else 1
    own = {term, *bm25_tokens(term)}
    return sorted(w for w in vocabulary if w not in own and w[:2] == term[:2] and w.isalpha()
                  and len(w) >= 6 and edit_distance(term, w, limit) <= limit)


def _capitalised_in(word: str, texts: list[str]) -> str:
    """The word as the archive writes it when it is a name ("Araqchi"): capitalised in most of
    its occurrences inside sentences (not only after a full stop); "" otherwise ("benefit")."""
    pattern = re.compile(rf"\b({re.escape(word)})\w*\b", re.I)
    upper, lower, form = 0, 0, ""
    for t in texts:
        for m in pattern.finditer(t):
            if m.group(1)[:1].isupper():
                before = t[max(0, m.start() - 2):m.start()].strip()
                if before and before[-1] not in ".!?\"'“‘:":
                    upper += 1
                    form = form or m.group(1)
            else:
                lower += 1
    return form if upper > lower else ""


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
    idf = index.idf()
    names = _subject_patterns(q_words, shown, lambda w: max((idf(t) for t in bm25_tokens(w)), default=0.0))
    candidates = _sentences(chunks, names, progress, _later_reference(query, q_words, names))
    timeline.articles = len({s.doc_id for s, _ in candidates})
    entries = _one_per_article_and_day(candidates)
    timeline.entries = _merge_reports(entries, embedder)
    return timeline


def _beside(word: str, others: list[str], texts: list[str]) -> bool:
    """True when ``word`` stands within two words of one of ``others`` somewhere in ``texts``."""
    near = re.compile(rf"\b(?:{'|'.join(map(re.escape, others))})\W+(?:\w+\W+){{0,1}}{re.escape(word)}\w*"
                      rf"|\b{re.escape(word)}\w*\W+(?:\w+\W+){{0,1}}(?:{'|'.join(map(re.escape, others))})", re.I)
    return any(near.search(t) for t in texts)


def _subject_patterns(q_words: list[str], variants: dict[str, list[str]],
                      rarity: Callable[[str], float] = len) -> list[re.Pattern]:
    """One pattern per query word (with its spellings); a sentence names the subject when it
    matches the rarest one in the archive ("Santos" of "George Santos", "balloon" of "Chinese
    spy balloon"), or one of its spellings."""
    if not q_words:
        return []
    key = max(q_words, key=lambda w: (rarity(w), len(w)))
    forms = [key, *(v.lower() for v in variants.get(key, []))]
    # the word itself, possessive or plural ("Santos'", "balloons"), not a longer word ("Nicolas" for "Nicola")
    return [re.compile(r"\b(?:" + "|".join(re.escape(f) for f in forms) + r")(?:['’]s|['’]|s|es)?\b", re.I)]


def _later_reference(query: str, q_words: list[str], names: list[re.Pattern]) -> re.Pattern | None:
    """How an article refers to a person again after naming them: the last word of a name
    ("Johnson" of "Boris Johnson"), when the query is a name (every word capitalised) and that
    word is not already the one matched."""
    written = re.findall(r"[\w'’-]+", query)
    if len(written) < 2 or not all(w[:1].isupper() for w in written):
        return None
    last = next((w for w in reversed(q_words) if w.isalpha() and len(w) >= 3 and not re.fullmatch(r"[ivx]+", w)), "")
    if not last or any(p.fullmatch(last) for p in names):
        return None
    return re.compile(rf"\b{re.escape(last)}(?:['’]s|['’])?\b", re.I)


def _sentences(chunks: dict, names: list[re.Pattern], progress,
               later: re.Pattern | None = None) -> list[tuple[Source, tuple[str, str, str]]]:
    """The sentences that name the subject and tell of an event; with ``later`` (``_later_reference``),
    also those that refer to it so in a passage that names it in full."""
    out, seen = [], set()
    items = list(chunks.values())
    for i, c in enumerate(items, 1):
        named = later is not None and all(p.search(c.text) for p in names)
        for s, e in sentence_spans(c.text):
            text = c.text[s:e].strip()
            key = (c.doc_id, c.start + s)
            if key in seen or len(text.split()) < 6:
                continue
            if not (all(p.search(text) for p in names) or (named and later.search(text))):
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
    """Reports of one event become one entry: entries of different articles, dated at most
    ``TIMELINE_SAME_EVENT_DAYS`` from the latest report already in the event, whose sentence is
    on average this close to the event's sentences (cosine) or shares most of its words with
    one of them. The entry is dated by the day most of its sentences state, told by the most
    typical of those sentences (the closest to the others); with no stated day, by its first
    report's date and its most typical sentence."""
    if not entries:
        return []
    vecs = embedder.encode_short([e.text for e in entries])
    stems = [set(bm25_tokens(e.text)) for e in entries]
    events: list[list[int]] = []  # entry indices, in date order
    for i, e in enumerate(entries):
        day, best, best_sim = day_number(e.date), None, 0.0
        for ev in events:
            if day - day_number(entries[ev[-1]].date) > TIMELINE_SAME_EVENT_DAYS:
                continue
            if e.source.doc_id in {entries[j].source.doc_id for j in ev}:
                continue
            sim = float(np.mean(vecs[ev] @ vecs[i]))
            overlap = max(len(stems[i] & stems[j]) / max(1, min(len(stems[i]), len(stems[j]))) for j in ev)
            if (sim >= TIMELINE_SAME_EVENT_COSINE or overlap >= TIMELINE_SAME_EVENT_OVERLAP) and sim > best_sim:
                best, best_sim = ev, sim
        if best is None:
            events.append([i])
        else:
            best.append(i)
    events = _absorb_follow_ups(events, entries, vecs)
    return sorted((_event_entry([entries[j] for j in ev], vecs[ev]) for ev in events),
                  key=lambda x: (x.date, x.source.date, x.source.doc_id, x.source.start))


def _absorb_follow_ups(events: list[list[int]], entries: list[TimelineEntry], vecs: np.ndarray) -> list[list[int]]:
    """A small event (reported by fewer articles) within ``TIMELINE_SAME_EVENT_DAYS`` of a larger
    one and about the same story (mean cosine >= ``TIMELINE_FOLLOW_UP_COSINE``) is the larger
    one's follow-up coverage: its reports join the larger event."""
    order = sorted(range(len(events)), key=lambda k: (-len(events[k]), k))
    gone: set[int] = set()
    for big in order:
        if big in gone:
            continue
        days = [day_number(entries[j].date) for j in events[big]]
        for small in order:
            if small == big or small in gone or len(events[small]) > len(events[big]):
                continue
            d = [day_number(entries[j].date) for j in events[small]]
            if min(d) - max(days) > TIMELINE_SAME_EVENT_DAYS or min(days) - max(d) > TIMELINE_SAME_EVENT_DAYS:
                continue
            if float(np.mean(vecs[events[small]] @ vecs[events[big]].T)) < TIMELINE_FOLLOW_UP_COSINE:
                continue
            have = {entries[j].source.doc_id for j in events[big]}
            events[big] += [j for j in events[small] if entries[j].source.doc_id not in have]
            gone.add(small)
    return [sorted(ev, key=lambda j: (entries[j].date, j)) for k, ev in enumerate(events) if k not in gone]


def _event_entry(members: list[TimelineEntry], vecs: np.ndarray) -> TimelineEntry:
    """One entry for the reports ``members`` (date order) of one event."""
    if len(members) == 1:
        return members[0]
    centrality = (vecs @ vecs.T).sum(axis=1)
    stated = [k for k, m in enumerate(members) if m.basis == "stated" and m.precision == "day"]
    if stated:  # the day most reports state, told by the most typical of those sentences
        counts: dict[str, int] = {}
        for k in stated:
            counts[members[k].date] = counts.get(members[k].date, 0) + 1
        day = max(sorted(counts), key=lambda d: counts[d])
        lead = dated = members[max((k for k in stated if members[k].date == day), key=lambda k: centrality[k])]
    else:
        lead, dated = members[int(np.argmax(centrality))], members[0]
    entry = TimelineEntry(dated.date, dated.precision, dated.basis, dated.stated, lead.text, lead.source)
    entry.also = sorted((m.source for m in members if m is not lead), key=lambda s: (s.date, s.doc_id))
    return entry
