"""Dates: the one parser for article dates and date options, day numbers, and questions about "now".

Every date the tool stores or compares is ISO ``YYYY-MM-DD``. ``parse_date`` reads what
articles and users write (``2023/01/05``, ``2023-01-05T10:00Z``, ``5 January 2023``,
``Jan 5, 2023``, and the partial ``2023-01`` or ``2023``); ingest, filters, the CLI, the UI
and the answer step all go through it; ``stated_date`` reads the date a sentence states ("last
week", "on Monday") against its article's date. The "reference day" is the day a question about
"this week" or "recently" refers to: given by the user, else the newest article's date.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re

import numpy as np

from rag.tuning import RECENCY_DAYS, RECENCY_DAYS_AFTER, RECENCY_WEIGHT

_YMD = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:$|[T\s])")
_YM = re.compile(r"(\d{4})[-/.](\d{1,2})$")
_Y = re.compile(r"(\d{4})$")
_FORMATS = ("%d %B %Y", "%B %d, %Y", "%b %d, %Y", "%d %b %Y", "%B %d %Y", "%b %d %Y", "%a, %d %b %Y")
FORMATS_HELP = "YYYY-MM-DD, YYYY-MM or YYYY"

_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_name) if m}
_MONTHS.update({m.lower(): i for i, m in enumerate(calendar.month_abbr) if m})
_MONTHS["sept"] = 9
_MONTH = r"(?:January|February|March|April|May|June|July|August|September|October|November|December|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept?|Oct|Nov|Dec)\.?"
_WEEKDAYS = {d.lower(): i for i, d in enumerate(calendar.day_name)}
_DATE_PATTERNS = [
    # (regex, kind); the first match in a sentence wins, in this order
    (re.compile(rf"\b(?P<month>{_MONTH})\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<year>(?:19|20)\d\d)\b"), "mdy"),
    (re.compile(rf"\b(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\s+(?P<month>{_MONTH})\s+(?P<year>(?:19|20)\d\d)\b"), "dmy"),
    (re.compile(r"\b(?P<year>(?:19|20)\d\d)-(?P<mon>\d\d)-(?P<day>\d\d)\b"), "iso"),
    (re.compile(rf"\b(?:on|since|from|until|by)\s+(?P<month>{_MONTH})\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\b(?!,?\s*(?:19|20)\d\d)"), "md"),
    (re.compile(rf"\b(?:on|since|from|until|by)\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\s+(?P<month>{_MONTH})\b(?!,?\s*(?:19|20)\d\d)"), "dm"),
    (re.compile(rf"\b(?:in|since|from|until|by|during)\s+(?:early\s+|mid-?|late\s+)?(?P<month>{_MONTH}),?\s+(?P<year>(?:19|20)\d\d)\b"), "my"),
    (re.compile(rf"\b(?:in|since|during)\s+(?:early\s+|mid-?|late\s+)?(?P<month>{_MONTH})(?!,?\s*\d)\b"), "m"),
    (re.compile(r"\b(?P<rel>yesterday|last night)\b", re.I), "rel"),
    (re.compile(r"\b(?P<rel>last week|last month|last year|earlier this week|earlier this month|tomorrow|"
                r"next week|next month|next year)\b", re.I), "rel"),
    (re.compile(r"\b(?:on|last|this past|next|this coming)\s+(?P<weekday>Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)\b"),
     "weekday"),
]
# A date the sentence puts in the future: "will take office on January 1", "is due to open in
# May", "plans to visit on Friday", with no verb of saying between ("will ..., he said on Monday").
_FUTURE = re.compile(r"\b(?:will|won['’]t|shall|(?:is|are|was|were) (?:due|set|scheduled|expected|planned|going) to|"
                     r"(?:is|are|was|were) to|plans? to|planned to|intends? to|would)\b(?:\s+[\w'’-]+){0,7}?\s*,?\s*$", re.I)
_SAID = re.compile(r"\b(?:said|says|announced|told|reported|added|stated)\b", re.I)

# Words that make a question about "now": "this week", "recently", "the latest", "on Monday".
_TIME_CUE = re.compile(
    r"\b(?:this|last|past|previous|coming|next) (?:week|weekend|month|year|season|days?)\b"
    r"|\brecent(?:ly)?\b|\blatest\b|\bcurrent(?:ly)?\b|\b(?:yesterday|today|tonight|now|upcoming|newly|so far)\b"
    r"|\b(?:this|on|last) (?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b",
    re.I,
)


def parse_date(value: str, end: bool = False) -> str:
    """``value`` as ISO ``YYYY-MM-DD``, or "" when it is not a date.

    A partial date stands for its first day, or with ``end`` for its last day
    (``--until 2023`` means up to 2023-12-31).
    """
    value = (value or "").strip()
    if not value:
        return ""
    try:
        m = _YMD.match(value)
        if m:
            return dt.date(*(int(g) for g in m.groups())).isoformat()
        m = _YM.match(value)
        if m:
            y, mo = int(m.group(1)), int(m.group(2))
            return dt.date(y, mo, calendar.monthrange(y, mo)[1] if end else 1).isoformat()
        m = _Y.match(value)
        if m:
            y = int(m.group(1))
            return dt.date(y, 12, 31).isoformat() if end else dt.date(y, 1, 1).isoformat()
    except ValueError:  # month 13, February 30, year 0
        return ""
    for fmt in _FORMATS:
        try:
            return dt.datetime.strptime(value, fmt).date().isoformat()
        except ValueError:
            continue
    return ""


def day_number(date: str) -> int:
    """Proleptic ordinal of an ISO date (its first 10 characters), 0 when there is none."""
    try:
        return dt.date.fromisoformat(date[:10]).toordinal()
    except (TypeError, ValueError):
        return 0


def iso_day(number: int) -> str:
    """The ISO date of a day number ("" for 0)."""
    return dt.date.fromordinal(number).isoformat() if number > 0 else ""


def day_numbers(dates: list[str]) -> np.ndarray:
    """Day numbers of ISO dates, 0 where a date is missing or unreadable."""
    return np.array([day_number(d) if d else 0 for d in dates], dtype=np.int32)


def time_sensitive(question: str) -> bool:
    """True when the question asks about the time it is asked ("this week", "recently", ...)."""
    return bool(_TIME_CUE.search(question))


def reference_day(question: str, given: str, newest: str) -> str:
    """The day a question about "now" refers to: ``given``, else ``newest``; "" for other questions."""
    if not time_sensitive(question):
        return ""
    return given or newest


def recency_bonus(days: np.ndarray, reference: int) -> np.ndarray:
    """Bonus for articles dated near ``reference`` (day numbers; 0 = undated, no bonus)."""
    delta = (reference - days).astype(np.float32)
    scale = np.where(delta >= 0, RECENCY_DAYS, RECENCY_DAYS_AFTER)
    bonus = np.exp(-np.abs(delta) / scale)
    return np.where(days > 0, RECENCY_WEIGHT * bonus, 0.0).astype(np.float32)


def closeness(dates: list[str], reference: str) -> np.ndarray:
    """0..1 per date: how close it is to ``reference`` (all 0 when ``reference`` is "")."""
    ref = day_number(reference) if reference else 0
    if not ref:
        return np.zeros(len(dates), dtype=np.float32)
    return recency_bonus(day_numbers(dates).astype(np.int64), ref) / RECENCY_WEIGHT


def stated_date(sentence: str, article_date: str) -> tuple[str, str, str]:
    """(ISO day, precision, the words) of the date ``sentence`` states, resolved against the
    article's date; ("", "", "") when it states none that can be resolved."""
    base = dt.date.fromisoformat(article_date) if day_number(article_date) else None
    for pattern, kind in _DATE_PATTERNS:
        for m in pattern.finditer(sentence):
            day = _resolve(m, kind, base, _future(sentence[:m.start()]))
            if day is not None:
                value, precision = day
                return value.isoformat(), precision, m.group(0).strip()
    return "", "", ""


