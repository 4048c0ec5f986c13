"""What the reader sees of a PDF or Markdown article (no line-break sentences, no markup), and file size limits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_ingest import ARTICLE, make_pdf, write

import rag
import rag.ingest.documents
from rag.config import Settings
from rag.ingest import corpus as ingest
from rag.ingest.corpus import read_corpus
from rag.text.chunk import chunk_document, sentence_spans


def by_id(result) -> dict:
    return {d.doc_id: d for d in result.documents}


# ---------------------------------------------------------------- PDF: lines joined, a short page is one chunk

# A page's text layer as a PDF writer lays it out: a line break at every visual line.
WRAPPED = (
    "Port authority approves harbour expansion\n"
    "The port authority of Port Ellen agreed on Monday to spend 730 million dollars,\n"
    "Chief executive Ana Ruiz said, on two new quays and a longer breakwater for the\n"
    "harbour. The regional gov-\n"
    "ernment will pay half of the cost, and work starts in the spring.\n"
    "Fishing crews welcomed the plan but asked for a say in the timetable."
)
SHORT_PAGE = (
    "Storm closes the ferry link\n"
    "The ferry to the mainland stopped on Friday as winds reached 90 kilometres an hour. "
    "The harbour master said boats would sail again on Sunday. Schools stayed open. Shops closed early."
)
LONG_PAGE = " ".join(
    f"Repairs to section {i} of the breakwater will take {i + 2} weeks and cost {i * 3 + 1} million pounds, "
    "the council said." for i in range(1, 16)
)


def test_pdf_lines_of_a_paragraph_are_joined_into_sentences(tmp_path):
    write(tmp_path / "expansion.pdf", make_pdf([WRAPPED]))
    doc = by_id(read_corpus([tmp_path]))["expansion"]
    sentences = [doc.text[s:e] for s, e in sentence_spans(doc.text)]
    assert "The port authority of Port Ellen agreed on Monday to spend 730 million dollars, Chief executive Ana Ruiz " \
           "said, on two new quays and a longer breakwater for the harbour." in sentences
    assert "The regional government will pay half of the cost, and work starts in the spring." in sentences
    assert "Fishing crews welcomed the plan but asked for a say in the timetable." in sentences
    assert doc.title == "Port authority approves harbour expansion"  # a heading line keeps its own line
    assert "gov-" not in doc.text and "dollars,\n" not in doc.text


def test_a_pdf_page_shorter_than_a_chunk_is_one_chunk_and_no_chunk_repeats_another(tmp_path):
    write(tmp_path / "storm.pdf", make_pdf([SHORT_PAGE, LONG_PAGE, SHORT_PAGE]))
    doc = by_id(read_corpus([tmp_path]))["storm"]
    assert len(doc.pages) == 2
    chunks = chunk_document(doc, Settings.chunk_tokens, Settings.chunk_overlap)
    first_page = [c for c in chunks if c.page == 1]
    last_page = [c for c in chunks if c.page == 3]
    assert [(c.start, c.end) for c in first_page] == [(0, doc.pages[0] - 2)]  # the whole page, once
    assert len(last_page) == 1 and last_page[0].end == len(doc.text)
    for c in chunks:
        assert c.text == doc.text[c.start : c.end]
    for a in chunks:
        for b in chunks:
            assert a is b or not (b.start <= a.start and a.end <= b.end), (a.start, a.end, b.start, b.end)


def test_searching_a_short_pdf_page_returns_it_once(tmp_path):
    write(tmp_path / "corpus" / "storm.pdf", make_pdf([SHORT_PAGE, LONG_PAGE]))
    settings = rag.Settings.from_env(corpus=(str(tmp_path / "corpus"),), index_dir=str(tmp_path / "idx"),
                                     model="fake-64")
    r = rag.Rag(settings)
    r.index()
    hits = r.search("Did schools stay open and shops close early in the storm?", k=5)
    page_one = [h for h in hits if h.chunk.page == 1]
    assert len(page_one) == 1, [(h.chunk.start, h.chunk.end) for h in page_one]
    assert page_one[0].chunk.text.startswith("Storm closes") and page_one[0].chunk.text.endswith("Shops closed early.")


# ---------------------------------------------------------------- Markdown read as text

MARKDOWN = """---
title: Drought in the north
date: 2024-05-02
---
# Drought hits the northern provinces

