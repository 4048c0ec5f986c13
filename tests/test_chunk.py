"""Chunking: token budget, exact spans, sentence boundaries, overlap."""

from __future__ import annotations

import hashlib
import random

import pytest

from rag.config import DEFAULT_CORPUS
from rag.ingest.corpus import read_corpus
from rag.text.chunk import chunk_document, count_tokens, sentence_spans
from rag.types import Document

SETTINGS = [(128, 32), (64, 16), (32, 8), (16, 0)]


@pytest.fixture(scope="module")
def corpus_docs() -> list[Document]:
    return read_corpus([DEFAULT_CORPUS]).documents


def synthetic(seed: int = 7, n: int = 120, sep: str = " ", max_words: int = 25) -> Document:
    """Random sentences of 3 to ``max_words`` words (a word is one token), joined by ``sep``."""
    rng = random.Random(seed)
    words = "the harbour council ferry storm boats repairs mainland officials said breakwater weather".split()
    sentences = [
        " ".join(rng.choice(words) for _ in range(rng.randint(3, max_words))).capitalize() + rng.choice(".!?")
        for _ in range(n)
    ]
    return Document("synthetic", sep.join(sentences), title="Synthetic")


def all_docs(corpus_docs: list[Document]) -> list[Document]:
    return [*corpus_docs, synthetic(), synthetic(8, sep="\n\n"), synthetic(9, sep="\n")]


def sentence_of(n_tokens: int, word: str) -> str:
    """A sentence of exactly ``n_tokens`` cl100k tokens ("The word word ... word.")."""
    s = "The " + " ".join([word] * (n_tokens - 2)) + "."
    assert count_tokens(s) == n_tokens
    return s


@pytest.mark.parametrize(("max_tokens", "overlap"), SETTINGS)
def test_chunks_respect_the_token_budget(corpus_docs, max_tokens, overlap):
    for doc in all_docs(corpus_docs):
        chunks = chunk_document(doc, max_tokens, overlap)
        assert chunks
        for c in chunks:
            assert count_tokens(c.text) <= max_tokens, (doc.doc_id, c.text)
            assert c.n_tokens <= max_tokens


@pytest.mark.parametrize(("max_tokens", "overlap"), SETTINGS)
def test_chunk_text_is_the_exact_document_span_with_metadata(corpus_docs, max_tokens, overlap):
    for doc in all_docs(corpus_docs):
        for c in chunk_document(doc, max_tokens, overlap):
            assert c.text == doc.text[c.start : c.end]
            assert c.text == c.text.strip() and c.text
            assert (c.doc_id, c.title, c.date, c.source) == (doc.doc_id, doc.title, doc.date, doc.source)


@pytest.mark.parametrize(("max_tokens", "overlap"), SETTINGS)
def test_chunks_cover_the_whole_document_in_order(corpus_docs, max_tokens, overlap):
    for doc in all_docs(corpus_docs):
        chunks = chunk_document(doc, max_tokens, overlap)
        assert chunks[0].start == len(doc.text) - len(doc.text.lstrip())
        assert chunks[-1].end == len(doc.text.rstrip())
        for a, b in zip(chunks, chunks[1:]):
            assert a.start < b.start and a.end <= b.end
            assert not doc.text[a.end : b.start].strip()  # nothing between two chunks is lost


@pytest.mark.parametrize(("max_tokens", "overlap"), [(128, 32), (64, 16), (32, 8)])
def test_chunks_cut_on_sentence_boundaries(corpus_docs, max_tokens, overlap):
    for doc in [synthetic(n=80), synthetic(3, n=80, sep="\n\n")]:  # sentences all shorter than 32 tokens
        starts = {s for s, _ in sentence_spans(doc.text)}
        for c in chunk_document(doc, max_tokens, overlap):
            assert c.text[-1] in ".!?", c.text[-40:]
            assert c.start in starts
    # Real articles: a chunk starts at a sentence start and ends at a sentence end, unless
    # it cuts a sentence that alone is over the budget (and so must be split on words).
    for doc in corpus_docs:
        spans = sentence_spans(doc.text)
        starts, ends = {s for s, _ in spans}, {e for _, e in spans}
        too_long = [(s, e) for s, e in spans if count_tokens(doc.text[s:e]) > max_tokens]

        def inside_long(pos: int, too_long=too_long) -> bool:
            return any(s <= pos <= e for s, e in too_long)

        for c in chunk_document(doc, max_tokens, overlap):
            assert c.start in starts or inside_long(c.start), c.text[:60]
            assert c.end in ends or inside_long(c.end), c.text[-60:]


