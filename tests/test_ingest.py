"""Reading a corpus: formats, metadata, and bad input skipped with a message that says where."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from rag import CorpusError, SkippedInput
from rag.config import DEFAULT_CORPUS
from rag.ingest import normalize_date, read_corpus

ARTICLE = "Harbour reopens after storm\n\nThe harbour of Port Ellen reopened on Tuesday after a closure.\n"

HTML = """<!DOCTYPE html>
<html><head><title>Harbour reopens after storm | Coast Daily</title>
<meta property="og:site_name" content="Coast Daily">
<meta name="date" content="2023-03-14">
</head><body>
<nav><a href="/">Home</a> <a href="/news">News</a></nav>
<article>
<h1>Harbour reopens after storm</h1>
<p>The harbour of Port Ellen reopened on Tuesday after a three-day closure caused by the storm,
the harbour master said in a statement to reporters.</p>
<p>Fishing boats returned to sea at dawn, and the ferry service to the mainland resumed its normal
timetable in the afternoon, officials confirmed.</p>
<p>Repairs to the damaged breakwater are expected to cost about two million pounds and to take
several months, according to the regional council.</p>
</article>
<footer>Copyright Coast Daily</footer>
</body></html>
"""

def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def jsonl(rows: list[object]) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


def by_id(result) -> dict:
    return {d.doc_id: d for d in result.documents}


# ---------------------------------------------------------------- formats


def test_shipped_corpus_reads_five_articles_with_sidecar_metadata():
    result = read_corpus([DEFAULT_CORPUS])
    docs = by_id(result)
    assert len(docs) == 5 and not result.skipped
    doc = docs["004_f1ed5df54c6c908a"]
    assert doc.title == "Iran Offers to Mediate Between Kabul and Islamabad to Revive Stalled Peace Talks"
    assert doc.date == "2025-11-09"
    assert doc.source == "Trends-US"
    # Citation spans index into the file: the document text is the file, byte for byte.
    assert doc.text == Path(doc.path).read_text(encoding="utf-8")


def test_txt_file_uses_stem_as_id_and_first_line_as_title(tmp_path):
    write(tmp_path / "harbour.txt", ARTICLE)
    doc = by_id(read_corpus([tmp_path]))["harbour"]
    assert doc.text == ARTICLE
    assert doc.title == "Harbour reopens after storm"
    assert doc.date == "" and doc.line == 0
    assert doc.path == str(tmp_path / "harbour.txt")


def test_markdown_front_matter_sets_metadata_and_is_not_article_text(tmp_path):
    write(
        tmp_path / "note.md",
        '---\ntitle: "Storm report"\ndate: 2023/01/05\nurl: https://www.example.org/a\n---\n'
        "Body of the storm report.\n",
    )
    doc = by_id(read_corpus([tmp_path]))["note"]
    assert doc.title == "Storm report"
    assert doc.date == "2023-01-05"
    assert doc.url == "https://www.example.org/a"
    assert doc.source == "example.org"  # no source given: the URL's domain, without www.
    assert doc.text == "Body of the storm report.\n"
    assert "---" not in doc.text


def test_metadata_sidecar_keyed_by_stem_and_front_matter_wins(tmp_path):
    write(tmp_path / "a.txt", ARTICLE)
    write(tmp_path / "b.txt", "---\ndate: 2024-02-02\n---\nAnother article about ferries.\n")
    write(
        tmp_path / "metadata.json",
        json.dumps(
            {
                "_about": "ignored: not an object",
                "a": {"title": "Sidecar title", "date": "2023/01/05", "source": "Coast Daily"},
                "b": {"title": "B title", "date": "2020-01-01"},
            }
        ),
    )
    docs = by_id(read_corpus([tmp_path]))
    assert set(docs) == {"a", "b"}  # metadata.json itself is not an article
    assert (docs["a"].title, docs["a"].date, docs["a"].source) == ("Sidecar title", "2023-01-05", "Coast Daily")
    assert docs["b"].title == "B title"
    assert docs["b"].date == "2024-02-02"


def test_unreadable_metadata_sidecar_is_a_corpus_error(tmp_path):
    write(tmp_path / "a.txt", ARTICLE)
    write(tmp_path / "metadata.json", "{not json")
    with pytest.raises(CorpusError, match="metadata"):
        read_corpus([tmp_path])


def test_jsonl_lines_become_documents(tmp_path):
    write(
        tmp_path / "feed.jsonl",
        jsonl(
            [
                {"id": "n1", "text": "First story text.", "title": "First", "date": "2023/01/05", "source": "Wire"},
                {"text": "Second story text.", "url": "https://news.example.com/2"},
            ]
        ),
    )
    docs = by_id(read_corpus([tmp_path]))
    assert set(docs) == {"n1", "feed-2"}  # no id: file stem and line number
    assert (docs["n1"].title, docs["n1"].date, docs["n1"].source) == ("First", "2023-01-05", "Wire")
    assert docs["feed-2"].source == "news.example.com"
    assert docs["feed-2"].line == 2 and docs["feed-2"].title == "Second story text."


def test_gzipped_jsonl_is_read(tmp_path):
    path = tmp_path / "archive.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write(jsonl([{"id": "g1", "text": "Compressed story."}, {"id": "g2", "text": "Another one."}]))
    docs = by_id(read_corpus([path]))
    assert set(docs) == {"g1", "g2"}
    assert docs["g1"].text == "Compressed story."


def test_html_article_text_and_metadata_are_extracted(tmp_path):
    write(tmp_path / "harbour.html", HTML)
    doc = by_id(read_corpus([tmp_path]))["harbour"]
    assert "Port Ellen reopened on Tuesday" in doc.text
    assert "Copyright" not in doc.text and "Home" not in doc.text  # boilerplate removed
    assert doc.title == "Harbour reopens after storm"
    assert doc.date == "2023-03-14"
    assert doc.source == "Coast Daily"


def test_html_file_does_not_stop_the_other_articles(tmp_path):
    write(tmp_path / "a.txt", ARTICLE)
    write(tmp_path / "b.html", HTML)
    result = read_corpus([tmp_path])
    assert "a" in by_id(result)


@pytest.mark.parametrize(
    ("raw", "iso"),
    [
        ("2023/01/05", "2023-01-05"),
        ("2023-1-5", "2023-01-05"),
        ("2023.01.05", "2023-01-05"),
        ("2023-01-05T10:00:00Z", "2023-01-05"),
        ("5 January 2023", "2023-01-05"),
        ("January 5, 2023", "2023-01-05"),
        ("Jan 5, 2023", "2023-01-05"),
        ("2023-02-30", ""),
        ("yesterday", ""),
        ("", ""),
    ],
)
def test_normalize_date(raw, iso):
    assert normalize_date(raw) == iso


# ---------------------------------------------------------------- bad input is skipped, the rest read


def assert_skipped(result, path: Path, line: int, reason: str) -> SkippedInput:
    matches = [s for s in result.skipped if s.path == str(path)]
    assert len(matches) == 1, result.skipped
    s = matches[0]
    assert s.line == line
    assert reason in s.reason
    assert str(path) in str(s)  # the message a user sees names the file...
    if line:
        assert f"{path}:{line}" in str(s)  # ...and the line
    return s


@pytest.mark.parametrize(
    ("name", "content", "line", "reason"),
    [
        ("empty.txt", b"", 0, "empty file"),
        ("blank.md", b"  \n\n\t\n", 0, "empty file"),
        ("binary.txt", b"PK\x03\x04\x00\x00\x00\x00junk", 0, "binary file"),
        ("latin1.txt", b"Menu\nsoup\ncaf\xe9 au lait\n", 3, "not valid UTF-8"),
        ("front-only.md", b"---\ntitle: Nothing here\n---\n\n", 0, "empty file"),
    ],
)
def test_unreadable_file_is_skipped_and_the_rest_read(tmp_path, name, content, line, reason):
    write(tmp_path / "good.txt", ARTICLE)
    bad = write(tmp_path / name, content)
    result = read_corpus([tmp_path])
    assert set(by_id(result)) == {"good"}
    assert_skipped(result, bad, line, reason)


def test_bad_jsonl_lines_are_skipped_with_line_numbers(tmp_path):
    path = write(
        tmp_path / "feed.jsonl",
        jsonl(
            [
                {"id": "ok1", "text": "A fine story."},
                '{"id": "broken", "text": "unterminated',
                {"id": "notext", "title": "No text field"},
                {"id": "emptytext", "text": "   "},
                "[1, 2, 3]",
                "",
                {"id": "ok2", "text": "Another fine story."},
            ]
        ),
    )
    result = read_corpus([tmp_path])
    assert set(by_id(result)) == {"ok1", "ok2"}
    assert sorted((s.line, s.path) for s in result.skipped) == [(n, str(path)) for n in (2, 3, 4, 5)]
    reasons = {s.line: s.reason for s in result.skipped}
    assert "not valid JSON" in reasons[2]
    assert "text" in reasons[3] and "text" in reasons[4]
    assert "not a JSON object" in reasons[5]
    assert f"{path}:2" in str(next(s for s in result.skipped if s.line == 2))


def test_mis_encoded_jsonl_line_is_skipped(tmp_path):
    path = write(tmp_path / "feed.jsonl", b'{"id": "a", "text": "fine"}\n{"id": "b", "text": "caf\xe9"}\n')
    result = read_corpus([tmp_path])
    assert set(by_id(result)) == {"a"}
    assert_skipped(result, path, 2, "UTF-8")


def test_truncated_gzip_is_skipped_after_the_lines_it_holds(tmp_path):
    whole = gzip.compress(jsonl([{"id": f"t{i}", "text": f"Story number {i}."} for i in range(2000)]).encode())
    write(tmp_path / "good.txt", ARTICLE)
    bad = write(tmp_path / "cut.jsonl.gz", whole[: len(whole) // 2])
    result = read_corpus([tmp_path])
    assert "good" in by_id(result) and "t0" in by_id(result)
    assert_skipped(result, bad, 0, "cannot read file")


def test_corrupt_gzip_is_skipped(tmp_path):
    write(tmp_path / "good.txt", ARTICLE)
    # A valid gzip header followed by a deflate stream that is garbage.
    bad = write(tmp_path / "broken.jsonl.gz", b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03not really deflate")
    result = read_corpus([tmp_path])
    assert set(by_id(result)) == {"good"}
    assert_skipped(result, bad, 0, "cannot read file")


def test_duplicate_document_id_is_skipped(tmp_path):
    write(tmp_path / "a.jsonl", jsonl([{"id": "same", "text": "First."}]))
    b = write(tmp_path / "b.jsonl", jsonl([{"id": "same", "text": "Second."}]))
    result = read_corpus([tmp_path])
    assert by_id(result)["same"].text == "First."
    assert_skipped(result, b, 1, "duplicate document id")


# ---------------------------------------------------------------- which files are read


def test_hidden_files_and_folders_are_ignored(tmp_path):
    write(tmp_path / "visible.txt", ARTICLE)
    write(tmp_path / ".hidden.txt", "Hidden article text.")
    write(tmp_path / ".git" / "notes.txt", "Hidden folder article.")
    write(tmp_path / "sub" / "nested.md", "Nested article text.")
    result = read_corpus([tmp_path])
    assert set(by_id(result)) == {"visible", "nested"}
    assert not result.skipped


def test_unsupported_files_in_a_folder_are_ignored(tmp_path):
    write(tmp_path / "a.txt", ARTICLE)
    write(tmp_path / "scan.pdf", b"%PDF-1.4 \x00\x01")
    write(tmp_path / "data.csv", "a,b\n1,2\n")
    result = read_corpus([tmp_path])
    assert set(by_id(result)) == {"a"}
    assert [f.name for f in result.files] == ["a.txt"]


def test_unsupported_file_given_explicitly_is_an_error(tmp_path):
    pdf = write(tmp_path / "scan.pdf", b"%PDF-1.4")
    with pytest.raises(CorpusError, match="unsupported file type") as e:
        read_corpus([pdf])
    assert str(pdf) in str(e.value)


def test_missing_corpus_path_is_an_error(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(CorpusError, match="not found") as e:
        read_corpus([missing])
    assert str(missing) in str(e.value)


def test_empty_folder_is_an_error(tmp_path):
    with pytest.raises(CorpusError, match="no readable articles"):
        read_corpus([tmp_path])


def test_corpus_with_only_unreadable_files_is_an_error_that_says_why(tmp_path):
    write(tmp_path / "empty.txt", b"")
    write(tmp_path / "binary.txt", b"\x00\x01\x02")
    with pytest.raises(CorpusError, match="no readable articles") as e:
        read_corpus([tmp_path])
    assert "empty file" in str(e.value) and "binary file" in str(e.value)


def test_several_corpus_paths_are_read_together(tmp_path):
    a = write(tmp_path / "one" / "a.txt", ARTICLE)
    write(tmp_path / "two" / "b.txt", "Second folder article.")
    docs = by_id(read_corpus([a, tmp_path / "two"]))
    assert set(docs) == {"a", "b"}
