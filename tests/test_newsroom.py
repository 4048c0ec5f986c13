"""A new user's own archive (tests/data/newsroom: 16 short articles about a town's mayoral
election, an airline, a bridge, a storm and a marathon), asked as they would ask it, on the real models.

Each test is a case that failed before the reader was put under follow-ups, "when" questions
and timelines: follow-ups that answered "Not found", "when" questions that listed the dates of
other events as values the sources disagree on, and a future-tense date placed in the past.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import rag
from rag.answer.followup import Conversation

NEWSROOM = Path(__file__).resolve().parent / "data" / "newsroom"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def newsroom(tmp_path_factory: pytest.TempPathFactory, real_rag: rag.Rag) -> rag.Rag:
    """The newsroom archive indexed with the bundled model (``real_rag`` loads it once)."""
    settings = real_rag.settings.with_(corpus=(str(NEWSROOM),), index_dir=str(tmp_path_factory.mktemp("newsroom")))
    r = rag.Rag(settings)
    r._embedder = real_rag.embedder
    assert r.index().documents == 16
    return r


def test_follow_ups_are_read_as_standalone_questions_and_answered(newsroom: rag.Rag):
    conversation = Conversation()
    first = newsroom.ask("Who won the Marlow mayoral election?", conversation=conversation)
    assert "Teresa Okafor won" in first.answer
    # "she" is the winner the passages call "she", whatever the short answer says
    defeated = newsroom.ask("Whom did she defeat?", conversation=conversation)
    assert defeated.standalone_question == "Whom did Teresa Okafor defeat?"
    assert not defeated.abstained and "Gregory Finch" in defeated.answer  # said the turn before: said again
    office = newsroom.ask("When will she take office?", conversation=conversation)
    assert office.standalone_question == "When will Teresa Okafor take office?"
    assert "January 1" in office.answer.split(". ")[0] and not office.conflicts
    bought = newsroom.ask("Which startup did her company buy?", conversation=conversation)
    assert bought.standalone_question == "Which startup did Teresa Okafor's company buy?"
    assert not bought.abstained and "Brightmesh" in bought.answer
    assert bought.to_dict()["standalone_question"] == bought.standalone_question


def test_when_questions_list_no_dates_of_other_events(newsroom: rag.Rag):
    flying = newsroom.ask("When will Northwind Airlines start flying to Reykjavik?")
    assert "May 4, 2023" in flying.answer and flying.conflicts == []
    # unanswerable: the articles tell of the airline's profit, not of a bankruptcy
    bankrupt = newsroom.ask("When did Northwind Airlines go bankrupt?")
    assert bankrupt.conflicts == []
    # the closure date is another event's, not an earlier value of the reopening's
    bridge = newsroom.ask("When did the Linden Harbor Bridge reopen?")
    assert "reopened" in bridge.answer.split("[1]")[0] and bridge.conflicts == []


def test_a_death_toll_that_rose_is_still_an_update(newsroom: rag.Rag):
    answer = newsroom.ask("How many people died in Storm Rowan?")
    assert [c.kind for c in answer.conflicts] == ["update"]
    assert [v.value for v in answer.conflicts[0].values] == ["seven", "four"]


def test_a_future_tense_date_is_after_its_article(newsroom: rag.Rag):
    timeline = newsroom.timeline("Teresa Okafor", all_events=True)
    dated = {e.text.split(",")[0]: e.date for e in timeline.entries}
    assert dated["Okafor will take office on January 1"] == "2023-01-01"
    entries = [e.text for e in timeline.entries]
    won = next(i for i, t in enumerate(entries) if t.startswith("Teresa Okafor won"))
    assert won < entries.index(next(t for t in entries if t.startswith("Okafor will take office")))



@pytest.mark.xfail(strict=True, reason="the reader reads the two dates at 0.24 and 0.30, under the 0.4 a date needs "
                                       "(chosen on the tuned when-questions, where lower thresholds listed the dates "
                                       "of other events: docs/timelines.md)")
def test_a_postponed_event_gives_its_dates_as_an_update(newsroom: rag.Rag):
    answer = newsroom.ask("When will the Marlow Marathon take place?")
    assert [c.kind for c in answer.conflicts] == ["update"]
    assert [v.value[:10] for v in answer.conflicts[0].values] == ["2023-04-30", "2023-04-16"]
