"""The on-disk index: layout, incremental updates, rebuilds, and surviving interrupted builds."""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import rag.index.bm25
import rag.index.build
import rag.index.merge
import rag.index.reader
import rag.index.segment
from rag import Rag, RagIndexError, Settings
from rag.index.layout import FORMAT_VERSION, current_generation, read_documents, read_manifest, segment_dirs
from rag.index.reader import open_index
from rag.ingest.corpus import read_corpus
from rag.text.chunk import chunk_document

FAKE_MODEL = "fake-64"
TESTS_DIR = Path(__file__).resolve().parent
OLD = "The flamingo orchestra performed in Reykjavik on Sunday evening."
NEW = "The penguin choir sang in Oslo on Monday morning."
ALL_RETRIEVERS = ["hybrid", "dense", "bm25"]


def texts(hits) -> list[str]:
    return [h.chunk.text for h in hits]


def doc_ids(hits) -> list[str]:
    return [h.chunk.doc_id for h in hits]


def current(index_dir: Path) -> str:
    return (index_dir / "CURRENT").read_text().strip()


# ---------------------------------------------------------------- layout


def test_build_writes_a_generation_and_points_current_at_it(fake_rag):
    index_dir = fake_rag.settings.index_path
    gen = index_dir / current(index_dir)
    assert gen.name == "gen-000001" and current_generation(index_dir) == gen
    assert sorted(p.name for p in gen.iterdir()) == ["documents.sqlite", "manifest.json"]  # it names its segments
    (seg,) = segment_dirs(gen)
    assert seg.name == "seg-000001" and read_manifest(index_dir)["segments"][0]["name"] == seg.name
    for name in ("segment.json", "chunks.sqlite", "vectors.npy", "days.npy", "dense.faiss"):
        assert (seg / name).is_file(), name
    assert (seg / "bm25").is_dir() and any((seg / "bm25").iterdir())
    assert not [p for p in index_dir.iterdir() if p.name.startswith(".tmp-")]


def test_manifest_records_model_dimension_settings_and_document_hashes(fake_rag, tmp_corpus):
    manifest = read_manifest(fake_rag.settings.index_path)
    assert manifest["model"] == FAKE_MODEL
    assert manifest["dimension"] == 64
    assert manifest["settings"] == fake_rag.settings.index_signature()
    assert manifest["settings"]["chunk_tokens"] == 96 and manifest["settings"]["chunk_overlap"] == 16
    assert manifest["ann"] is False
    assert manifest["corpus"] == [str(tmp_corpus.resolve())]
    docs = read_documents(fake_rag.settings.index_path)
    assert manifest["documents"] == len(docs) and set(docs) == {p.stem for p in tmp_corpus.glob("*.txt")}
    for doc_id, entry in docs.items():
        assert len(entry["hash"]) == 32 and entry["path"] == str(tmp_corpus / f"{doc_id}.txt")
    vectors = np.load(segment_dirs(fake_rag.index_reader.dir)[0] / "vectors.npy")
    assert vectors.shape == (manifest["chunks"], 64) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_chunk_store_holds_exact_spans_of_the_documents(fake_rag, tmp_corpus):
    reader = fake_rag.index_reader
    chunks = reader.chunks(list(range(reader.n_chunks)))
    assert len(chunks) == reader.n_chunks
    for c in chunks.values():
        text = (tmp_corpus / f"{c.doc_id}.txt").read_text(encoding="utf-8")
        assert text[c.start : c.end] == c.text
    assert reader.document("004_f1ed5df54c6c908a")["date"] == "2025-11-09"
    assert reader.document("nope") is None


def test_article_days_are_written_at_build_and_match_the_chunk_dates(fake_rag):
    reader = fake_rag.index_reader
    days = np.load(segment_dirs(reader.dir)[0] / "days.npy")
    chunks = reader.chunks(list(range(reader.n_chunks)))
    expected = [dt.date.fromisoformat(chunks[i].date).toordinal() if chunks[i].date else 0 for i in range(len(days))]
    assert days.dtype == np.int32 and days.tolist() == expected
    assert days.max() == dt.date(2025, 11, 9).toordinal()
    assert reader.day_numbers().tolist() == expected


def test_stats_describe_the_index(fake_rag):
    stats = fake_rag.stats()
    assert stats["indexed"] is True and stats["documents"] == 5
    assert stats["model"] == FAKE_MODEL and stats["search"] == "exact"
    assert stats["date_range"] == ["2018-12-31", "2025-11-09"]
    assert stats["chunks"] == fake_rag.index_reader.n_chunks and stats["size_bytes"] > 0


