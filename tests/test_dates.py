"""The one date parser: article dates, filter dates, partial dates."""

from __future__ import annotations

import pytest

from rag.text.dates import parse_date, reference_day, stated_date


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


@pytest.mark.parametrize("sentence, article, day", [
    # a date without its year in the future tense is the next one after the article, not the last
    ("Okafor will take office on January 1, succeeding Paul Reyes.", "2022-11-09", "2023-01-01"),
    ("The vote is due to take place on March 3.", "2022-11-09", "2023-03-03"),
    ("The airline will open the route in May.", "2022-10-27", "2023-05-01"),
    ("The talks will resume on Friday, officials said.", "2022-11-09", "2022-11-11"),
    ("The store will close next week.", "2022-11-09", "2022-11-16"),
    # the same dates told in the past, and a future verb of another clause, are before the article
    ("Okafor took office on January 1.", "2023-01-05", "2023-01-01"),
    ("The vote took place on March 3.", "2022-11-09", "2022-03-03"),
    ("It opened in May.", "2022-10-27", "2022-05-01"),
    ("He said on Tuesday that he will resign.", "2022-11-09", "2022-11-08"),
    ("Northwind will start flying, the carrier said on Tuesday.", "2022-09-20", "2022-09-20"),
    ("Talks resumed last Tuesday.", "2022-11-09", "2022-11-08"),
])
def test_a_stated_date_follows_the_tense_of_its_sentence(sentence, article, day):
    assert stated_date(sentence, article)[0] == day
