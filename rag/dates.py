"""Dates: the one parser for article dates and date options, day numbers, and questions about "now".

Every date the tool stores or compares is ISO ``YYYY-MM-DD``. ``parse_date`` reads what
articles and users write (``2023/01/05``, ``2023-01-05T10:00Z``, ``5 January 2023``,
``Jan 5, 2023``, and the partial ``2023-01`` or ``2023``); ingest, filters, the CLI, the UI
and the answer step all go through it. The "reference day" is the day a question about
"this week" or "recently" refers to: given by the user, else the newest article's date.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re

import numpy as np

from .tuning import RECENCY_DAYS, RECENCY_DAYS_AFTER, RECENCY_WEIGHT

_YMD = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:$|[T\s])")
_YM = re.compile(r"(\d{4})[-/.](\d{1,2})$")
_Y = re.compile(r"(\d{4})$")
_FORMATS = ("%d %B %Y", "%B %d, %Y", "%b %d, %Y", "%d %b %Y", "%B %d %Y", "%b %d %Y", "%a, %d %b %Y")
FORMATS_HELP = "YYYY-MM-DD, YYYY-MM or YYYY"

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