def dates_in(sentence: str, article_date: str):
    """Each date ``sentence`` states, resolved against the article's date: (start, end, ISO day,
    precision, the words), in the order ``stated_date`` tries them; overlapping ones once."""
    base = dt.date.fromisoformat(article_date) if day_number(article_date) else None
    taken: list[tuple[int, int]] = []
    for pattern, kind in _DATE_PATTERNS:
        for m in pattern.finditer(sentence):
            if any(m.start() < b and m.end() > a for a, b in taken):
                continue
            day = _resolve(m, kind, base, _future(sentence[:m.start()]))
            if day is not None:
                taken.append((m.start(), m.end()))
                yield m.start(), m.end(), day[0].isoformat(), day[1], m.group(0).strip()


def date_within(sentence: str, start: int, end: int, article_date: str) -> tuple[str, str, str]:
    """(ISO day, precision, the words) of the date ``sentence`` states that overlaps its
    characters ``start``-``end`` (a span read as the answer), resolved as ``stated_date`` does;
    ("", "", "") when no date overlaps it."""
    base = dt.date.fromisoformat(article_date) if day_number(article_date) else None
    for pattern, kind in _DATE_PATTERNS:
        for m in pattern.finditer(sentence):
            if m.end() <= start or m.start() >= end:
                continue
            day = _resolve(m, kind, base, _future(sentence[:m.start()]))
            if day is not None:
                value, precision = day
                return value.isoformat(), precision, m.group(0).strip()
    return "", "", ""


