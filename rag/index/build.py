"""The on-disk index: FAISS vectors, a BM25 index and a SQLite chunk store, per generation.

Layout of an index folder::

    CURRENT              name of the live generation (replaced atomically)
    gen-000007/
        manifest.json    model, dimension, chunk settings, a content hash per document
        chunks.sqlite    chunk text, span and metadata; row id = vector row
        vectors.npy      float32 unit vectors, reused for unchanged documents
        days.npy         each chunk's article date as a day number (0 = undated)
        dense.faiss      exact (IndexFlatIP), or IVF-PQ above ann_threshold chunks (rag/index/dense.py)
        bm25/            bm25s index over the same chunks

A build writes a new generation beside the live one and only then points
CURRENT at it, so a process killed mid-build leaves the previous index answering.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rag.config import Settings
from rag.embed.models import embed_chunks, vector_kind
from rag.errors import RagIndexError
from rag.filters import Filters
from rag.index.dense import dense_kind, is_ivf, search_dense, write_dense
from rag.ingest.corpus import IngestResult, count_documents, iter_corpus, list_files
from rag.text.chunk import chunk_document
from rag.text.dates import day_numbers, iso_day
from rag.text.lexical import bm25_idf, build_bm25, load_bm25, make_idf
from rag.tuning import BM25_READ_LIMIT, IVF_REFINE
from rag.types import Chunk, Document, SkippedInput

FORMAT_VERSION = 3  # 2: chunks carry the page of a PDF; 3: CJK BM25 tokens, Markdown read as text, PDF lines joined
MAX_SEGMENTS = 8  # past this many segments, an indexing run merges the smaller ones
SEGMENT_TEXT_CHARS = 4_000_000  # a run writes a segment per this much new text (~1,000 articles): bounded memory
MERGE_MAX_CHUNKS = 1_000_000  # an automatic merge makes segments of at most about this many chunks
Progress = Callable[[int, int, str], None]  # (documents done, documents in the corpus, "Embedding")


@dataclass
class BuildReport:
    """What an indexing run did."""

    index_dir: str
    documents: int = 0
    chunks: int = 0
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    duplicates: dict[str, str] = field(default_factory=dict)
    skipped: list[SkippedInput] = field(default_factory=list)
    warnings: list[SkippedInput] = field(default_factory=list)  # inputs kept with a problem
    embedded: int = 0
    rebuilt_reason: str = ""
    changed: bool = False
    seconds: float = 0.0
    embed_seconds: float = 0.0
    ann: bool = False
    resumed: int = 0  # documents taken up from the finished segments of an interrupted run


def doc_hash(doc: Document) -> str:
    h = hashlib.sha256()
    for part in (doc.text, doc.title, doc.date, doc.source, doc.url):
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()[:32]


def text_hash(text: str) -> str:
    return hashlib.sha256(" ".join(text.split()).encode("utf-8", "surrogatepass")).hexdigest()[:32]


def bm25_text(chunk: Chunk) -> str:
    return f"{chunk.title}\n{chunk.text}" if chunk.title else chunk.text


# ---------------------------------------------------------------- reading


class IndexReader:
    """A loaded generation: search structures in memory, chunk text fetched from SQLite."""

    def __init__(self, gen_dir: Path) -> None:
        import faiss

        self.dir = gen_dir
        try:
            meta = gen_dir / "manifest.json"
            self.manifest = json.loads((meta if meta.is_file() else gen_dir / "segment.json").read_text())
            self.faiss = faiss.read_index(str(gen_dir / "dense.faiss"))
            self.db = sqlite3.connect(f"file:{gen_dir / 'chunks.sqlite'}?mode=ro", uri=True, check_same_thread=False)
        except (OSError, ValueError, RuntimeError, sqlite3.Error) as e:
            raise RagIndexError(f"index at {gen_dir} is damaged ({e}); run 'python -m rag index' to rebuild") from None
        self._bm25 = None
        self._vectors = None
        self._allowed: dict[tuple, np.ndarray | None] = {}
        self._allowed_lock = threading.Lock()
        self._days: np.ndarray | None = None
        self._idf = None
        self.n_chunks = int(self.manifest["chunks"])

    def day_numbers(self) -> np.ndarray:
        """Each chunk's article date as a day number (0 when undated), indexed by chunk id."""
        if self._days is None:
            path = self.dir / "days.npy"
            if path.exists():
                self._days = np.load(path)
            else:  # an index written before days.npy existed
                rows = self.db.execute("SELECT id, date FROM chunks ORDER BY id")
                self._days = day_numbers([date for _, date in rows])
        return self._days

    def vectors_for(self, ids: np.ndarray) -> np.ndarray:
        """The stored unit vectors of the given chunks."""
        if self._vectors is None:
            self._vectors = np.load(self.dir / "vectors.npy", mmap_mode="r")
        return np.asarray(self._vectors[ids], dtype=np.float32)

    def dense_search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None,
                     exact: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(scores, chunk ids) of the ``k`` chunks closest to ``query``, among ``allowed`` when
        given; with ``exact=False`` a compressed index gives its approximate scores."""
        refine = IVF_REFINE if exact or not is_ivf(self.faiss) else 0
        return search_dense(self.faiss, self.vectors_for, query, min(k, self.n_chunks), allowed, refine=refine)

    @property
    def bm25(self):
        if self._bm25 is None:
            self._bm25 = load_bm25(self.dir / "bm25")
        return self._bm25

    def idf(self):
        """IDF of a (stemmed) word over the indexed chunks, from the BM25 vocabulary."""
        if self._idf is None:
            self._idf = bm25_idf(self.bm25)
        return self._idf

    def newest_day(self) -> str:
        """The newest article date in the index (ISO), "" when no article is dated."""
        return iso_day(int(self.day_numbers().max(initial=0)))

    def chunks(self, ids: list[int]) -> dict[int, Chunk]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.db.execute(
            f"SELECT id, doc_id, start, end, text, n_tokens, title, date, source, url, page FROM chunks WHERE id IN ({marks})",
            [int(i) for i in ids],
        )
        return {r[0]: Chunk(*r[1:]) for r in rows}

    def allowed_ids(self, filters: Filters) -> np.ndarray | None:
        """Chunk ids that pass the filters, or None when there is no filter.

        Cached per filter: the dense and BM25 retrievers of one query both ask.
        """
        if not filters:
            return None
        with self._allowed_lock:  # the browser chat answers several sessions at once
            if filters not in self._allowed:
                if len(self._allowed) >= 8:
                    self._allowed.pop(next(iter(self._allowed)))
                self._allowed[filters] = self._query_allowed(filters)
            return self._allowed[filters]

    def _query_allowed(self, filters: Filters) -> np.ndarray:
        where, args = [], []
        if filters.since:
            where.append("date != '' AND date >= ?")
            args.append(filters.since)
        if filters.until:
            where.append("date != '' AND date <= ?")
            args.append(filters.until)
        if filters.sources:
            # Substrings match literally: % and _ are escaped, not wildcards.
            marks = " OR ".join("lower(source) LIKE ? ESCAPE '\\'" for _ in filters.sources)
            where.append(f"({marks})")
            args.extend(f"%{_like_literal(s.lower())}%" for s in filters.sources)
        rows = self.db.execute(f"SELECT id FROM chunks WHERE {' AND '.join(where)}", args)
        return np.fromiter((r[0] for r in rows), dtype=np.int64)

    def sources(self) -> list[tuple[str, int]]:
        """Every source with its number of documents, most documents first ("" = unknown)."""
        rows = self.db.execute("SELECT source, count(*) FROM docs GROUP BY source ORDER BY count(*) DESC, source")
        return [(s or "", int(c)) for s, c in rows]

    def date_range(self) -> tuple[str, str] | None:
        """The oldest and newest article dates, or None when no article is dated."""
        row = self.db.execute("SELECT min(date), max(date) FROM docs WHERE date != ''").fetchone()
        return (row[0], row[1]) if row and row[0] else None

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.dir.rglob("*") if p.is_file())

    def document(self, doc_id: str) -> dict | None:
        """An indexed document's metadata and full text (spans index into ``text``)."""
        fields = ("doc_id", "title", "date", "source", "url", "path", "n_chunks", "text")
        row = self.db.execute(f"SELECT {', '.join(fields)} FROM docs WHERE doc_id = ?", (doc_id,)).fetchone()
        return None if row is None else dict(zip(fields, row))

    def close(self) -> None:
        self.db.close()


