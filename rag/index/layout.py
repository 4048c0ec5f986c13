"""The on-disk format of an index, and the only code that writes its folders' pointers.

Layout of an index folder (format ``FORMAT_VERSION``; an index of another format is rebuilt once)::

    CURRENT              name of the live generation (replaced atomically)
    .lock                held by the one process writing
    gen-000007/
        manifest.json    format, model, settings, vectors, corpus paths and stamps, the segments
        documents.sqlite every live document: doc_id -> content hash, path, line, segment
    seg-000003/          immutable once written (``rag.index.segment.write_segment``)
        segment.json     chunks, documents, dense kind; the settings and hashes that let an
                         interrupted run take the segment up
        chunks.sqlite    docs (full text) and chunks (text, span, metadata); chunk row id = vector row
        vectors.npy      float32 unit vectors
        days.npy         each chunk's article date as a day number (0 = undated)
        dense.faiss      exact (IndexFlatIP), or IVF-PQ above ann_threshold chunks (rag/index/dense.py)
        bm25/            bm25s index over the same chunks

A generation names its segments and the documents deleted in each (Lucene's way). Everything is
written beside the live index, fsynced and renamed into place; ``commit`` then swaps
``CURRENT``, so a process killed at any point leaves the previous index answering.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import sqlite3
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from rag.config import Settings
from rag.embed.choose import vector_kind
from rag.errors import RagIndexError
from rag.types import Chunk, Document

FORMAT_VERSION = 4  # 4: one layout, written by one segment writer (older layouts are rebuilt, not read)


def doc_hash(doc: Document) -> str:
    h = hashlib.sha256()
    for part in (doc.text, doc.title, doc.date, doc.source, doc.url):
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()[:32]


def text_hash(text: str) -> str:
    return hashlib.sha256(" ".join(text.split()).encode("utf-8", "surrogatepass")).hexdigest()[:32]


def bm25_text(chunk: Chunk) -> str:
    return f"{chunk.title}\n{chunk.text}" if chunk.title else chunk.text


def current_generation(index_dir: Path) -> Path | None:
    try:
        name = (index_dir / "CURRENT").read_text().strip()
    except OSError:
        return None
    gen = index_dir / name
    return gen if name and (gen / "manifest.json").is_file() else None


def read_manifest(index_dir: Path) -> dict | None:
    gen = current_generation(index_dir)
    if gen is None:
        return None
    try:
        return json.loads((gen / "manifest.json").read_text())
    except (OSError, ValueError):
        return None


def read_documents(index_dir: Path, gen: Path | None = None) -> dict[str, dict]:
    """Every indexed document: doc_id -> {hash, path, line, segment}. Kept in the generation's
    ``documents.sqlite`` (a manifest of a million documents would be a 150 MB JSON read at every
    open)."""
    gen = gen or current_generation(index_dir)
    if gen is None:
        return {}
    db = sqlite3.connect(f"file:{gen / 'documents.sqlite'}?mode=ro", uri=True)
    try:
        return {r[0]: {"hash": r[1], "path": r[2], "line": r[3], "segment": r[4]}
                for r in db.execute("SELECT doc_id, hash, path, line, segment FROM documents")}
    finally:
        db.close()


def write_documents(path: Path, documents: dict[str, dict]) -> None:
    db = sqlite3.connect(path)
    try:
        db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; CREATE TABLE documents "
                         "(doc_id TEXT PRIMARY KEY, hash TEXT, path TEXT, line INTEGER, segment TEXT);")
        db.executemany("INSERT INTO documents VALUES (?,?,?,?,?)",
                       ((d, i["hash"], i["path"], i["line"], i["segment"]) for d, i in documents.items()))
        db.commit()
    finally:
        db.close()


def segment_dirs(gen: Path) -> list[Path]:
    """The folders holding a generation's chunks: its segments."""
    manifest = json.loads((gen / "manifest.json").read_text())
    return [gen.parent / seg["name"] for seg in manifest["segments"]]


def next_segment_name(index_dir: Path) -> str:
    """A segment name never used in this folder (an abandoned one from a killed run included)."""
    numbers = [int(m.group(1)) for p in index_dir.iterdir() if (m := re.match(r"(?:\.tmp-)?seg-(\d+)", p.name))]
    return f"seg-{max(numbers, default=0) + 1:06d}"


