"""`rag index PATHS` adds to the corpus's index, and an interrupted run's finished work is kept."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import FAKE_MODEL, TESTS_DIR

from rag import Rag, Settings

ARTICLE = "---\ntitle: {title}\ndate: 2024-0{month}-1{day}\nsource: Test Wire\n---\n{body}\n"


def write_archive(folder: Path) -> None:
    folder.mkdir(parents=True)
    topics = [("Harbour council approves ferry terminal", "The harbour council approved a new ferry terminal."),
              ("Drought hits farmers in the valley", "The drought cut the valley's wheat harvest by half."),
              ("Museum reopens after renovation", "The city museum reopened after three years of renovation."),
              ("Storm closes the coastal road", "A storm closed the coastal road for two days.")]
    for i, (title, body) in enumerate(topics):
        (folder / f"a{i}.md").write_text(ARTICLE.format(title=title, month=i + 1, day=i, body=body))


def summary(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_index_paths_adds_to_the_corpus_index_as_a_new_user_runs_it(tmp_path, run_cli):
    archive, extra, idx = tmp_path / "archive", tmp_path / "new" / "volcano.txt", tmp_path / "idx"
    write_archive(archive)
    extra.parent.mkdir()
    extra.write_text("Volcano erupts near the fishing village\n\nThe Kettla volcano erupted on Tuesday, "
                     "and 1,200 villagers left their homes.\n")
    assert "4 added, 0 updated, 0 removed" in summary(run_cli("index", "--corpus", str(archive), "--index-dir", str(idx)))

    # the reported defect: "1 added, 40 removed", the index left holding one document
    out = summary(run_cli("index", str(extra), "--corpus", str(archive), "--index-dir", str(idx)))
    assert "5 documents" in out and "1 added, 0 updated, 0 removed" in out
    ask = run_cli("ask", "Which volcano erupted near the fishing village?", "--corpus", str(archive),
                  "--index-dir", str(idx), "--json")
    assert ask.returncode == 0, ask.stderr
    answer = json.loads(ask.stdout)
    assert "Kettla" in answer["answer"] and answer["citations"][0]["doc_id"] == "volcano"
    assert "Indexing" not in ask.stderr and "out of date" not in ask.stderr  # the added file is part of the index
    stored = {c["doc_id"] for c in answer["citations"]}
    assert stored & {"a0", "a1", "a2", "a3"}  # the archive's articles are all still there

    # a document deleted from the corpus leaves; the added file stays
    (archive / "a3.md").unlink()
    out = summary(run_cli("index", "--corpus", str(archive), "--index-dir", str(idx)))
    assert "4 documents" in out and "0 added, 0 updated, 1 removed" in out

    # without --index-dir: the corpus's own index (the one `ask` reads) gets the file
    out = summary(run_cli("index", str(extra), "--corpus", str(archive)))
    assert "4 documents" in out and "4 added" in out
    ask = run_cli("ask", "Which volcano erupted near the fishing village?", "--corpus", str(archive), "--json")
    assert ask.returncode == 0 and "Kettla" in json.loads(ask.stdout)["answer"], ask.stderr


def test_paths_indexed_once_stay_and_a_configured_path_not_yet_indexed_is_added(tmp_path):
    archive, more, idx = tmp_path / "archive", tmp_path / "more", tmp_path / "idx"
    write_archive(archive)
    more.mkdir()
    (more / "b.txt").write_text("Bridge opens\n\nThe new bridge opened to traffic on Friday.\n")
    settings = Settings.from_env(corpus=(str(archive),), index_dir=str(idx), model=FAKE_MODEL)
    Rag(settings).index()
    report = Rag(settings).index([more])
    assert report.added == ["b"] and report.removed == [] and report.documents == 5
    r = Rag(settings)
    assert r.index_state().state == "current"  # the added path is part of this index now
    assert r.index().removed == []  # a plain run keeps it
    (more / "b.txt").write_text("Bridge opens\n\nThe new bridge opened to traffic on Saturday.\n")
    assert r.index_state().state == "stale"
    assert r.index().updated == ["b"]
    other = Rag(settings.with_(corpus=(str(archive), str(more), str(tmp_path / "third"))))
    (tmp_path / "third").mkdir()
    (tmp_path / "third" / "c.txt").write_text("Council vote\n\nThe council voted on the budget.\n")
    assert other.index_state().state == "incomplete"
    assert other.prepare().added == ["c"]


# ---------------------------------------------------------------- resuming an interrupted run

RESUME_SCRIPT = """
import os, sys, time, pathlib, signal
# Ctrl-C as on a terminal (a process started in the background inherits SIGINT ignored)
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.path.insert(0, {tests!r})
from conftest import FakeEmbedder
import rag, rag.embed.choose, rag.index.segment