def _like_literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def current_generation(index_dir: Path) -> Path | None:
    try:
        name = (index_dir / "CURRENT").read_text().strip()
    except OSError:
        return None
    gen = index_dir / name
    return gen if name and (gen / "manifest.json").is_file() else None


def open_index(index_dir: Path):
    """The live generation: a ``SegmentedReader``, or an ``IndexReader`` for the single-folder
    layout of indexes written before segments."""
    gen = current_generation(index_dir)
    if gen is None:
        raise RagIndexError(f"no index in {index_dir}; run 'python -m rag index' first")
    try:
        manifest = json.loads((gen / "manifest.json").read_text())
    except (OSError, ValueError) as e:
        raise RagIndexError(f"index at {gen} is damaged ({e}); run 'python -m rag index' to rebuild") from None
    return SegmentedReader(gen, manifest) if "segments" in manifest else IndexReader(gen)


def chunk_ids_of(db: sqlite3.Connection, doc_ids) -> np.ndarray:
    """The ids of the chunks of ``doc_ids`` in a chunk store."""
    if not doc_ids:
        return np.zeros(0, dtype=np.int64)
    rows = db.execute("SELECT id FROM chunks WHERE doc_id IN (SELECT value FROM json_each(?))",
                      (json.dumps(sorted(doc_ids)),))
    return np.fromiter((r[0] for r in rows), dtype=np.int64)


def segment_dirs(gen: Path) -> list[Path]:
    """The folders holding a generation's chunks: its segments, or itself (single-folder layout)."""
    manifest = json.loads((gen / "manifest.json").read_text())
    if "segments" not in manifest:
        return [gen]
    return [gen.parent / seg["name"] for seg in manifest["segments"]]