def test_stats_without_an_index(fake_settings):
    assert Rag(fake_settings).stats() == {"index_dir": str(fake_settings.index_path), "indexed": False}


def test_searching_without_an_index_says_how_to_build_one(fake_settings):
    with pytest.raises(RagIndexError, match="rag index"):
        Rag(fake_settings).search("anything")


# ---------------------------------------------------------------- incremental updates


def test_reindex_without_changes_embeds_nothing(fake_rag):
    gen = current(fake_rag.settings.index_path)
    before = fake_rag.embedder.encoded
    report = fake_rag.index()
    assert report.changed is False and report.embedded == 0
    assert report.unchanged == 5 and not (report.added or report.updated or report.removed)
    assert fake_rag.embedder.encoded == before
    assert current(fake_rag.settings.index_path) == gen
    assert fake_rag.needs_index() == ""
    assert fake_rag.prepare() is None


def test_needs_index_notices_a_changed_file(fake_rag, tmp_corpus):
    assert fake_rag.needs_index() == ""
    (tmp_corpus / "extra.txt").write_text(OLD)
    assert "changed" in fake_rag.needs_index()
    report = fake_rag.prepare()
    assert report is not None and report.added == ["extra"]
    assert fake_rag.needs_index() == ""


def test_modified_file_is_the_only_one_re_embedded(fake_rag, tmp_corpus):
    path = tmp_corpus / "004_f1ed5df54c6c908a.txt"
    path.write_text(path.read_text(encoding="utf-8").replace("Istanbul", "Geneva"), encoding="utf-8")
    new_doc = next(d for d in read_corpus([tmp_corpus]).documents if d.doc_id == path.stem)
    expected = len(chunk_document(new_doc, fake_rag.settings.chunk_tokens, fake_rag.settings.chunk_overlap))
    before = fake_rag.embedder.encoded

    report = fake_rag.index()

    assert report.changed is True and report.updated == [path.stem]
    assert report.added == [] and report.removed == [] and report.unchanged == 4
    assert report.embedded == expected == fake_rag.embedder.encoded - before
    assert current(fake_rag.settings.index_path) == "gen-000002"
    assert [p.name for p in fake_rag.settings.index_path.glob("gen-*")] == ["gen-000002"]  # old one collected
    for retriever in ALL_RETRIEVERS:
        hits = fake_rag.search("peace talks Istanbul Geneva", k=10, retriever=retriever)
        assert not any("Istanbul" in t for t in texts(hits)), retriever
        assert any("Geneva" in t for t in texts(hits)), retriever


@pytest.mark.parametrize("retriever", ALL_RETRIEVERS)
def test_old_text_of_a_modified_file_no_longer_comes_back(fake_settings, tmp_corpus, retriever):
    extra = tmp_corpus / "extra.txt"
    extra.write_text(OLD)
    r = Rag(fake_settings)
    r.index()
    assert OLD in texts(r.search("flamingo orchestra Reykjavik", k=3, retriever=retriever))[0]

    extra.write_text(NEW)
    report = r.index()

    assert report.updated == ["extra"] and report.embedded == 1
    assert not any("flamingo" in t for t in texts(r.search("flamingo orchestra Reykjavik", k=10, retriever=retriever)))
    assert texts(r.search("penguin choir Oslo", k=3, retriever=retriever))[0] == NEW
    # A fresh process (a new Rag) sees the same.
    assert texts(Rag(fake_settings).search("penguin choir Oslo", k=1, retriever=retriever)) == [NEW]


def test_an_open_rag_sees_a_new_generation_built_by_another(fake_settings, tmp_corpus):
    extra = tmp_corpus / "extra.txt"
    extra.write_text(OLD)
    reader_side, writer_side = Rag(fake_settings), Rag(fake_settings)
    writer_side.index()
    assert texts(reader_side.search("flamingo orchestra Reykjavik", k=1)) == [OLD]
    extra.write_text(NEW)
    writer_side.index()
    assert texts(reader_side.search("penguin choir Oslo", k=1)) == [NEW]  # no restart needed


