"""Building an index: read the corpus, embed what is new or changed, write segments, merge, commit."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rag.config import Settings
from rag.index import merge, segment
from rag.index.layout import (
    FORMAT_VERSION,
    commit,
    current_generation,
    doc_hash,
    read_documents,
    read_manifest,
    rewrite_manifest,
    signature_mismatch,
    text_hash,
    write_lock,
)
from rag.index.segment import Progress, finish_manifest, resumable, resumed_segments
from rag.ingest.corpus import IngestResult, check_paths, count_documents, iter_corpus, list_files
from rag.types import SkippedInput


@dataclass
class BuildReport:
    """What an indexing run did."""

    index_dir: str
    documents: int = 0
    chunks: int = 0
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    duplicates: dict[str, str] = field(default_factory=dict)
    skipped: list[SkippedInput] = field(default_factory=list)
    warnings: list[SkippedInput] = field(default_factory=list)  # inputs kept with a problem
    embedded: int = 0
    rebuilt_reason: str = ""
    changed: bool = False
    seconds: float = 0.0
    embed_seconds: float = 0.0
    ann: bool = False
    resumed: int = 0  # documents taken up from the finished segments of an interrupted run

    def summary(self) -> str:
        """The run in one line, as every surface logs it."""
        parts = [f"{self.documents} documents, {self.chunks} chunks"]
        if self.changed:
            parts.append(f"{len(self.added)} added, {len(self.updated)} updated, {len(self.removed)} removed, "
                         f"{self.unchanged} unchanged; {self.embedded} chunks embedded"
                         + (f" ({self.resumed} documents taken up from an interrupted run)" if self.resumed else ""))
        else:
            parts.append("index up to date")
        if self.duplicates:
            parts.append(f"{len(self.duplicates)} duplicate documents indexed once")
        if self.skipped:
            parts.append(f"{len(self.skipped)} inputs skipped")
        if self.warnings:
            parts.append(f"{len(self.warnings)} warning{'s' if len(self.warnings) != 1 else ''}")
        return f"Indexed {self.index_dir}: " + "; ".join(parts) + f" ({self.seconds:.1f}s)"


@dataclass(frozen=True)
class IndexState:
    """Whether the index can answer: ``state`` is current, stale (answers, but the corpus
    changed since), or missing / incompatible / incomplete (a configured corpus path is not in it
    yet): it must be built or added to first; ``reason`` says why."""

    state: str
    reason: str = ""

    @property
    def usable(self) -> bool:
        return self.state in ("current", "stale")


def index_state(settings: Settings, vectors: str) -> IndexState:
    """Whether the index of ``settings`` exists, was built for them and their corpus, and is up to
    date (no corpus file changed size or time); ``vectors``: the kind this machine embeds."""
    index_dir = settings.index_path
    check_paths(settings.corpus_paths)
    manifest = read_manifest(index_dir)
    if manifest is None:
        return IndexState("missing", f"no index yet in {index_dir}")
    mismatch = signature_mismatch(manifest, settings, vectors)
    if mismatch:
        return IndexState("incompatible", f"the index was built with other settings ({mismatch})")
    indexed = set(manifest["corpus"])
    missing = [p for p in settings.corpus_paths if str(p.resolve()) not in indexed]
    if missing:
        return IndexState("incomplete", f"{', '.join(map(str, missing))} not indexed into {index_dir} yet")
    if file_stamps(list_files(corpus_of(settings, manifest))) != manifest["stamps"]:
        return IndexState("stale", "corpus files were added, removed or changed since the last indexing run")
    return IndexState("current")


def embedder_for(settings: Settings):
    """The embedder for an index: the backend the settings name, else the one that built the
    index (never mixing kinds of vectors), else the machine's fastest (``choose_backend``)."""
    from rag.embed.choose import choose_backend, get_embedder

    backend = choose_backend(settings.embed, read_manifest(settings.index_path), model=settings.model)
    return get_embedder(settings.model, settings.dtype, backend, settings.device)


