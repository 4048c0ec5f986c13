"""The one date parser: article dates, filter dates, partial dates."""

from __future__ import annotations

import pytest

from rag.text.dates import parse_date, reference_day


@pytest.mark.parametrize("raw,iso", [
    ("2023-01-05", "2023-01-05"),
    ("2023/1/5", "2023-01-05"),
    ("2023.01.05", "2023-01-05"),
    ("2023-01-05T10:00:00Z", "2023-01-05"),
    ("2023-01-05 10:00", "2023-01-05"),
    ("5 January 2023", "2023-01-05"),
    ("January 5, 2023", "2023-01-05"),
    ("Jan 5, 2023", "2023-01-05"),
    ("5 Jan 2023", "2023-01-05"),
    ("Thu, 05 Jan 2023", "2023-01-05"),
    ("2023-01", "2023-01-01"),
    ("2023", "2023-01-01"),
    (" 2023-01-05 ", "2023-01-05"),
    ("2023-02-30", ""),
    ("2023-13", ""),
    ("yesterday", ""),
    ("sometime in spring", ""),
    ("", ""),
    ("20230105abc", ""),
])
def test_parse_date(raw, iso):
    assert parse_date(raw) == iso


def test_a_partial_date_ends_at_the_end_of_its_period_when_asked():
    assert parse_date("2023", end=True) == "2023-12-31"
    assert parse_date("2024-02", end=True) == "2024-02-29"
    assert parse_date("2023-02-14", end=True) == "2023-02-14"


def test_the_reference_day_is_set_only_for_questions_about_now():
    assert reference_day("What happened this week?", "2023-06-01", "2024-01-01") == "2023-06-01"
    assert reference_day("What happened this week?", "", "2024-01-01") == "2024-01-01"
    assert reference_day("Who mediated the talks?", "2023-06-01", "2024-01-01") == ""
