"""Reading an index: a generation's segments searched as one index."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import numpy as np

from rag.errors import RagIndexError
from rag.filters import Filters
from rag.index.bm25 import SegmentedBM25
from rag.index.dense import is_ivf, search_dense
from rag.index.layout import FORMAT_VERSION, current_generation
from rag.text.dates import iso_day
from rag.text.lexical import load_bm25, make_idf
from rag.tuning import IVF_REFINE
from rag.types import Chunk


class SegmentReader:
    """One segment: its dense index in memory, vectors and BM25 memory-mapped, chunk text fetched from SQLite."""

    def __init__(self, folder: Path) -> None:
        import faiss

        self.dir = folder
        try:
            self.info = json.loads((folder / "segment.json").read_text())
            self.faiss = faiss.read_index(str(folder / "dense.faiss"))
            self.db = sqlite3.connect(f"file:{folder / 'chunks.sqlite'}?mode=ro", uri=True, check_same_thread=False)
        except (OSError, ValueError, RuntimeError, sqlite3.Error) as e:
            raise RagIndexError(f"index at {folder} is damaged ({e}); run 'python -m rag index' to rebuild") from None
        self._bm25 = None
        self._vectors = None
        self._allowed: dict[tuple, np.ndarray | None] = {}
        self._allowed_lock = threading.Lock()
        self._days: np.ndarray | None = None
        self.n_chunks = int(self.info["chunks"])

    def day_numbers(self) -> np.ndarray:
        """Each chunk's article date as a day number (0 when undated), indexed by chunk id."""
        if self._days is None:
            self._days = np.load(self.dir / "days.npy")
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


def open_index(index_dir: Path):
    """The live generation of the index in ``index_dir``."""
    gen = current_generation(index_dir)
    if gen is None:
        raise RagIndexError(f"no index in {index_dir}; run 'python -m rag index' first")
    try:
        manifest = json.loads((gen / "manifest.json").read_text())
    except (OSError, ValueError) as e:
        raise RagIndexError(f"index at {gen} is damaged ({e}); run 'python -m rag index' to rebuild") from None
    if manifest.get("format") != FORMAT_VERSION:
        raise RagIndexError(f"the index at {index_dir} was written in format {manifest.get('format')}, and this version "
                            f"reads format {FORMAT_VERSION}; run 'python -m rag index' to rebuild it")
    return IndexReader(gen, manifest)


def chunk_ids_of(db: sqlite3.Connection, doc_ids) -> np.ndarray:
    """The ids of the chunks of ``doc_ids`` in a chunk store."""
    if not doc_ids:
        return np.zeros(0, dtype=np.int64)
    rows = db.execute("SELECT id FROM chunks WHERE doc_id IN (SELECT value FROM json_each(?))",
                      (json.dumps(sorted(doc_ids)),))
    return np.fromiter((r[0] for r in rows), dtype=np.int64)


class IndexReader:
    """The live generation of an index, its segments read as one index: chunk ids run through the segments in
    order (segment i's chunk j is ``offsets[i] + j``); the chunks of deleted documents are never
    returned. BM25 scores use the IDF of the whole index, not of each segment."""

    def __init__(self, gen_dir: Path, manifest: dict) -> None:
        self.dir, self.manifest = gen_dir, manifest
        self.segments = [SegmentReader(gen_dir.parent / seg["name"]) for seg in manifest["segments"]]
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
        """The newest article date in the index (ISO), "" when no article is dated."""
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


def newest_documents(reader: IndexReader, n: int) -> list[dict]:
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