def file_stamps(files: list[Path]) -> dict[str, list[int]]:
    """Size and mtime of each corpus file: a cheap test of whether it may have changed."""
    out = {}
    for f in files:
        try:
            st = f.stat()
        except OSError:
            continue
        out[str(f.resolve())] = [st.st_size, st.st_mtime_ns]  # the same file however the corpus was named
    return out


def build_index(
    settings: Settings,
    paths: list[Path] | None = None,
    progress: Progress | None = None,
    embedder=None,
    log: Callable[[str], None] = lambda msg: None,
    on_issue: Callable[[SkippedInput, bool], None] | None = None,
    wait: bool = False,
    verify: bool = False,
    optimize: bool = False,
    ray: str = "",
    ray_workers: int = 0,
) -> BuildReport:
    """Index the settings' corpus, and ``paths`` added to it, incrementally into ``settings.index_path``.

    An index keeps every path ever indexed into it (``corpus_of``): ``paths`` add documents, and
    only documents deleted or changed in those paths are ever removed. Segments that a run
    interrupted before its end had finished (SIGKILL, Ctrl-C) are taken up by the next run
    rather than embedded again (``rag.index.segment.resumable``).

    The index folder and its lock are checked before the corpus is read. ``on_issue(item,
    skipped)`` hears of each unreadable input (``skipped``) or input kept with a problem
    as it is found. With ``wait``, a run already holding the lock is waited for. When no file
    changed size or time since the last run, nothing is read (seconds for a million articles);
    ``verify`` reads and hashes every document anyway. ``optimize`` merges every segment into
    one (dropping deleted documents for good). ``ray`` (a cluster address, "auto", or "local")
    chunks and embeds on a Ray cluster (``rag.cluster``) with ``ray_workers`` embedders.
    """

    t0 = time.perf_counter()
    index_dir = settings.index_path
    with write_lock(index_dir, wait=wait, log=log):
        paths = corpus_of(settings, read_manifest(index_dir), paths, log)
        files = list_files(paths)
        if not ray:
            embedder = embedder or embedder_for(settings)
        if not verify and not optimize:
            unchanged = _unchanged(settings, index_dir, paths, files, t0, on_issue, "" if ray else embedder.vectors)
            if unchanged is not None:
                return unchanged
        if ray:
            from rag.index.cluster import RayEmbedderInfo

            embedder, preload = RayEmbedderInfo(settings, read_manifest(index_dir)), None
        else:
            preload = _preload_model(embedder, index_dir, files)
        try:
            return _build(settings, index_dir, paths, files, progress, embedder, log, on_issue, t0, optimize,
                          ray, ray_workers)
        finally:
            if preload is not None:
                preload.join()


def _issues(report: BuildReport) -> dict:
    """The skipped inputs and warnings of a run, as the manifest keeps them."""
    return {"skipped": [s.__dict__ for s in report.skipped], "warnings": [w.__dict__ for w in report.warnings]}


def corpus_of(settings: Settings, manifest: dict | None, paths: list[Path] | None = None,
              log: Callable[[str], None] = lambda m: None) -> list[Path]:
    """The paths an indexing run reads: the configured corpus, every path indexed into this index
    before (``rag index PATHS`` adds to it), and ``paths``, each once. A path indexed before that
    no longer exists is left out, so its documents are removed as deleted (with a note)."""
    out: dict[str, Path] = {}  # resolved path -> the path as first given
    for p in [*settings.corpus_paths, *(paths or [])]:
        out.setdefault(str(p.resolve()), p)
    for p in map(Path, (manifest or {}).get("corpus", [])):
        if str(p.resolve()) in out:
            continue
        if p.exists():
            out[str(p.resolve())] = p
        else:
            log(f"Note: {p}, indexed before, no longer exists; its documents leave the index.")
    return list(out.values())


