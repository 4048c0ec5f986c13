"""Timelines: dated events about a subject, oldest first, spellings merged, reports of one event collapsed."""

from __future__ import annotations

import json

import pytest

from rag import Rag
from rag.answer.timeline import (
    Source,
    Timeline,
    TimelineEntry,
    _later_reference,
    _sentences,
    _subject_patterns,
    edit_distance,
    spelling_variants,
)
from rag.surfaces.cli import main
from rag.text.dates import stated_date
from rag.types import Chunk


@pytest.mark.parametrize("sentence,article_date,expected", [
    ("The talks took place on December 24, 2018 in Tehran.", "2019-01-05", ("2018-12-24", "day", "December 24, 2018")),
    ("The talks took place on 24 December 2018 in Tehran.", "2019-01-05", ("2018-12-24", "day", "24 December 2018")),
    ("Negotiations began in October 2018 in Doha.", "2019-09-17", ("2018-10-01", "month", "in October 2018")),
    ("Last week's discussions were coordinated with Kabul.", "2018-12-31", ("2018-12-24", "week", "Last week")),
    ("The spokesman told reporters on Monday that it happened.", "2018-12-31", ("2018-12-31", "day", "on Monday")),
    ("The envoy met the group on Tuesday in Doha.", "2019-01-23", ("2019-01-22", "day", "on Tuesday")),
    ("The minister resigned on December 28 after the vote.", "2019-01-05", ("2018-12-28", "day", "on December 28")),
    ("The minister resigned yesterday after the vote.", "2019-01-05", ("2019-01-04", "day", "yesterday")),
    ("A summit was held last month in Moscow.", "2018-12-31", ("2018-11-01", "month", "last month")),
    ("She was detained in February at an airport near Moscow.", "2022-07-07", ("2022-02-01", "month", "in February")),
    ("The storm hit in December, officials said.", "2023-01-10", ("2022-12-01", "month", "in December")),
    ("The talks ended in March, 2023 without a deal.", "2023-06-01", ("2023-03-01", "month", "in March, 2023")),
    # an article dated on a Thursday saying "on Friday" means the next day, not six days before
    ("Santos was expelled from Congress on Friday.", "2023-11-30", ("2023-12-01", "day", "on Friday")),
    ("The minister spoke about peace and security.", "2019-01-05", ("", "", "")),
    ("The envoy met the group on Tuesday in Doha.", "", ("", "", "")),  # undated article: cannot resolve
])
def test_stated_dates_are_resolved_against_the_article_date(sentence, article_date, expected):
    assert stated_date(sentence, article_date) == expected


def test_spelling_variants_are_names_a_few_letters_apart():
    vocab = {"araghchi", "araqchi", "arab", "arrange", "aragchi", "zelensky", "zelenskyy", "zelenska"}
    assert spelling_variants("araghchi", vocab) == ["aragchi", "araqchi"]
    assert spelling_variants("zelensky", vocab) == ["zelenska", "zelenskyy"]  # "Zelenska" is dropped later: see below
    assert spelling_variants("iran", vocab) == []  # too short to guess at
    # the word's own stem in the index is not another spelling of it
    assert spelling_variants("hurricane", {"hurrican"}) == []
    assert spelling_variants("nichols", {"nichol", "nicholl"}) == ["nicholl"]
    assert edit_distance("araghchi", "araqchi", 2) == 2 and edit_distance("kabul", "islamabad", 2) == 3


def test_araghchi_timeline_has_2018_and_2025_in_order_both_spellings_merged_and_cited(fake_rag):
    timeline = fake_rag.timeline("Araghchi")
    assert timeline.variants == {"Araghchi": ["Araqchi"]}
    years = [e.date[:4] for e in timeline.entries]
    assert years == sorted(years) and "2018" in years and "2025" in years
    texts = " ".join(e.text for e in timeline.entries)
    assert "Araqchi" in texts and "Araghchi" in texts  # both spellings found events
    last_week = next(e for e in timeline.entries if "Araqchi" in e.text)
    assert (last_week.date, last_week.precision, last_week.basis) == ("2018-12-24", "week", "stated")
    for e in timeline.entries:
        for s in e.sources:
            assert fake_rag.document(s.doc_id)["text"][s.start:s.end] == s.text  # exact span


def test_reports_of_one_event_are_one_entry_with_several_sources(fake_settings, tmp_corpus):
    for name, source, text in [
        ("wire-a", "Wire A", "Port Ellen, 2023-03-14. The Dunmore ferry company launched its new vessel, the Kelby Star, "
                             "on Tuesday at the Port Ellen yard."),
        ("wire-b", "Wire B", "The Dunmore ferry company launched its new vessel, the Kelby Star, on Tuesday at the yard in "
                             "Port Ellen, officials said."),
        ("later", "Wire C", "Months later the Dunmore ferry company sold the Kelby Star to a Norwegian operator for "
                            "twelve million pounds."),
    ]:
        date = "2023-03-15" if name != "later" else "2023-09-02"
        (tmp_corpus / f"{name}.md").write_text(f"---\ntitle: {name}\ndate: {date}\nsource: {source}\n---\n{text}\n")
    r = Rag(fake_settings)
    r.index()
    timeline = r.timeline("Dunmore ferry company")
    assert [e.date for e in timeline.entries] == ["2023-03-14", "2023-09-02"]
    launch = timeline.entries[0]
    assert {s.doc_id for s in launch.sources} == {"wire-a", "wire-b"} and launch.stated == "on Tuesday"


