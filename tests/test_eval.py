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


CONVERSATIONS = Path(__file__).resolve().parent.parent / "eval" / "conversations"


def test_the_conversation_sets_are_well_formed_and_half_is_held_out():
    tuned = {f: load_questions(CONVERSATIONS / f)[0] for f in ("shipped.jsonl", "news.jsonl")}
    held = {f: load_questions(CONVERSATIONS / f)[0] for f in ("shipped_heldout.jsonl", "news_heldout.jsonl")}
    count = lambda sets: len({q["conversation"] for qs in sets.values() for q in qs if q["conversation"]})  # noqa: E731
    assert count(tuned) + count(held) >= 40 and count(held) >= count(tuned) - 2
    for qs in [*tuned.values(), *held.values()]:
        follow = [q for q in qs if q["turn"] > 1 and not q.get("standalone_of")]
        assert follow and all(q["answers"] for q in qs)
        assert {q["id"] for q in qs if q.get("standalone_of")} <= {f"{q['id']}-standalone" for q in follow}


def test_a_conversation_is_asked_in_order_and_scored_beside_its_standalone_questions(fake_rag, tmp_path: Path):
    path = tmp_path / "conversations.jsonl"
    lines = [{"id": "c1", "turns": [
        {"question": "Who offered to mediate between Kabul and Islamabad?", "answers": ["Iran"]},
        {"question": "Whom did he call?", "answers": ["Ishaq Dar"], "standalone": "Whom did Abbas Araghchi call?"}]},
        {"id": "c2", "turns": [{"question": "Which city hosted the talks?", "answers": ["Istanbul"]},
                               {"question": "Who hosted them?", "answers": ["Turkey"]}]},
        {"id": "bad", "turns": [{"answers": ["x"]}]}]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    questions, skipped = load_questions(path)
    assert [s.line for s in skipped] == [3] and "no \"question\"" in skipped[0].reason
    assert [q["id"] for q in questions] == ["c1#1", "c1#2", "c1#2-standalone", "c2#1", "c2#2"]
    out = tmp_path / "run"
    summary, rows = evaluate(fake_rag, questions, [1, 3], out)
    by_id = {r["id"]: r for r in rows}
    # the follow-up was read with the turn before it; its standalone twin was asked alone
    assert by_id["c1#2"]["standalone_question"] != "Whom did he call?"
    assert by_id["c1#2-standalone"]["standalone_question"] == "Whom did Abbas Araghchi call?"
    follow = summary["follow_ups"]
    assert follow["questions"] == 2 and follow["standalone_questions"] == 1
    assert summary["questions"] == 4  # the standalone twin is not counted twice
    # an interrupted conversation is asked again whole: its later turn needs the earlier one
    lines = (out / "results.jsonl").read_text().splitlines()
    (out / "results.jsonl").write_text("\n".join(lines[:4]) + "\n")
    answered = []
    evaluate(fake_rag, questions, [1, 3], out, progress=lambda done, total: answered.append(done))
    assert answered == [4, 5]  # c2#1 and c2#2, not only c2#2