class SegmentedReader:
    """A generation made of segments, read as one index: chunk ids run through the segments in
    order (segment i's chunk j is ``offsets[i] + j``); the chunks of deleted documents are never
    returned. BM25 scores use the IDF of the whole index, not of each segment."""

    def __init__(self, gen_dir: Path, manifest: dict) -> None:
        self.dir, self.manifest = gen_dir, manifest
        self.segments = [IndexReader(gen_dir.parent / seg["name"]) for seg in manifest["segments"]]
        sizes = [s.n_chunks for s in self.segments]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.n_chunks = int(self.offsets[-1])
        self.deleted_docs = [set(seg["deleted"]) for seg in manifest["segments"]]
        self.dead = [chunk_ids_of(s.db, d) for s, d in zip(self.segments, self.deleted_docs)]  # local ids
        alive = np.ones(self.n_chunks, dtype=bool)
        for off, dead in zip(self.offsets, self.dead):
            alive[off + dead] = False
        self.alive = None if alive.all() else alive
        self._bm25 = None
        self._idf = None
        self._days: np.ndarray | None = None

    def _split(self, ids) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """(segment, positions in ``ids``, local ids) for the segments ``ids`` fall in."""
        ids = np.asarray(ids, dtype=np.int64)
        seg = np.searchsorted(self.offsets, ids, side="right") - 1
        return [(int(i), np.flatnonzero(seg == i), ids[seg == i] - self.offsets[i]) for i in np.unique(seg)]

    def day_numbers(self) -> np.ndarray:
        if self._days is None:
            days = [s.day_numbers() for s in self.segments]
            self._days = np.concatenate(days) if days else np.zeros(0, dtype=np.int32)
            if self.alive is not None:
                self._days = np.where(self.alive, self._days, 0)
        return self._days

    def vectors_for(self, ids: np.ndarray) -> np.ndarray:
        out = np.zeros((len(ids), int(self.manifest["dimension"])), dtype=np.float32)
        for i, pos, local in self._split(ids):
            out[pos] = self.segments[i].vectors_for(local)
        return out

    def dense_search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Each segment's best chunks; the compressed segments give shortlists by their codes,
        and only the best ``IVF_REFINE`` of all of them are re-scored exactly (one set of reads
        from the stored vectors, not one per segment)."""
        exact_s, exact_i, approx_s, approx_i = [], [], [], []
        for i, seg in enumerate(self.segments):
            off, end = self.offsets[i], self.offsets[i + 1]
            compressed = is_ivf(seg.faiss) and len(self.segments) > 1
            if allowed is not None:
                local = allowed[(allowed >= off) & (allowed < end)] - off
                if len(local) == 0:
                    continue
                s, j = seg.dense_search(query, max(k, IVF_REFINE) if compressed else k, local, exact=not compressed)
            else:  # deleted chunks are searched past, then dropped
                dead = self.dead[i]
                s, j = seg.dense_search(query, (max(k, IVF_REFINE) if compressed else k) + len(dead), exact=not compressed)
                if len(dead):
                    keep = ~np.isin(j, dead)
                    s, j = s[keep], j[keep]
            (approx_s if compressed else exact_s).append(s)
            (approx_i if compressed else exact_i).append(j + off)
        if approx_s:
            s, j = np.concatenate(approx_s), np.concatenate(approx_i)
            short = j[np.argsort(-s, kind="stable")[:max(k, IVF_REFINE)]]
            exact_s.append(self.vectors_for(short) @ np.asarray(query, dtype=np.float32).reshape(-1))
            exact_i.append(short)
        if not exact_s:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        s, j = np.concatenate(exact_s), np.concatenate(exact_i)
        order = np.argsort(-s, kind="stable")[:k]
        return s[order].astype(np.float32), j[order]

    @property
    def bm25(self):
        if self._bm25 is None:
            self._bm25 = SegmentedBM25([s.bm25 for s in self.segments], self.alive)
        return self._bm25

    def idf(self):
        if self._idf is None:
            self._idf = make_idf(max(1, self.n_chunks), self.bm25.df)
        return self._idf

    def newest_day(self) -> str:
        return iso_day(int(self.day_numbers().max(initial=0)))

    def chunks(self, ids: list[int]) -> dict[int, Chunk]:
        out: dict[int, Chunk] = {}
        for i, _, local in self._split(ids):
            off = int(self.offsets[i])
            out.update({off + j: c for j, c in self.segments[i].chunks([int(x) for x in local]).items()})
        return out

    def allowed_ids(self, filters: Filters) -> np.ndarray | None:
        if not filters:
            return None
        parts = [s.allowed_ids(filters) + off for s, off in zip(self.segments, self.offsets)]
        ids = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        return ids[self.alive[ids]] if self.alive is not None else ids

    def _live_docs(self, i: int, sql: str) -> list:
        """Rows of ``sql`` (over the docs table, with a ``{live}`` condition) for segment ``i``."""
        return self.segments[i].db.execute(sql.format(live="doc_id NOT IN (SELECT value FROM json_each(?))"),
                                           (json.dumps(sorted(self.deleted_docs[i])),)).fetchall()

    def sources(self) -> list[tuple[str, int]]:
        counts: dict[str, int] = {}
        for i in range(len(self.segments)):
            for s, c in self._live_docs(i, "SELECT source, count(*) FROM docs WHERE {live} GROUP BY source"):
                counts[s or ""] = counts.get(s or "", 0) + int(c)
        return sorted(counts.items(), key=lambda sc: (-sc[1], sc[0]))

    def date_range(self) -> tuple[str, str] | None:
        rows = [r for i in range(len(self.segments))
                for r in self._live_docs(i, "SELECT min(date), max(date) FROM docs WHERE date != '' AND {live}") if r[0]]
        return (min(r[0] for r in rows), max(r[1] for r in rows)) if rows else None

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for d in [self.dir, *(s.dir for s in self.segments)]
                   for p in d.rglob("*") if p.is_file())

    def document(self, doc_id: str) -> dict | None:
        for seg, deleted in zip(self.segments, self.deleted_docs):  # a live document is in one segment
            if doc_id not in deleted:
                found = seg.document(doc_id)
                if found is not None:
                    return found
        return None

    def close(self) -> None:
        for s in self.segments:
            s.close()


class SegmentedBM25:
    """The BM25 indexes of several segments answering as one: ``vocab_dict`` (the words of all),
    ``get_scores(tokens)`` over every chunk, each word's score in a segment scaled from the
    segment's IDF to the whole index's, deleted chunks at 0; ``df(word)`` over all segments."""

    def __init__(self, parts: list, alive: np.ndarray | None) -> None:
        self.parts, self.alive = parts, alive
        self.sizes = [int(p.scores["num_docs"]) for p in parts]
        self.n = sum(self.sizes)
        if len(parts) == 1:
            self.vocab_dict = parts[0].vocab_dict
        else:
            self.vocab_dict = {}
            for p in parts:
                self.vocab_dict.update(dict.fromkeys(p.vocab_dict, 0))
        self._part_idf = [bm25_idf(p) for p in parts]
        self._max: dict[tuple[int, int], float] = {}

    def df(self, term: str) -> int:
        total = 0
        for p in self.parts:
            i = p.vocab_dict.get(term)
            if i is not None:
                total += int(p.scores["indptr"][i + 1] - p.scores["indptr"][i])
        return total

    def postings(self, tokens: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(sorted global chunk ids, scores) of the live chunks holding any of ``tokens``; only
        the words' columns are read, so a query costs its postings, not the index's size."""
        lists = [one for _, word in self._columns(tokens, bounds=False) for one in word]
        ids, vals = self._add(np.zeros(0, np.int64), np.zeros(0, np.float64), lists)
        if self.alive is not None:
            live = self.alive[ids]
            ids, vals = ids[live], vals[live]
        return ids, vals.astype(np.float32)

    def _columns(self, tokens: list[str], bounds: bool = True) -> list[tuple[float, list]]:
        """Per distinct word: an upper bound of its score in any chunk (0 without ``bounds``), and
        its posting lists (offset, segment size, sorted chunk ids, scores, weight) in each segment
        holding it; the weight scales a segment's IDF to the whole index's and counts a repeated word."""
        scaled = len(self.parts) > 1 or self.alive is not None
        idf = make_idf(max(1, self.n), self.df) if scaled else None
        out = []
        for t in dict.fromkeys(tokens):
            count, lists, bound, offset = tokens.count(t), [], 0.0, 0
            for p, size, part_idf in zip(self.parts, self.sizes, self._part_idf):
                i = p.vocab_dict.get(t)
                if i is not None:
                    w = count * (idf(t) / part_idf(t) if scaled else 1.0)
                    start, end = int(p.scores["indptr"][i]), int(p.scores["indptr"][i + 1])
                    lists.append((offset, size, p.scores["indices"][start:end], p.scores["data"][start:end], w))
                    if bounds:
                        bound = max(bound, self._term_max(p, i, start, end) * w)
                offset += size
            if lists:
                out.append((bound, lists))
        return out

    @staticmethod
    def _add(ids: np.ndarray, vals: np.ndarray, lists: list) -> tuple[np.ndarray, np.ndarray]:
        """Sorted ids and summed scores of candidates (``ids``, ``vals``) and posting ``lists`` read whole."""
        all_ids = np.concatenate([ids, *(np.asarray(idx, dtype=np.int64) + off for off, _, idx, _, _ in lists)])
        all_vals = np.concatenate([vals, *(np.asarray(val, dtype=np.float64) * w for _, _, _, val, w in lists)])
        ids, inverse = np.unique(all_ids, return_inverse=True)
        return ids, np.bincount(inverse, weights=all_vals, minlength=len(ids))

    def _term_max(self, part, i: int, start: int, end: int) -> float:
        """The highest score word ``i`` gives a chunk of a segment: read from its list once, then
        remembered (a few bytes a word)."""
        key = (id(part), i)
        best = self._max.get(key)
        if best is None:
            best = self._max[key] = float(np.max(part.scores["data"][start:end])) if end > start else 0.0
        return best

    @staticmethod
    def _lookup(lists: list, ids: np.ndarray) -> np.ndarray:
        """The scores one word gives the sorted global chunk ``ids``: a binary search in its
        posting lists (which are sorted), not a read of them."""
        out = np.zeros(len(ids), dtype=np.float64)
        for offset, size, idx, val, w in lists:
            lo, hi = np.searchsorted(ids, [offset, offset + size])
            if lo == hi or not len(idx):
                continue
            local = ids[lo:hi] - offset
            pos = np.minimum(np.searchsorted(idx, local), len(idx) - 1)
            hit = np.asarray(idx[pos]) == local
            out[lo:hi][hit] += np.asarray(val[pos[hit]], dtype=np.float64) * w
        return out

    def top(self, tokens: list[str], n: int, keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, Callable]:
        """The ``n`` best live chunks for ``tokens`` (among the sorted ids ``keep`` when given):
        (ids, exact scores), best first, and ``exact(ids)`` giving any sorted ids' exact scores.

        MaxScore: the words are taken by their best score, highest (rarest) first, each read
        whole and summed into the candidates; once the n-th best candidate scores at least what
        all the words left could give a chunk, no other chunk can enter the top n, and those
        words (the common ones, with the longest lists) are only looked up for the candidates.
        Exact, unless the words left hold more than ``BM25_READ_LIMIT`` postings with n
        candidates already found: then they are looked up too (a chunk holding none of the
        words read is missed). At 10^7 chunks a query's words hold millions of postings; an
        index up to ~10^6 chunks is always exact (``eval/bm25_recall.py`` measures both)."""
        cols = sorted(self._columns(tokens), key=lambda c: -c[0])

        def exact(ids: np.ndarray) -> np.ndarray:
            total = np.zeros(len(ids), dtype=np.float64)
            for _, lists in cols:
                total += self._lookup(lists, ids)
            return total.astype(np.float32)

        remaining = float(sum(bound for bound, _ in cols))
        unread = sum(len(idx) for _, lists in cols for _, _, idx, _, _ in lists)
        ids, vals = np.zeros(0, np.int64), np.zeros(0, np.float64)
        done = 0
        for bound, lists in cols:
            if unread > BM25_READ_LIMIT and done and self._live(ids, keep).sum() >= n:
                break  # the long lists left are looked up: approximate, only at millions of postings
            remaining -= bound
            unread -= sum(len(idx) for _, _, idx, _, _ in lists)
            done += 1
            ids, vals = self._add(ids, vals, lists)
            live = self._live(ids, keep)
            if done < len(cols) and live.sum() >= n and np.partition(vals[live], -n)[-n] >= remaining:
                break
        for _, lists in cols[done:]:
            vals += self._lookup(lists, ids)
        live = self._live(ids, keep)
        ids, vals = ids[live], vals[live].astype(np.float32)
        keep_top = vals > 0
        ids, vals = ids[keep_top], vals[keep_top]
        if n < len(vals):
            part = np.argpartition(-vals, n - 1)[:n]
            ids, vals = ids[part], vals[part]
        order = np.lexsort((ids, -vals))
        return ids[order], vals[order], exact

    def _live(self, ids: np.ndarray, keep: np.ndarray | None) -> np.ndarray:
        live = self.alive[ids] if self.alive is not None else np.ones(len(ids), dtype=bool)
        if keep is not None:
            live &= np.isin(ids, keep)
        return live

    def get_scores(self, tokens: list[str]) -> np.ndarray:
        scores = np.zeros(self.n, dtype=np.float32)
        ids, vals = self.postings(tokens)
        scores[ids] = vals
        return scores


