"""The eval command's library path: same answers as ask, files written, resumable."""

from __future__ import annotations

import json
from pathlib import Path

from rag.tools.evaluate import evaluate, load_questions

SEED_QUESTIONS = Path(__file__).resolve().parent.parent / "eval" / "seed_questions.jsonl"


def test_seed_question_file_is_well_formed():
    questions, skipped = load_questions(SEED_QUESTIONS)
    assert not skipped
    assert len(questions) >= 30
    assert sum(q["unanswerable"] for q in questions) >= 3
    assert sum(len(q["docs"]) >= 2 for q in questions) >= 3


def test_evaluate_writes_results_and_resumes(fake_rag, tmp_path: Path):
    questions, _ = load_questions(SEED_QUESTIONS)
    questions = questions[:6]
    out = tmp_path / "run"
    summary, rows = evaluate(fake_rag, questions, [1, 3, 5], out)
    assert (out / "results.jsonl").exists() and (out / "summary.json").exists() and (out / "summary.md").exists()
    saved = json.loads((out / "summary.json").read_text())
    assert saved["questions"] == 6 and saved["primary"] == "answer_recall@1024tok"
    for key in ("answer_recall@1", "answer_recall@5", "answer_recall@1024tok", "mrr"):
        assert key in saved
    assert "citation_validity" not in saved  # reported for LLM answers only
    # each row's answer is what ask gives for the same question
    first = rows[0]
    assert first["answer"] == fake_rag.ask(questions[0]["question"]).answer
    # simulate an interruption: keep 3 finished lines plus a torn one, then resume
    lines = (out / "results.jsonl").read_text().splitlines()
    (out / "results.jsonl").write_text("\n".join(lines[:3]) + "\n" + lines[3][:20])
    answered = []
    evaluate(fake_rag, questions, [1, 3, 5], out, progress=lambda done, total: answered.append(done))
    assert answered == [4, 5, 6]  # only the three missing questions were answered again
    assert len((out / "results.jsonl").read_text().splitlines()) == 6
