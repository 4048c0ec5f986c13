"""``python -m rag`` as a user runs it: a subprocess, the real bundled model, one shared index."""

from __future__ import annotations

import json
import re

import pytest

from rag.config import DEFAULT_CORPUS

QUESTION = "Who offered to mediate between Kabul and Islamabad?"
CITATION_KEYS = {"n", "doc_id", "title", "date", "source", "start", "end", "text", "score"}


def squash(text: str) -> str:
    return " ".join(text.split())


def assert_one_line_error(proc, *needles: str, alone: bool = True) -> None:
    """Exit 1 with one ``Error: ...`` line and no traceback (``alone``: nothing else on stderr)."""
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    if alone:
        assert proc.stderr.startswith("Error:") and len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in errors[0]


@pytest.fixture(scope="module")
def index_dir(real_rag) -> str:
    """The session's real index of the shipped corpus, which the CLI finds current and reuses."""
    return str(real_rag.settings.index_path)


# ---------------------------------------------------------------- ask


@pytest.mark.slow
def test_ask_prints_an_answer_naming_iran_with_its_source(run_cli, index_dir):
    proc = run_cli("ask", QUESTION, "--index-dir", index_dir)
    assert proc.returncode == 0, proc.stderr
    answer, _, sources = proc.stdout.partition("\nSources:\n")
    assert "Iran" in answer and "Araghchi" in answer
    assert re.search(r"\[1\]", answer)
    assert "004_f1ed5df54c6c908a" in sources
    assert sources.startswith("[1] Iran Offers to Mediate Between Kabul and Islamabad")
    assert "Indexing" not in proc.stderr  # the index was current: not rebuilt


@pytest.mark.slow
def test_ask_json_prints_one_object_whose_citations_are_exact_spans(run_cli, index_dir):
    proc = run_cli("ask", QUESTION, "--json", "-k", "3", "--index-dir", index_dir)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)  # one JSON object and nothing else on stdout
    assert set(out) - {"short_answer"} == {"question", "answer", "abstained", "citations", "evidence", "timings_ms"}
    assert out["question"] == QUESTION and out["abstained"] is False
    text = (DEFAULT_CORPUS / "004_f1ed5df54c6c908a.txt").read_text(encoding="utf-8")
    quoted = [text[e["start"]:e["end"]] for e in out["evidence"]]
    assert quoted and all(q in out["answer"] for q in quoted)  # each evidence span is a quoted sentence
    assert "Iran" in out["answer"] and "Araghchi" in out["answer"]
    assert [c["n"] for c in out["citations"]] == [1, 2, 3]
    assert out["citations"][0]["doc_id"] == "004_f1ed5df54c6c908a"
    for c in out["citations"]:
        assert set(c) >= CITATION_KEYS
        text = (DEFAULT_CORPUS / f"{c['doc_id']}.txt").read_text(encoding="utf-8")
        assert text[c["start"] : c["end"]] == c["text"]
    for n in map(int, re.findall(r"\[(\d+)\]", out["answer"])):
        assert 1 <= n <= 3
    assert set(out["timings_ms"]) == {"retrieve", "answer", "total"}


@pytest.mark.slow
def test_ask_dash_reads_the_question_from_stdin(run_cli, index_dir):
    proc = run_cli("ask", "-", "--json", "--index-dir", index_dir, stdin=QUESTION + "\n")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["question"] == QUESTION
    assert "Araghchi" in out["answer"]


@pytest.mark.slow
def test_ask_filters_by_date_and_source(run_cli, index_dir):
    proc = run_cli(
        "ask",
        "Who met the Taliban?",
        "--json",
        "--since",
        "2019/01/01",
        "--until",
        "2019-12-31",
        "--source",
        "jazeera",
        "--index-dir",
        index_dir,
    )
    assert proc.returncode == 0, proc.stderr
    citations = json.loads(proc.stdout)["citations"]
    assert citations and {c["doc_id"] for c in citations} == {"003_f068c07213cd58e5"}


@pytest.mark.slow
def test_stats_json(run_cli, index_dir):
    proc = run_cli("stats", "--json", "--index-dir", index_dir)
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout)
    assert stats["indexed"] is True and stats["documents"] == 5
    assert stats["model"] == "all-MiniLM-L6-v2" and stats["dimension"] == 384
    assert stats["date_range"] == ["2018-12-31", "2025-11-09"]
    assert stats["corpus"] == [str(DEFAULT_CORPUS.resolve())]