def read_documents(index_dir: Path, gen: Path | None = None) -> dict[str, dict]:
    """Every indexed document: doc_id -> {hash, path, line, segment}. Kept in the generation's
    ``documents.sqlite`` (a manifest of a million documents would be a 150 MB JSON read at every
    open); an index written before that has them in its manifest."""
    gen = gen or current_generation(index_dir)
    if gen is None:
        return {}
    path = gen / "documents.sqlite"
    if not path.is_file():
        try:
            return json.loads((gen / "manifest.json").read_text()).get("documents", {})
        except (OSError, ValueError):
            return {}
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {r[0]: {"hash": r[1], "path": r[2], "line": r[3], "segment": r[4]}
                for r in db.execute("SELECT doc_id, hash, path, line, segment FROM documents")}
    finally:
        db.close()


def _write_documents(path: Path, documents: dict[str, dict]) -> None:
    db = sqlite3.connect(path)
    try:
        db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; CREATE TABLE documents "
                         "(doc_id TEXT PRIMARY KEY, hash TEXT, path TEXT, line INTEGER, segment TEXT);")
        db.executemany("INSERT INTO documents VALUES (?,?,?,?,?)",
                       ((d, i["hash"], i["path"], i["line"], i["segment"]) for d, i in documents.items()))
        db.commit()
    finally:
        db.close()


def read_manifest(index_dir: Path) -> dict | None:
    gen = current_generation(index_dir)
    if gen is None:
        return None
    try:
        return json.loads((gen / "manifest.json").read_text())
    except (OSError, ValueError):
        return None


def embedder_for(settings: Settings):
    """The embedder for an index: the backend the settings name, else the one that built the
    index (never mixing kinds of vectors), else the machine's fastest (``choose_backend``)."""
    from rag.embed.models import choose_backend, get_embedder

    backend = choose_backend(settings.embed, read_manifest(settings.index_path), model=settings.model)
    return get_embedder(settings.model, settings.dtype, backend, settings.device)