@pytest.mark.parametrize("retriever", ALL_RETRIEVERS)
def test_deleted_file_is_removed_from_results(fake_rag, tmp_corpus, retriever):
    query = "Araghchi mediate Kabul Islamabad Ishaq Dar"
    assert "004_f1ed5df54c6c908a" in doc_ids(fake_rag.search(query, k=5, retriever=retriever))
    (tmp_corpus / "004_f1ed5df54c6c908a.txt").unlink()

    report = fake_rag.index()

    assert report.removed == ["004_f1ed5df54c6c908a"] and report.embedded == 0 and report.unchanged == 4
    assert "004_f1ed5df54c6c908a" not in read_documents(fake_rag.settings.index_path)
    hits = fake_rag.search(query, k=50, retriever=retriever)
    assert "004_f1ed5df54c6c908a" not in doc_ids(hits)
    assert fake_rag.index_reader.document("004_f1ed5df54c6c908a") is None


def test_identical_files_are_indexed_once(fake_settings, tmp_corpus):
    original = tmp_corpus / "004_f1ed5df54c6c908a.txt"
    # Same words, other whitespace: still a duplicate.
    (tmp_corpus / "zz_copy.txt").write_text(original.read_text(encoding="utf-8").replace("\n\n", "\n \n"))
    r = Rag(fake_settings)
    report = r.index()
    assert report.duplicates == {"zz_copy": "004_f1ed5df54c6c908a"}
    assert report.documents == 5
    manifest = read_manifest(fake_settings.index_path)
    assert "zz_copy" not in read_documents(fake_settings.index_path) and manifest["duplicates"] == report.duplicates
    assert "zz_copy" not in doc_ids(r.search("Araghchi mediate Kabul Islamabad", k=20))
    assert r.stats()["duplicates"] == 1


def test_changed_chunk_settings_rebuild_the_whole_index(fake_rag):
    n_before = fake_rag.index_reader.n_chunks
    r = Rag(fake_rag.settings.with_(chunk_tokens=64, chunk_overlap=16))
    assert "chunk_tokens" in r.needs_index()
    report = r.index()
    assert "chunk_tokens" in report.rebuilt_reason
    assert (
        report.changed
        and report.unchanged == 0
        and sorted(report.added) == sorted(read_documents(r.settings.index_path))
    )
    assert report.embedded == report.chunks > n_before
    assert read_manifest(r.settings.index_path)["settings"]["chunk_tokens"] == 64
    assert max(c.n_tokens for c in r.index_reader.chunks(list(range(r.index_reader.n_chunks))).values()) <= 64


def test_another_model_rebuilds_the_index(fake_rag):
    r = Rag(fake_rag.settings.with_(model="fake-other"))
    report = r.index()
    assert "model" in report.rebuilt_reason and report.embedded == report.chunks
    assert read_manifest(r.settings.index_path)["model"] == "fake-other"