def signature_mismatch(manifest: dict, settings: Settings, vectors: str = "") -> str:
    """Why an index cannot serve these settings ("" when it can); ``vectors``: the kind the
    embedder that would extend it writes (an index never mixes kinds)."""
    if manifest.get("format") != FORMAT_VERSION:
        return f"index format {manifest.get('format')} is not the current format {FORMAT_VERSION}"
    built = manifest.get("settings", {})
    wanted = settings.index_signature()
    diffs = [f"{k}: index has {built.get(k)!r}, settings ask for {v!r}" for k, v in wanted.items() if built.get(k) != v]
    if settings.embed != "auto":  # vectors of one kind only: float (torch, onnx) or int8 (onnx-int8)
        have, want = manifest.get("vectors", "float"), vector_kind(settings.embed)
        if have != want:
            diffs.append(f"vectors: index has {have} vectors, --embed {settings.embed} writes {want} ones")
    elif vectors and manifest.get("vectors", "float") != vectors:
        diffs.append(f"vectors: index has {manifest.get('vectors', 'float')} vectors, this machine embeds {vectors} ones")
    return "; ".join(diffs)


def check_index_dir(index_dir: Path) -> None:
    """Fail at once, in plain words, when ``index_dir`` cannot hold an index."""
    probe = index_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        if probe == index_dir:
            raise RagIndexError(f"the index folder {index_dir} is a file, not a folder; choose another --index-dir")
        raise RagIndexError(f"cannot make the index folder {index_dir}: {probe} is a file; choose another --index-dir")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise RagIndexError(f"cannot write the index folder {index_dir}: {probe} is not writable (permission denied); "
                            "choose another --index-dir")


@contextmanager
def write_lock(index_dir: Path, wait: bool = False, log: Callable[[str], None] = lambda m: None):
    """Hold the index folder's lock; another holder is an error, or with ``wait`` is waited for."""
    check_index_dir(index_dir)
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
        fh = open(index_dir / ".lock", "w")
    except OSError as e:
        raise RagIndexError(f"cannot write to {index_dir}: {e.strerror or e}; choose another --index-dir") from None
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise RagIndexError(f"another process is indexing into {index_dir}; wait for it to finish") from None
            log(f"Another process is indexing into {index_dir}; waiting for it to finish...")
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def indexing_in_progress(index_dir: Path) -> bool:
    """True when another indexing run holds ``index_dir``'s lock; only looks (takes no lock, creates nothing)."""
    try:
        fd = os.open(Path(index_dir) / ".lock", os.O_RDONLY)
    except OSError:  # no lock file: no run has started here
        return False
    try:
        # A shared lock conflicts only with a writer's exclusive one, never with another probe.
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # closing releases a shared lock taken above
    return False


def commit(index_dir: Path, manifest: dict, documents: dict[str, dict]) -> None:
    """Make ``manifest`` (and the segments it names) the live index: a new generation folder,
    then the ``CURRENT`` pointer swapped atomically; then what nothing names is removed."""
    old = current_generation(index_dir)
    n = int(old.name.split("-")[1]) + 1 if old else 1
    final = index_dir / f"gen-{n:06d}"
    tmp = index_dir / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
    write_documents(tmp / "documents.sqlite", documents)
    fsync_tree(tmp)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    pointer = index_dir / ".CURRENT.tmp"
    pointer.write_text(final.name + "\n")
    with open(pointer) as fh:
        os.fsync(fh.fileno())
    os.replace(pointer, index_dir / "CURRENT")
    fsync_dir(index_dir)
    # Older generations, segments no generation names and abandoned temporary folders are garbage now.
    live = {seg["name"] for seg in manifest["segments"]}
    for p in index_dir.iterdir():
        if p.is_dir() and p != final and (p.name.startswith(("gen-", ".tmp-"))
                                          or (p.name.startswith("seg-") and p.name not in live)):
            shutil.rmtree(p, ignore_errors=True)


def rewrite_manifest(gen: Path, changes: dict) -> None:
    path = gen / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, path)


def fsync_tree(root: Path) -> None:
    for p in root.rglob("*"):
        if p.is_file():
            with open(p, "rb") as fh:
                os.fsync(fh.fileno())
    fsync_dir(root)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
