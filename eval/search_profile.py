"""Where a hybrid search's time goes, stage by stage, on an index of any size.

    python eval/search_profile.py INDEX_DIR [--embed auto|torch|onnx|onnx-int8] [--repeats 100]

Opens the index as ``rag ask`` does (a fresh process), runs the scale bench's 15 questions
``--repeats`` times in all after one warm-up search, and prints the p50 / p95 of each stage of
``HybridRetriever.search``: the query's vector, BM25's top candidates, the dense search (FAISS
scan and, for compressed segments, the exact re-score of the shortlist), fusion and the exact
re-score of the fused pool (stored vectors and BM25 scores), and fetching the chunks' text.
The CPU is printed with the figures (int8 and SIMD kernels differ between AVX2 and AVX-512).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.embed.choose import choose_backend, get_embedder  # noqa: E402
from rag.index.layout import read_manifest  # noqa: E402
from rag.index.reader import open_index  # noqa: E402
from rag.search import retrieve  # noqa: E402
from rag.tools.bench import machine_info  # noqa: E402
from rag.tools.scale import SCALE_QUERIES  # noqa: E402

TIMES: dict[str, list[float]] = defaultdict(list)


def timed(name: str, fn):
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            TIMES[name].append((time.perf_counter() - t0) * 1000)

    return wrapper


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("index_dir", type=Path)
    ap.add_argument("--embed", default="auto")
    ap.add_argument("--model", default="all-MiniLM-L6-v2")
    ap.add_argument("--repeats", type=int, default=100)
    args = ap.parse_args()

    reader = open_index(args.index_dir)
    backend = choose_backend(args.embed, read_manifest(args.index_dir), model=args.model)
    embedder = get_embedder(args.model, "auto", backend)
    hybrid = retrieve.HybridRetriever(reader, embedder)
    hybrid.search(SCALE_QUERIES[0], 10)  # the model loaded, the files mapped
    embedder.encode_query = timed("query vector", embedder.encode_query)
    hybrid.bm25.scores = timed("BM25 top candidates", hybrid.bm25.scores)
    hybrid.dense.search = timed("dense search (FAISS + shortlist re-score)", hybrid.dense.search)
    hybrid._rescore = timed("re-score the fused pool", hybrid._rescore)
    retrieve.attach_and_collapse = timed("chunk text + near-duplicates", retrieve.attach_and_collapse)
    total = []
    for i in range(args.repeats):
        t0 = time.perf_counter()
        hybrid.search(SCALE_QUERIES[i % len(SCALE_QUERIES)], 10)
        total.append((time.perf_counter() - t0) * 1000)
    m = machine_info()
    print(f"{reader.n_chunks:,} chunks, {backend} queries; {m['cpu']} ({m['isa']}), {m['cores']} cores")
    print("| stage | p50 ms | p95 ms |\n|---|---|---|")
    for name, values in [*TIMES.items(), ("whole search", total)]:
        values = sorted(values)
        print(f"| {name} | {statistics.median(values):.1f} | {values[int(0.95 * (len(values) - 1))]:.1f} |")


if __name__ == "__main__":
    main()
