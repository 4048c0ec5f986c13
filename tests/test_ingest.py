"""Reading a corpus: formats, metadata, and bad input skipped with a message that says where."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pytest

from rag import CorpusError, SkippedInput
from rag.config import DEFAULT_CORPUS
from rag.ingest import corpus as ingest
from rag.ingest.corpus import OUTSIZED_CHARS, read_corpus

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
        ("2023-01-05T10:00:00Z", "2023-01-05"),
        ("5 January 2023", "2023-01-05"),
        ("Jan 5 2023", "2023-01-05"),  # read by dates.parse_date, not by the old ingest-only parser
        ("Thu, 05 Jan 2023", "2023-01-05"),
        ("2023-01", "2023-01-01"),
    ],
)
def test_article_dates_are_read_by_the_project_date_parser(tmp_path, raw, iso):
    write(tmp_path / "feed.jsonl", jsonl([{"id": "d", "text": "Dated story.", "date": raw}]))
    result = read_corpus([tmp_path])
    assert by_id(result)["d"].date == iso
    assert not result.warnings and not result.skipped
    assert not hasattr(ingest, "normalize_date")  # one date parser: rag.dates.parse_date


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


def test_truncated_gzip_keeps_the_records_before_the_break_and_says_where_it_broke(tmp_path):
    whole = gzip.compress(jsonl([{"id": f"t{i}", "text": f"Story number {i}."} for i in range(2000)]).encode())
    write(tmp_path / "good.txt", ARTICLE)
    bad = write(tmp_path / "cut.jsonl.gz", whole[: len(whole) // 2])
    result = read_corpus([tmp_path])
    docs = by_id(result)
    kept = len(docs) - 1  # all but good.txt came from the cut file
    assert "good" in docs and "t0" in docs and 0 < kept < 2000
    assert set(docs) - {"good"} == {f"t{i}" for i in range(kept)}  # every record before the break
    s = assert_skipped(result, bad, 0, "the file is cut off after line")
    assert s.reason == (
        f"the file is cut off after line {kept} (compressed data ended early); {kept} records before it were read"
    )


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
    write(tmp_path / "old.doc", b"\xd0\xcf\x11\xe0 old Word")
    write(tmp_path / "data.csv", "a,b\n1,2\n")
    result = read_corpus([tmp_path])
    assert set(by_id(result)) == {"a"}
    assert [f.name for f in result.files] == ["a.txt"]


def test_unsupported_file_given_explicitly_is_an_error(tmp_path):
    doc = write(tmp_path / "old.doc", b"\xd0\xcf\x11\xe0")
    with pytest.raises(CorpusError, match="unsupported file type") as e:
        read_corpus([doc])
    assert str(doc) in str(e.value)
    assert ".pdf" in str(e.value) and ".docx" in str(e.value)


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


# ---------------------------------------------------------------- inputs kept with a warning


def issues(result) -> list[str]:
    return [str(w) for w in result.warnings]


LEGACY = "\u201cSmart quotes\u201d at the caf\u00e9: the harbour reopened \u2014 na\u00efve hopes.\n"


def test_cp1252_file_is_decoded_and_kept_with_a_warning(tmp_path):
    write(tmp_path / "good.txt", ARTICLE)
    legacy = write(tmp_path / "legacy.txt", LEGACY.encode("cp1252"))
    latin1 = write(tmp_path / "latin1.txt", b"Menu\nsoup\ncaf\xe9 au lait\n")
    result = read_corpus([tmp_path])
    docs = by_id(result)
    assert not result.skipped
    assert docs["legacy"].text == LEGACY
    assert docs["latin1"].text == "Menu\nsoup\ncaf\u00e9 au lait\n"
    assert f"{legacy}: not UTF-8; read as cp1252" in issues(result)
    assert f"{latin1}: not UTF-8; read as cp1252" in issues(result)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_file_with_a_bom_is_decoded_not_called_binary(tmp_path, encoding):
    data = ("\ufeff" if encoding != "utf-16" else "") + LEGACY  # "utf-16" writes its own BOM
    path = write(tmp_path / "wide.txt", data.encode(encoding))
    result = read_corpus([tmp_path])
    assert not result.skipped
    assert by_id(result)["wide"].text == LEGACY
    assert issues(result) == [f"{path}: not UTF-8; read as UTF-16"]


def test_undecodable_file_is_still_skipped(tmp_path):
    write(tmp_path / "good.txt", ARTICLE)
    odd = write(tmp_path / "odd.txt", b"\xff\xfeabc")  # a UTF-16 BOM, then an odd number of bytes
    result = read_corpus([tmp_path])
    assert set(by_id(result)) == {"good"}
    assert_skipped(result, odd, 0, "not valid UTF-16")


def test_legacy_encoded_jsonl_is_decoded_with_a_warning(tmp_path):
    rows = [{"id": "a", "text": "Plain ASCII story."}, {"id": "b", "text": LEGACY, "title": "Caf\u00e9 news"}]
    raw = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("cp1252")
    path = write(tmp_path / "feed.jsonl", raw)
    result = read_corpus([tmp_path])
    docs = by_id(result)
    assert not result.skipped
    assert docs["b"].text == LEGACY and docs["b"].title == "Caf\u00e9 news"
    assert issues(result) == [f"{path}: not UTF-8 (first at line 2); read as cp1252"]


@pytest.mark.parametrize("gz", [False, True])
def test_utf16_jsonl_is_decoded_with_a_warning(tmp_path, gz):
    rows = [{"id": "a", "text": LEGACY}, {"id": "b", "text": "Second story."}]
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-16")
    path = tmp_path / ("feed.jsonl.gz" if gz else "feed.jsonl")
    write(path, gzip.compress(data) if gz else data)
    result = read_corpus([tmp_path])
    docs = by_id(result)
    assert not result.skipped
    assert docs["a"].text == LEGACY and docs["b"].line == 2
    assert issues(result) == [f"{path}: not UTF-8; read as UTF-16"]


def test_unparseable_date_keeps_the_article_undated_with_a_warning(tmp_path):
    feed = write(
        tmp_path / "feed.jsonl",
        jsonl([{"id": "ok", "text": "Dated.", "date": "2023-01-05"},
               {"id": "vague", "text": "Undated story.", "date": "sometime in spring"}]),
    )
    note = write(tmp_path / "note.md", "---\ndate: the other day\n---\nBody of the note.\n")
    result = read_corpus([tmp_path])
    docs = by_id(result)
    assert docs["vague"].date == "" and docs["note"].date == "" and docs["ok"].date == "2023-01-05"
    assert not result.skipped
    assert sorted(issues(result)) == sorted([
        f"{feed}:2: date 'sometime in spring' is not a date; the article is kept undated",
        f"{note}: date 'the other day' is not a date; the article is kept undated",
    ])


def test_on_issue_reports_each_problem_as_soon_as_it_is_found(tmp_path, monkeypatch):
    write(tmp_path / "a.txt", LEGACY.encode("cp1252"))
    write(tmp_path / "b.txt", b"")
    write(tmp_path / "c.txt", ARTICLE)
    events: list[object] = []
    real_read_file = ingest._read_file

    def logged_read_file(path, *args):
        events.append(f"read {path.name}")
        yield from real_read_file(path, *args)

    monkeypatch.setattr(ingest, "_read_file", logged_read_file)
    result = read_corpus([tmp_path], on_issue=lambda issue, skipped: events.append((Path(issue.path).name, skipped)))
    assert events == ["read a.txt", ("a.txt", False), "read b.txt", ("b.txt", True), "read c.txt"]
    assert [Path(w.path).name for w in result.warnings] == ["a.txt"]
    assert [Path(s.path).name for s in result.skipped] == ["b.txt"]


@pytest.mark.parametrize(
    ("value", "kind"), [(42, "a number"), (4.5, "a number"), (["a"], "a list"), ({"a": 1}, "an object"),
                        (None, "null"), (True, "a boolean")],
)
def test_non_string_jsonl_text_says_what_it_is(tmp_path, value, kind):
    path = write(tmp_path / "feed.jsonl", jsonl([{"id": "ok", "text": "Fine."}, {"id": "bad", "text": value}]))
    result = read_corpus([tmp_path])
    assert set(by_id(result)) == {"ok"}
    s = assert_skipped(result, path, 2, "")
    assert s.reason == f'"text" is {kind}, not a string'


def test_outsized_single_article_is_kept_with_a_warning(tmp_path):
    paragraph = "The harbour reopened on Tuesday after the storm, officials said. " * 16 + "\n\n"
    body = paragraph * (OUTSIZED_CHARS // len(paragraph) + 10)
    big = write(tmp_path / "dump.txt", body)
    write(tmp_path / "small.txt", ARTICLE)
    result = read_corpus([tmp_path])
    assert by_id(result)["dump"].text == body and not result.skipped
    [w] = result.warnings
    assert w.path == str(big)
    mb = f"{len(body.encode()) / 1e6:.1f}"
    assert str(w).startswith(f"{big}: {mb} MB of text in one article (about ")
    assert str(w).endswith(" chunks); is it really one article? Split it or use JSONL")


# ---------------------------------------------------------------- PDF and DOCX


def _pdf_string(text: str) -> str:
    return "(" + text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def make_pdf(pages: list[str], info: dict[str, str] | None = None) -> bytes:
    """A minimal valid PDF: one Helvetica text stream per page (lines split on newlines), optional /Info."""
    n = len(pages)
    page_ids = [4 + 2 * i for i in range(n)]
    objs = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{' '.join(f'{p} 0 R' for p in page_ids)}] /Count {n} >>",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    for pid, text in zip(page_ids, pages):
        ops = ["BT", "/F1 12 Tf", "14 TL", "72 720 Td"] + [f"{_pdf_string(ln)} Tj T*" for ln in text.split("\n")]
        stream = "\n".join(ops + ["ET"])
        objs.append(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {pid + 1} 0 R >>"
        )
        objs.append(f"<< /Length {len(stream.encode('latin-1'))} >>\nstream\n{stream}\nendstream")
    if info:
        objs.append("<< " + " ".join(f"/{k} {_pdf_string(v)}" for k, v in info.items()) + " >>")
    out = b"%PDF-1.4\n"
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    trailer = f"<< /Size {len(objs) + 1} /Root 1 0 R" + (f" /Info {len(objs)} 0 R" if info else "") + " >>"
    out += f"trailer\n{trailer}\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


PAGE1 = "Harbour reopens after storm\nThe harbour of Port Ellen reopened on Tuesday."
PAGE2 = "Repairs to the breakwater will take months.\nThe council will pay."


def test_pdf_pages_are_read_with_page_offsets_title_and_date(tmp_path):
    path = write(tmp_path / "report.pdf",
                 make_pdf([PAGE1, PAGE2], {"Title": "Storm report", "CreationDate": "D:20230314101500+01'00'"}))
    result = read_corpus([tmp_path])
    assert not result.skipped and not result.warnings
    doc = by_id(result)["report"]
    assert doc.text == PAGE1 + "\n\n" + PAGE2
    assert doc.pages == [len(PAGE1) + 2]  # page 2 starts after page 1 and the blank line
    assert doc.text[doc.pages[0]:].startswith("Repairs to the breakwater")
    assert (doc.title, doc.date, doc.path) == ("Storm report", "2023-03-14", str(path))


def test_pdf_without_metadata_takes_its_title_from_the_first_line(tmp_path):
    write(tmp_path / "plain.pdf", make_pdf([PAGE1, "", PAGE2]))
    doc = by_id(read_corpus([tmp_path]))["plain"]
    assert doc.title == "Harbour reopens after storm" and doc.date == ""
    assert len(doc.pages) == 2  # an empty page still has its place
    assert doc.text[doc.pages[1]:] == PAGE2


def test_pdf_encrypted_with_an_empty_user_password_is_read(tmp_path):
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf([PAGE1]))))
    writer.encrypt(user_password="", owner_password="owner", algorithm="RC4-128")
    buf = io.BytesIO()
    writer.write(buf)
    write(tmp_path / "open.pdf", buf.getvalue())
    assert by_id(read_corpus([tmp_path]))["open"].text == PAGE1


def pdf_with_password(tmp_path: Path) -> Path:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf([PAGE1]))))
    writer.encrypt(user_password="secret", algorithm="RC4-128")
    buf = io.BytesIO()
    writer.write(buf)
    return write(tmp_path / "locked.pdf", buf.getvalue())


def blank_pdf(tmp_path: Path) -> Path:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=612, height=792)
    buf = io.BytesIO()
    writer.write(buf)
    return write(tmp_path / "scan.pdf", buf.getvalue())


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (pdf_with_password, "encrypted PDF (needs a password)"),
        (blank_pdf, "no text layer (scanned PDF?); run OCR first"),
        (lambda d: write(d / "junk.pdf", b"%PDF-1.4 \x00\x01 not a pdf"), "cannot read PDF"),
        (lambda d: write(d / "cut.pdf", make_pdf([PAGE1, PAGE2])[:300]), "cannot read PDF"),
        (lambda d: write(d / "junk.docx", b"PK\x03\x04 not a zip"), "cannot read DOCX"),
        (lambda d: write(d / "locked.docx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64), "password-protected"),
    ],
)
def test_unreadable_pdf_or_docx_is_skipped_with_a_reason(tmp_path, make, reason, capsys):
    write(tmp_path / "good.txt", ARTICLE)
    bad = make(tmp_path)
    result = read_corpus([tmp_path])
    assert set(by_id(result)) == {"good"}
    assert_skipped(result, bad, 0, reason)
    assert "Traceback" not in capsys.readouterr().err


def make_docx(path: Path, paragraphs: list[str], title: str = "", created=None, table=None) -> Path:
    import docx

    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    if table:
        t = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                t.cell(r, c).text = value
    document.core_properties.title = title
    if created is not None:
        document.core_properties.created = created
    path.parent.mkdir(parents=True, exist_ok=True)
    document.save(str(path))
    return path


def test_docx_paragraphs_tables_title_and_date_are_read(tmp_path):
    import datetime as dt

    make_docx(tmp_path / "memo.docx", ["Harbour reopens after storm", "", "The harbour reopened on Tuesday."],
              title="Harbour memo", created=dt.datetime(2023, 3, 14, 9, 30),
              table=[["Boat", "Status"], ["Ferry", "Running"]])
    make_docx(tmp_path / "bare.docx", ["First line is the title", "Second paragraph."])
    result = read_corpus([tmp_path])
    assert not result.skipped and not result.warnings
    docs = by_id(result)
    memo = docs["memo"]
    assert memo.text == "Harbour reopens after storm\n\nThe harbour reopened on Tuesday.\n\nBoat | Status\n\nFerry | Running"
    assert (memo.title, memo.date, memo.pages) == ("Harbour memo", "2023-03-14", [])
    bare = docs["bare"]
    assert bare.title == "First line is the title"
    assert bare.date == ""  # python-docx's template date (2013-12-23) is not the article's date
    assert bare.text == "First line is the title\n\nSecond paragraph."