def signature_mismatch(manifest: dict, settings: Settings, vectors: str = "") -> str:
    """Why an index cannot serve these settings ("" when it can); ``vectors``: the kind the
    embedder that would extend it writes (an index never mixes kinds)."""
    if manifest.get("format") != FORMAT_VERSION:
        return f"index format {manifest.get('format')} is not the current format {FORMAT_VERSION}"
    built = manifest.get("settings", {})
    wanted = settings.index_signature()
    diffs = [f"{k}: index has {built.get(k)!r}, settings ask for {v!r}" for k, v in wanted.items() if built.get(k) != v]
    if settings.embed != "auto":  # vectors of one kind only: float (torch, onnx) or int8 (onnx-int8)
        have, want = manifest.get("vectors", "float"), vector_kind(settings.embed)
        if have != want:
            diffs.append(f"vectors: index has {have} vectors, --embed {settings.embed} writes {want} ones")
    elif vectors and manifest.get("vectors", "float") != vectors:
        diffs.append(f"vectors: index has {manifest.get('vectors', 'float')} vectors, this machine embeds {vectors} ones")
    return "; ".join(diffs)


# ---------------------------------------------------------------- building


def file_stamps(files: list[Path]) -> dict[str, list[int]]:
    """Size and mtime of each corpus file: a cheap test of whether it may have changed."""
    out = {}
    for f in files:
        try:
            st = f.stat()
        except OSError:
            continue
        out[str(f.resolve())] = [st.st_size, st.st_mtime_ns]  # the same file however the corpus was named
    return out


def check_index_dir(index_dir: Path) -> None:
    """Fail at once, in plain words, when ``index_dir`` cannot hold an index."""
    probe = index_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        if probe == index_dir:
            raise RagIndexError(f"the index folder {index_dir} is a file, not a folder; choose another --index-dir")
        raise RagIndexError(f"cannot make the index folder {index_dir}: {probe} is a file; choose another --index-dir")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise RagIndexError(f"cannot write the index folder {index_dir}: {probe} is not writable (permission denied); "
                            "choose another --index-dir")


@contextmanager
def write_lock(index_dir: Path, wait: bool = False, log: Callable[[str], None] = lambda m: None):
    """Hold the index folder's lock; another holder is an error, or with ``wait`` is waited for."""
    check_index_dir(index_dir)
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
        fh = open(index_dir / ".lock", "w")
    except OSError as e:
        raise RagIndexError(f"cannot write to {index_dir}: {e.strerror or e}; choose another --index-dir") from None
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise RagIndexError(f"another process is indexing into {index_dir}; wait for it to finish") from None
            log(f"Another process is indexing into {index_dir}; waiting for it to finish...")
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def build_index(
    settings: Settings,
    paths: list[Path] | None = None,
    progress: Progress | None = None,
    embedder=None,
    log: Callable[[str], None] = lambda msg: None,
    on_issue: Callable[[SkippedInput, bool], None] | None = None,
    wait: bool = False,
    verify: bool = False,
    optimize: bool = False,
    ray: str = "",
    ray_workers: int = 0,
) -> BuildReport:
    """Index the settings' corpus, and ``paths`` added to it, incrementally into ``settings.index_path``.

    An index keeps every path ever indexed into it (``corpus_of``): ``paths`` add documents, and
    only documents deleted or changed in those paths are ever removed. Segments that a run
    interrupted before its end had finished (SIGKILL, Ctrl-C) are taken up by the next run
    rather than embedded again (``_resumable``).

    The index folder and its lock are checked before the corpus is read. ``on_issue(item,
    skipped)`` hears of each unreadable input (``skipped``) or input kept with a problem
    as it is found. With ``wait``, a run already holding the lock is waited for. When no file
    changed size or time since the last run, nothing is read (seconds for a million articles);
    ``verify`` reads and hashes every document anyway. ``optimize`` merges every segment into
    one (dropping deleted documents for good). ``ray`` (a cluster address, "auto", or "local")
    chunks and embeds on a Ray cluster (``rag.cluster``) with ``ray_workers`` embedders.
    """

    t0 = time.perf_counter()
    index_dir = settings.index_path
    with write_lock(index_dir, wait=wait, log=log):
        paths = corpus_of(settings, read_manifest(index_dir), paths, log)
        files = list_files(paths)
        if not ray:
            embedder = embedder or embedder_for(settings)
        if not verify and not optimize:
            unchanged = _unchanged(settings, index_dir, paths, files, t0, on_issue,
                                   "" if ray else getattr(embedder, "vectors", ""))
            if unchanged is not None:
                return unchanged
        if ray:
            from rag.index.cluster import RayEmbedderInfo

            embedder, preload = RayEmbedderInfo(settings, read_manifest(index_dir)), None
        else:
            preload = _preload_model(embedder, index_dir, files)
        try:
            return _build(settings, index_dir, paths, files, progress, embedder, log, on_issue, t0, optimize,
                          ray, ray_workers)
        finally:
            if preload is not None:
                preload.join()


def _issues(report: BuildReport) -> dict:
    """The skipped inputs and warnings of a run, as the manifest keeps them."""
    return {"skipped": [s.__dict__ for s in report.skipped], "warnings": [w.__dict__ for w in report.warnings]}


def corpus_of(settings: Settings, manifest: dict | None, paths: list[Path] | None = None,
              log: Callable[[str], None] = lambda m: None) -> list[Path]:
    """The paths an indexing run reads: the configured corpus, every path indexed into this index
    before (``rag index PATHS`` adds to it), and ``paths``, each once. A path indexed before that
    no longer exists is left out, so its documents are removed as deleted (with a note)."""
    out: dict[str, Path] = {}  # resolved path -> the path as first given
    for p in [*settings.corpus_paths, *(paths or [])]:
        out.setdefault(str(p.resolve()), p)
    for p in map(Path, (manifest or {}).get("corpus", [])):
        if str(p.resolve()) in out:
            continue
        if p.exists():
            out[str(p.resolve())] = p
        else:
            log(f"Note: {p}, indexed before, no longer exists; its documents leave the index.")
    return list(out.values())


def document_count(manifest: dict) -> int:
    """How many documents a generation holds (older manifests list them)."""
    docs = manifest.get("documents", 0)
    return docs if isinstance(docs, int) else len(docs)


def _unchanged(settings: Settings, index_dir: Path, paths: list[Path], files: list[Path], t0: float,
               on_issue, vectors: str = "") -> BuildReport | None:
    """The report of a run with nothing to do, when the index was built with these settings from
    these paths and no file changed size or modification time; None otherwise. The inputs the
    last run skipped or warned about are reported again (from the manifest)."""
    manifest = read_manifest(index_dir)
    if (manifest is None or signature_mismatch(manifest, settings, vectors)
            or sorted(set(manifest.get("corpus", []))) != sorted({str(p.resolve()) for p in paths})
            or manifest.get("stamps") != file_stamps(files)):
        return None
    if "issues" not in manifest:  # an index written before issues were kept: read the corpus once
        return None
    documents = document_count(manifest)
    skipped = [SkippedInput(**s) for s in manifest["issues"]["skipped"]]
    warnings = [SkippedInput(**w) for w in manifest["issues"]["warnings"]]
    if on_issue is not None:
        for item in skipped:
            on_issue(item, True)
        for item in warnings:
            on_issue(item, False)
    return BuildReport(index_dir=str(index_dir), documents=documents, chunks=int(manifest["chunks"]),
                       unchanged=documents, duplicates=dict(manifest.get("duplicates", {})), skipped=skipped,
                       warnings=warnings, ann=bool(manifest.get("ann")), seconds=time.perf_counter() - t0)