def test_a_second_writer_is_refused(fake_rag):
    index_dir = fake_rag.settings.index_path
    with open(index_dir / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        (fake_rag.settings.corpus_paths[0] / "extra.txt").write_text(OLD)
        with pytest.raises(RagIndexError, match="another process is indexing"):
            fake_rag.index()
    assert fake_rag.index().added == ["extra"]


def test_a_damaged_index_is_reported_not_crashed(fake_rag):
    gen = fake_rag.settings.index_path / current(fake_rag.settings.index_path)
    (segment_dirs(gen)[0] / "dense.faiss").write_bytes(b"garbage")
    with pytest.raises(RagIndexError, match="damaged"):
        Rag(fake_rag.settings).search("Iran")


# ---------------------------------------------------------------- interrupted builds


def assert_answers_from_v1(settings: Settings, gen_before: str) -> None:
    index_dir = settings.index_path
    assert current(index_dir) == gen_before
    r = Rag(settings)
    for retriever in ALL_RETRIEVERS:
        found = texts(r.search("flamingo orchestra Reykjavik", k=3, retriever=retriever))
        assert found and OLD in found[0], retriever
        assert not any("penguin" in t for t in texts(r.search("penguin choir Oslo", k=10, retriever=retriever)))


def test_failure_while_writing_keeps_the_previous_generation(fake_settings, tmp_corpus, monkeypatch):
    extra = tmp_corpus / "extra.txt"
    extra.write_text(OLD)
    r = Rag(fake_settings)
    r.index()
    gen_before = current(fake_settings.index_path)
    extra.write_text(NEW)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    with monkeypatch.context() as m:
        m.setattr(rag.index.segment, "write_dense", broken)
        with pytest.raises(OSError, match="disk full"):
            r.index()

    assert_answers_from_v1(fake_settings, gen_before)
    assert "changed" in r.needs_index()  # the stamps were not updated: the next run retries
    report = r.index()
    assert report.updated == ["extra"]
    assert texts(r.search("penguin choir Oslo", k=1)) == [NEW]
    assert not [p for p in fake_settings.index_path.iterdir() if p.name.startswith(".tmp-")]


def test_failure_while_embedding_keeps_the_previous_generation(fake_settings, tmp_corpus, monkeypatch):
    extra = tmp_corpus / "extra.txt"
    extra.write_text(OLD)
    settings = fake_settings.with_(batch_size=1)  # four texts per encode call: several calls
    r = Rag(settings)
    r.index()
    gen_before = current(settings.index_path)
    for p in tmp_corpus.glob("*.txt"):  # every document changes, so embedding takes several calls
        p.write_text(p.read_text(encoding="utf-8").replace("Taliban", "Talib"), encoding="utf-8")
    extra.write_text(NEW)

    embedder = r.embedder
    real_encode = embedder.encode
    calls = []

    def failing_encode(batch, batch_size=64):
        calls.append(len(batch))
        if len(calls) == 3:
            raise RuntimeError("out of memory")
        return real_encode(batch, batch_size)

    monkeypatch.setattr(embedder, "encode", failing_encode)
    with pytest.raises(RuntimeError, match="out of memory"):
        r.index()
    assert len(calls) == 3
    assert_answers_from_v1(settings, gen_before)

    monkeypatch.undo()
    report = r.index()
    assert sorted(report.updated) == sorted(p.stem for p in tmp_corpus.glob("*.txt"))
    assert texts(r.search("penguin choir Oslo", k=1))[0] == NEW


def generated_corpus(folder: Path, n: int, extra_sentence: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        body = " ".join(
            f"Report {i} sentence {j} describes the harbour, the council and ferry number {i * 7 + j}."
            for j in range(6)
        )
        (folder / f"doc{i:04d}.txt").write_text(f"Article {i}\n\n{body} {extra_sentence}\n")


KILL_SCRIPT = """
import os, sys, time, pathlib
sys.path.insert(0, {tests!r})
from conftest import FakeEmbedder
import rag, rag.embed, rag.index

marker = pathlib.Path({marker!r})
phase = {phase!r}

class SlowEmbedder(FakeEmbedder):
    def encode(self, texts, batch_size=64):
        if phase == "embedding":
            marker.write_text("embedding")
            time.sleep(0.2)
        return super().encode(texts, batch_size)

real_write_dense = rag.index.segment.write_dense
writes = []

def slow_write_dense(path, vectors, kind, **kwargs):
    real_write_dense(path, vectors, kind, **kwargs)
    writes.append(path)
    if phase == "writing" or (phase == "merging" and len(writes) == 2):  # the new segment, then the merged one
        marker.write_text(phase)
        time.sleep(60)

rag.index.segment.write_dense = slow_write_dense
if phase == "merging":
    rag.index.merge.MAX_SEGMENTS = 1
rag.embed.choose.register_embedder("fake", lambda name, dtype: SlowEmbedder(name, dtype))
settings = rag.Settings.from_env(corpus=({corpus!r},), index_dir={index!r}, model="fake-64", batch_size=1)
rag.Rag(settings).index()
marker.write_text("finished")
"""


@pytest.mark.parametrize("phase", ["embedding", "writing", "merging"])
def test_sigkill_mid_build_leaves_the_previous_index_answering(tmp_path, phase):
    corpus, index_dir, marker = tmp_path / "corpus", tmp_path / "idx", tmp_path / "marker"
    generated_corpus(corpus, 300, OLD)
    settings = Settings.from_env(corpus=(str(corpus),), index_dir=str(index_dir), model=FAKE_MODEL)
    v1 = Rag(settings).index()
    assert v1.documents == 300
    gen_before = current(index_dir)
    changed = 150 if phase == "merging" else 300  # merging: half the documents change, both segments stay
    generated_corpus(corpus, changed, NEW)

    script = KILL_SCRIPT.format(
        tests=str(TESTS_DIR), marker=str(marker), phase=phase, corpus=str(corpus), index=str(index_dir)
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while not (marker.exists() and marker.read_text() == phase):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the indexing subprocess never got going"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert marker.read_text() == phase  # killed before it finished
    if phase != "embedding":  # the half-written segment is there, but not live
        assert [p.name for p in index_dir.iterdir() if p.name.startswith(".tmp-")]

    assert_answers_from_v1(settings, gen_before)
    r = Rag(settings)
    assert r.needs_index()
    report = r.index()  # the lock died with the process; a later run succeeds and cleans up
    assert len(report.updated) == changed
    assert current(index_dir) != gen_before
    assert texts(r.search("penguin choir Oslo", k=1, retriever="bm25"))[0].endswith(NEW)
    old_versions = [h.chunk.doc_id for h in r.search("flamingo orchestra Reykjavik", k=50) if "flamingo" in h.chunk.text]
    assert all(int(d[3:]) >= changed for d in old_versions)  # only documents that did not change
    live = index_dir / current(index_dir)
    assert sorted(p.name for p in index_dir.iterdir() if p.is_dir()) == sorted([live.name, *(s.name for s in segment_dirs(live))])


# ---------------------------------------------------------------- approximate search


def test_large_index_switches_to_ivf_pq_and_still_finds_the_document(fake_settings):
    import faiss

    # Larger chunks than the default, so that the hashing fake embedder ranks 004 first.
    fake_settings = fake_settings.with_(chunk_tokens=128, chunk_overlap=32)
    settings = fake_settings.with_(ann_threshold=10)
    r = Rag(settings)
    report = r.index()
    assert report.ann is True and report.chunks > 10
    assert read_manifest(settings.index_path)["ann"] is True and read_manifest(settings.index_path)["dense"] == "ivfpq"
    assert isinstance(r.index_reader.segments[0].faiss, faiss.IndexIVFPQ)
    assert r.stats()["search"] == "ivf-pq"
    query = "Iran Araghchi mediate between Kabul and Islamabad Ishaq Dar phone call"
    for retriever in ("dense", "hybrid"):
        assert r.search(query, k=1, retriever=retriever)[0].chunk.doc_id == "004_f1ed5df54c6c908a"
    # Exact and approximate search agree on this small index.
    exact = Rag(fake_settings)
    exact.index()
    assert doc_ids(exact.search(query, k=5, retriever="dense")) == doc_ids(r.search(query, k=5, retriever="dense"))


def test_compressed_search_honours_filters(fake_settings):
    from rag import Filters

    r = Rag(fake_settings.with_(ann_threshold=10))
    r.index()
    hits = r.search("Iran Taliban talks", k=5, filters=Filters(until="2019-01-31"), retriever="dense")
    assert hits and {h.chunk.date for h in hits} <= {"2018-12-31", "2019-01-23"}


def test_index_json_report_is_serialisable(fake_rag):
    report = fake_rag.index()
    json.dumps({k: v for k, v in report.__dict__.items() if k != "skipped"})


def test_an_unchanged_corpus_is_not_read_again_unless_verified(fake_settings, tmp_corpus, monkeypatch):
    r = Rag(fake_settings)
    first = r.index()
    calls = []
    real_read = rag.index.build.iter_corpus

    def counting_read(*args, **kwargs):
        calls.append(1)
        return real_read(*args, **kwargs)

    monkeypatch.setattr(rag.index.build, "iter_corpus", counting_read)
    again = r.index()
    assert calls == [] and again.changed is False and again.unchanged == again.documents == first.documents
    assert again.chunks == first.chunks
    assert r.index(verify=True).changed is False and calls == [1]  # read and hashed: still nothing changed
    page = next(tmp_corpus.glob("*.txt"))
    os.utime(page, (page.stat().st_atime, page.stat().st_mtime + 5))  # touched, not changed
    touched = r.index()
    assert calls == [1, 1] and touched.changed is False and touched.embedded == 0


# ---------------------------------------------------------------- segments


def _segment_names(settings: Settings) -> list[str]:
    return [seg["name"] for seg in read_manifest(settings.index_path)["segments"]]


def _folder_times(settings: Settings, name: str) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (settings.index_path / name).rglob("*") if p.is_file()}


def test_an_added_document_is_a_new_segment_and_nothing_else_is_rewritten(fake_settings, tmp_corpus):
    r = Rag(fake_settings)
    first = r.index()
    (base,) = _segment_names(fake_settings)
    before = _folder_times(fake_settings, base)
    (tmp_corpus / "extra.txt").write_text(NEW)
    report = r.index()
    assert report.added == ["extra"] and report.embedded < first.embedded
    names = _segment_names(fake_settings)
    assert names[0] == base and len(names) == 2
    assert _folder_times(fake_settings, base) == before  # the old segment is untouched
    for retriever in ALL_RETRIEVERS:
        assert texts(r.search("penguin choir Oslo", k=1, retriever=retriever)) == [NEW], retriever
    assert r.stats()["segments"] == 2 and r.stats()["documents"] == report.documents
    assert r.index_reader.document("extra")["text"].strip() == NEW


def test_changed_and_removed_documents_are_deleted_from_their_segment(fake_settings, tmp_corpus):
    from rag import Filters

    extra, other = tmp_corpus / "extra.txt", tmp_corpus / "other.txt"
    extra.write_text(OLD)
    other.write_text("The walrus parliament met in Tromso to discuss herring quotas on Tuesday.")
    r = Rag(fake_settings)
    r.index()
    extra.write_text(NEW)
    other.unlink()
    report = r.index()
    assert report.updated == ["extra"] and report.removed == ["other"]
    manifest = read_manifest(fake_settings.index_path)
    assert sorted(manifest["segments"][0]["deleted"]) == ["extra", "other"]
    for retriever in ALL_RETRIEVERS:  # the old versions are never returned, whatever the retriever or filter
        for filters in (Filters(), Filters(since="1900-01-01")):
            found = texts(r.search("flamingo orchestra Reykjavik walrus parliament Tromso", k=50, retriever=retriever,
                                   filters=filters))
            assert not any("flamingo" in t or "walrus" in t for t in found), (retriever, filters)
        assert texts(r.search("penguin choir Oslo", k=1, retriever=retriever)) == [NEW]
    assert r.index_reader.document("other") is None
    assert sum(c for _, c in r.sources()) == report.documents
    assert r.index_reader.bm25.get_scores(["walrus"]).max() == 0.0


def test_segmented_bm25_reads_only_postings_and_scores_as_word_by_word_sums(fake_settings, tmp_corpus):
    from rag.search.retrieve import BM25Retriever
    from rag.text.lexical import bm25_tokens, make_idf

    (tmp_corpus / "extra.txt").write_text(OLD)
    r = Rag(fake_settings)
    r.index()
    (tmp_corpus / "extra.txt").write_text(NEW)
    (tmp_corpus / "more.txt").write_text("The Kabul talks on Taliban prisoners resumed in Doha with Qatar mediating.")
    r.index()
    bm25 = r.index_reader.bm25
    assert len(bm25.parts) == 2 and bm25.alive is not None and not bm25.alive.all()
    tokens = [t for t in bm25_tokens("Kabul Taliban talks Doha flamingo penguin") if t in bm25.vocab_dict]
    idf = make_idf(bm25.n, bm25.df)
    expected = np.concatenate([  # each word's column of each segment, scaled to the whole index's IDF
        sum((np.asarray(p.get_scores([t]), np.float32) * (idf(t) / part_idf(t)) for t in tokens if t in p.vocab_dict),
            np.zeros(size, np.float32))
        for p, size, part_idf in zip(bm25.parts, bm25.sizes, bm25._part_idf)])
    expected[~bm25.alive] = 0
    ids, vals = bm25.postings(tokens)
    assert np.all(np.diff(ids) > 0) and np.all(bm25.alive[ids])
    assert set(ids.tolist()) == set(np.flatnonzero(expected).tolist())
    np.testing.assert_allclose(vals, expected[ids], rtol=1e-5)
    retriever = BM25Retriever(r.index_reader)
    np.testing.assert_allclose(retriever.all_scores("Kabul Taliban talks Doha flamingo penguin"), expected, rtol=1e-5)
    scores = retriever.scores("Kabul Taliban talks Doha flamingo penguin", n=3)
    top_ids, top_vals = scores.top(3)
    assert top_ids.tolist() == np.argsort(-expected, kind="stable")[:3].tolist()
    probe = np.array([top_ids[0], 10**6 % len(expected), 0])
    np.testing.assert_allclose(scores.at(probe), expected[probe], rtol=1e-5)


@pytest.mark.parametrize("n", [1, 3, 10, 200])
def test_bm25_top_n_skipping_common_words_lists_equals_scoring_every_chunk(fake_settings, tmp_corpus, monkeypatch, n):
    from rag import Filters
    from rag.search.retrieve import BM25Retriever

    monkeypatch.setattr(rag.index.segment, "SEGMENT_TEXT_CHARS", 4_000)  # several segments, scaled to one IDF
    (tmp_corpus / "extra.txt").write_text(OLD)
    r = Rag(fake_settings)
    r.index()
    (tmp_corpus / "extra.txt").write_text(NEW)  # a deleted chunk must never count towards the top n
    r.index()
    retriever = BM25Retriever(r.index_reader)
    queries = ["Who offered to mediate between Kabul and Islamabad?", "Taliban talks in Doha said the envoy",
               "the said and of Afghanistan peace", "penguin choir Oslo Kabul", "Trump troops withdrawal Taliban"]
    for filters in (Filters(), Filters(since="2019-01-01", until="2022-12-31")):
        for q in queries:
            full = retriever.all_scores(q, filters)
            best = np.argsort(-full, kind="stable")
            best = best[full[best] > 0][:n]
            ids, vals = retriever.scores(q, filters, n=n).top(n)
            assert sorted(vals.tolist(), reverse=True) == vals.tolist()
            np.testing.assert_allclose(vals, full[best], rtol=1e-5)  # the same scores (ties may swap ids)
            np.testing.assert_allclose(full[ids], vals, rtol=1e-5)



def test_segments_merge_past_the_limit_and_on_optimize(fake_settings, tmp_corpus, monkeypatch):
    monkeypatch.setattr(rag.index.merge, "MAX_SEGMENTS", 3)
    r = Rag(fake_settings)
    r.index()
    query = "penguin choir Oslo"
    for i in range(4):  # each run adds a segment; the fourth goes past the limit
        (tmp_corpus / f"add{i}.txt").write_text(NEW.replace("Oslo", f"Oslo {i}"))
        r.index()
    names = _segment_names(fake_settings)
    assert len(names) <= 3 and names[0] == "seg-000001"  # the largest is kept, the small ones merged
    assert len(texts(r.search(query, k=10))) >= 4
    (tmp_corpus / "add0.txt").unlink()
    r.index()
    report = r.index(optimize=True)
    assert report.changed and len(_segment_names(fake_settings)) == 1
    manifest = read_manifest(fake_settings.index_path)
    assert manifest["segments"][0]["deleted"] == [] and "add0" not in read_documents(fake_settings.index_path)
    assert sorted(p.name for p in fake_settings.index_path.iterdir() if p.is_dir()) == sorted(
        [current(fake_settings.index_path), *_segment_names(fake_settings)])
    assert not any(c.doc_id == "add0" for c in r.index_reader.chunks(list(range(r.index_reader.n_chunks))).values())
    assert all(h.chunk.doc_id != "add0" for h in r.search(query, k=10))


def test_an_index_of_an_older_format_is_rebuilt_once_and_says_why(fake_settings, tmp_corpus):
    r = Rag(fake_settings)
    r.index()
    gen = current_generation(fake_settings.index_path)
    manifest = json.loads((gen / "manifest.json").read_text())
    (gen / "manifest.json").write_text(json.dumps(manifest | {"format": FORMAT_VERSION - 1}))
    with pytest.raises(RagIndexError, match=f"written in format {FORMAT_VERSION - 1}.*rebuild"):
        open_index(fake_settings.index_path)  # never read as if it were the current format
    report = Rag(fake_settings).index()
    assert f"index format {FORMAT_VERSION - 1}" in report.rebuilt_reason and report.changed
    assert read_manifest(fake_settings.index_path)["format"] == FORMAT_VERSION
    assert texts(Rag(fake_settings).search("flamingo", k=1))
    assert Rag(fake_settings).index().rebuilt_reason == ""  # once


def test_a_large_run_writes_bounded_segments_and_reports_progress_in_documents(fake_settings, tmp_path, monkeypatch):
    corpus = tmp_path / "many"
    generated_corpus(corpus, 120, OLD)
    monkeypatch.setattr(rag.index.segment, "SEGMENT_TEXT_CHARS", 3_000)  # ~6 documents a segment
    monkeypatch.setattr(rag.index.merge, "MAX_SEGMENTS", 4)
    monkeypatch.setattr(rag.index.merge, "MERGE_MAX_CHUNKS", 1_000_000)
    built: list[int] = []
    real_write = rag.index.segment.write_segment

    def counting_write(final, docs, chunks, vectors, settings, embedded=None):
        built.append(len(docs))
        return real_write(final, docs, chunks, vectors, settings, embedded)

    monkeypatch.setattr(rag.index.segment, "write_segment", counting_write)
    calls: list[tuple[int, int, str]] = []
    settings = fake_settings.with_(corpus=(str(corpus),), index_dir=str(tmp_path / "idx"))
    r = Rag(settings)
    report = r.index(progress=lambda done, total, stage: calls.append((done, total, stage)))
    assert report.documents == 120 and len(built) >= 15 and max(built[:-1]) <= 8  # written in small batches...
    assert len(_segment_names(settings)) <= 4  # ...then merged
    assert calls and {total for _, total, _ in calls} == {120} and calls[-1][0] == 120
    assert [done for done, _, _ in calls] == sorted(done for done, _, _ in calls)  # never goes back
    assert len(texts(r.search("ferry number 7", k=5))) == 5


def test_compressed_segments_are_searched_together_and_rescored_once(fake_settings, monkeypatch):
    fake_settings = fake_settings.with_(chunk_tokens=128, chunk_overlap=32)
    monkeypatch.setattr(rag.index.segment, "SEGMENT_TEXT_CHARS", 4_000)  # the five articles: several segments
    r = Rag(fake_settings.with_(ann_threshold=5))  # each of them compressed
    r.index()
    assert len(r.index_reader.segments) >= 3 and all(type(s.faiss).__name__ == "IndexIVFPQ" for s in r.index_reader.segments)
    exact = Rag(fake_settings.with_(index_dir=str(fake_settings.index_path) + "-exact"))
    exact.index()
    query = "Iran Araghchi mediate between Kabul and Islamabad Ishaq Dar phone call"
    q = r.embedder.encode_query(query)
    scores, ids = r.index_reader.dense_search(q, 5)
    assert np.allclose(scores, r.index_reader.vectors_for(ids) @ q, atol=1e-5)  # exact scores, best first
    assert doc_ids(exact.search(query, k=5, retriever="dense")) == doc_ids(r.search(query, k=5, retriever="dense"))


def test_bm25_past_its_read_limit_looks_words_up_and_still_gives_exact_scores(fake_settings, tmp_corpus, monkeypatch):
    from rag.search.retrieve import BM25Retriever

    monkeypatch.setattr(rag.index.segment, "SEGMENT_TEXT_CHARS", 4_000)
    monkeypatch.setattr(rag.index.bm25, "BM25_READ_LIMIT", 0)  # as at 10^7 chunks: long lists are never read whole
    r = Rag(fake_settings)
    r.index()
    retriever = BM25Retriever(r.index_reader)
    q = "Who offered to mediate between Kabul and Islamabad?"
    full = retriever.all_scores(q)
    ids, vals = retriever.scores(q, n=3).top(3)
    assert len(ids) == 3 and np.all(vals > 0)
    np.testing.assert_allclose(full[ids], vals, rtol=1e-5)  # every score returned is the exact one
    assert ids[0] == int(np.argmax(full))  # the rarest words decide the best chunk


def test_short_articles_are_written_a_segment_per_thousand_articles_not_per_four_million_characters(
        fake_settings, tmp_path, monkeypatch):
    """3,001 short articles once made one segment: an interrupted run kept nothing. A segment is
    now cut by article count too (here 10 for 35 short articles, far under the size cut)."""
    corpus = tmp_path / "short"
    generated_corpus(corpus, 35, OLD)
    monkeypatch.setattr(rag.index.segment, "SEGMENT_DOCS", 10)
    monkeypatch.setattr(rag.index.merge, "MAX_SEGMENTS", 100)
    built: list[int] = []
    real_write = rag.index.segment.write_segment

    def counting_write(final, docs, chunks, vectors, settings, embedded=None):
        built.append(len(docs))
        return real_write(final, docs, chunks, vectors, settings, embedded)

    monkeypatch.setattr(rag.index.segment, "write_segment", counting_write)
    assert sum(len(p.read_text()) for p in corpus.iterdir()) < rag.index.segment.SEGMENT_TEXT_CHARS
    Rag(fake_settings.with_(corpus=(str(corpus),), index_dir=str(tmp_path / "idx"))).index()
    assert built == [10, 10, 10, 5]


def test_reindexing_one_changed_file_counts_its_documents_not_the_corpus(fake_settings, tmp_path):
    corpus = tmp_path / "twenty"
    generated_corpus(corpus, 20, OLD)
    r = Rag(fake_settings.with_(corpus=(str(corpus),), index_dir=str(tmp_path / "idx")))
    first: list[tuple[int, int, str]] = []
    r.index(progress=lambda done, total, stage: first.append((done, total, stage)))
    assert first[-1] == (20, 20, "Embedding")
    (corpus / "doc0003.txt").write_text("Article 3\n\nThe ferry timetable changed on Friday.\n")
    again: list[tuple[int, int, str]] = []
    report = r.index(progress=lambda done, total, stage: again.append((done, total, stage)))
    assert report.updated == ["doc0003"] and again == [(1, 1, "Embedding")]
