"""BM25 top-n of the search path (MaxScore, with its read limit) against scoring every chunk.

    python eval/bm25_recall.py INDEX_DIR [--questions QUESTIONS.jsonl] [-n 200]

For each query: the share of the exact top n (by score, ties counted as equal) that the search
path returns, and its time against the exhaustive sum over every posting list. Queries: the
scale bench's 15 questions, plus up to 200 from a question file.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag.index.reader import open_index  # noqa: E402
from rag.text.lexical import bm25_tokens  # noqa: E402
from rag.tools.scale import SCALE_QUERIES  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("index_dir", type=Path)
    ap.add_argument("--questions", type=Path)
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--limit", type=int, help="BM25_READ_LIMIT to try (default: the shipped one)")
    args = ap.parse_args()
    if args.limit is not None:
        import rag.index.bm25

        rag.index.bm25.BM25_READ_LIMIT = args.limit
    queries = list(SCALE_QUERIES)
    if args.questions:
        queries += [json.loads(line)["question"] for line in args.questions.open()][:200]
    reader = open_index(args.index_dir)
    bm25 = reader.bm25
    if not hasattr(bm25, "top"):
        from rag.index.bm25 import SegmentedBM25

        bm25 = SegmentedBM25([bm25], None)
    recalls, recalls10, fast, full = [], [], [], []
    for q in queries:
        tokens = [t for t in bm25_tokens(q) if t in bm25.vocab_dict]
        if not tokens:
            continue
        bm25.top(tokens, args.n)  # the words' best scores are read once per process
        t0 = time.perf_counter()
        ids, vals, _ = bm25.top(tokens, args.n)
        t1 = time.perf_counter()
        all_ids, all_vals = bm25.postings(tokens)
        t2 = time.perf_counter()
        k = min(args.n, int((all_vals > 0).sum()))
        if k == 0:
            continue
        threshold = np.sort(all_vals)[::-1][k - 1]
        recalls.append(min(1.0, float((vals >= threshold * (1 - 1e-6)).sum()) / k))
        top10 = np.sort(all_vals)[::-1][min(10, k) - 1]
        recalls10.append(min(1.0, float((vals[:10] >= top10 * (1 - 1e-6)).sum()) / min(10, k)))
        fast.append((t1 - t0) * 1000)
        full.append((t2 - t1) * 1000)
    import rag.index.bm25

    print(json.dumps({"index": str(args.index_dir), "read_limit": rag.index.bm25.BM25_READ_LIMIT, "chunks": int(reader.n_chunks), "queries": len(recalls), "n": args.n,
                      f"bm25_recall@{args.n}": round(statistics.mean(recalls), 4),
                      "bm25_recall@10": round(statistics.mean(recalls10), 4),
                      "exact_queries": sum(r == 1.0 for r in recalls),
                      "top_p50_ms": round(statistics.median(fast), 1), "exhaustive_p50_ms": round(statistics.median(full), 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
