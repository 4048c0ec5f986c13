"""Sources that disagree: different values for the thing a question asks about, side by side.

For a question asking for a number ("how many troops") or a date ("when did ..."), each
answer sentence that names what is asked is read for its value: the number standing by the
question's words, or the date it states. When sentences from different articles give
different values, the answer lists each value with its citations and dates. Values from
articles of different days are an **update** (newest first, each "as of" its date); values
reported on the same days are a **disagreement**.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .dates import day_number, stated_date
from .lexical import match_sequence, match_tokens
from .tuning import CONFLICT_MIN_SCORE_RATIO, CONFLICT_NUMBER_WINDOW, CONFLICT_SAME_DAYS

_HOW_MANY = re.compile(r"\bhow (?:many|much)\s+([^?.,;]+)", re.I)
_PHRASE_END = re.compile(r"(?:were|was|are|is|did|do|does|have|has|had|will|would|could|can|may|might|in|on|at|of|"
                         r"for|from|to|by|with|after|before|during|since|that|who|which|\w{3,}ed|died|fled|left)$", re.I)
_NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)(?:\s*(million|billion|thousand))?(?![\w])", re.I)
_SCALE = {"thousand": 1e3, "million": 1e6, "billion": 1e9}
_WHEN = re.compile(r"^\s*when\b|\bwhat (?:year|date|day|month)\b", re.I)


@dataclass
class ConflictValue:
    """One value the sources give, with the passages ([n]) and articles that give it."""

    value: str  # as the first source writes it
    citations: list[int] = field(default_factory=list)  # [n] of the answer's passages that say it
    dates: list[str] = field(default_factory=list)  # their articles' dates, oldest first
    doc_ids: list[str] = field(default_factory=list)
    as_of: str = ""  # the newest date among them: "as of" for an update

    def to_dict(self) -> dict:
        return {"value": self.value, "as_of": self.as_of, "citations": list(self.citations),
                "dates": list(self.dates), "doc_ids": list(self.doc_ids)}


@dataclass
class Conflict:
    """Different values for the same thing: ``kind`` is "update" (the value changed over time;
    newest first) or "disagree" (sources of the same days differ)."""

    what: str  # what differs: "troops (a number)", "the date"
    kind: str
    values: list[ConflictValue]

    @property
    def headline(self) -> str:
        return self.headline_for(self.kind, self.what)

    @staticmethod
    def headline_for(kind: str, what: str) -> str:
        """The line that introduces the values: "The sources give X differently over time (newest first):"."""
        if kind == "update":
            return f"The sources give {what} differently over time (newest first):"
        return f"The sources disagree on {what}:"

    def to_dict(self) -> dict:
        return {"what": self.what, "kind": self.kind, "values": [v.to_dict() for v in self.values]}


def asked_slot(question: str) -> tuple[str, list[str], str]:
    """What a question asks for: ("number", stems of what is counted, the words: "US troops"),
    ("date", [], ""), or ("", [], "") for other questions."""
    m = _HOW_MANY.search(question)
    if m:
        counted = []
        for w in m.group(1).split():
            if _PHRASE_END.fullmatch(w) or len(counted) == 3:
                break
            counted.append(w)
        stems = [t for t in match_sequence(" ".join(counted)) if len(t) > 2]
        return ("number", stems, " ".join(counted)) if stems else ("", [], "")
    if _WHEN.search(question):
        return "date", [], ""
    return "", [], ""


def number_near(sentence: str, stems: list[str]) -> tuple[str, float] | None:
    """The number written right before one of ``stems`` ("5,000 U.S. troops"), as written and as a value."""
    for m in _NUMBER.finditer(sentence):
        if re.fullmatch(r"(?:19|20)\d\d", m.group(1)) and not m.group(2):
            continue  # a year, not a count
        following = match_sequence(" ".join(sentence[m.end():].split()[:CONFLICT_NUMBER_WINDOW]))
        if any(t.startswith(s) or s.startswith(t) for t in following for s in stems):
            return m.group(0), float(m.group(1).replace(",", "")) * _SCALE.get((m.group(2) or "").lower(), 1.0)
    return None


def find_conflicts(question: str, sentences: list, hits: list) -> list[Conflict]:
    """Conflicts among ``sentences`` (scored answer sentences of the shown passages, ``n``
    indexing ``hits``) for what ``question`` asks."""
    kind, stems, counted = asked_slot(question)
    if not kind or not sentences:
        return []
    best = max(s.score for s in sentences)
    q_terms = match_tokens(question)
    found: list[tuple[object, str, int, str, str]] = []  # (value key, as written, n, doc_id, article date)
    for s in sorted(sentences, key=lambda s: -s.score):
        if s.score < CONFLICT_MIN_SCORE_RATIO * best or not (match_tokens(s.text) & q_terms):
            continue
        chunk = hits[s.n - 1].chunk
        if kind == "number":
            value = number_near(s.text, stems)
            if value is None:
                continue
            written, key = value
        else:
            day, precision, words = stated_date(s.text, chunk.date)
            if not day:
                continue
            key = day[:7] if precision in ("month", "week") else day[:4] if precision == "year" else day
            written = f"{key} (“{words}”)"
        found.append((key, written, s.n, chunk.doc_id, chunk.date))
    # An article that gives several values tells of several things (two meetings, a count "from
    # 14,000 to 7,000"); it neither disagrees with itself nor settles anything: it is left out.
    keys_of: dict[str, set] = {}
    for key, _, _, doc_id, _ in found:
        keys_of.setdefault(doc_id, set()).add(key)
    groups: dict[object, ConflictValue] = {}
    for key, written, n, doc_id, date in found:
        if len(keys_of[doc_id]) > 1:
            continue
        group = groups.setdefault(key, ConflictValue(written))
        if n not in group.citations:
            group.citations.append(n)
        if doc_id not in group.doc_ids:
            group.doc_ids.append(doc_id)
            if date:
                group.dates.append(date)
    values = list(groups.values())
    if len(values) < 2:
        return []
    for v in values:
        v.dates.sort()
        v.as_of = v.dates[-1] if v.dates else ""
    what = f"the number of {counted}" if kind == "number" else "the date"
    if _same_days(values):
        return [Conflict(what, "disagree", sorted(values, key=lambda v: -len(v.doc_ids)))]
    return [Conflict(what, "update", sorted(values, key=lambda v: v.as_of, reverse=True))]


def _same_days(values: list[ConflictValue]) -> bool:
    """True when two values were reported within CONFLICT_SAME_DAYS of each other (or undated)."""
    days = [[day_number(d) for d in v.dates] or [0] for v in values]
    for i in range(len(days)):
        for j in range(i + 1, len(days)):
            if any(a == 0 or b == 0 or abs(a - b) <= CONFLICT_SAME_DAYS for a in days[i] for b in days[j]):
                return True
    return False
