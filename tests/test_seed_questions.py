"""The seed evaluation set, and retrieval quality on it with the real model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.config import DEFAULT_CORPUS

SEED = Path(__file__).resolve().parent.parent / "eval" / "seed_questions.jsonl"
MIN_TOP1 = 0.97


def load_seed() -> list[dict]:
    return [json.loads(line) for line in SEED.read_text(encoding="utf-8").splitlines() if line.strip()]


def well_posed(rows: list[dict]) -> list[dict]:
    return [r for r in rows if not r["unanswerable"] and not r.get("multi")]


def test_seed_questions_file_is_well_formed():
    rows = load_seed()
    assert len(rows) >= 40
    ids = [r["id"] for r in rows]
    assert len(set(ids)) == len(ids)
    corpus_ids = {p.stem for p in DEFAULT_CORPUS.glob("*.txt")}
    for r in rows:
        assert {"id", "question", "answers", "docs", "unanswerable"} <= set(r), r["id"]
        assert isinstance(r["question"], str) and r["question"].strip()
        assert isinstance(r["unanswerable"], bool)
        if r["unanswerable"]:
            assert r["answers"] == [] and r["docs"] == []
        else:
            assert r["answers"] and set(r["docs"]) <= corpus_ids, r["id"]
            texts = [(DEFAULT_CORPUS / f"{d}.txt").read_text(encoding="utf-8").lower() for d in r["docs"]]
            # Every answer string is in one of the article(s) the question is about.
            assert any(a.lower() in t for a in r["answers"] for t in texts), r["id"]
    assert len(well_posed(rows)) >= 30
    assert sum(r["unanswerable"] for r in rows) >= 5


@pytest.mark.slow
@pytest.mark.xfail(
    reason="BELOW TARGET: the passage shown first ([1]) holds the answer for 33/37 (0.89) well-posed seed "
    "questions with int8 vectors, 34/37 with float ones (docs/key_figures.md); the target is 0.97. The misses have the answer in another chunk.",
    strict=True,
)
def test_top_passage_contains_the_answer(real_rag):
    questions = well_posed(load_seed())
    misses = []
    for r in questions:
        top = real_rag.ask(r["question"]).citations[0]  # the passage shown first, [1]
        if not any(a.lower() in top.text.lower() for a in r["answers"]):
            misses.append(f"{r['id']} {r['question']!r} -> {top.doc_id}")
    share = 1 - len(misses) / len(questions)
    assert share >= MIN_TOP1, (
        f"top-1 {share:.2f} ({len(questions) - len(misses)}/{len(questions)}); misses:\n" + "\n".join(misses)
    )