def test_no_event_and_filters_that_match_nothing_say_so(fake_rag, capsys):
    assert fake_rag.timeline("Zorbia").entries == []
    settings = fake_rag.settings
    code = main(["timeline", "Araghchi", "--since", "2030", "--index-dir", settings.index_dir, "--model", "fake-64",
                 "--corpus", settings.corpus[0]])
    out = capsys.readouterr().out
    assert code == 0 and "No dated event about 'Araghchi' found among the articles that pass the filters" in out


def test_timeline_json_from_the_command_line(fake_rag, capsys):
    settings = fake_rag.settings
    code = main(["timeline", "Araghchi", "--json", "--index-dir", settings.index_dir, "--model", "fake-64",
                 "--corpus", settings.corpus[0]])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["query"] == "Araghchi" and out["variants"] == {"Araghchi": ["Araqchi"]}
    first = out["entries"][0]
    assert set(first) == {"date", "precision", "basis", "stated", "text", "source", "also"}
    assert set(first["source"]) >= {"doc_id", "title", "date", "source", "url", "start", "end", "text"}


def _event(day: str, reports: int, basis: str = "article") -> TimelineEntry:
    sources = [Source(f"d{day}{i}", "t", day, "s", "", 0, 5, "text") for i in range(reports)]
    return TimelineEntry(day, "day", basis, "on Monday" if basis == "stated" else "", "text", sources[0], sources[1:])


def test_a_main_event_says_when_it_happened_unless_more_articles_report_it():
    """Precision first: an entry dated only by its article ("the jailed opposition leader ...") is
    background, a main event only when more than three articles report it."""
    t = Timeline("x", entries=[_event("2023-01-01", 3), _event("2023-02-01", 3, "stated"), _event("2023-03-01", 4),
                               _event("2023-04-01", 5, "stated"), _event("2023-05-01", 2, "stated")])
    t.keep_main()
    assert [e.date for e in t.entries] == ["2023-02-01", "2023-03-01", "2023-04-01"] and t.more == 2
    # under two events that say when: the reports decide alone, as before
    t = Timeline("x", entries=[_event("2023-01-01", 3), _event("2023-02-01", 3, "stated"), _event("2023-03-01", 1)])
    t.keep_main()
    assert [e.date for e in t.entries] == ["2023-01-01", "2023-02-01"] and t.min_sources == 3


def test_main_events_are_those_reported_by_three_articles_else_fewer():
    t = Timeline("x", entries=[_event("2023-01-01", 1), _event("2023-02-01", 4), _event("2023-03-01", 2),
                               _event("2023-04-01", 3), _event("2023-05-01", 1)])
    t.keep_main()
    assert [e.date for e in t.entries] == ["2023-02-01", "2023-04-01"] and (t.main_only, t.min_sources, t.more) == (True, 3, 3)
    assert t.summary() == "2 main events (each reported by 3+ articles) from 0 articles; 3 more reported by fewer articles"
    t.keep_most_reported(1)
    assert [e.date for e in t.entries] == ["2023-02-01"] and t.more == 4
    # fewer than two events reported by 3+ articles: those reported by 2+
    t = Timeline("x", entries=[_event("2023-01-01", 1), _event("2023-02-01", 4), _event("2023-03-01", 2)])
    t.keep_main()
    assert [e.date for e in t.entries] == ["2023-02-01", "2023-03-01"] and t.min_sources == 2
    # a small archive (no event reported twice): every event stays
    t = Timeline("x", entries=[_event("2018-12-31", 1), _event("2025-11-09", 1)])
    t.keep_main()
    assert len(t.entries) == 2 and not t.main_only and t.more == 0 and t.summary() == "2 events from 0 articles"


def test_a_subject_word_matches_itself_its_possessive_and_plural_not_longer_words():
    [name] = _subject_patterns(["nicola", "sturgeon"], {}, rarity={"nicola": 5.0, "sturgeon": 4.0}.get)
    assert name.search("Nicola Sturgeon resigned.") and name.search("Nicola's speech") and name.search("two Nicolas")
    [name] = _subject_patterns(["nicola", "sturgeon"], {}, rarity={"nicola": 3.0, "sturgeon": 4.0}.get)
    assert name.search("Sturgeon’s party") and not name.search("Nicola resigned")  # the rarer word: Sturgeon
    [name] = _subject_patterns(["hamlin"], {}, rarity=lambda w: 1.0)
    assert not name.search("Hamlinson was there") and name.search("Hamlin's recovery")


def test_a_person_named_again_by_surname_counts_in_a_passage_that_names_them_in_full():
    names = _subject_patterns(["boris", "johnson"], {}, rarity={"boris": 6.0, "johnson": 3.0}.get)
    later = _later_reference("Boris Johnson", ["boris", "johnson"], names)
    assert later is not None and later.search("Johnson's allies") and not later.search("Johnsonville")
    assert _later_reference("spy balloon", ["spy", "balloon"], names) is None  # not a name
    assert _later_reference("Queen Elizabeth II", ["queen", "elizabeth", "ii"], names).search("Elizabeth")
    text = "Boris Johnson faced his party. Johnson survived a confidence vote on Monday, winning 211 votes."
    other = "Dwayne Johnson starred in a film released on Friday to strong reviews."
    chunks = {0: Chunk("a", 0, len(text), text, 20, title="t", date="2022-06-07"),
              1: Chunk("b", 0, len(other), other, 20, title="t", date="2022-06-07")}
    said = [src.text for src, _ in _sentences(chunks, names, None, later)]
    assert said == ["Johnson survived a confidence vote on Monday, winning 211 votes."]
