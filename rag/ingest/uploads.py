"""Articles added while the tool runs (the browser chat's upload, the HTTP API's POST /v1/documents).

Files are saved under ``<corpus folder>/uploads/`` with safe names (no folders, no hidden
names, never overwriting a different file) and the corpus is indexed incrementally.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from rag.errors import RagError
from rag.ingest.corpus import check_file
from rag.types import SkippedInput

UPLOAD_SUFFIXES = (".txt", ".md", ".html", ".htm", ".pdf", ".docx", ".jsonl", ".jsonl.gz")
MAX_UPLOAD_BYTES = 20_000_000  # MB = 1,000,000 bytes, as the corpus limits (rag/ingest/corpus.py)
UPLOAD_FOLDER = "uploads"


@dataclass
class Upload:
    """One added file: its name as given, where it was saved ("" when it was not) and why not,
    the documents indexed from it and the problems found reading it."""

    name: str
    saved: str = ""  # the path under the corpus folder, e.g. "uploads/report.pdf"
    problem: str = ""  # why it was not saved ("already in the corpus", "too large ...")
    documents: list[str] = field(default_factory=list)  # ids of the documents indexed from it
    skipped: list[SkippedInput] = field(default_factory=list)
    warnings: list[SkippedInput] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"name": self.name, "saved": self.saved, "problem": self.problem, "documents": list(self.documents),
                "skipped": [{"line": s.line, "reason": s.reason} for s in self.skipped],
                "warnings": [{"line": s.line, "reason": s.reason} for s in self.warnings]}


def safe_name(name: str) -> str:
    """A file name with no folders and only [A-Za-z0-9._-]; never hidden (the corpus reader skips those)."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = re.sub(r"[^A-Za-z0-9._-]", "_", base).lstrip(".-") or "upload"
    return base[-120:]


def free_path(folder: Path, name: str, data: bytes) -> Path | None:
    """Where to save ``data`` as ``name`` in ``folder``; None when an identical file is already there."""
    stem, dot, suffix = name.partition(".")
    candidate, n = folder / name, 1
    while candidate.exists():
        if candidate.read_bytes() == data:
            return None
        candidate, n = folder / f"{stem}-{n}{dot}{suffix}", n + 1
    return candidate


def upload_folder(corpus_paths: list[Path]) -> Path:
    """The folder uploads go to; RagError when the corpus is a file, not a folder."""
    corpus = corpus_paths[0]
    if not corpus.is_dir():
        raise RagError(f"adding articles needs a corpus folder, but the corpus is the file {corpus}; "
                       "start with --corpus FOLDER")
    return corpus / UPLOAD_FOLDER


def save_files(corpus: Path, files: list[tuple[str, bytes]]) -> list[Upload]:
    """Save each (name, data) under ``corpus/uploads/``; an Upload per file says what happened."""
    folder = corpus / UPLOAD_FOLDER
    folder.mkdir(exist_ok=True)
    out = []
    for raw_name, data in files:
        name = safe_name(raw_name)
        if not name.lower().endswith(UPLOAD_SUFFIXES):
            out.append(Upload(raw_name, problem=f"not accepted (use {', '.join(UPLOAD_SUFFIXES)})"))
        elif len(data) > MAX_UPLOAD_BYTES:
            out.append(Upload(raw_name, problem=f"too large ({len(data) / 1e6:.1f} MB; the limit is "
                                                f"{MAX_UPLOAD_BYTES // 1_000_000} MB)"))
        elif not data.strip():
            out.append(Upload(raw_name, problem="empty file"))
        elif problem := unreadable(name, data):
            out.append(Upload(raw_name, problem=problem))  # not saved: every later run would warn of it
        else:
            dest = free_path(folder, name, data)
            if dest is None:
                out.append(Upload(raw_name, problem="already in the corpus"))
                continue
            dest.write_bytes(data)
            out.append(Upload(raw_name, saved=dest.relative_to(corpus).as_posix()))
    return out


def unreadable(name: str, data: bytes) -> str:
    """Why the corpus reader would take no article from ``data`` saved as ``name`` ("not text:
    ..."), or "": the file is read as indexing would read it, from a temporary folder, before
    it is written into the corpus."""
    with tempfile.TemporaryDirectory(prefix="rag-upload-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        return check_file(path)
