"""Recall of the HNSW index against exact search, on an index's own vectors.

Usage: python eval/ann_recall.py INDEX_DIR [--queries N] [--k 10]
Queries are stored chunk vectors perturbed with noise (so they are not in the index
verbatim) plus, when given, real questions embedded with the index's model.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def main() -> None:
    import faiss

    from rag.index import current_generation

    ap = argparse.ArgumentParser()
    ap.add_argument("index_dir", type=Path)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--questions", type=Path, help="JSONL with a question field, embedded as extra queries")
    args = ap.parse_args()
    gen = current_generation(args.index_dir)
    vecs = np.load(gen / "vectors.npy").astype(np.float32)
    rng = np.random.default_rng(0)
    q = vecs[rng.choice(len(vecs), args.queries, replace=False)] + rng.normal(0, 0.05, (args.queries, vecs.shape[1]))
    q = q.astype(np.float32)
    if args.questions:
        from rag.embed import get_embedder

        manifest = json.loads((gen / "manifest.json").read_text())
        emb = get_embedder(manifest["model"])
        qs = [json.loads(line)["question"] for line in args.questions.open()]
        q = np.vstack([q, emb.encode_short(qs)])
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    exact = faiss.IndexFlatIP(vecs.shape[1])
    exact.add(vecs)
    t0 = time.perf_counter()
    _, truth = exact.search(q, args.k)
    t_exact = (time.perf_counter() - t0) / len(q) * 1000
    t0 = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(vecs.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 80
    hnsw.add(vecs)
    build = time.perf_counter() - t0
    print(f"{len(vecs)} vectors, {len(q)} queries, HNSW M=32 efConstruction=80 built in {build:.1f}s")
    print(f"| efSearch | recall@{args.k} vs exact | ms/query (HNSW) | ms/query (exact) |")
    print("|---|---|---|---|")
    for ef in (32, 64, 128, 256):
        hnsw.hnsw.efSearch = ef
        t0 = time.perf_counter()
        _, got = hnsw.search(q, args.k)
        t = (time.perf_counter() - t0) / len(q) * 1000
        recall = np.mean([len(set(a) & set(b)) / args.k for a, b in zip(truth, got)])
        print(f"| {ef} | {recall:.4f} | {t:.3f} | {t_exact:.3f} |")


if __name__ == "__main__":
    main()