def _future(before: str) -> bool:
    """Whether the words before a date put it in the future ("Okafor will take office" before
    "on January 1"): a future verb in the last few words, and no verb of saying after it."""
    m = _FUTURE.search(before[-80:])
    return m is not None and not _SAID.search(m.group(0))


def _resolve(m: re.Match, kind: str, base: dt.date | None, future: bool = False) -> tuple[dt.date, str] | None:
    """The day a date match stands for, resolved against the article's date ``base``; a date
    without its year is the latest one up to the article, or with ``future`` the next one after it."""
    g = m.groupdict()
    try:
        if kind in ("mdy", "dmy"):
            return dt.date(int(g["year"]), _MONTHS[g["month"].lower().rstrip(".")], int(g["day"])), "day"
        if kind == "iso":
            return dt.date(int(g["year"]), int(g["mon"]), int(g["day"])), "day"
        if kind == "my":
            return dt.date(int(g["year"]), _MONTHS[g["month"].lower().rstrip(".")], 1), "month"
        if base is None:
            return None
        if kind == "m":  # "in February" in a July article: the latest February up to the article
            month = _MONTHS[g["month"].lower().rstrip(".")]
            if future:  # "will open in February" in a July article: the next February
                return dt.date(base.year + (month < base.month), month, 1), "month"
            return dt.date(base.year - (month > base.month), month, 1), "month"
        if kind in ("md", "dm"):
            day = dt.date(base.year, _MONTHS[g["month"].lower().rstrip(".")], int(g["day"]))
            if future and day < base:  # "will take office on January 1" in a November article: next year
                day = day.replace(year=base.year + 1)
            elif not future and day > base + dt.timedelta(days=31):  # "on December 28" in a January article: last year
                day = day.replace(year=base.year - 1)
            return day, "day"
        if kind == "weekday" and (future or re.match(r"next|this coming", m.group(0), re.I)):
            ahead = (_WEEKDAYS[g["weekday"].lower()] - base.weekday()) % 7  # "will meet on Friday": the next Friday
            return base + dt.timedelta(days=ahead or 7), "day"
        if kind == "weekday":  # news convention: the latest such day on or before the article's,
            back = (base.weekday() - _WEEKDAYS[g["weekday"].lower()]) % 7
            # except the day after it: an article dated the evening before (or in another time
            # zone) writing "on Friday" on a Thursday means tomorrow, not six days ago
            return base - dt.timedelta(days=back if back < 6 else -1), "day"
        rel = g["rel"].lower()
        if rel == "tomorrow":
            return base + dt.timedelta(days=1), "day"
        if rel == "next week":
            return base + dt.timedelta(days=7), "week"
        if rel == "next month":
            return (base.replace(day=28) + dt.timedelta(days=4)).replace(day=1), "month"
        if rel == "next year":
            return dt.date(base.year + 1, 1, 1), "year"
        if rel in ("yesterday", "last night"):
            return base - dt.timedelta(days=1), "day"
        if rel in ("last week", "earlier this week"):
            return base - dt.timedelta(days=7 if rel == "last week" else 3), "week"
        if rel == "earlier this month":
            return base.replace(day=1), "month"
        if rel == "last month":
            first = base.replace(day=1) - dt.timedelta(days=1)
            return first.replace(day=1), "month"
        if rel == "last year":
            return dt.date(base.year - 1, 1, 1), "year"
    except (ValueError, KeyError):
        return None
    return None
