"""``python -m rag bench --scale N``: how the index behaves at N chunks, without embedding N chunks.

An index of N chunks is built from an existing index (the base: by default the one of
``--corpus``/``--index-dir``; index the shared RealTime QA data for realistic figures). Chunk i
is a base chunk drawn at random: its text, title, source and date, and its vector plus
Gaussian noise (re-normalised), so the vectors keep the cluster structure of real news and no
two are equal. The segments are written by the index's own segment writer (``rag.index.segment``:
store, dense index chosen by size, BM25) and committed as ``rag index`` commits them. Then a fresh process opens the index as ``rag ask`` would and runs
hybrid searches for real questions, reporting latency and its peak memory; dense recall@10 is
measured against exact search over all N vectors.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.config import Settings
from rag.errors import RagError
from rag.index.layout import (
    FORMAT_VERSION,
    bm25_text,
    commit,
    current_generation,
    next_segment_name,
    read_manifest,
    segment_dirs,
)
from rag.index.merge import MERGE_MAX_CHUNKS
from rag.index.reader import open_index
from rag.index.segment import finish_manifest, write_segment
from rag.text.lexical import bm25_tokens
from rag.tools.bench import DEFAULT_QUERIES, machine_info, peak_rss_mb, status_mb
from rag.tools.metrics import percentile
from rag.types import Chunk, Document

BATCH = 65_536
ARTICLE_CHUNKS = 25  # drawn chunks per synthetic article
NOISE = 0.02  # per-dimension sigma: a drawn vector keeps cosine ~0.93 to its base chunk
SCALE_QUERIES = DEFAULT_QUERIES + [
    "Who is the prime minister of the United Kingdom?", "What is the death toll of the earthquake in Turkey?",
    "Which bank collapsed in March?", "What did the Federal Reserve decide about interest rates?",
    "Who won the election in Brazil?", "Where did the hurricane make landfall?",
    "Why was the Chinese balloon shot down?", "What happened to the Titan submersible?",
    "Who was indicted by the grand jury?", "How many people were killed in the shooting?",
]


@dataclass
class Base:
    """The chunks drawn from: their vectors, store rows and BM25 tokens, read once."""

    vectors: np.ndarray
    rows: list[tuple]
    tokens: list[list[str]]

    @classmethod
    def load(cls, folders: list[Path]) -> Base:
        vectors = np.concatenate([np.load(f / "vectors.npy") for f in folders])
        if len(vectors) == 0:
            raise RagError(f"the base index at {folders[0].parent} is empty")
        rows = []
        for f in folders:
            db = sqlite3.connect(f"file:{f / 'chunks.sqlite'}?mode=ro", uri=True)
            rows += db.execute("SELECT doc_id, start, end, text, n_tokens, title, date, source, url, page FROM chunks "
                               "ORDER BY id").fetchall()
            db.close()
        return cls(vectors, rows, [bm25_tokens(bm25_text(Chunk(*r))) or ["<empty>"] for r in rows])


def build_segment(base: Base, index_dir: Path, n: int, settings: Settings, seed: int = 0,
                  log=print) -> tuple[dict, dict, list[str]]:
    """Write a segment of ``n`` chunks drawn from ``base`` into ``index_dir`` through the index's
    own segment writer; returns its manifest entry, the seconds spent on the store, the dense
    index and BM25, and the ids of its documents."""
    rng = np.random.default_rng(seed)
    n_base, dim = base.vectors.shape
    t0 = time.perf_counter()
    draw = rng.integers(0, n_base, n)
    # The vectors are drawn into an .npy file in bounded batches; the writer moves it into the segment.
    drawn = index_dir / f".drawn-{seed}.npy"
    vectors = np.lib.format.open_memmap(drawn, mode="w+", dtype=np.float32, shape=(n, dim))
    for start in range(0, n, BATCH):
        idx = draw[start:start + BATCH]
        v = base.vectors[np.sort(idx)][np.argsort(np.argsort(idx))] + rng.normal(0, NOISE, (len(idx), dim))
        vectors[start:start + len(idx)] = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
    vectors.flush()
    del vectors
    draw_s = time.perf_counter() - t0

    def chunks():  # 25 drawn chunks make a synthetic article
        for i, j in enumerate(draw):
            r = base.rows[j]
            if i % BATCH == 0:
                log(f"  drawn {min(n, i + BATCH):,}/{n:,} chunks")
            yield Chunk(f"{r[0]}~{i // ARTICLE_CHUNKS}", *r[1:])

    docs: dict[str, Document] = {}
    for i, j in enumerate(draw):
        r = base.rows[j]
        doc_id = f"{r[0]}~{i // ARTICLE_CHUNKS}"
        if doc_id not in docs:
            docs[doc_id] = Document(doc_id=doc_id, text="", title=r[5], date=r[6], source=r[7], url=r[8])
    timings: dict = {}
    entry = write_segment(index_dir / next_segment_name(index_dir), list(docs.values()), chunks(), drawn, settings,
                          tokens=[base.tokens[j] for j in draw], timings=timings,
                          progress=lambda done, total, stage: log(f"  {stage}: {done:,}/{total:,}"))
    timings["store_s"] += draw_s
    return entry, timings, list(docs)


def build_segments(base_folders: list[Path], index_dir: Path, n: int, settings: Settings, log=print,
                   origin: dict | None = None) -> dict:
    """An index of ``n`` drawn chunks as ``rag index`` holds it after merging: segments of at most
    ``MERGE_MAX_CHUNKS`` chunks, committed as one generation. Returns the summed timings."""
    base = Base.load(base_folders)
    sizes = [min(MERGE_MAX_CHUNKS, n - start) for start in range(0, n, MERGE_MAX_CHUNKS)]
    totals: dict = {"store_s": 0.0, "dense_s": 0.0, "bm25_s": 0.0, "segments": len(sizes)}
    segments, documents = [], {}
    for i, size in enumerate(sizes, 1):
        if len(sizes) > 1:
            log(f" segment {i} of {len(sizes)}")
        entry, timing, doc_ids = build_segment(base, index_dir, size, settings, seed=i, log=log)
        for key in ("store_s", "dense_s", "bm25_s"):
            totals[key] = round(totals[key] + timing[key], 1)
        totals["dense"] = timing["dense"]
        segments.append(entry)
        documents.update({d: {"hash": "", "path": "", "line": 0, "segment": entry["name"]} for d in doc_ids})
    manifest = {"format": FORMAT_VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "settings": settings.index_signature(), "model": settings.model, "dimension": int(base.vectors.shape[1]),
                "corpus": [], "duplicates": {}, "stamps": {}, "documents": len(documents), **(origin or {})}
    finish_manifest(manifest, segments, index_dir)
    commit(index_dir, manifest, documents)
    return totals


def serve_probe(index_dir: str, model: str, queries: list[str], repeats: int) -> dict:
    """In a fresh process: open the index as ``rag ask`` does, run hybrid searches; latency and peak RSS."""
    from rag.embed.choose import choose_backend, get_embedder
    from rag.search.retrieve import HybridRetriever

    reader = open_index(Path(index_dir))
    # the queries embedded by the backend that built the index, as `rag ask` embeds them
    embedder = get_embedder(model, "auto", choose_backend("auto", read_manifest(Path(index_dir)), model=model))
    retriever = HybridRetriever(reader, embedder)
    retriever.search(queries[0], 10)  # first query: loads the model and maps the files
    lat = []
    for i in range(repeats):
        t0 = time.perf_counter()
        retriever.search(queries[i % len(queries)], 10)
        lat.append((time.perf_counter() - t0) * 1000)
    parts = status_mb()
    return {"search_p50_ms": round(statistics.median(lat), 1), "search_p95_ms": round(percentile(lat, 95), 1),
            "peak_rss_mb": round(peak_rss_mb()), "rss_anon_mb": parts.get("RssAnon"), "rss_file_mb": parts.get("RssFile")}


def dense_recall(index_dir: Path, query_vecs: np.ndarray, k: int = 10) -> float:
    """Recall@k of the index's dense search against exact search over every stored vector."""
    reader = open_index(index_dir)
    best_s = np.full((len(query_vecs), k), -np.inf, np.float32)
    best_i = np.zeros((len(query_vecs), k), np.int64)
    offset = 0
    for folder in segment_dirs(reader.dir):
        vectors = np.load(folder / "vectors.npy", mmap_mode="r")
        for start in range(0, len(vectors), BATCH):  # exact, in bounded batches
            s = query_vecs @ np.asarray(vectors[start:start + BATCH], dtype=np.float32).T
            top = np.argpartition(-s, min(k, s.shape[1] - 1), axis=1)[:, :k]
            cand_s = np.concatenate([best_s, np.take_along_axis(s, top, 1)], axis=1)
            cand_i = np.concatenate([best_i, top + offset + start], axis=1)
            keep = np.argsort(-cand_s, axis=1)[:, :k]
            best_s, best_i = np.take_along_axis(cand_s, keep, 1), np.take_along_axis(cand_i, keep, 1)
        offset += len(vectors)
    hits = sum(len(set(truth.tolist()) & set(reader.dense_search(q, k)[1].tolist())) for q, truth in zip(query_vecs, best_i))
    return round(hits / (k * len(query_vecs)), 4)