marker = pathlib.Path({marker!r})
rag.index.segment.SEGMENT_TEXT_CHARS = 20_000  # segments of ~100 of these articles

class SlowEmbedder(FakeEmbedder):
    def encode(self, texts, batch_size=64):
        time.sleep(0.002 * len(texts))
        return super().encode(texts, batch_size)

real_write = rag.index.segment.write_segment

def counting_write(*args, **kwargs):
    entry = real_write(*args, **kwargs)
    marker.write_text(str(int(marker.read_text() or 0) + 1) if marker.exists() else "1")
    return entry

rag.index.segment.write_segment = counting_write
rag.embed.choose.register_embedder("fake", lambda name, dtype: SlowEmbedder(name, dtype))
settings = rag.Settings.from_env(corpus=({corpus!r},), index_dir={index!r}, model="fake-64")
rag.Rag(settings).index()
marker.write_text("finished")
"""


def write_many(folder: Path, n: int, word: str, prefix: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        body = " ".join(f"Dispatch {i} line {j} on the {word} market, the port and shipment {i * 11 + j}."
                        for j in range(8))
        (folder / f"{prefix}{i:05d}.txt").write_text(f"Dispatch {i}\n\n{body}\n")


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT])
def test_an_interrupted_run_keeps_its_finished_segments_and_the_next_run_goes_on(tmp_path, how):
    corpus, idx, marker = tmp_path / "corpus", tmp_path / "idx", tmp_path / "marker"
    write_many(corpus, 300, "grain", "g")
    settings = Settings.from_env(corpus=(str(corpus),), index_dir=str(idx), model=FAKE_MODEL)
    assert Rag(settings).index().documents == 300
    before = (idx / "CURRENT").read_text()
    chunks_before = Rag(settings).index().chunks
    write_many(corpus / "new", 2_000, "timber", "t")  # 2,000 new articles, ~20 segments

    script = RESUME_SCRIPT.format(tests=str(TESTS_DIR), marker=str(marker), corpus=str(corpus), index=str(idx))
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (marker.exists() and marker.read_text().isdigit() and int(marker.read_text()) >= 5):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the indexing subprocess never got going"
            time.sleep(0.02)
        os.kill(proc.pid, how)
        proc.wait(timeout=60)
    finally:
        proc.kill()
        proc.communicate()
    assert marker.read_text() != "finished"
    written = int(marker.read_text())

    # meanwhile the previous index answered, unchanged
    assert (idx / "CURRENT").read_text() == before
    r = Rag(settings)
    assert r.search("grain market port", k=1, retriever="bm25")[0].chunk.doc_id.startswith("g")
    assert not r.search("timber market", k=5, retriever="bm25") or all(
        "timber" not in h.chunk.text for h in r.search("timber market", k=5, retriever="bm25"))

    live = {s["name"] for s in json.loads((idx / before.strip() / "manifest.json").read_text())["segments"]}
    finished = [json.loads((p / "segment.json").read_text()) for p in idx.glob("seg-*") if p.name not in live]
    assert len(finished) >= 5 and len(finished) >= written - 1  # on disk, not live
    report = r.index()
    assert report.resumed == sum(f["documents"] for f in finished) > 0  # every finished segment taken up
    assert len(report.added) == 2_000 and report.removed == [] and report.documents == 2_300
    new_chunks = report.chunks - chunks_before  # every new article has as many chunks
    assert report.embedded == new_chunks * (2_000 - report.resumed) // 2_000  # only the rest embedded
    found = r.search("timber market dispatch 1999", k=20, retriever="bm25")
    assert any(h.chunk.doc_id == "t01999" for h in found)
    found = r.search("timber market dispatch 3", k=50, retriever="bm25")
    assert any(h.chunk.doc_id == "t00003" and "timber" in h.chunk.text for h in found)
    # nothing is left behind: the live generation and the segments it names
    live = (idx / (idx / "CURRENT").read_text().strip() / "manifest.json")
    names = {s["name"] for s in json.loads(live.read_text())["segments"]}
    assert {p.name for p in idx.iterdir() if p.name.startswith("seg-")} == names
    assert not [p for p in idx.iterdir() if p.name.startswith(".tmp-")]
