"""Adding articles while the tool runs: safe names, limits, and a report per file."""

from __future__ import annotations

from rag import MAX_UPLOAD_BYTES
from rag.ingest.uploads import safe_name, save_files


def test_saving_sanitises_rejects_and_never_overwrites(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    got = save_files(corpus, [("a b.txt", b"first"), ("evil.exe", b"x"), ("paper.pdf", b"%PDF-1.4"),
                              ("memo.docx", b"PK"), ("big.txt", b"x" * (MAX_UPLOAD_BYTES + 1)), ("blank.md", b" \n")])
    # a PDF or DOCX that is none is refused as indexing would refuse it, and not written
    assert [u.saved for u in got] == ["uploads/a_b.txt", "", "", "", "", ""]
    assert got[1].problem.startswith("not accepted") and ".pdf" in got[1].problem and ".docx" in got[1].problem
    assert got[2].problem.startswith("cannot read PDF") and got[3].problem.startswith("cannot read DOCX")
    assert sorted(p.name for p in (corpus / "uploads").iterdir()) == ["a_b.txt"]
    assert got[4].problem.startswith("too large") and got[5].problem == "empty file"
    (dup,) = save_files(corpus, [("a b.txt", b"first")])  # the same bytes again: nothing new
    assert (dup.saved, dup.problem) == ("", "already in the corpus")
    (new,) = save_files(corpus, [("a b.txt", b"second")])  # different bytes: a new name
    assert new.saved == "uploads/a_b-1.txt" and (corpus / "uploads" / "a_b.txt").read_text() == "first"


def test_safe_name_keeps_uploads_inside_the_folder():
    assert safe_name("../../etc/passwd") == "passwd"
    assert safe_name("..\\..\\evil.txt") == "evil.txt"
    assert safe_name(".hidden.txt") == "hidden.txt"
    assert safe_name("zorbia news!.txt") == "zorbia_news_.txt"
    assert safe_name("") == "upload"


def test_added_documents_are_indexed_and_reported_per_file(fake_rag):
    files = [("harbour.txt", b"The harbour of Port Ellen reopened on Tuesday after the storm.\n"),
             ("feed.jsonl", b'{"id": "f1", "text": "Ferries to Islay resumed on Wednesday."}\nnot json\n'),
             ("photo.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")]
    uploads, report = fake_rag.add_documents(files)
    by_name = {u.name: u for u in uploads}
    assert by_name["harbour.txt"].documents == ["harbour"] and by_name["harbour.txt"].saved == "uploads/harbour.txt"
    assert by_name["feed.jsonl"].documents == ["f1"]
    assert [(s.line, "not valid JSON" in s.reason) for s in by_name["feed.jsonl"].skipped] == [(2, True)]
    # a binary file is refused before it is written: no later run warns about it
    assert by_name["photo.txt"].saved == "" and by_name["photo.txt"].problem.startswith("binary file")
    assert not (fake_rag.settings.corpus_paths[0] / "uploads" / "photo.txt").exists()
    assert report.documents == 7  # the five shipped articles and two new ones
    again = fake_rag.index()
    assert not [w for w in again.skipped + again.warnings if "photo" in w.path]
    answer = fake_rag.ask("When did the harbour of Port Ellen reopen?")
    assert answer.citations[0].doc_id == "harbour"
    assert by_name["harbour.txt"].to_dict()["documents"] == ["harbour"]
