"""Recall of the compressed dense index (IVF-PQ, ``rag/index/dense.py``) against exact search, on an
index's own vectors.

Usage: python eval/ann_recall.py INDEX_DIR [--queries N] [--k 10] [--questions Q.jsonl]

Queries are stored chunk vectors perturbed with noise (so they are not in the index
verbatim) plus, when given, real questions embedded with the index's model. For each nprobe
and refine depth it prints recall@k of the shipped search path (codes, then the best
candidates re-scored from the float vectors) and its time per query.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    import faiss

    from rag.index.dense import ivf_lists, search_dense, write_dense
    from rag.index.layout import current_generation, segment_dirs

    ap = argparse.ArgumentParser()
    ap.add_argument("index_dir", type=Path)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--questions", type=Path, help="JSONL with a question field, embedded as extra queries")
    args = ap.parse_args()
    gen = current_generation(args.index_dir)
    vecs = max((np.load(d / "vectors.npy", mmap_mode="r") for d in segment_dirs(gen)), key=len)
    rng = np.random.default_rng(0)
    q = vecs[np.sort(rng.choice(len(vecs), args.queries, replace=False))] + rng.normal(0, 0.05, (args.queries, vecs.shape[1]))
    q = q.astype(np.float32)
    if args.questions:
        from rag.embed.choose import get_embedder

        manifest = json.loads((gen / "manifest.json").read_text())
        emb = get_embedder(manifest["model"])
        qs = [json.loads(line)["question"] for line in args.questions.open()]
        q = np.vstack([q, emb.encode_short(qs)])
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    exact = faiss.IndexFlatIP(vecs.shape[1])
    exact.add(np.ascontiguousarray(vecs, dtype=np.float32))
    t0 = time.perf_counter()
    _, truth = exact.search(q, args.k)
    t_exact = (time.perf_counter() - t0) / len(q) * 1000
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        write_dense(Path(tmp) / "ivf.faiss", vecs, "ivfpq")
        build = time.perf_counter() - t0
        index = faiss.read_index(str(Path(tmp) / "ivf.faiss"))

    def vectors_for(ids: np.ndarray) -> np.ndarray:
        return np.asarray(vecs[ids], dtype=np.float32)

    print(f"{len(vecs)} vectors, {len(q)} queries, IVF{ivf_lists(len(vecs))},PQ{index.pq.M} built in {build:.1f}s")
    print(f"| nprobe | refine | recall@{args.k} vs exact | ms/query | ms/query (exact, all in RAM) |")
    print("|---|---|---|---|---|")
    for nprobe in (16, 64, 128, 256):
        for refine in (200, 400):
            t0 = time.perf_counter()
            got = [search_dense(index, vectors_for, v, args.k, nprobe=nprobe, refine=refine)[1] for v in q]
            t = (time.perf_counter() - t0) / len(q) * 1000
            recall = np.mean([len(set(a) & set(b.tolist())) / args.k for a, b in zip(truth, got)])
            print(f"| {nprobe} | {refine} | {recall:.4f} | {t:.2f} | {t_exact:.2f} |", flush=True)


if __name__ == "__main__":
    main()
