"""Questions about "now" favour articles dated near the day they are asked (fake embedder)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rag import QuestionError, Rag, Settings
from rag.text.dates import day_number, recency_bonus, time_sensitive
from rag.tools.evaluate import load_questions
from rag.tuning import RECENCY_WEIGHT

FLOODS = [
    {"id": "flood-2020", "title": "River bursts its banks", "date": "2020-03-02",
     "text": "The river Ashbourne flooded the market town of Kelby after three days of rain, officials said. "
             "Volunteers filled sandbags along the high street while the water kept rising overnight."},
    {"id": "flood-2023", "title": "Floods return", "date": "2023-06-12",
     "text": "The river Ashbourne flooded the village of Dunmore after a summer storm, the mayor said. "
             "Farmers moved cattle to higher ground as the fields behind the church went under water."},
]
NOW_QUESTION = "Which place did the river Ashbourne flood this week?"
PLAIN_QUESTION = "Which place did the river Ashbourne flood?"


@pytest.mark.parametrize("question", [
    "Which team won the final this week?", "Who recently resigned?", "What is the latest figure?",
    "Which country declared an emergency on Monday?", "What happened last month in Kabul?",
    "Who is currently leading the talks?",
])
def test_questions_about_now_are_time_sensitive(question):
    assert time_sensitive(question)


@pytest.mark.parametrize("question", [
    "Who offered to mediate between Kabul and Islamabad?", "What did the 2018 talks achieve?",
    "Which newspaper reported the meeting?", "How many troops remained?",
])
def test_other_questions_are_not(question):
    assert not time_sensitive(question)


def test_recency_bonus_peaks_on_the_reference_day_and_decays_faster_after_it():
    ref = day_number("2023-06-12")
    days = np.array([ref, ref - 14, ref + 14, ref - 365, 0], dtype=np.int32)
    bonus = recency_bonus(days, ref)
    assert bonus[0] == pytest.approx(RECENCY_WEIGHT)
    assert bonus[0] > bonus[1] > bonus[2] > bonus[3] > 0  # later than asked decays faster than earlier
    assert bonus[1] == pytest.approx(RECENCY_WEIGHT / np.e, rel=1e-4)
    assert bonus[4] == 0.0  # undated articles get no bonus


def test_day_number_reads_iso_dates_and_gives_0_otherwise():
    assert day_number("2023-06-12") - day_number("2023-06-02") == 10
    assert day_number("2023-06-12T08:00:00Z") == day_number("2023-06-12")
    assert day_number("") == day_number("yesterday") == 0


@pytest.fixture
def flood_rag(tmp_path: Path) -> Rag:
    corpus = tmp_path / "floods.jsonl"
    corpus.write_text("".join(json.dumps(a) + "\n" for a in FLOODS))
    r = Rag(Settings.from_env(corpus=(str(corpus),), index_dir=str(tmp_path / "idx"), model="fake-test-model"))
    r.index()
    return r


def _first(answer) -> str:
    return answer.citations[0].doc_id


def test_the_day_asked_decides_which_article_comes_first(flood_rag):
    early = flood_rag.ask(NOW_QUESTION, reference_day="2020-03-05")
    late = flood_rag.ask(NOW_QUESTION, reference_day="2023-06-14")
    assert (_first(early), early.reference_day) == ("flood-2020", "2020-03-05")
    assert (_first(late), late.reference_day) == ("flood-2023", "2023-06-14")
    scores = {c.doc_id: c.score for c in early.citations}
    assert scores["flood-2020"] - scores["flood-2023"] > 0.2  # the bonus, not a tie-break


def test_without_a_day_the_newest_article_is_now(flood_rag):
    answer = flood_rag.ask(NOW_QUESTION)
    assert (_first(answer), answer.reference_day) == ("flood-2023", "2023-06-12")
    assert answer.to_dict()["reference_day"] == "2023-06-12"


def test_a_question_not_about_now_is_ranked_without_dates(flood_rag):
    ranked = [flood_rag.ask(PLAIN_QUESTION, reference_day=day) for day in ("2020-03-05", "2023-06-14", "")]
    assert all(a.reference_day == "" for a in ranked)
    assert len({tuple((c.doc_id, c.score) for c in a.citations) for a in ranked}) == 1
    assert "reference_day" not in ranked[0].to_dict()


def test_search_takes_the_day_too(flood_rag):
    assert flood_rag.search(NOW_QUESTION, k=1, reference_day="2020-03-01")[0].chunk.doc_id == "flood-2020"
    assert flood_rag.search(NOW_QUESTION, k=1, reference_day="2023-06-01")[0].chunk.doc_id == "flood-2023"


def test_a_bad_day_is_a_clear_error(flood_rag):
    with pytest.raises(QuestionError, match="YYYY-MM-DD"):
        flood_rag.ask(NOW_QUESTION, reference_day="last tuesday")


def test_eval_takes_each_questions_date_as_the_day_asked(tmp_path: Path):
    path = tmp_path / "q.jsonl"
    rows = [{"id": "a", "question": NOW_QUESTION, "answers": ["Dunmore"], "date": "2023/06/14"},
            {"id": "b", "question": NOW_QUESTION, "answers": ["Kelby"]},
            {"id": "c", "question": NOW_QUESTION, "answers": ["Kelby"], "date": "soon"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    questions, skipped = load_questions(path)
    assert [(q["id"], q["asked_on"]) for q in questions] == [("a", "2023-06-14"), ("b", "")]
    assert len(skipped) == 1 and skipped[0].line == 3 and "soon" in skipped[0].reason
    questions, skipped = load_questions(path, use_dates=False)
    assert [q["asked_on"] for q in questions] == ["", "", ""] and not skipped
