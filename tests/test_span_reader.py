"""The span reader: its decoding and the answer built from it (a tiny fixed reader whose logits
point where a test says), then the shipped model over the shipped articles."""

from __future__ import annotations

import re

import numpy as np
import pytest

from rag.answer.extract import NOT_FOUND
from rag.answer.reader import SpanReader, _word_bounds
from rag.answer.spans import read_spans
from rag.tools.train_span import base_model_dir
from rag.types import Chunk, Hit


class FixedReader(SpanReader):
    """Real tokenizer and decoding; logits set by hand: ``strength`` on the start and end of each
    word in ``targets`` (word -> strength), ``null`` on [CLS], 0 elsewhere."""

    def __init__(self, targets: dict[str, float], null: float = 1.0, threshold: float = 0.5,
                 abstain: float = 0.2) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(base_model_dir() / "tokenizer.json"))
        self.tokenizer.enable_truncation(192, stride=48, strategy="only_second")
        self.calibration = {"a": 1.0, "b": 0.0}
        self.threshold, self.abstain, self.depth, self.rank_weight = threshold, abstain, 10, 0.0
        self.targets, self.null = targets, null

    def logits(self, question, passages):
        windows = self._windows(question, passages)
        n = max(len(w.ids) for _, w in windows)
        start = np.zeros((len(windows), n), dtype=np.float32)
        end = np.zeros_like(start)
        for r, (p, w) in enumerate(windows):
            start[r, 0] = end[r, 0] = self.null
            for j, (seq, (a, b)) in enumerate(zip(w.sequence_ids, w.offsets)):
                strength = self.targets.get(passages[p][a:b]) if seq == 1 else None
                if strength is not None:
                    start[r, j] = end[r, j] = strength
        return windows, start, end


def _hits(*texts: str) -> list[Hit]:
    return [Hit(i, Chunk(f"doc{i}", 100, 100 + len(t), t, len(t.split()), title=f"Title {i}"), 1.0 / (i + 1))
            for i, t in enumerate(texts)]


PASSAGES = ("Talks between the two sides resumed in Doha on Monday. Qatar hosted them.",
            "Officials said on Tuesday that Iran offered to mediate between Kabul and Islamabad. Tehran confirmed it.")


def test_the_most_probable_span_is_the_answer_and_its_passage_is_cited_first():
    reader = FixedReader({"Iran": 4.0, "Qatar": 2.0})
    spans = reader.read("Who offered to mediate?", list(PASSAGES))
    assert [(s.text, s.passage) for s in spans[:2]] == [("Iran", 1), ("Qatar", 0)]
    assert spans[0].margin == pytest.approx(8.0 - 2.0) and spans[0].probability > spans[1].probability
    reading = read_spans("Who offered to mediate?", "Who offered to mediate?", _hits(*PASSAGES), 2, reader)
    assert not reading.abstained
    assert reading.short is not None and reading.short.text == "Iran" and reading.short.n == 1
    assert reading.ranked[0].chunk.doc_id == "doc1"  # the answer's passage is [1]
    assert reading.short.doc_id == "doc1" and reading.short.start == 100 + PASSAGES[1].index("Iran")
    first = reading.evidence[0]
    assert first.n == 1 and PASSAGES[1][first.start - 100:first.end - 100].startswith("Officials said on Tuesday")
    assert reading.text.startswith("Officials said on Tuesday that Iran offered") and "[1]" in reading.text


def test_a_reversed_decision_would_name_the_weaker_span():
    """The same passages with the strengths swapped: the answer follows the logits, not the order."""
    reader = FixedReader({"Iran": 2.0, "Qatar": 4.0})
    question = "Who hosted the talks or offered to mediate?"
    reading = read_spans(question, question, _hits(*PASSAGES), 2, reader)
    assert reading.short.text == "Qatar" and reading.ranked[0].chunk.doc_id == "doc0"


def test_a_passage_sharing_no_word_with_the_question_is_not_read():
    reader = FixedReader({"Iran": 4.0, "Qatar": 3.0})
    reading = read_spans("Who hosted the talks?", "Who hosted the talks?", _hits(*PASSAGES), 2, reader)
    assert reading.short.text == "Qatar"  # "Iran" scores higher, but its passage says nothing of talks hosted
    reading = read_spans("zzzz qqqq xxxx?", "zzzz qqqq xxxx?", _hits(*PASSAGES), 2, reader)
    assert reading.abstained


