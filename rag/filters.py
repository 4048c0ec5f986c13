"""Search filters: a date range and source names, checked once when they are made."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rag.errors import QuestionError
from rag.text.dates import FORMATS_HELP, parse_date


class FilterError(QuestionError):
    """A filter value that cannot be used; ``option`` names it ("since", "until", "sources")."""

    def __init__(self, option: str, problem: str) -> None:
        super().__init__(f"{option}: {problem}")
        self.option, self.problem = option, problem

    def message(self, name: Callable[[str], str] = str) -> str:
        """The message with each option spelled as the caller shows it (``name("since")``: "--since")."""
        return f"{name(self.option)}: {self.problem}"


class DateRangeError(FilterError):
    """``since`` is after ``until``: no article can be dated in the range."""

    def __init__(self, since: str, until: str) -> None:
        self.since, self.until = since, until
        super().__init__("since", f"{since} is after until {until}")
        self.args = (self.message(),)

    def message(self, name: Callable[[str], str] = str) -> str:
        return (f"{name('since')} {self.since} is after {name('until')} {self.until}: no article can match; "
                "swap the two dates")


@dataclass(frozen=True)
class Filters:
    """Articles dated from ``since`` to ``until`` (inclusive) whose source contains one of ``sources``.

    Dates may be ISO days or partial (``2023-05``, ``2023``: ``since`` takes the first day,
    ``until`` the last); they are stored as ISO days. A date that cannot be read, or a
    ``since`` after ``until``, raises ``FilterError``. Source names match
    case-insensitively as substrings, literally (``%`` and ``_`` are plain characters).
    Empty fields mean no filter.
    """

    since: str = ""
    until: str = ""
    sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "since", _date("since", self.since, end=False))
        object.__setattr__(self, "until", _date("until", self.until, end=True))
        if self.since and self.until and self.since > self.until:
            raise DateRangeError(self.since, self.until)
        raw = (self.sources,) if isinstance(self.sources, str) else tuple(self.sources or ())
        object.__setattr__(self, "sources", tuple(dict.fromkeys(s.strip() for s in raw if s and s.strip())))

    def __bool__(self) -> bool:
        return bool(self.since or self.until or self.sources)

    def describe(self) -> str:
        """The filters in words: "since 2024-01-01, source contains 'BBC'"."""
        parts = []
        if self.since:
            parts.append(f"since {self.since}")
        if self.until:
            parts.append(f"until {self.until}")
        if self.sources:
            parts.append("source contains " + " or ".join(repr(s) for s in self.sources))
        return ", ".join(parts)


def _date(option: str, value: object, end: bool) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise FilterError(option, f"not a date: {value!r} (use {FORMATS_HELP})")
    day = parse_date(value, end=end)
    if not day:
        raise FilterError(option, f"not a date: {value.strip()!r} (use {FORMATS_HELP})")
    return day
