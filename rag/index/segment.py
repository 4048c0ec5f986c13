"""Segments: the one writer of a segment's folder (``rag index``, its merges, the Ray path and the
scale bench all write through ``write_segment``), the batching writer of an indexing run, and
the readers of what earlier segments hold (for merging and for resuming an interrupted run)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from rag.config import Settings
from rag.embed.base import embed_chunks
from rag.index.dense import dense_kind, write_dense
from rag.index.layout import bm25_text, doc_hash, fsync_dir, fsync_tree, next_segment_name
from rag.index.reader import chunk_ids_of
from rag.text.chunk import chunk_document
from rag.text.dates import day_numbers
from rag.text.lexical import build_bm25, build_bm25_tokens
from rag.types import Chunk, Document

SEGMENT_TEXT_CHARS = 4_000_000  # a run writes a segment per this much new text: bounded memory...
SEGMENT_DOCS = 1_000  # ...or per this many new articles, whichever comes first: short articles' work is kept too
STORE_BATCH = 65_536  # chunk rows inserted at a time
Progress = Callable[[int, int, str], None]  # (documents done, documents in the corpus, "Embedding")


def write_segment(final: Path, docs: list[Document], chunks: Iterable[Chunk], vectors: np.ndarray | Path,
                  settings: Settings, embedded: dict | None = None, tokens: list[list[str]] | None = None,
                  timings: dict | None = None, progress: Progress | None = None) -> dict:
    """Write an immutable segment (chunk store, vectors, days, dense index, BM25) and return its
    entry for a generation's manifest. It is written beside the live index, fsynced and renamed
    into place whole; until a generation names it, it is not live.

    ``chunks`` is read once, in order (a generator keeps memory bounded); ``vectors`` is their
    matrix, or an ``.npy`` file of it that is moved into the segment. ``tokens``: the chunks' BM25
    tokens when the caller has them. With ``embedded`` (the kind of vectors and the embedder),
    ``segment.json`` records them, the settings and each document's hash, so that the next run
    can take the segment up if this one is interrupted (``resumable``). ``timings`` receives the
    seconds spent on the store, the dense index and BM25."""
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    t0 = time.perf_counter()
    n, dates, texts = _write_store(tmp / "chunks.sqlite", docs, chunks, keep_text=tokens is None)
    if isinstance(vectors, Path):
        os.replace(vectors, tmp / "vectors.npy")
    else:
        np.save(tmp / "vectors.npy", vectors)
    np.save(tmp / "days.npy", day_numbers(dates))
    t1 = time.perf_counter()
    kind = dense_kind(n, settings.ann_threshold)
    write_dense(tmp / "dense.faiss", np.load(tmp / "vectors.npy", mmap_mode="r"), kind, progress=progress)
    t2 = time.perf_counter()
    if tokens is None:
        build_bm25(texts, tmp / "bm25")
    else:
        build_bm25_tokens(tokens, tmp / "bm25")
    info = {"chunks": n, "documents": len(docs), "dense": kind, "ann": kind != "flat"}
    if embedded:
        info.update(embedded, signature=settings.index_signature(), hashes={d.doc_id: doc_hash(d) for d in docs})
    (tmp / "segment.json").write_text(json.dumps(info))
    if timings is not None:
        timings.update(store_s=t1 - t0, dense_s=t2 - t1, bm25_s=time.perf_counter() - t2, dense=kind)
    fsync_tree(tmp)
    os.replace(tmp, final)
    fsync_dir(final.parent)
    return segment_entry(final.name, info)


def segment_entry(name: str, info: dict, deleted: Iterable[str] = ()) -> dict:
    """A segment as a generation's manifest names it, from its ``segment.json``."""
    entry = {"name": name, "chunks": info["chunks"], "documents": info["documents"], "deleted": sorted(deleted),
             "dense": info["dense"]}
    return entry | ({"embedded_by": info["embedded_by"]} if info.get("embedded_by") else {})


