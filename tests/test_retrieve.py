"""Retrieval with the fake embedder: hybrid fusion, filters, near-duplicate collapsing."""

from __future__ import annotations

import pytest

from rag import Filters, Rag, RagError
from rag.index.layout import read_documents
from rag.text.lexical import bm25_tokens

QUERY = "Araghchi offered to mediate between Kabul and Islamabad"
RETRIEVERS = ["hybrid", "dense", "bm25"]
DATES = {
    "000_22d48636f63afd97": "2018-12-31",
    "001_c821ebd9662b91de": "2019-09-17",
    "002_ddaaba1fccaf7cd5": "2022-01-10",
    "003_f068c07213cd58e5": "2019-01-23",
    "004_f1ed5df54c6c908a": "2025-11-09",
}

LIGHTHOUSE = (
    "The lighthouse keeper on Skellig island reported that the lamp failed during the gale on Friday night. "
    "Coastguard crews sailed from Portmagee at dawn with spare parts and a generator for the tower. "
    "Fishermen said the light had been dark for six hours while heavy seas battered the rocks below. "
    "Engineers from the lighthouse board will inspect the wiring and the backup batteries next week."
)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_hybrid_search_returns_k_hits_with_text_and_citation_fields(fake_rag, tmp_corpus, k):
    hits = fake_rag.search(QUERY, k=k)
    assert len(hits) == k
    assert hits[0].chunk.doc_id == "004_f1ed5df54c6c908a"
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    for h in hits:
        c = h.chunk
        assert c.text and c.title and c.source and c.date == DATES[c.doc_id]
        assert (tmp_corpus / f"{c.doc_id}.txt").read_text(encoding="utf-8")[c.start : c.end] == c.text
        assert h.dense_rank is not None or h.bm25_rank is not None  # found by at least one retriever


def test_default_k_comes_from_settings(fake_settings):
    r = Rag(fake_settings.with_(k=3))
    r.index()
    assert len(r.search(QUERY)) == 3


@pytest.mark.parametrize("retriever", RETRIEVERS)
def test_every_retriever_answers_the_same_call(fake_rag, retriever):
    hits = fake_rag.search(QUERY, k=4, retriever=retriever)
    assert 1 <= len(hits) <= 4
    assert hits[0].chunk.doc_id == "004_f1ed5df54c6c908a"
    assert len({h.chunk_id for h in hits}) == len(hits)


def test_k_larger_than_the_index_returns_every_distinct_chunk(fake_rag):
    n = fake_rag.index_reader.n_chunks
    hits = fake_rag.search("Iran", k=n + 50, retriever="dense")
    assert 0 < len(hits) <= n


def test_query_with_no_known_words_finds_nothing_in_bm25_but_dense_still_answers(fake_rag):
    assert fake_rag.search("zzzz qqqq xxxx", k=3, retriever="bm25") == []
    assert len(fake_rag.search("zzzz qqqq xxxx", k=3, retriever="hybrid")) == 3


def test_bm25_tokens_drop_stopwords_and_stem():
    tokens = bm25_tokens("The talks were mediated by the Ministers")
    assert "the" not in tokens and "by" not in tokens
    assert {"talk", "mediat", "minist"} <= set(tokens)
    assert bm25_tokens("Talks") == bm25_tokens("talk")


# ---------------------------------------------------------------- filters


@pytest.mark.parametrize("retriever", RETRIEVERS)
@pytest.mark.parametrize(
    ("since", "until"),
    [
        ("2019-01-01", ""),
        ("", "2019-01-31"),
        ("2019-01-01", "2022-12-31"),
        ("2019-09-17", "2019-09-17"),  # inclusive on both ends
    ],
)
def test_date_filters_restrict_results(fake_rag, retriever, since, until):
    hits = fake_rag.search(
        "Taliban delegation talks Iran", k=10, filters=Filters(since=since, until=until), retriever=retriever
    )
    expected = {d for d, day in DATES.items() if (not since or day >= since) and (not until or day <= until)}
    assert hits
    assert {h.chunk.doc_id for h in hits} <= expected
    for h in hits:
        assert (not since or h.chunk.date >= since) and (not until or h.chunk.date <= until)


