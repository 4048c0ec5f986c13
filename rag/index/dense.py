"""Dense vector search: exact up to ``Settings.ann_threshold`` chunks, compressed above it.

- **flat** (``IndexFlatIP``): every vector in RAM, exact. 100,000 chunks take 150 MB.
- **ivfpq** (``IndexIVFPQ``): vectors grouped into ``ivf_lists(n)`` k-means cells and stored as
  ``IVF_PQ_BYTES``-byte product-quantised codes (48 bytes instead of 1,536), so a million chunks
  take about 60 MB of RAM. A search visits the nearest 1/``IVF_NPROBE_SHARE`` of the cells, takes the
  ``IVF_REFINE`` best candidates by their codes, and re-scores them exactly from the float
  vectors, which stay on disk (``vectors.npy``, memory-mapped: only the rows read are loaded).
  Filters by date or source restrict the search with a FAISS ID selector; a filter that leaves
  few chunks is answered exactly over those chunks instead.

An index written before IVF-PQ existed may hold HNSW; it is still searched.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rag.tuning import IVF_EXACT_SUBSET, IVF_NPROBE_SHARE, IVF_PQ_BYTES, IVF_REFINE, IVF_TRAIN_PER_LIST

ADD_BATCH = 65_536  # vectors added to the compressed index at a time (bounded memory)


def dense_kind(n_chunks: int, ann_threshold: int) -> str:
    """"flat" up to ``ann_threshold`` chunks, "ivfpq" above."""
    return "ivfpq" if n_chunks > ann_threshold else "flat"


def ivf_lists(n: int) -> int:
    """Number of k-means cells for ``n`` vectors: about 4 sqrt(n), a power of two (1M: 4,096)."""
    return int(2 ** round(math.log2(max(64.0, 4 * math.sqrt(max(n, 1))))))


def write_dense(path: Path, vectors: np.ndarray, kind: str, progress: Callable[[int, int, str], None] | None = None,
                seed: int = 0) -> None:
    """Write the dense index of ``vectors`` (unit float32 rows; may be memory-mapped) to ``path``."""
    import faiss

    n, dim = vectors.shape
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
        if n:
            index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        faiss.write_index(index, str(path))
        return
    if kind != "ivfpq":
        raise ValueError(f"unknown dense index kind {kind!r}")
    # a small index (tests, a low threshold) gets fewer cells and shorter codes, so that each
    # k-means has enough training vectors
    nlist = max(1, min(ivf_lists(n), n // IVF_TRAIN_PER_LIST))
    n_train = min(n, nlist * IVF_TRAIN_PER_LIST if n > 65_536 else n)
    nbits = max(1, min(8, int(math.log2(max(n_train, 2)))))
    m = max(x for x in range(1, min(dim, IVF_PQ_BYTES) + 1) if dim % x == 0)  # sub-vectors must split dim evenly
    index = faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, nlist, m, nbits, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, n_train, replace=False))  # sorted: a memory-mapped file is read in order
    if progress:
        progress(0, n, "Training the compressed index")
    index.train(np.ascontiguousarray(vectors[sample], dtype=np.float32))
    for start in range(0, n, ADD_BATCH):
        index.add(np.ascontiguousarray(vectors[start:start + ADD_BATCH], dtype=np.float32))
        if progress:
            progress(min(n, start + ADD_BATCH), n, "Compressing vectors")
    faiss.write_index(index, str(path))


def is_ivf(index) -> bool:
    import faiss

    return isinstance(index, faiss.IndexIVF)


def search_dense(index, vectors_for: Callable[[np.ndarray], np.ndarray], query: np.ndarray, k: int,
                 allowed: np.ndarray | None = None, nprobe: int = 0,
                 refine: int = IVF_REFINE) -> tuple[np.ndarray, np.ndarray]:
    """(scores, ids) of the ``k`` chunks closest to ``query`` (a unit vector), best first, among
    ``allowed`` chunk ids when given. ``vectors_for(ids)`` returns the stored float vectors.
    ``refine=0``: the compressed index's own (approximate) scores, for a caller that re-scores
    a shortlist gathered from several indexes."""
    import faiss

    q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
    if allowed is not None and len(allowed) == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    if not is_ivf(index):
        params = None
        if allowed is not None:
            sel = faiss.IDSelectorBatch(allowed)
            params = (faiss.SearchParametersHNSW(sel=sel, efSearch=max(128, k)) if isinstance(index, faiss.IndexHNSW)
                      else faiss.SearchParameters(sel=sel))
        scores, ids = index.search(q, min(k, index.ntotal), params=params)
        keep = ids[0] >= 0
        return scores[0][keep], ids[0][keep].astype(np.int64)
    if allowed is not None and len(allowed) <= IVF_EXACT_SUBSET:  # few chunks pass the filter: exact over them
        return _top(vectors_for(allowed) @ q[0], allowed, k)
    nprobe = nprobe or max(32, index.nlist // IVF_NPROBE_SHARE)
    params = faiss.SearchParametersIVF(nprobe=nprobe, sel=faiss.IDSelectorBatch(allowed) if allowed is not None else None)
    approx, ids = index.search(q, max(k, refine), params=params)
    if not refine:
        keep = ids[0] >= 0
        return approx[0][keep], ids[0][keep].astype(np.int64)
    ids = ids[0][ids[0] >= 0].astype(np.int64)
    if len(ids) == 0:
        return np.zeros(0, np.float32), ids
    return _top(vectors_for(ids) @ q[0], ids, k)


def _top(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    k = min(k, len(ids))
    part = np.argpartition(-scores, k - 1)[:k] if k < len(ids) else np.arange(len(ids))
    order = part[np.argsort(-scores[part], kind="stable")]
    return scores[order].astype(np.float32), ids[order]
