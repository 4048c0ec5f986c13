"""When and how segments are merged: Lucene's tiered policy, simplified."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rag.config import Settings
from rag.index import segment
from rag.index.layout import next_segment_name
from rag.types import Chunk, Document

MAX_SEGMENTS = 8  # past this many segments, an indexing run merges the smaller ones
MERGE_MAX_CHUNKS = 1_000_000  # an automatic merge makes segments of at most about this many chunks


def merge_segments(index_dir: Path, segments: list[dict], home: dict[str, str], settings: Settings, log,
           everything: bool) -> tuple[list[dict], dict[str, str]]:
    """Merge segments into one, leaving deleted documents out: every segment with ``everything``
    (``index --optimize``); else the smallest, up to ``MERGE_MAX_CHUNKS`` together (memory stays
    bounded), never the largest unless a fifth of it is deleted."""
    if everything:
        merged = list(segments)
    else:
        ordered = sorted(segments, key=lambda seg: seg["chunks"])
        largest = ordered[-1] if ordered else None
        if largest is not None and len(largest["deleted"]) * 5 <= largest["documents"]:
            ordered = ordered[:-1]
        merged, total = [], 0
        for seg in ordered:
            if merged and total + seg["chunks"] > MERGE_MAX_CHUNKS:
                break
            merged.append(seg)
            total += seg["chunks"]
    if len(merged) < 2 and not (everything and merged and merged[0]["deleted"]):
        return segments, home
    keep = [seg for seg in segments if seg not in merged]
    log(f"Merging {len(merged)} segments...")
    docs: list[Document] = []
    chunks: list[Chunk] = []
    vecs = []
    for seg in merged:
        live, kept, vectors = segment.load_documents(index_dir / seg["name"], lambda doc_id, gone=set(seg["deleted"]): doc_id not in gone)
        docs += live
        chunks += kept
        vecs.append(vectors)
    entry = segment.write_segment(index_dir / next_segment_name(index_dir), docs, chunks, np.concatenate(vecs), settings)
    paths = sorted({seg["embedded_by"] for seg in merged if seg.get("embedded_by")})
    if paths:
        entry["embedded_by"] = ", ".join(paths)
    return keep + [entry], {**home, **{d.doc_id: entry["name"] for d in docs}}