@pytest.mark.parametrize("retriever", RETRIEVERS)
def test_source_filter_is_a_case_insensitive_substring(fake_rag, retriever):
    hits = fake_rag.search(QUERY, k=10, filters=Filters(sources=("al jazeera",)), retriever=retriever)
    assert hits and {h.chunk.doc_id for h in hits} == {"003_f068c07213cd58e5"}
    hits = fake_rag.search("Taliban", k=20, filters=Filters(sources=("anadolu", "TRENDS")), retriever=retriever)
    assert {h.chunk.doc_id for h in hits} == {"002_ddaaba1fccaf7cd5", "004_f1ed5df54c6c908a"}


@pytest.mark.parametrize("retriever", RETRIEVERS)
def test_filters_that_match_nothing_return_no_hits(fake_rag, retriever):
    assert fake_rag.search(QUERY, k=5, filters=Filters(since="2030-01-01"), retriever=retriever) == []
    assert fake_rag.search(QUERY, k=5, filters=Filters(sources=("nowhere",)), retriever=retriever) == []
    both = Filters(since="2025-01-01", sources=("al jazeera",))  # each matches, together nothing
    assert fake_rag.search(QUERY, k=5, filters=both, retriever=retriever) == []


def test_documents_without_a_date_are_excluded_by_a_date_filter(fake_settings, tmp_corpus):
    (tmp_corpus / "undated.txt").write_text("Araghchi offered to mediate between Kabul and Islamabad again.")
    r = Rag(fake_settings)
    r.index()
    assert "undated" in {h.chunk.doc_id for h in r.search(QUERY, k=10)}
    assert "undated" not in {h.chunk.doc_id for h in r.search(QUERY, k=10, filters=Filters(since="2000-01-01"))}


def test_filters_are_falsy_when_empty():
    assert not Filters()
    assert Filters(since="2020-01-01") and Filters(sources=("x",))


# ---------------------------------------------------------------- near-duplicates


@pytest.mark.parametrize("retriever", RETRIEVERS)
def test_near_duplicate_passages_are_collapsed(fake_settings, tmp_corpus, retriever):
    (tmp_corpus / "lighthouse_a.txt").write_text(LIGHTHOUSE)
    (tmp_corpus / "lighthouse_b.txt").write_text(LIGHTHOUSE.replace("Friday night", "Saturday night"))
    r = Rag(fake_settings)
    report = r.index()
    assert report.duplicates == {}  # not identical: both are indexed...
    assert {"lighthouse_a", "lighthouse_b"} <= set(read_documents(fake_settings.index_path))
    hits = r.search("lighthouse keeper Skellig lamp failed gale", k=5, retriever=retriever)
    ids = [h.chunk.doc_id for h in hits]
    assert ids[0] in ("lighthouse_a", "lighthouse_b")
    assert len({"lighthouse_a", "lighthouse_b"} & set(ids)) == 1  # ...but only one is shown
    if retriever != "bm25":  # BM25 finds only the documents that share a word with the query
        assert len(hits) == 5


def test_different_passages_of_one_topic_are_not_collapsed(fake_settings, tmp_corpus):
    sentences = LIGHTHOUSE.split(". ")
    (tmp_corpus / "part1.txt").write_text(". ".join(sentences[:2]) + ".")
    (tmp_corpus / "part2.txt").write_text(". ".join(sentences[2:]))
    r = Rag(fake_settings)
    r.index()
    ids = [h.chunk.doc_id for h in r.search("lighthouse keeper Skellig lamp lighthouse board wiring", k=5)]
    assert {"part1", "part2"} <= set(ids)


def test_unknown_retriever_name_is_an_error(fake_rag):
    with pytest.raises((RagError, ValueError, KeyError)):
        fake_rag.search(QUERY, retriever="semantic")