def _preload_model(embedder, index_dir: Path, files: list[Path]) -> threading.Thread | None:
    """Load the model (seconds of imports) while the corpus is read, when embedding looks likely."""
    manifest = read_manifest(index_dir)
    if manifest is not None and manifest.get("stamps") == file_stamps(files):
        return None
    warm = getattr(embedder, "warm", None)
    if warm is None:
        return None
    thread = threading.Thread(target=_quietly(warm), name="rag-model-preload", daemon=True)
    thread.start()
    return thread


def _quietly(fn: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        try:
            fn()
        except Exception:  # noqa: BLE001 - the same error surfaces when the model is used
            pass

    return run


def _build(settings: Settings, index_dir: Path, paths: list[Path], files: list[Path], progress: Progress | None,
           embedder, log: Callable[[str], None], on_issue, t0: float, optimize: bool = False, ray: str = "",
           ray_workers: int = 0) -> BuildReport:
    """Read the corpus one document at a time; new and changed documents are chunked, embedded
    and written as segments of at most ``SEGMENT_TEXT_CHARS`` characters of text, so memory
    does not grow with the corpus. Nothing is live until the generation naming them is committed."""
    if len(files) > 1 or any(f.name.lower().endswith((".jsonl", ".jsonl.gz")) for f in files):
        log(f"Reading {len(files)} file{'s' if len(files) != 1 else ''}...")
    ingested = IngestResult(files=files)
    report = BuildReport(index_dir=str(index_dir), skipped=ingested.skipped, warnings=ingested.warnings)
    old_gen = current_generation(index_dir)
    old_manifest = json.loads((old_gen / "manifest.json").read_text()) if old_gen else None
    if old_manifest is not None:
        report.rebuilt_reason = signature_mismatch(old_manifest, settings, getattr(embedder, "vectors", ""))
        if report.rebuilt_reason:
            log(f"Rebuilding the index: it was built with other settings ({report.rebuilt_reason}).")
            old_manifest, old_gen = None, None
    old_docs: dict[str, dict] = read_documents(index_dir, old_gen) if old_manifest else {}
    segmented = old_manifest is not None and "segments" in old_manifest

    total = count_documents(files) if progress else 0
    if ray:
        from rag.index.cluster import RaySegmentWriter

        writer = RaySegmentWriter(index_dir, settings, embedder, progress, total, ray, ray_workers, log,
                                  _write_segment, _next_segment_name, SEGMENT_TEXT_CHARS)
    else:
        writer = _SegmentWriter(index_dir, settings, embedder, progress, total)
    meta: dict[str, dict] = {}  # doc_id -> hash, path, line of every document kept
    seen_text: dict[str, str] = {}
    reuse: set[str] = set()
    live = {seg["name"] for seg in old_manifest.get("segments", [])} if old_manifest else set()
    finished = {} if ray else _resumable(index_dir, live, settings, getattr(embedder, "vectors", "float"))
    resumed: dict[str, str] = {}  # doc_id -> the finished segment of an interrupted run holding it
    for d in iter_corpus(paths, ingested, on_issue):
        th = text_hash(d.text)
        if th in seen_text:
            report.duplicates[d.doc_id] = seen_text[th]
            writer.read_one()
            continue
        seen_text[th] = d.doc_id
        meta[d.doc_id] = {"hash": doc_hash(d), "path": d.path, "line": d.line}
        if old_docs.get(d.doc_id, {}).get("hash") == meta[d.doc_id]["hash"]:
            reuse.add(d.doc_id)
            writer.read_one()
        elif meta[d.doc_id]["hash"] in finished.get(d.doc_id, {}):
            resumed[d.doc_id] = finished[d.doc_id][meta[d.doc_id]["hash"]]
            writer.read_one()
        else:
            writer.add(d)
    writer.flush()
    report.resumed = len(resumed)
    if resumed:
        log(f"Resumed: {len(resumed)} documents embedded by an interrupted run were kept.")
    stamps = file_stamps(ingested.files)
    report.documents = len(meta)
    report.removed = sorted(set(old_docs) - set(meta))
    report.unchanged = len(reuse)
    report.added = [i for i in meta if i not in old_docs]
    report.updated = [i for i in meta if i in old_docs and i not in reuse]
    report.changed = bool(report.added or report.updated or report.removed) or old_gen is None or optimize
    report.embedded, report.embed_seconds = writer.embedded, writer.embed_seconds
    if not report.changed:
        report.chunks = int(old_manifest["chunks"])
        report.ann = bool(old_manifest.get("ann"))
        if (old_manifest.get("duplicates") != report.duplicates or old_manifest.get("stamps") != stamps
                or old_manifest.get("issues") != _issues(report)):
            _rewrite_manifest(old_gen, {"duplicates": report.duplicates, "stamps": stamps, "issues": _issues(report)})
        report.seconds = time.perf_counter() - t0
        return report

    dim = writer.dim or (old_manifest["dimension"] if old_manifest else embedder.dim)
    manifest = {
        "format": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": settings.index_signature(),
        "model": settings.model,
        "dimension": int(dim),
        "embedding_dtype": getattr(embedder, "dtype", "float32"),
        "embedding_backend": getattr(embedder, "backend", "torch"),
        "embedding_path": getattr(embedder, "path_name", getattr(embedder, "name", "")),
        "vectors": getattr(embedder, "vectors", "float"),
        "corpus": [str(p.resolve()) for p in paths],
        "duplicates": report.duplicates,
        "stamps": stamps,
        "issues": _issues(report),
    }
    home = dict(writer.home)
    if segmented:
        # Lucene's way: the new and changed documents are the new segments; the old versions of
        # changed and removed documents are marked deleted in theirs. Nothing else is rewritten.
        segments = [dict(seg, deleted=list(seg["deleted"])) for seg in old_manifest["segments"]]
        by_name = {seg["name"]: seg for seg in segments}
        for doc_id in report.updated + report.removed:
            by_name[old_docs[doc_id]["segment"]]["deleted"].append(doc_id)
        home.update({doc_id: old_docs[doc_id]["segment"] for doc_id in reuse})
    else:
        # A first build, a rebuild, or an index of the single-folder layout, whose unchanged
        # documents are carried over (with their vectors) as one segment.
        segments = []
        if reuse:
            name = _next_segment_name(index_dir)
            kept_docs, kept_chunks, kept_vecs = _load_documents(old_gen, reuse.__contains__)
            _write_segment(index_dir / name, kept_docs, kept_chunks, kept_vecs, settings)
            segments.append({"name": name, "chunks": len(kept_chunks), "documents": len(reuse),
                             "deleted": []})
            home.update(dict.fromkeys(reuse, name))
    segments += _resumed_segments(index_dir, resumed)
    home.update(resumed)
    segments += writer.segments
    segments = [seg for seg in segments if seg["documents"] > len(seg["deleted"])]
    if optimize or len(segments) > MAX_SEGMENTS:
        segments, home = _merge(index_dir, segments, home, settings, log, everything=optimize)
    manifest["documents"] = len(meta)  # the list itself: documents.sqlite (read_documents)
    for doc_id, info in meta.items():
        info["segment"] = home[doc_id]
    _finish_manifest(manifest, segments, index_dir)
    report.chunks, report.ann = manifest["chunks"], manifest["ann"]
    _commit(index_dir, manifest, meta)
    report.seconds = time.perf_counter() - t0
    return report


class _SegmentWriter:
    """Collects new and changed documents and writes them as segments of bounded size,
    reporting progress in documents read (with the embedding of each batch spread over it)."""

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

    def read_one(self) -> None:
        self.read += 1
        if not self.batch:
            self.done = self.read
            self._report(self.done)

    def add(self, doc: Document) -> None:
        self.read += 1
        self.batch.append(doc)
        self.chars += len(doc.text)
        if self.chars >= SEGMENT_TEXT_CHARS:
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
        name = _next_segment_name(self.index_dir)
        embedded_by = getattr(self.embedder, "path_name", getattr(self.embedder, "name", ""))
        _write_segment(self.index_dir / name, self.batch, chunks, vectors, self.settings,
                       {"vectors": getattr(self.embedder, "vectors", "float"), "embedded_by": embedded_by})
        self.segments.append({"name": name, "chunks": len(chunks), "documents": len(self.batch), "deleted": [],
                              "embedded_by": embedded_by})
        self.home.update({d.doc_id: name for d in self.batch})
        self.batch, self.chars, self.done = [], 0, self.read


def _load_documents(folder: Path, keep: Callable[[str], bool]) -> tuple[list[Document], list[Chunk], np.ndarray]:
    """The documents (with their text), chunks and vectors of a segment (or an index of the
    single-folder layout) whose id ``keep`` accepts."""
    db = sqlite3.connect(f"file:{folder / 'chunks.sqlite'}?mode=ro", uri=True)
    try:
        docs = [Document(doc_id=r[0], text=r[7], title=r[1], date=r[2], source=r[3], url=r[4], path=r[5], line=r[6])
                for r in db.execute("SELECT doc_id, title, date, source, url, path, line, text FROM docs")
                if keep(r[0])]
    finally:
        db.close()
    chunks, vectors = _load_reused(folder, {d.doc_id for d in docs})
    return docs, chunks, vectors


def _finish_manifest(manifest: dict, segments: list[dict], index_dir: Path) -> None:
    """Fill in the totals of a generation made of ``segments``."""
    for seg in segments:
        seg.setdefault("dense", json.loads((index_dir / seg["name"] / "segment.json").read_text())["dense"])
    live = sum(seg["chunks"] for seg in segments) - sum(_deleted_chunks(index_dir, seg) for seg in segments)
    manifest["segments"] = segments
    manifest["chunks"] = live
    largest = max(segments, key=lambda seg: seg["chunks"], default={"dense": "flat"})
    manifest["dense"] = largest["dense"]
    manifest["ann"] = any(seg["dense"] != "flat" for seg in segments)


def _deleted_chunks(index_dir: Path, seg: dict) -> int:
    if not seg["deleted"]:
        return 0
    db = sqlite3.connect(f"file:{index_dir / seg['name'] / 'chunks.sqlite'}?mode=ro", uri=True)
    try:
        return len(chunk_ids_of(db, seg["deleted"]))
    finally:
        db.close()


def _resumable(index_dir: Path, live: set[str], settings: Settings, vectors: str) -> dict[str, dict[str, str]]:
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


def _resumed_segments(index_dir: Path, resumed: dict[str, str]) -> list[dict]:
    """Manifest entries of the interrupted run's segments taken up; their documents not taken
    up (changed again since, or gone) are marked deleted."""
    out = []
    for name in sorted(set(resumed.values())):
        info = json.loads((index_dir / name / "segment.json").read_text())
        deleted = sorted(d for d in info["hashes"] if resumed.get(d) != name)
        out.append({"name": name, "chunks": info["chunks"], "documents": info["documents"], "deleted": deleted,
                    "embedded_by": info.get("embedded_by", "")})
    return out


def _next_segment_name(index_dir: Path) -> str:
    """A segment name never used in this folder (an abandoned one from a killed run included)."""
    numbers = [int(m.group(1)) for p in index_dir.iterdir() if (m := re.match(r"(?:\.tmp-)?seg-(\d+)", p.name))]
    return f"seg-{max(numbers, default=0) + 1:06d}"


def _merge(index_dir: Path, segments: list[dict], home: dict[str, str], settings: Settings, log,
           everything: bool) -> tuple[list[dict], dict[str, str]]:
    """Merge segments into one, leaving deleted documents out: every segment with ``everything``
    (``index --optimize``); else the smallest, up to ``MERGE_MAX_CHUNKS`` together (memory stays
    bounded), never the largest unless a fifth of it is deleted."""
    if everything:
        merged = list(segments)
    else:
        ordered = sorted(segments, key=lambda seg: seg["chunks"])
        largest = ordered[-1] if ordered else None
        if largest is not None and len(largest["deleted"]) * 5 <= largest["documents"]:
            ordered = ordered[:-1]
        merged, total = [], 0
        for seg in ordered:
            if merged and total + seg["chunks"] > MERGE_MAX_CHUNKS:
                break
            merged.append(seg)
            total += seg["chunks"]
    if len(merged) < 2 and not (everything and merged and merged[0]["deleted"]):
        return segments, home
    keep = [seg for seg in segments if seg not in merged]
    log(f"Merging {len(merged)} segments...")
    docs: list[Document] = []
    chunks: list[Chunk] = []
    vecs = []
    for seg in merged:
        live, kept, vectors = _load_documents(index_dir / seg["name"], lambda doc_id, gone=set(seg["deleted"]): doc_id not in gone)
        docs += live
        chunks += kept
        vecs.append(vectors)
    name = _next_segment_name(index_dir)
    _write_segment(index_dir / name, docs, chunks, np.concatenate(vecs), settings)
    home = {**home, **{d.doc_id: name for d in docs}}
    paths = sorted({seg["embedded_by"] for seg in merged if seg.get("embedded_by")})
    return keep + [{"name": name, "chunks": len(chunks), "documents": len(docs), "deleted": [],
                    **({"embedded_by": ", ".join(paths)} if paths else {})}], home


def _load_reused(folder: Path, doc_ids: set[str]) -> tuple[list[Chunk], np.ndarray]:
    """The chunks and vectors of ``doc_ids`` in a segment (or an index of the single-folder layout)."""
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


def _write_segment(final: Path, docs: list[Document], chunks: list[Chunk], vectors: np.ndarray,
                   settings: Settings, embedded: dict | None = None) -> None:
    """Write an immutable segment: chunk store, vectors, days, dense index, BM25. It is written
    beside the live index and renamed into place whole; until a generation names it, it is not
    live (a killed run leaves the previous generation answering). With ``embedded`` (the kind of
    vectors and the embedder), its ``segment.json`` records them, the settings and each
    document's hash, so that the next run can take it up when this one is interrupted before
    its end (``_resumable``)."""
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    kind = dense_kind(len(chunks), settings.ann_threshold)
    _write_sqlite(tmp / "chunks.sqlite", docs, chunks)
    np.save(tmp / "vectors.npy", vectors)
    np.save(tmp / "days.npy", day_numbers([c.date for c in chunks]))
    write_dense(tmp / "dense.faiss", np.load(tmp / "vectors.npy", mmap_mode="r"), kind)
    build_bm25([bm25_text(c) for c in chunks], tmp / "bm25")
    info = {"chunks": len(chunks), "documents": len(docs), "dense": kind, "ann": kind != "flat"}
    if embedded:
        info.update(embedded, signature=settings.index_signature(), hashes={d.doc_id: doc_hash(d) for d in docs})
    (tmp / "segment.json").write_text(json.dumps(info))
    _fsync_tree(tmp)
    os.replace(tmp, final)
    _fsync_dir(final.parent)


def _commit(index_dir: Path, manifest: dict, documents: dict[str, dict]) -> None:
    """Make ``manifest`` (and the segments it names) the live index: a new generation folder,
    then the ``CURRENT`` pointer swapped atomically; then what nothing names is removed."""
    old = current_generation(index_dir)
    n = int(old.name.split("-")[1]) + 1 if old else 1
    final = index_dir / f"gen-{n:06d}"
    tmp = index_dir / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
    _write_documents(tmp / "documents.sqlite", documents)
    _fsync_tree(tmp)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    pointer = index_dir / ".CURRENT.tmp"
    pointer.write_text(final.name + "\n")
    with open(pointer) as fh:
        os.fsync(fh.fileno())
    os.replace(pointer, index_dir / "CURRENT")
    _fsync_dir(index_dir)
    # Older generations, segments no generation names and abandoned temporary folders are garbage now.
    live = {seg["name"] for seg in manifest["segments"]}
    for p in index_dir.iterdir():
        if p.is_dir() and p != final and (p.name.startswith(("gen-", ".tmp-"))
                                          or (p.name.startswith("seg-") and p.name not in live)):
            shutil.rmtree(p, ignore_errors=True)


def create_store(path: Path) -> sqlite3.Connection:
    """A new, empty chunk store (``chunks.sqlite``) of a generation being written."""
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


def _write_sqlite(path: Path, docs: list[Document], chunks: list[Chunk]) -> None:
    db = create_store(path)
    try:
        counts: dict[str, int] = {}
        for c in chunks:
            counts[c.doc_id] = counts.get(c.doc_id, 0) + 1
        db.executemany(
            "INSERT INTO docs VALUES (?,?,?,?,?,?,?,?,?)",
            [(d.doc_id, d.title, d.date, d.source, d.url, d.path, d.line, counts.get(d.doc_id, 0), d.text) for d in docs],
        )
        db.executemany(
            "INSERT INTO chunks VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            [(i, c.doc_id, c.start, c.end, c.text, c.n_tokens, c.title, c.date, c.source, c.url, c.page)
             for i, c in enumerate(chunks)],
        )
        db.execute("CREATE INDEX chunks_date ON chunks(date)")
        db.commit()
    finally:
        db.close()