def run_scale_bench(settings: Settings, n: int, work: Path | None = None, repeats: int = 100, log=print,
                    keep: bool = False) -> dict:
    """Build an index of ``n`` chunks from the index of ``settings`` and measure it; ``keep``
    leaves the built index in place (its path is logged) to be searched again."""
    from rag.embed.choose import get_embedder

    base_gen = current_generation(settings.index_path)
    if base_gen is None:
        raise RagError(f"no index at {settings.index_path} to draw chunks from; run 'python -m rag index' first")
    if n < 1:
        raise RagError("--scale must be at least 1 chunk")
    # the chunks are drawn from every segment:
    # the fewer base chunks, the more copies of each, and the more near-duplicates a search collapses
    base = segment_dirs(base_gen)
    tmp = Path(tempfile.mkdtemp(prefix="rag-scale-", dir=work))
    try:
        index_dir = tmp / "idx"
        index_dir.mkdir()
        log(f"Building an index of {n:,} chunks drawn from {base_gen} ...")
        t0 = time.perf_counter()
        # queries are then embedded by the backend that embedded the drawn chunks, as `ask` does
        built = read_manifest(settings.index_path) or {}
        origin = {"scaled_from": str(base_gen),
                  **{k: built[k] for k in ("embedding_backend", "vectors") if k in built}}
        parts = build_segments(base, index_dir, n, settings, log=log, origin=origin)
        build_s = time.perf_counter() - t0
        disk = sum(p.stat().st_size for p in index_dir.rglob("*") if p.is_file())
        log("Searching in a fresh process ...")
        probe = subprocess.run(
            [sys.executable, "-c", "import json, sys; from rag.tools.scale import serve_probe; "
             "print(json.dumps(serve_probe(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4]))))",
             str(index_dir), settings.model, json.dumps(SCALE_QUERIES), str(repeats)],
            capture_output=True, text=True)
        if probe.returncode != 0:
            raise RagError(f"the search process failed: {probe.stderr.strip()[-2000:]}")
        served = json.loads(probe.stdout.strip().splitlines()[-1])
        log("Dense recall against exact search ...")
        embedder = get_embedder(settings.model)
        rng = np.random.default_rng(1)
        picks = np.sort(rng.choice(n, min(n, 100), replace=False))
        sample = open_index(index_dir).vectors_for(picks)
        noisy = sample + rng.normal(0, 0.05, sample.shape)
        queries = np.vstack([embedder.encode_short(SCALE_QUERIES), noisy]).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        recall = dense_recall(index_dir, queries)
        return {"machine": machine_info(), "chunks": n, "build_s": round(build_s, 1), **{f"build_{k}": v for k, v in parts.items()},
                "disk_bytes": disk, "peak_rss_mb": served["peak_rss_mb"], "rss_anon_mb": served["rss_anon_mb"],
                "rss_file_mb": served["rss_file_mb"], "dense_recall@10": recall,
                "search_p50_ms": served["search_p50_ms"], "search_p95_ms": served["search_p95_ms"],
                "queries": len(SCALE_QUERIES), "repeats": repeats,
                "base_chunks": sum(int(np.load(f / "vectors.npy", mmap_mode="r").shape[0]) for f in base)}
    finally:
        if keep:
            log(f"The index is kept in {tmp / 'idx'}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def format_scale(r: dict) -> str:
    m = r["machine"]
    rows = [("machine", f"{m['cpu']} ({m.get('isa', '?')}), {m['cores']} cores, bf16: {m['cpu_bf16']}, GPU: {m['gpu']}"),
            ("chunks", f"{r['chunks']:,} (drawn from {r['base_chunks']:,} indexed chunks)"),
            ("segments", f"{r['build_segments']} of at most {MERGE_MAX_CHUNKS:,} chunks"),
            ("build", f"{r['build_s']} s (store {r['build_store_s']} s, {r['build_dense']} dense {r['build_dense_s']} s, "
                      f"BM25 {r['build_bm25_s']} s)"),
            ("on disk", f"{r['disk_bytes'] / 2**20:,.0f} MB"),
            ("peak RSS while serving", f"{r['peak_rss_mb']:,} MB"),
            ("dense recall@10 against exact", f"{r['dense_recall@10']}"),
            ("hybrid search p50 / p95", f"{r['search_p50_ms']} / {r['search_p95_ms']} ms")]
    return "\n".join(["| measure | value |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows])


def main_scale(settings: Settings, n: int, as_json: bool, work: Path | None, log, keep: bool = False) -> int:
    result = run_scale_bench(settings, n, work, log=log, keep=keep)
    print(json.dumps(result, indent=2) if as_json else format_scale(result) + "\n\n" + json.dumps(result))
    return 0