Water minister **Tomas Reyes** announced on Monday that the
[national water authority](https://example.org/water_(agency) "Authority") will ration supplies
in *three* provinces from June.

![Map of the provinces](img/map.png)

## What changes

- Households get __200 litres__ a day.
- Farms must report their wells to the `water-registry` office.

> "We have never seen reservoirs this low," said Reyes.

```
level: 12%
```

Read the [full plan][plan].

[plan]: https://example.org/plan
"""
MARKUP = ("**", "](", "# ", "__", "![", "```", "[plan]", "- Households", "> ")


def test_markdown_article_text_has_no_markup_and_spans_stay_exact(tmp_path):
    write(tmp_path / "drought.md", MARKDOWN)
    doc = by_id(read_corpus([tmp_path]))["drought"]
    assert (doc.title, doc.date) == ("Drought in the north", "2024-05-02")
    for mark in MARKUP:
        assert mark not in doc.text, mark
    sentences = [doc.text[s:e] for s, e in sentence_spans(doc.text)]
    assert ("Water minister Tomas Reyes announced on Monday that the national water authority will ration supplies "
            "in three provinces from June.") in sentences
    assert "Drought hits the northern provinces" in sentences
    assert "Households get 200 litres a day." in sentences
    assert "Farms must report their wells to the water-registry office." in sentences
    for c in chunk_document(doc, Settings.chunk_tokens, Settings.chunk_overlap):
        assert c.text == doc.text[c.start : c.end]
        assert not any(mark in c.text for mark in MARKUP), c.text


def test_markdown_without_front_matter_takes_its_heading_as_title(tmp_path):
    write(tmp_path / "note.md", "# Ferry resumes\n\nThe *ferry* sails again.\n")
    doc = by_id(read_corpus([tmp_path]))["note"]
    assert doc.title == "Ferry resumes"
    assert doc.text == "Ferry resumes\n\nThe ferry sails again.\n"


def test_a_text_file_is_not_read_as_markdown(tmp_path):
    body = "Prices rose 5 * 3 percent, said **nobody**; see [this](x).\n"
    write(tmp_path / "plain.txt", body)
    assert by_id(read_corpus([tmp_path]))["plain"].text == body


def test_answers_from_a_markdown_article_show_no_markup(fake_settings, tmp_corpus):
    write(tmp_corpus / "drought.md", MARKDOWN)
    r = rag.Rag(fake_settings)
    r.index()
    answer = r.ask("Who announced that the water authority will ration supplies?")
    cited = [c for c in answer.citations if c.doc_id == "drought"]
    assert cited, [c.doc_id for c in answer.citations]
    document = r.document("drought")
    for c in cited:
        assert c.text == document["text"][c.start : c.end]
        assert not any(mark in c.text for mark in MARKUP), c.text
    assert "**" not in answer.answer and "](" not in answer.answer


# ---------------------------------------------------------------- size limits


def sparse(path: Path, size: int) -> Path:
    """A file of ``size`` bytes that takes no disk space (never read: it is over the limit)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(size)
    return path


@pytest.mark.parametrize("name", ["archive.txt", "notes.md", "page.html"])
def test_an_article_file_over_the_limit_is_skipped_with_its_size_and_the_limit(tmp_path, name):
    big = sparse(tmp_path / name, 50 * 1024 * 1024)  # "a 50 MB file": 52.4 MB
    write(tmp_path / "small.txt", ARTICLE)
    issues = []
    result = read_corpus([tmp_path], on_issue=lambda issue, skipped: issues.append((str(issue), skipped)))
    assert set(by_id(result)) == {"small"}
    [(message, skipped)] = issues
    assert skipped
    assert message == (f"{big}: file too large for one article: 52.4 MB (the limit for a "
                       f"{'HTML' if name.endswith('html') else 'text'} file is 50 MB); "
                       "split it into articles, or use JSONL (no file size limit)")


def test_a_pdf_may_be_bigger_than_a_text_file(tmp_path, monkeypatch):
    # A PDF is mostly images and fonts, so its limit is higher (200 MB against 50 MB): with the
    # text limit just under this PDF's size, a text file of that size is skipped and the PDF read.
    pdf = make_pdf([SHORT_PAGE])
    assert ingest.MAX_FILE_BYTES["PDF"] >= 4 * ingest.MAX_FILE_BYTES["text"]
    monkeypatch.setitem(ingest.MAX_FILE_BYTES, "text", len(pdf) - 1)
    write(tmp_path / "storm.pdf", pdf)
    big = write(tmp_path / "long.txt", "x" * len(pdf))
    result = read_corpus([tmp_path])
    assert set(by_id(result)) == {"storm"}
    [skipped] = result.skipped
    assert skipped.path == str(big) and skipped.reason.startswith("file too large for one article")


def test_a_jsonl_record_with_too_much_text_is_skipped_with_its_line(tmp_path, monkeypatch):
    monkeypatch.setattr(rag.ingest.documents, "MAX_ARTICLE_CHARS", 1000)
    rows = [{"id": "ok", "text": "Fine."}, {"id": "huge", "text": "word " * 400}]
    path = write(tmp_path / "feed.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    result = read_corpus([tmp_path])
    assert set(by_id(result)) == {"ok"}
    [s] = result.skipped
    assert (s.path, s.line) == (str(path), 2)
    assert s.reason == "article too large: 2,000 characters of text (the limit is 1,000); split it into articles"