def create_store(path: Path) -> sqlite3.Connection:
    """A new, empty chunk store (``chunks.sqlite``)."""
    db = sqlite3.connect(path)
    db.executescript(
        """
        PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;
        CREATE TABLE docs (doc_id TEXT PRIMARY KEY, title TEXT, date TEXT, source TEXT, url TEXT,
                           path TEXT, line INTEGER, n_chunks INTEGER, text TEXT);
        CREATE TABLE chunks (id INTEGER PRIMARY KEY, doc_id TEXT, start INTEGER, end INTEGER, text TEXT,
                             n_tokens INTEGER, title TEXT, date TEXT, source TEXT, url TEXT, page INTEGER);
        """
    )
    return db


def _write_store(path: Path, docs: list[Document], chunks: Iterable[Chunk],
                 keep_text: bool) -> tuple[int, list[str], list[str]]:
    """Write the chunk store; returns the number of chunks, their dates and (``keep_text``) their BM25 texts."""
    db = create_store(path)
    counts: dict[str, int] = {}
    dates: list[str] = []
    texts: list[str] = []
    insert = "INSERT INTO chunks VALUES (?,?,?,?,?,?,?,?,?,?,?)"
    try:
        rows: list[tuple] = []
        for i, c in enumerate(chunks):
            counts[c.doc_id] = counts.get(c.doc_id, 0) + 1
            dates.append(c.date)
            if keep_text:
                texts.append(bm25_text(c))
            rows.append((i, c.doc_id, c.start, c.end, c.text, c.n_tokens, c.title, c.date, c.source, c.url, c.page))
            if len(rows) == STORE_BATCH:
                db.executemany(insert, rows)
                rows = []
        db.executemany(insert, rows)
        db.executemany(
            "INSERT INTO docs VALUES (?,?,?,?,?,?,?,?,?)",
            [(d.doc_id, d.title, d.date, d.source, d.url, d.path, d.line, counts.get(d.doc_id, 0), d.text) for d in docs],
        )
        db.execute("CREATE INDEX chunks_date ON chunks(date)")
        db.commit()
    finally:
        db.close()
    return len(dates), dates, texts


def segment_full(chars: int, documents: int) -> bool:
    """Whether the new documents gathered (``documents``, of ``chars`` characters) make a segment:
    an interrupted run keeps every segment written, so one is cut per ``SEGMENT_DOCS`` articles
    however short they are, and per ``SEGMENT_TEXT_CHARS`` characters however few they are."""
    return chars >= SEGMENT_TEXT_CHARS or documents >= SEGMENT_DOCS


class SegmentWriter:
    """Collects new and changed documents and writes them as segments of bounded size,
    reporting progress in documents read from the files that changed (``total`` of them; the
    embedding of each batch spread over it): re-indexing one changed file of twenty counts its
    own documents, not the twenty."""

    def __init__(self, index_dir: Path, settings: Settings, embedder, progress: Progress | None, total: int) -> None:
        self.index_dir, self.settings, self.embedder = index_dir, settings, embedder
        self.progress, self.total = progress, total
        self.batch: list[Document] = []
        self.chars = 0
        self.read = 0  # documents read so far
        self.done = 0  # documents read and, when new, embedded
        self.segments: list[dict] = []
        self.home: dict[str, str] = {}
        self.embedded, self.embed_seconds, self.dim = 0, 0.0, 0

    def read_one(self, counted: bool = True) -> None:
        """A document kept as it is; ``counted``: it is of a file that changed (what the progress counts)."""
        if not counted:
            return
        self.read += 1
        if not self.batch:
            self.done = self.read
            self._report(self.done)

    def add(self, doc: Document) -> None:
        self.read += 1
        self.batch.append(doc)
        self.chars += len(doc.text)
        if segment_full(self.chars, len(self.batch)):
            self.flush()

    def _report(self, done: float) -> None:
        if self.progress and (int(done) % 50 == 0 or int(done) >= self.total):
            self.progress(min(int(done), self.total), max(self.total, int(done)), "Embedding")

    def flush(self) -> None:
        if not self.batch:
            return
        chunks = [c for d in self.batch for c in chunk_document(d, self.settings.chunk_tokens, self.settings.chunk_overlap)]
        start, span = self.done, self.read - self.done

        def on_embed(done: int, total: int, stage: str = "") -> None:
            if self.progress:
                self.progress(min(self.total, start + int(span * done / max(total, 1))), max(self.total, self.read),
                              "Embedding")

        t = time.perf_counter()
        vectors = embed_chunks(chunks, self.embedder, self.settings.batch_size, self.settings.title_in_embedding, on_embed)
        self.embed_seconds += time.perf_counter() - t
        self.embedded += len(chunks)
        if len(chunks):
            self.dim = vectors.shape[1]
        entry = write_segment(self.index_dir / next_segment_name(self.index_dir), self.batch, chunks, vectors,
                              self.settings, embedded={"vectors": self.embedder.vectors, "embedded_by": self.embedder.path_name})
        self.segments.append(entry)
        self.home.update({d.doc_id: entry["name"] for d in self.batch})
        self.batch, self.chars, self.done = [], 0, self.read