def test_no_span_above_no_answer_abstains():
    reader = FixedReader({"Iran": 0.2}, null=3.0)  # margin 0.4 - 6 = -5.6 -> probability 0.004
    reading = read_spans("Who offered to mediate?", "Who offered to mediate?", _hits(*PASSAGES), 2, reader)
    assert reading.abstained and reading.text == NOT_FOUND and reading.short is None and reading.evidence == []


def test_a_likely_sentence_with_an_unsure_span_gives_the_sentence_only():
    reader = FixedReader({"Iran": 1.5}, null=1.0, threshold=0.9, abstain=0.2)  # margin 1.0 -> 0.73
    reading = read_spans("Who offered to mediate?", "Who offered to mediate?", _hits(*PASSAGES), 2, reader)
    assert not reading.abstained and reading.short is None and "Iran offered" in reading.text


def test_why_and_how_questions_get_no_short_answer():
    reader = FixedReader({"Iran": 4.0})
    reading = read_spans("Why did Iran offer to mediate?", "Why did Iran offer to mediate?", _hits(*PASSAGES), 2, reader)
    assert not reading.abstained and reading.short is None


def test_spans_are_whole_words_without_punctuation():
    text = 'He said "Araghchi," then left for the U.S. on Monday.'
    s = text.index("ragh")
    assert text.__getitem__(slice(*_word_bounds(text, s, s + 4))) == "Araghchi"
    u = text.index("U.S")
    assert text.__getitem__(slice(*_word_bounds(text, u, u + 3))) == "U.S."
    number = "around 7,000 troops, 3.5 percent"
    z = number.index("000")
    assert number.__getitem__(slice(*_word_bounds(number, z, z + 3))) == "7,000"
    assert number.__getitem__(slice(*_word_bounds(number, number.index("5 p"), number.index("5 p") + 1))) == "3.5"


# ---------------------------------------------------------------- the shipped reader


