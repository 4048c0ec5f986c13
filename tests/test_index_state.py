"""Asking never waits on indexing it does not need, and index problems are reported before any work."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path

import pytest

import rag.api
import rag.index.build
from rag import CorpusError, Filters, Rag, RagError, RagIndexError
from rag.index.layout import current_generation
from rag.surfaces.cli import main

QUESTION = "Who offered to mediate between Kabul and Islamabad?"


def _cli(settings, *args: str) -> list[str]:
    return [*args, "--index-dir", settings.index_dir, "--model", "fake-64", "--corpus", settings.corpus[0]]


def _touch_corpus(corpus: Path) -> None:
    f = next(p for p in sorted(corpus.iterdir()) if p.suffix in (".txt", ".md"))
    f.write_text(f.read_text() + "\nA paragraph added later about the weather.\n")


class _HeldLock:
    """Another process's indexing run, as far as the lock file can tell."""

    def __init__(self, index_dir: str) -> None:
        Path(index_dir).mkdir(parents=True, exist_ok=True)
        self.fh = open(Path(index_dir) / ".lock", "w")
        fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def release(self) -> None:
        fcntl.flock(self.fh, fcntl.LOCK_UN)
        self.fh.close()


def test_ask_answers_from_a_stale_index_at_once_and_says_how_to_update(fake_rag, tmp_corpus, capsys, monkeypatch):
    before = current_generation(fake_rag.settings.index_path)
    _touch_corpus(tmp_corpus)
    monkeypatch.setattr(rag.index.build, "iter_corpus", _must_not_run)
    code = main(_cli(fake_rag.settings, "ask", QUESTION))
    out, err = capsys.readouterr()
    assert code == 0 and "Sources:" in out
    assert "out of date" in err and "python -m rag index" in err
    assert current_generation(fake_rag.settings.index_path) == before  # answered from the live index


def test_ask_does_not_fail_while_another_run_holds_the_lock(fake_rag, tmp_corpus, capsys):
    _touch_corpus(tmp_corpus)
    lock = _HeldLock(fake_rag.settings.index_dir)
    try:
        code = main(_cli(fake_rag.settings, "ask", QUESTION))
    finally:
        lock.release()
    out, err = capsys.readouterr()
    assert code == 0 and "Sources:" in out, err


def test_a_first_index_waits_for_another_run_building_it(fake_settings):
    lock = _HeldLock(fake_settings.index_dir)
    threading.Timer(0.5, lock.release).start()
    messages: list[str] = []
    report = Rag(fake_settings).prepare(log=messages.append)
    assert report is not None and report.documents == 5
    assert any("waiting" in m for m in messages)


def _must_not_run(*args, **kwargs):
    raise AssertionError("the corpus was read")


def test_a_held_lock_is_reported_before_the_corpus_is_read(fake_settings, capsys, monkeypatch):
    monkeypatch.setattr(rag.index.build, "iter_corpus", _must_not_run)
    lock = _HeldLock(fake_settings.index_dir)
    try:
        code = main(_cli(fake_settings, "index"))
    finally:
        lock.release()
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("Error: another process is indexing into"), err


def test_an_index_dir_that_is_a_file_is_reported_before_the_corpus_is_read(fake_settings, capsys, monkeypatch):
    monkeypatch.setattr(rag.index.build, "iter_corpus", _must_not_run)
    Path(fake_settings.index_dir).write_text("not a folder")
    code = main(_cli(fake_settings, "index"))
    err = capsys.readouterr().err
    assert code == 1 and "is a file, not a folder" in err and "unexpected" not in err, err
    nested = fake_settings.with_(index_dir=str(Path(fake_settings.index_dir) / "sub"))
    with pytest.raises(RagIndexError, match="is a file"):
        Rag(nested).index()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_index_dir_is_reported_before_the_corpus_is_read(fake_settings, tmp_path, monkeypatch):
    monkeypatch.setattr(rag.index.build, "iter_corpus", _must_not_run)
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        with pytest.raises(RagIndexError, match="not writable"):
            Rag(fake_settings.with_(index_dir=str(parent / "idx"))).index()
    finally:
        parent.chmod(0o755)


def test_warnings_are_reported_as_they_happen(fake_settings, tmp_corpus):
    (tmp_corpus / "broken.jsonl").write_text('{"text": "An article about the talks in Doha."}\nnot json\n')
    seen: list[tuple[str, bool, int]] = []
    r = Rag(fake_settings)
    r.index(on_issue=lambda item, skipped: seen.append((item.reason, skipped, time.monotonic_ns())))
    assert any(skipped and "not valid JSON" in reason for reason, skipped, _ in seen)