def load_documents(folder: Path, keep: Callable[[str], bool]) -> tuple[list[Document], list[Chunk], np.ndarray]:
    """The documents (with their text), chunks and vectors of a segment whose id ``keep`` accepts."""
    db = sqlite3.connect(f"file:{folder / 'chunks.sqlite'}?mode=ro", uri=True)
    try:
        docs = [Document(doc_id=r[0], text=r[7], title=r[1], date=r[2], source=r[3], url=r[4], path=r[5], line=r[6])
                for r in db.execute("SELECT doc_id, title, date, source, url, path, line, text FROM docs")
                if keep(r[0])]
    finally:
        db.close()
    chunks, vectors = load_chunks(folder, {d.doc_id for d in docs})
    return docs, chunks, vectors


def load_chunks(folder: Path, doc_ids: set[str]) -> tuple[list[Chunk], np.ndarray]:
    """The chunks and vectors of ``doc_ids`` in a segment."""
    db = sqlite3.connect(f"file:{folder / 'chunks.sqlite'}?mode=ro", uri=True)
    try:
        rows = [
            r for r in db.execute(
                "SELECT id, doc_id, start, end, text, n_tokens, title, date, source, url, page FROM chunks ORDER BY id"
            )
            if r[1] in doc_ids
        ]
    finally:
        db.close()
    vectors = np.load(folder / "vectors.npy", mmap_mode="r")
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    return [Chunk(*r[1:]) for r in rows], np.ascontiguousarray(vectors[ids], dtype=np.float32)


def finish_manifest(manifest: dict, segments: list[dict], index_dir: Path) -> None:
    """Fill in the totals of a generation made of ``segments``."""
    live = sum(seg["chunks"] for seg in segments) - sum(deleted_chunks(index_dir, seg) for seg in segments)
    manifest["segments"] = segments
    manifest["chunks"] = live
    largest = max(segments, key=lambda seg: seg["chunks"], default={"dense": "flat"})
    manifest["dense"] = largest["dense"]
    manifest["ann"] = any(seg["dense"] != "flat" for seg in segments)


def deleted_chunks(index_dir: Path, seg: dict) -> int:
    if not seg["deleted"]:
        return 0
    db = sqlite3.connect(f"file:{index_dir / seg['name'] / 'chunks.sqlite'}?mode=ro", uri=True)
    try:
        return len(chunk_ids_of(db, seg["deleted"]))
    finally:
        db.close()


def resumable(index_dir: Path, live: set[str], settings: Settings, vectors: str) -> dict[str, dict[str, str]]:
    """Finished segments that no generation names (an interrupted run wrote them) and that were
    written with these settings and this kind of vectors: doc_id -> {document hash: segment}."""
    out: dict[str, dict[str, str]] = {}
    for folder in sorted(index_dir.glob("seg-*")):
        if folder.name in live:
            continue
        try:
            info = json.loads((folder / "segment.json").read_text())
        except (OSError, ValueError):
            continue
        if info.get("signature") != settings.index_signature() or info.get("vectors") != vectors:
            continue
        for doc_id, h in info.get("hashes", {}).items():
            out.setdefault(doc_id, {})[h] = folder.name
    return out


def resumed_segments(index_dir: Path, resumed: dict[str, str]) -> list[dict]:
    """Manifest entries of the interrupted run's segments taken up; their documents not taken
    up (changed again since, or gone) are marked deleted."""
    out = []
    for name in sorted(set(resumed.values())):
        info = json.loads((index_dir / name / "segment.json").read_text())
        out.append(segment_entry(name, info, deleted=(d for d in info["hashes"] if resumed.get(d) != name)))
    return out
