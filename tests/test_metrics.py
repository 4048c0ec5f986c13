"""Metrics on tiny hand-made cases whose values are worked out by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.errors import RagError
from rag.tools.evaluate import load_questions, summarize
from rag.tools.metrics import (
    answer_recall_at_tokens,
    cited_numbers,
    contains_answer,
    first_answer_rank,
    percentile,
    token_f1,
    within_token_budget,
)


def words(text: str) -> int:
    return len(text.split())


def cut(text: str, n: int) -> str:
    return " ".join(text.split()[:n])


def test_contains_answer_is_case_insensitive():
    assert contains_answer("Talks were held in ISTANBUL.", ["Istanbul"])
    assert not contains_answer("Talks were held in Doha.", ["Istanbul", "Ankara"])
    assert not contains_answer("anything", [])


def test_first_answer_rank():
    passages = ["nothing here", "still nothing", "Iran offered to mediate", "Iran again"]
    assert first_answer_rank(passages, ["iran"]) == 3
    assert first_answer_rank(passages, ["Qatar"]) is None


def test_token_budget_cuts_the_last_passage():
    passages = ["a b c", "d e f g", "h i j"]
    assert within_token_budget(passages, 5, words, cut) == "a b c\nd e"
    # the answer "g" is the 7th word: outside a 5-word budget, inside a 7-word one
    assert not answer_recall_at_tokens(passages, ["g"], 5, words, cut)
    assert answer_recall_at_tokens(passages, ["g"], 7, words, cut)


def test_token_f1_against_best_answer():
    assert token_f1("Abbas Araghchi [1]", ["Abbas Araghchi"]) == pytest.approx(1.0)
    # prediction "the foreign minister abbas araghchi" vs gold "abbas araghchi":
    # articles dropped -> 4 predicted tokens, 2 gold, 2 shared: P=0.5 R=1 F1=2/3
    assert token_f1("the foreign minister Abbas Araghchi", ["Abbas Araghchi", "Iran"]) == pytest.approx(2 / 3)
    assert token_f1("Doha", ["Istanbul"]) == 0.0


def test_citation_markers_and_percentile():
    assert cited_numbers("A [1]. B [2][3]. C [12] D [4, 5]") == [1, 2, 3, 12, 4, 5]
    assert percentile([1, 2, 3, 4, 5], 50) == 3
    assert percentile([10.0], 95) == 10.0


def _row(qid, scored, abstained, unanswerable, metrics, docs=()):
    return {"id": qid, "scored": scored, "abstained": abstained, "unanswerable": unanswerable,
            "docs": list(docs), "latency_ms": 10.0, "metrics": metrics}


def test_summary_on_a_hand_made_case():
    m = lambda r1, r5, rr, hit, f1, tok, total, valid, **src: {  # noqa: E731
        "answer_recall@1": r1, "answer_recall@5": r5, "answer_recall@512tok": tok, "answer_recall@1024tok": tok,
        "rr": rr, "answer_hit": hit, "token_f1": f1, "citations_total": total, "citations_valid": valid, **src}
    rows = [
        _row("a", True, False, False, m(1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1, 1, **{"source_recall@1": 1.0, "source_recall@5": 1.0}), docs=["d1"]),
        _row("b", True, False, False, m(0.0, 1.0, 0.25, 0.0, 0.5, 0.0, 2, 1, **{"source_recall@1": 0.0, "source_recall@5": 1.0}), docs=["d2"]),
        _row("c", True, True, False, m(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0, 0)),
        _row("u1", False, True, True, {"citations_total": 0, "citations_valid": 0}),
        _row("u2", False, False, True, {"citations_total": 1, "citations_valid": 1}),
    ]
    s = summarize(rows, [1, 5])
    assert s["questions"] == 5 and s["answerable"] == 3
    assert s["answer_recall@1"] == pytest.approx(1 / 3, abs=1e-4)
    assert s["answer_recall@5"] == pytest.approx(2 / 3, abs=1e-4)
    assert s["mrr"] == pytest.approx((1 + 0.25 + 0) / 3, abs=1e-4)
    assert s["source_recall@1"] == 0.5 and s["source_recall@5"] == 1.0
    assert s["answer_hit"] == pytest.approx(1 / 3, abs=1e-4)
    assert s["token_f1"] == 0.5
    # abstained: c (answerable) and u1 (unanswerable) -> precision 1/2; recall over u1,u2 = 1/2
    assert s["abstention_precision"] == 0.5
    assert s["abstention_recall"] == 0.5
    assert s["false_abstention_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert "citation_validity" not in s  # extractive markers cannot point at a missing passage
    assert s["latency_ms_p50"] == 10.0
    # The same rows answered by an LLM: markers 1+2+0+0+1 = 4, valid 1+1+1 = 3
    for r in rows:
        r.update(llm="openai", answer="x", extractive_answer="y", warnings=[], ungrounded=False)
    assert summarize(rows, [1, 5])["citation_validity"] == 0.75


def test_load_questions_skips_bad_lines(tmp_path: Path):
    path = tmp_path / "q.jsonl"
    lines = [
        json.dumps({"id": "1", "question": "Who?", "answers": ["Iran"], "docs": ["d"]}),
        "{not json",
        json.dumps({"id": "2", "question": "", "answers": []}),
        json.dumps({"id": "3", "question": "When?", "answers": ["2023"], "answerable": False}),
        json.dumps({"id": "4", "question": "What?", "answers": [], "unanswerable": True}),
        json.dumps({"id": "1", "question": "Again?", "answers": ["x"]}),
    ]
    path.write_text("\n".join(lines) + "\n")
    questions, skipped = load_questions(path)
    assert [q["id"] for q in questions] == ["1", "3", "4"]
    assert [q["scored"] for q in questions] == [True, False, False]
    assert [(s.line, s.reason.split(" ")[0]) for s in skipped] == [(2, "not"), (3, "no"), (6, "duplicate")]
    with pytest.raises(RagError):
        load_questions(tmp_path / "missing.jsonl")


def test_exact_match_normalises_as_squad_does():
    from rag.tools.metrics import exact_match

    assert exact_match("Squid Game", ["“Squid Game”"])
    assert exact_match("the European Union", ["European Union"]) and exact_match("Ishaq Dar [1]", ["Ishaq Dar"])
    assert not exact_match("Ishaq", ["Ishaq Dar"]) and not exact_match("", ["x"]) and not exact_match("the", ["a"])
