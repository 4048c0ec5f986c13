"""Filters check their values once, in the library; the CLI only shows the error."""

from __future__ import annotations

import pytest

from rag import FilterError, Filters
from rag.surfaces.cli import main

QUESTION = "Who offered to mediate between Kabul and Islamabad?"


def test_a_date_that_is_not_one_is_an_error_naming_the_option():
    with pytest.raises(FilterError) as e:
        Filters(since="yesterday")
    assert e.value.option == "since" and str(e.value).startswith("since: not a date: 'yesterday'")
    with pytest.raises(FilterError, match="until: not a date: '2024-02-30'"):
        Filters(until="2024-02-30")


def test_dates_are_stored_as_iso_days_and_partial_dates_span_their_period():
    f = Filters(since="2019", until="2019/6")
    assert (f.since, f.until) == ("2019-01-01", "2019-06-30")
    assert Filters(sources="BBC").sources == ("BBC",)  # one name is not split into letters
    assert Filters(sources=(" ", "")).sources == () and not Filters(sources=(" ",))


def test_a_malformed_date_on_the_command_line_is_one_clear_error(fake_settings, capsys):
    code = main(["ask", QUESTION, "--since", "yesterday", "--index-dir", fake_settings.index_dir,
                 "--model", "fake-64", "--corpus", fake_settings.corpus[0]])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("Error: --since: not a date: 'yesterday'"), err


@pytest.mark.parametrize("filters", [
    Filters(sources=("no such source",)),
    Filters(sources=("%",)),  # a wildcard in SQL, a plain character here
    Filters(sources=("_",)),
])
def test_filters_that_exclude_every_article_say_so(fake_rag, filters):
    answer = fake_rag.ask(QUESTION, filters=filters)
    assert answer.abstained and answer.answer.startswith("No article matches the filters (")
    assert filters.describe() in answer.answer and not answer.citations
    assert fake_rag.search(QUESTION, filters=filters) == []


def test_percent_and_underscore_in_a_source_match_literally(fake_rag):
    sources = [s for s, _ in fake_rag.sources() if s]
    assert sources
    name = sources[0]
    assert fake_rag.matches(Filters(sources=(name[:3],)))
    assert not fake_rag.matches(Filters(sources=(name[0] + "%" + name[2],)))
    assert not fake_rag.matches(Filters(sources=(name[0] + "_" + name[2],)))


def test_every_source_is_listed(fake_rag):
    sources = fake_rag.sources()
    assert sum(n for _, n in sources) == fake_rag.stats()["documents"]
    assert [n for _, n in sources] == sorted((n for _, n in sources), reverse=True)