def test_consecutive_chunks_overlap_when_overlap_is_set():
    doc = synthetic(max_words=10)  # every sentence fits in the overlap
    chunks = chunk_document(doc, 64, 24)
    assert len(chunks) > 5
    for a, b in zip(chunks, chunks[1:]):
        assert b.start < a.end, "no shared text"
        shared = doc.text[b.start : a.end]
        assert a.text.endswith(shared) and b.text.startswith(shared)
        assert count_tokens(shared) <= 24
    # Without overlap the chunks tile the text.
    plain = chunk_document(doc, 64, 0)
    for a, b in zip(plain, plain[1:]):
        assert b.start > a.end


def test_a_long_sentence_without_punctuation_is_split_on_words():
    text = " ".join(f"word{i}" for i in range(600))
    doc = Document("long", "Short intro. " + text + " and then it ends.")
    chunks = chunk_document(doc, 32, 8)
    assert len(chunks) > 10
    for c in chunks:
        assert count_tokens(c.text) <= 32
        assert c.text == doc.text[c.start : c.end]
        assert not c.text.startswith("ord")  # cut between words, never inside one
    joined = " ".join(doc.text[c.start : c.end] for c in chunks)
    assert "word0" in joined and "word599" in joined


@pytest.mark.parametrize(
    "text",
    [
        "The U.S. President met reporters in Washington on Tuesday.",
        "The visit of George W. Bush was planned for months by the embassy.",
        "Dr. Smith and Mr. Jones spoke to the U.N. envoy at 5 p.m. yesterday.",
        "Officials, e.g. the mayor, stayed at St. Mary's hospital.",
    ],
)
def test_abbreviations_and_initials_do_not_end_a_sentence(text):
    assert sentence_spans(text) == [(0, len(text))]
    assert sentence_spans(text + " A second sentence follows here.") == [
        (0, len(text)),
        (len(text) + 1, len(text) + 32),
    ]


def test_sentence_spans_split_on_terminal_punctuation_and_paragraphs():
    text = 'He said "We will return." Then he left! Did he? Yes.\n\nA new paragraph\nand a new line'
    pieces = [text[s:e] for s, e in sentence_spans(text)]
    assert pieces == [
        'He said "We will return."',
        "Then he left!",
        "Did he?",
        "Yes.",
        "A new paragraph",
        "and a new line",
    ]


def test_empty_and_whitespace_documents_have_no_chunks():
    assert chunk_document(Document("e", ""), 64, 16) == []
    assert chunk_document(Document("e", "  \n\n "), 64, 16) == []


def test_a_single_huge_word_is_split_to_the_budget():
    blob = "".join(hashlib.sha256(str(i).encode()).hexdigest() for i in range(20))  # 1280 chars, ~700 tokens
    doc = Document("blob", f"See the checksum {blob} for details. Then it ends.")
    for c in chunk_document(doc, 32, 8):
        assert count_tokens(c.text) <= 32


def test_no_chunk_is_only_a_copy_of_the_previous_overlap():
    a, b, c = sentence_of(60, "harbour"), sentence_of(20, "ferry"), sentence_of(110, "storm")
    doc = Document("d", f"{a} {b} {c}")
    chunks = chunk_document(doc, 128, 32)
    for prev, cur in zip(chunks, chunks[1:]):
        assert not (prev.start <= cur.start and cur.end <= prev.end), (prev.text[-40:], cur.text)