def test_a_pdf_passage_is_cited_with_its_page(fake_settings, tmp_corpus):
    from test_ingest import make_pdf

    filler = "\n".join(f"Item {i}: the board met and approved the minutes of its last meeting." for i in range(30))
    pages = ["Annual report of the water board.\n" + filler,
             "The Kelby reservoir was finished in March by the Dunmore engineers.\nIt holds a year of water."]
    (tmp_corpus / "report.pdf").write_bytes(make_pdf(pages, {"Title": "Water board report"}))
    r = Rag(fake_settings)
    r.index()
    answer = r.ask("Who finished the Kelby reservoir?")
    cited = next(c for c in answer.citations if c.title == "Water board report")
    assert cited.page == 2 and "Kelby reservoir" in cited.text
    assert answer.citations[0].page == 2  # the passage that answers
    assert answer.to_dict()["citations"][answer.citations.index(cited)]["page"] == 2


def test_a_question_in_flight_keeps_reading_the_index_an_update_replaced(fake_rag, tmp_corpus):
    in_flight = fake_rag.index_reader  # what a question answered in another thread holds
    _touch_corpus(tmp_corpus)
    fake_rag.index()
    assert fake_rag.index_reader is not in_flight
    assert in_flight.chunks([0])[0].text  # not "Cannot operate on a closed database"
    assert in_flight.allowed_ids(Filters(since="2019-01-01")) is not None


# ---------------------------------------------------------------- Rag.start: the one start-up


def test_start_checks_the_corpus_path_before_any_model_loads(fake_settings, tmp_path, monkeypatch):
    """``ask --corpus /nope`` spent 18.8 s exporting the model before it said the path was not found."""
    r = Rag(fake_settings.with_(corpus=(str(tmp_path / "nope"),)))
    monkeypatch.setattr(type(r), "embedder", property(_must_not_run))
    with pytest.raises(CorpusError, match="nope"):
        r.start("wait")
    assert r._embedder is None and not Path(fake_settings.index_dir).exists()


def test_start_rejects_an_unknown_policy(fake_settings):
    with pytest.raises(RagError, match="wait"):
        Rag(fake_settings).start("eventually")


@pytest.mark.parametrize(("policy", "updated_now"), [("wait", False), ("update", True)])
def test_start_with_a_stale_index_answers_or_updates_by_policy(fake_rag, tmp_corpus, policy, updated_now):
    before = current_generation(fake_rag.settings.index_path)
    _touch_corpus(tmp_corpus)
    logged: list[str] = []
    startup = Rag(fake_rag.settings).start(policy, log=logged.append)
    assert startup.state == "stale" and startup.usable and startup.updating is None
    assert (current_generation(fake_rag.settings.index_path) != before) == updated_now
    assert (startup.report is not None) == updated_now
    if not updated_now:
        assert any("python -m rag index" in m for m in logged)


@pytest.mark.parametrize("policy", ["background", "serve"])
def test_start_in_the_background_answers_from_the_stale_index_meanwhile(fake_rag, tmp_corpus, policy):
    before = current_generation(fake_rag.settings.index_path)
    _touch_corpus(tmp_corpus)
    r = Rag(fake_rag.settings)
    startup = r.start(policy)
    assert startup.state == "stale" and startup.updating is not None and not startup.building
    assert r.ask(QUESTION).citations  # answers while the update runs
    startup.updating.join(timeout=60)
    assert not startup.updating.is_alive() and not startup.error
    assert startup.report is not None and current_generation(fake_rag.settings.index_path) != before


def test_serve_start_with_no_index_says_it_is_building_until_done(fake_settings):
    startup = Rag(fake_settings).start("serve")
    assert startup.state == "missing" and not startup.usable
    startup.updating.join(timeout=60)
    assert not startup.building and not startup.error and startup.report.documents == 5


def test_a_question_reads_which_index_is_current_once(fake_rag, monkeypatch):
    """``index_reader`` re-read CURRENT up to four times per ``ask``; a question now pins one index."""
    calls: list[Path] = []

    def counting(index_path):
        calls.append(index_path)
        return current_generation(index_path)

    monkeypatch.setattr(rag.api, "current_generation", counting)
    fake_rag.ask(QUESTION, reference_day="2025-11-09", filters=Filters(sources=("Trends",)))
    assert len(calls) == 1
    calls.clear()
    fake_rag.ask("How many US troops are in Afghanistan now?")  # a conflict question about "now"
    assert len(calls) == 1