def test_the_shipped_reader_has_its_card_and_calibration():
    from rag.answer.reader import DEFAULT_DIR

    reader = SpanReader(DEFAULT_DIR)
    assert 0.0 < reader.abstain < reader.threshold < 1.0
    card = (DEFAULT_DIR / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "python -m rag.tools.train_span all" in card and "2025" in card
    spans = reader.read("Who offered to mediate between Kabul and Islamabad?",
                        ["Iran offered on Sunday to mediate between Kabul and Islamabad, its foreign ministry said."])
    assert spans and spans[0].text in ("Iran", "Iran offered") and spans[0].probability > reader.abstain


ZH_ARTICLE = ("南方港务局周一宣布，将投资七亿三千万美元扩建南部深水港。扩建工程包括两座新码头和一条防波堤，"
              "预计明年春天开工。港务局局长李明说，扩建完成后港口年吞吐量将增加一倍。")


@pytest.mark.slow
def test_a_chinese_question_is_answered_from_the_chinese_article(tmp_path):
    """The shipped articles plus one Chinese article, the real embedding model and reader:
    search ranks the Chinese article first, and ask answers from it, cited [1]."""
    import shutil

    from rag import Rag
    from rag.config import DEFAULT_CORPUS

    corpus = tmp_path / "corpus"
    shutil.copytree(DEFAULT_CORPUS, corpus)
    (corpus / "zh_port.txt").write_text(ZH_ARTICLE + "\n", encoding="utf-8")
    r = Rag(corpus=(str(corpus),), index_dir=str(tmp_path / "idx"))
    r.index()
    question = "谁宣布投资扩建深水港？"
    assert r.search(question, k=1)[0].chunk.doc_id == "zh_port"
    answer = r.ask(question)
    assert not answer.abstained, answer.answer
    assert answer.citations[0].doc_id == "zh_port"
    assert re.search(r"[\u4e00-\u9fff]", answer.answer) and "[1]" in answer.answer


@pytest.mark.slow
def test_asking_does_not_load_spacy(real_rag):
    """The query path is the embedding model, the index and the reader's ONNX graph: no spaCy."""
    import subprocess
    import sys

    code = ("import sys; from rag import Rag; "
            f"r = Rag(index_dir={str(real_rag.settings.index_path)!r}); "
            "a = r.ask('How many US troops were in Afghanistan?'); "
            "print(a.short_answer is not None, 'spacy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "False"], out.stdout


def test_the_short_answer_joins_the_sentence_scorer_s_answer():
    """The scorer's reading keeps its passages and sentences; the reader's short answer comes first
    with its own sentence, cited by the passage's number in the scorer's order."""
    from rag.answer.extract import Reading
    from rag.answer.spans import with_short_answer
    from rag.types import Evidence

    hits = _hits(*PASSAGES)
    scorer_first = PASSAGES[0].index("Qatar hosted them.")
    hand = Reading(hits, "Qatar hosted them. [1]", [Evidence(1, "doc0", 100 + scorer_first, 100 + len(PASSAGES[0]))],
                   0.8, False, shown=2)
    spans = read_spans("Who offered to mediate?", "Who offered to mediate?", hits, 2, FixedReader({"Iran": 4.0}))
    merged = with_short_answer(hand, spans)
    assert merged.short.text == "Iran" and merged.short.n == 2  # doc1 is [2] in the scorer's order
    assert merged.text.startswith("Officials said on Tuesday that Iran offered") and merged.text.endswith(
        "Qatar hosted them. [1]")
    assert [e.n for e in merged.evidence] == [2, 1] and merged.ranked == hits


def test_no_short_answer_from_a_passage_the_scorer_does_not_show():
    from rag.answer.extract import Reading
    from rag.answer.spans import with_short_answer

    hits = _hits(*PASSAGES)
    hand = Reading(hits, "Qatar hosted them. [1]", [], 0.8, False, shown=1)  # only [1] is shown
    spans = read_spans("Who offered to mediate?", "Who offered to mediate?", hits, 2, FixedReader({"Iran": 4.0}))
    assert with_short_answer(hand, spans).short is None


@pytest.mark.slow
def test_the_readme_example_is_what_ask_prints(real_rag, run_cli):
    """The README's first example, up to its sources, is the real output of `rag ask` on the shipped articles."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    block = readme.split("```\n$ python -m rag ask ", 1)[1].split("```", 1)[0]
    command, shown = block.split("\n", 1)
    question = command.strip().strip('"')
    out = run_cli("ask", question, "--index-dir", str(real_rag.settings.index_path))
    assert out.returncode == 0, out.stderr
    expected = shown.split("\nSources:", 1)[0].strip()
    assert out.stdout.split("\nSources:", 1)[0].strip() == expected
    assert out.stdout.startswith("Answer: ")


@pytest.mark.slow
def test_the_recipe_trains_resumes_and_exports_a_reader_that_loads(tmp_path, capsys):
    """Two steps on four examples, a resumed third, the int8 export: the files the query path reads."""
    import json

    from rag.tools import train_span

    examples = tmp_path / "examples.jsonl"
    context = "Officials said on Tuesday that Iran offered to mediate between Kabul and Islamabad."
    rows = [{"qid": f"q{i}", "question": "Who offered to mediate?", "split": "train", "kind": kind,
             "context": context if kind == "pos" else "The weather in Doha was hot on Monday.",
             "start": context.index("Iran") if kind == "pos" else -1,
             "end": context.index("Iran") + 4 if kind == "pos" else -1}
            for i, kind in enumerate(["pos", "neg", "pos", "neg"])]
    examples.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    run, out = tmp_path / "run", tmp_path / "model"
    common = ["--run", str(run), "--examples", str(examples), "--out", str(out), "--batch", "2", "--synthetic", "0",
              "--save-every", "1", "--threads", "1"]
    train_span.main(["train", "--steps", "2", *common])
    assert (run / "checkpoint.pt").exists() and (run / "final.pt").exists()
    (run / "final.pt").unlink()
    capsys.readouterr()
    train_span.main(["train", "--steps", "3", *common])
    assert "resumed at step 2" in capsys.readouterr().err
    train_span.main(["export", *common])
    reader = SpanReader(out)
    spans = reader.read("Who offered to mediate?", [context])
    assert spans and all(context[s.start:s.end] == s.text for s in spans)