def _unchanged(settings: Settings, index_dir: Path, paths: list[Path], files: list[Path], t0: float,
               on_issue, vectors: str = "") -> BuildReport | None:
    """The report of a run with nothing to do, when the index was built with these settings from
    these paths and no file changed size or modification time; None otherwise. The inputs the
    last run skipped or warned about are reported again (from the manifest)."""
    manifest = read_manifest(index_dir)
    if (manifest is None or signature_mismatch(manifest, settings, vectors)
            or sorted(set(manifest.get("corpus", []))) != sorted({str(p.resolve()) for p in paths})
            or manifest.get("stamps") != file_stamps(files)):
        return None
    documents = int(manifest["documents"])
    skipped = [SkippedInput(**s) for s in manifest["issues"]["skipped"]]
    warnings = [SkippedInput(**w) for w in manifest["issues"]["warnings"]]
    if on_issue is not None:
        for item in skipped:
            on_issue(item, True)
        for item in warnings:
            on_issue(item, False)
    return BuildReport(index_dir=str(index_dir), documents=documents, chunks=int(manifest["chunks"]),
                       unchanged=documents, duplicates=dict(manifest.get("duplicates", {})), skipped=skipped,
                       warnings=warnings, ann=bool(manifest.get("ann")), seconds=time.perf_counter() - t0)


def _preload_model(embedder, index_dir: Path, files: list[Path]) -> threading.Thread | None:
    """Load the model (seconds of imports) while the corpus is read, when embedding looks likely."""
    manifest = read_manifest(index_dir)
    if manifest is not None and manifest.get("stamps") == file_stamps(files):
        return None
    thread = threading.Thread(target=_quietly(embedder.warm), name="rag-model-preload", daemon=True)
    thread.start()
    return thread


