"""The compressed dense index (IVF-PQ): recall against exact search, filters, a real index file."""

from __future__ import annotations

import numpy as np
import pytest

from rag.index import dense
from rag.index.dense import dense_kind, ivf_lists, search_dense, write_dense


def _clustered(n: int, dim: int = 64, clusters: int = 50, seed: int = 1) -> np.ndarray:
    """Unit vectors around a few topics, like chunk embeddings (uniform noise would be too easy for no one)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    v = centres[rng.integers(0, clusters, n)] + rng.normal(0, 0.6, (n, dim))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    import faiss

    vecs = _clustered(6000)
    path = tmp_path_factory.mktemp("dense") / "dense.faiss"
    write_dense(path, vecs, "ivfpq")
    return faiss.read_index(str(path)), vecs


def test_the_kind_and_size_follow_the_corpus():
    assert dense_kind(100_000, 100_000) == "flat" and dense_kind(100_001, 100_000) == "ivfpq"
    assert ivf_lists(1_000_000) == 4096 and ivf_lists(10_000_000) == 16384 and ivf_lists(100) == 64


def test_compressed_search_finds_what_exact_search_finds(built):
    import faiss

    index, vecs = built
    assert isinstance(index, faiss.IndexIVFPQ) and index.ntotal == len(vecs)
    assert index.code_size < vecs.shape[1] * 4 / 4  # codes at least 4x smaller than the vectors
    rng = np.random.default_rng(2)
    queries = vecs[rng.choice(len(vecs), 100, replace=False)] + rng.normal(0, 0.05, (100, vecs.shape[1]))
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    truth = np.argsort(-(queries @ vecs.T), axis=1)[:, :10]
    got = [search_dense(index, lambda ids: vecs[ids], q, 10)[1] for q in queries]
    recall = np.mean([len(set(t) & set(g.tolist())) / 10 for t, g in zip(truth, got)])
    assert recall >= 0.9, recall
    scores, ids = search_dense(index, lambda ids: vecs[ids], queries[0], 10)
    assert np.allclose(scores, vecs[ids] @ queries[0], atol=1e-5)  # exact scores, best first
    assert list(scores) == sorted(scores, reverse=True)


@pytest.mark.parametrize("exact_subset", [20_000, 0])  # few allowed: exact over them; else the ID selector
def test_filters_are_applied_before_ranking(built, monkeypatch, exact_subset):
    index, vecs = built
    monkeypatch.setattr(dense, "IVF_EXACT_SUBSET", exact_subset)
    allowed = np.arange(0, len(vecs), 7, dtype=np.int64)
    q = vecs[3]  # not allowed itself
    scores, ids = search_dense(index, lambda i: vecs[i], q, 10, allowed=allowed)
    assert len(ids) == 10 and set(ids.tolist()) <= set(allowed.tolist()) and 3 not in ids
    best_allowed = allowed[np.argmax(vecs[allowed] @ q)]
    assert ids[0] == best_allowed
    assert search_dense(index, lambda i: vecs[i], q, 10, allowed=np.zeros(0, np.int64))[1].size == 0
