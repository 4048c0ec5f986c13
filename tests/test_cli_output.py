"""What ``rag ask`` prints: an LLM's answer once, the extractive fallback labelled; and what it says
while another process is indexing."""

from __future__ import annotations

import io
import re
import sys

import test_llm
from test_index_state import _cli, _touch_corpus
from test_index_state import _HeldLock as _OtherIndexingRun

from rag import Rag
from rag.surfaces.cli import main

QUESTION = "Who offered to mediate between Kabul and Islamabad?"
# Cites a passage that does not exist: the marker is removed and nothing is left citing a passage.
UNGROUNDED = "Somebody in the region offered to help the two neighbours talk again [7]."
MODEL_TEXT = "Somebody in the region offered to help the two neighbours talk again"
LABEL = "Extractive answer (the model's answer cites no passage):"
server = test_llm.server  # the fixture: a real HTTP server imitating an OpenAI-compatible one


def _squash(text: str) -> str:
    return " ".join(text.split())


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


# ---------------------------------------------------------------- 1. an LLM answer, once


def test_an_ungrounded_llm_answer_is_printed_once_beside_the_labelled_extractive_one(fake_rag, server, capsys):
    server.reply = UNGROUNDED
    extractive = fake_rag.ask(QUESTION).answer
    code = main(_cli(fake_rag.settings, "ask", QUESTION, "--llm", "openai", "--llm-url", server.url))
    out, err = capsys.readouterr()
    assert code == 0, err
    flat = _squash(out)
    assert flat.count(MODEL_TEXT) == 1, out  # the model's answer once: not streamed, then again cleaned
    assert "[7]" not in out  # what stands is the checked answer
    assert out.count(LABEL) == 1 and flat.count(_squash(extractive)) == 1, out
    assert flat.index(MODEL_TEXT) < flat.index(LABEL) < flat.index(_squash(extractive)) < flat.index("Sources: [1] ")
    assert "warning: removed citation [7]" in err and "cites no passage" in err
    assert MODEL_TEXT not in err


def test_on_a_terminal_the_answer_streams_and_is_not_repeated(fake_rag, server, capsys, monkeypatch):
    server.reply = UNGROUNDED
    extractive = fake_rag.ask(QUESTION).answer
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    code = main(_cli(fake_rag.settings, "ask", QUESTION, "--llm", "openai", "--llm-url", server.url))
    out, err = terminal.getvalue(), capsys.readouterr().err
    assert code == 0, err
    assert out.startswith(UNGROUNDED + "\n")  # as the model wrote it, word by word
    assert _squash(out).count(MODEL_TEXT) == 1, out
    assert out.count(LABEL) == 1 and _squash(out).count(_squash(extractive)) == 1, out
    assert "warning: removed citation [7]" in err


def test_a_grounded_answer_in_a_pipe_is_the_checked_one_alone(fake_rag, server, capsys):
    server.reply = "Iran offered to mediate [1]. Pakistan agreed [9]."
    code = main(_cli(fake_rag.settings, "ask", QUESTION, "--llm", "openai", "--llm-url", server.url))
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.startswith("Iran offered to mediate [1]. Pakistan agreed.\n\nSources:\n[1] "), out
    assert out.count("Iran offered to mediate") == 1 and "Extractive answer" not in out
    assert "warning: removed citation [9]" in err


def test_a_failed_server_gives_the_extractive_answer_and_says_why(fake_rag, server, capsys):
    server.status = 500
    code = main(_cli(fake_rag.settings, "ask", QUESTION, "--llm", "openai", "--llm-url", server.url))
    out, err = capsys.readouterr()
    expected = fake_rag.ask(QUESTION)
    assert code == 0 and out.startswith(expected.short_line()) and expected.answer[:40] in out
    assert "HTTP 500" in err and "showing the extractive answer" in err


# ---------------------------------------------------------------- 4. another process indexing


def test_a_stale_index_being_updated_by_another_run_says_so(fake_rag, tmp_corpus, capsys):
    _touch_corpus(tmp_corpus)
    other = _OtherIndexingRun(fake_rag.settings.index_dir)
    try:
        code = main(_cli(fake_rag.settings, "ask", QUESTION))
    finally:
        other.release()
    out, err = capsys.readouterr()
    assert code == 0 and "Sources:" in out, err
    assert "an indexing run is under way" in err and "answering from the current index" in err, err
    assert "Run 'python -m rag index'" not in err  # it is running already


def test_a_stale_index_with_no_run_under_way_says_how_to_update(fake_rag, tmp_corpus, capsys):
    _touch_corpus(tmp_corpus)
    code = main(_cli(fake_rag.settings, "ask", QUESTION))
    err = capsys.readouterr().err
    assert code == 0 and "Run 'python -m rag index' to update it" in err
    assert "under way" not in err


def test_with_no_index_yet_ask_says_it_waits_for_the_other_run(fake_settings, capsys):
    import threading

    other = _OtherIndexingRun(fake_settings.index_dir)
    threading.Timer(0.5, other.release).start()
    code = main(_cli(fake_settings, "ask", QUESTION))
    out, err = capsys.readouterr()
    assert code == 0 and "Sources:" in out, err
    assert re.search(r"indexing into .*; waiting for it to finish", err), err
    assert not err.startswith("Indexing ")  # this process is not the one indexing while it waits


def test_the_probe_reads_the_lock_without_taking_it(fake_rag):
    from rag.index.layout import indexing_in_progress

    index_dir = fake_rag.settings.index_path
    assert not indexing_in_progress(index_dir)
    assert not indexing_in_progress(index_dir / "no-such-folder")
    other = _OtherIndexingRun(str(index_dir))
    try:
        assert indexing_in_progress(index_dir) and indexing_in_progress(index_dir)
    finally:
        other.release()
    assert not indexing_in_progress(index_dir)
    Rag(fake_rag.settings).index()  # the probe left the lock free