def _rewrite_manifest(gen: Path, changes: dict) -> None:
    path = gen / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, path)


def _fsync_tree(root: Path) -> None:
    for p in root.rglob("*"):
        if p.is_file():
            with open(p, "rb") as fh:
                os.fsync(fh.fileno())
    _fsync_dir(root)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def indexing_in_progress(index_dir: Path) -> bool:
    """True when another indexing run holds ``index_dir``'s lock; only looks (takes no lock, creates nothing)."""
    try:
        fd = os.open(Path(index_dir) / ".lock", os.O_RDONLY)
    except OSError:  # no lock file: no run has started here
        return False
    try:
        # A shared lock conflicts only with a writer's exclusive one, never with another probe.
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # closing releases a shared lock taken above
    return False


def newest_documents(reader: IndexReader | SegmentedReader, n: int) -> list[dict]:
    """Up to ``n`` live documents of ``reader``, newest article date first (undated ones last):
    ``{doc_id, title, date, source}`` each. Reads the dates of the chunks and a few chunks' rows."""
    days = reader.day_numbers()
    if n <= 0 or not len(days):
        return []
    depth = min(len(days), 64 * n)  # chunks of the same articles crowd the top
    ids = np.argpartition(-days.astype(np.int64), depth - 1)[:depth]
    ids = ids[np.lexsort((-ids, -days[ids].astype(np.int64)))]  # newest first, then the latest indexed
    chunks = reader.chunks([int(i) for i in ids])
    found: dict[str, dict] = {}
    for i in ids:
        c = chunks.get(int(i))
        if c is None or c.doc_id in found:
            continue
        if reader.document(c.doc_id) is None:  # a deleted document's chunk (dated 0, like an undated one)
            continue
        found[c.doc_id] = {"doc_id": c.doc_id, "title": c.title, "date": c.date, "source": c.source}
        if len(found) == n:
            break
    return list(found.values())