@pytest.mark.slow
def test_stats_text(run_cli, index_dir):
    proc = run_cli("stats", "--index-dir", index_dir)
    assert proc.returncode == 0 and "documents: 5" in proc.stdout


@pytest.mark.slow
def test_chat_follow_up_uses_the_previous_question(run_cli, index_dir):
    proc = run_cli("chat", "--index-dir", index_dir, stdin=f"{QUESTION}\nwhich Pakistani minister did he speak with by phone?\n")
    assert proc.returncode == 0, proc.stderr
    blocks = proc.stdout.strip().split("\n\n")  # answer, sources, answer, how it was read, sources
    assert len(blocks) == 5, proc.stdout
    first, second, read_as = squash(blocks[0]), squash(blocks[2]), squash(blocks[3])
    assert "Araghchi" in first
    assert "Ishaq Dar" in second
    assert read_as == "(Read as: which Pakistani minister did Abbas Araghchi speak with by phone?)"


@pytest.mark.slow
def test_chat_reads_questions_until_end_of_input(run_cli, index_dir):
    proc = run_cli("chat", "--index-dir", index_dir, stdin=f"{QUESTION}\n\n/new\n")
    assert proc.returncode == 0, proc.stderr
    assert "Araghchi" in proc.stdout and "(new conversation)" in proc.stdout


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(("args", "stdin"), [(["ask", ""], None), (["ask", "   "], None), (["ask", "-"], "\n  \n")])
def test_empty_question_is_a_one_line_error(run_cli, tmp_path, args, stdin):
    proc = run_cli(*args, "--index-dir", str(tmp_path / "idx"), stdin=stdin)
    assert_one_line_error(proc, "empty")
    assert not (tmp_path / "idx").exists()  # refused before any indexing


def test_missing_corpus_path_is_a_one_line_error(run_cli, tmp_path):
    missing = tmp_path / "no-such-folder"
    proc = run_cli("ask", QUESTION, "--corpus", str(missing), "--index-dir", str(tmp_path / "idx"))
    assert_one_line_error(proc, str(missing), "not found")  # alone: said before anything is indexed or loaded
    proc = run_cli("index", str(missing), "--index-dir", str(tmp_path / "idx"))
    assert_one_line_error(proc, str(missing), "not found")


def test_unknown_model_is_a_one_line_error(run_cli, tmp_path):
    proc = run_cli("ask", QUESTION, "--model", "no-such-model", "--index-dir", str(tmp_path / "idx"))
    assert_one_line_error(proc, "no-such-model", "never downloaded", alone=False)


def test_bad_date_is_a_one_line_error(run_cli, tmp_path):
    proc = run_cli("ask", QUESTION, "--since", "last tuesday", "--index-dir", str(tmp_path / "idx"))
    assert_one_line_error(proc, "--since", "YYYY-MM-DD")
    proc = run_cli("ask", QUESTION, "--reference-day", "soon", "--index-dir", str(tmp_path / "idx"))
    assert_one_line_error(proc, "--reference-day", "not a date", "YYYY-MM-DD")


@pytest.mark.parametrize("args", [["ask", QUESTION, "--bogus"], ["frobnicate"], [], ["ask"], ["ask", "q", "-k", "x"]])
def test_usage_errors_exit_2(run_cli, args):
    proc = run_cli(*args)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "usage:" in proc.stderr and "Traceback" not in proc.stderr


def test_help_lists_the_commands(run_cli):
    proc = run_cli("--help")
    assert proc.returncode == 0
    for command in ("index", "ask", "chat", "stats"):
        assert command in proc.stdout


def test_stats_without_an_index(run_cli, tmp_path):
    proc = run_cli("stats", "--index-dir", str(tmp_path / "idx"))
    assert proc.returncode == 0 and "No index yet" in proc.stdout