def _quietly(fn: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        try:
            fn()
        except Exception:  # noqa: BLE001 - the same error surfaces when the model is used
            pass

    return run


def _build(settings: Settings, index_dir: Path, paths: list[Path], files: list[Path], progress: Progress | None,
           embedder, log: Callable[[str], None], on_issue, t0: float, optimize: bool = False, ray: str = "",
           ray_workers: int = 0) -> BuildReport:
    """Read the corpus one document at a time; new and changed documents are chunked, embedded
    and written as segments of at most ``SEGMENT_TEXT_CHARS`` characters of text, so memory
    does not grow with the corpus. Nothing is live until the generation naming them is committed."""
    if len(files) > 1 or any(f.name.lower().endswith((".jsonl", ".jsonl.gz")) for f in files):
        log(f"Reading {len(files)} file{'s' if len(files) != 1 else ''}...")
    ingested = IngestResult(files=files)
    report = BuildReport(index_dir=str(index_dir), skipped=ingested.skipped, warnings=ingested.warnings)
    old_gen = current_generation(index_dir)
    old_manifest = json.loads((old_gen / "manifest.json").read_text()) if old_gen else None
    if old_manifest is not None:
        report.rebuilt_reason = signature_mismatch(old_manifest, settings, embedder.vectors)
        if report.rebuilt_reason:
            log(f"Rebuilding the index: it was built with other settings ({report.rebuilt_reason}).")
            old_manifest, old_gen = None, None
    old_docs: dict[str, dict] = read_documents(index_dir, old_gen) if old_manifest else {}

    # progress counts the documents of the files that changed: the others are only checked
    old_stamps = (old_manifest or {}).get("stamps") or {}
    stamps_now = file_stamps(files)
    changed = {path for path, stamp in stamps_now.items() if old_stamps.get(path) != stamp}
    total = count_documents([f for f in files if str(f.resolve()) in changed]) if progress else 0
    resolved: dict[str, bool] = {}

    def counted(d) -> bool:
        if d.path not in resolved:
            resolved[d.path] = not d.path or str(Path(d.path).resolve()) in changed
        return resolved[d.path]

    if ray:
        from rag.index.cluster import RaySegmentWriter

        writer = RaySegmentWriter(index_dir, settings, embedder, progress, total, ray, ray_workers, log)
    else:
        writer = segment.SegmentWriter(index_dir, settings, embedder, progress, total)
    meta: dict[str, dict] = {}  # doc_id -> hash, path, line of every document kept
    seen_text: dict[str, str] = {}
    reuse: set[str] = set()
    live = {seg["name"] for seg in old_manifest.get("segments", [])} if old_manifest else set()
    finished = {} if ray else resumable(index_dir, live, settings, embedder.vectors)
    resumed: dict[str, str] = {}  # doc_id -> the finished segment of an interrupted run holding it
    for d in iter_corpus(paths, ingested, on_issue):
        th = text_hash(d.text)
        if th in seen_text:
            report.duplicates[d.doc_id] = seen_text[th]
            writer.read_one(counted(d))
            continue
        seen_text[th] = d.doc_id
        meta[d.doc_id] = {"hash": doc_hash(d), "path": d.path, "line": d.line}
        if old_docs.get(d.doc_id, {}).get("hash") == meta[d.doc_id]["hash"]:
            reuse.add(d.doc_id)
            writer.read_one(counted(d))
        elif meta[d.doc_id]["hash"] in finished.get(d.doc_id, {}):
            resumed[d.doc_id] = finished[d.doc_id][meta[d.doc_id]["hash"]]
            writer.read_one(counted(d))
        else:
            writer.add(d)
    writer.flush()
    report.resumed = len(resumed)
    if resumed:
        log(f"Resumed: {len(resumed)} documents embedded by an interrupted run were kept.")
    stamps = file_stamps(ingested.files)
    report.documents = len(meta)
    report.removed = sorted(set(old_docs) - set(meta))
    report.unchanged = len(reuse)
    report.added = [i for i in meta if i not in old_docs]
    report.updated = [i for i in meta if i in old_docs and i not in reuse]
    report.changed = bool(report.added or report.updated or report.removed) or old_gen is None or optimize
    report.embedded, report.embed_seconds = writer.embedded, writer.embed_seconds
    if not report.changed:
        report.chunks = int(old_manifest["chunks"])
        report.ann = bool(old_manifest.get("ann"))
        if (old_manifest.get("duplicates") != report.duplicates or old_manifest.get("stamps") != stamps
                or old_manifest.get("issues") != _issues(report)):
            rewrite_manifest(old_gen, {"duplicates": report.duplicates, "stamps": stamps, "issues": _issues(report)})
        report.seconds = time.perf_counter() - t0
        return report

    dim = writer.dim or (old_manifest["dimension"] if old_manifest else embedder.dim)
    manifest = {
        "format": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": settings.index_signature(),
        "model": settings.model,
        "dimension": int(dim),
        "embedding_dtype": embedder.dtype,
        "embedding_backend": embedder.backend,
        "embedding_path": embedder.path_name,
        "vectors": embedder.vectors,
        "corpus": [str(p.resolve()) for p in paths],
        "duplicates": report.duplicates,
        "stamps": stamps,
        "issues": _issues(report),
    }
    home = dict(writer.home)
    # Lucene's way: the new and changed documents are the new segments; the old versions of changed
    # and removed documents are marked deleted in theirs. Nothing else is rewritten.
    segments = [dict(seg, deleted=list(seg["deleted"])) for seg in old_manifest["segments"]] if old_manifest else []
    by_name = {seg["name"]: seg for seg in segments}
    for doc_id in report.updated + report.removed:
        by_name[old_docs[doc_id]["segment"]]["deleted"].append(doc_id)
    home.update({doc_id: old_docs[doc_id]["segment"] for doc_id in reuse})
    segments += resumed_segments(index_dir, resumed)
    home.update(resumed)
    segments += writer.segments
    segments = [seg for seg in segments if seg["documents"] > len(seg["deleted"])]
    if optimize or len(segments) > merge.MAX_SEGMENTS:
        segments, home = merge.merge_segments(index_dir, segments, home, settings, log, everything=optimize)
    manifest["documents"] = len(meta)  # the list itself: documents.sqlite (read_documents)
    for doc_id, info in meta.items():
        info["segment"] = home[doc_id]
    finish_manifest(manifest, segments, index_dir)
    report.chunks, report.ann = manifest["chunks"], manifest["ann"]
    commit(index_dir, manifest, meta)
    report.seconds = time.perf_counter() - t0
    return report