def test_stats_without_an_index_or_a_corpus_advises_what_works(run_cli, tmp_path):
    """Advising 'python -m rag index' when the corpus path does not exist sends a new user to a
    command that fails the same way: stats names the missing path and says to point --corpus at it."""
    missing = tmp_path / "nonexistent"
    proc = run_cli("stats", "--corpus", str(missing), "--index-dir", str(tmp_path / "idx"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "No index yet" in proc.stdout and str(missing) in proc.stdout and "not found" in proc.stdout
    assert "--corpus" in proc.stdout and "run 'python -m rag index'." not in proc.stdout


# ---------------------------------------------------------------- index


@pytest.mark.slow
def test_index_warns_about_a_bad_file_and_indexes_the_rest(run_cli, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "good.txt").write_text("The harbour of Port Ellen reopened on Tuesday after the storm.\n")
    (corpus / "second.md").write_text("---\ntitle: Ferries\ndate: 2023/01/05\n---\nFerry services resumed.\n")
    legacy = corpus / "menu.txt"
    legacy.write_bytes("Menu\nThe café served “hot” chocolate all week.\n".encode("cp1252"))
    bad = corpus / "photo.txt"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01")
    empty = corpus / "empty.txt"
    empty.write_bytes(b"")
    index_dir = tmp_path / "idx"

    proc = run_cli("index", "--corpus", str(corpus), "--index-dir", str(index_dir))

    assert proc.returncode == 0, proc.stderr
    assert f"warning: {legacy}: not UTF-8; read as cp1252" in proc.stderr  # decoded and kept
    assert f"warning: skipped {bad}: binary file" in proc.stderr
    assert f"warning: skipped {empty}: empty file" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "3 documents" in proc.stdout and "2 inputs skipped" in proc.stdout and re.search(r"\b1 warning\b(?!s)", proc.stdout)
    assert (index_dir / "CURRENT").is_file()

    again = run_cli("index", "--corpus", str(corpus), "--index-dir", str(index_dir), "--json")
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["changed"] is False and report["embedded"] == 0 and report["documents"] == 3
    assert {(s["path"], s["line"]) for s in report["skipped"]} == {(str(bad), 0), (str(empty), 0)}
    assert [w["path"] for w in report["warnings"]] == [str(legacy)]
    assert f"warning: skipped {bad}" in again.stderr

    ask = run_cli(
        "ask", "When did the harbour reopen?", "--json", "--corpus", str(corpus), "--index-dir", str(index_dir)
    )
    assert ask.returncode == 0, ask.stderr
    assert json.loads(ask.stdout)["citations"][0]["doc_id"] == "good"
    assert "Indexing" not in ask.stderr


# ---------------------------------------------------------------- eval


@pytest.mark.slow
def test_eval_writes_results_summary_and_plot(run_cli, index_dir, tmp_path):
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        json.dumps({"id": "a", "question": QUESTION, "answers": ["Araghchi"], "docs": ["004_f1ed5df54c6c908a"]}) + "\n"
        + json.dumps({"id": "b", "question": "Who won the 2018 FIFA World Cup?", "answers": [], "unanswerable": True})
        + "\n{broken\n"
    )
    out = tmp_path / "run"
    proc = run_cli("eval", str(questions), "--index-dir", index_dir, "--out", str(out), "-k", "1,5", "--json")
    assert proc.returncode == 0, proc.stderr
    assert f"{questions}:3" in proc.stderr  # the broken line is named
    summary = json.loads(proc.stdout)
    assert summary["questions"] == 2 and summary["answerable"] == 1
    assert summary["answer_recall@5"] == 1.0 and summary["source_recall@1"] == 1.0
    assert summary["abstention_recall"] == 1.0
    assert {p.name for p in out.iterdir()} >= {"results.jsonl", "summary.json", "summary.md", "recall_at_k.png"}
    assert (out / "recall_at_k.png").read_bytes()[:4] == b"\x89PNG"


def test_a_reader_that_goes_away_is_not_an_error(index_dir):
    """``rag ask ... | head``: the pipe closes before the answer is written; exit 0, nothing on stderr."""
    import subprocess
    import sys

    from conftest import REPO, clean_env

    proc = subprocess.Popen([sys.executable, "-m", "rag", "ask", QUESTION, "--index-dir", index_dir],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, env=clean_env())
    proc.stdout.close()  # like `head` exiting before the answer comes
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert "Traceback" not in err and "Error" not in err and "Exception ignored" not in err, err
