"""sentence-transformers on torch: float16 on a GPU with large batches, bfloat16 on CPUs that run
it natively, float32 elsewhere; a query goes through the numpy encoder until torch is loaded."""

from __future__ import annotations

import threading

import numpy as np

from rag.embed.base import model_dim, quiet_offline_transformers, resolve_model_path, unit_rows
from rag.embed.cpu import cpu_model_and_flags
from rag.embed.numpy_bert import NumpyBertEncoder
from rag.errors import RagError


def bf16_supported(cpuinfo: str | None = None) -> bool:
    """True when the CPU has native bfloat16 matrix units (AMX or AVX-512 BF16).

    ``cpuinfo`` is the text of /proc/cpuinfo (read when not given).
    """
    return bool(cpu_model_and_flags(cpuinfo)[1] & {"amx_bf16", "avx512_bf16"})


def cuda_available() -> bool:
    """True when torch sees a CUDA GPU (torch is imported only when ``nvidia-smi`` exists)."""
    import shutil

    if not shutil.which("nvidia-smi"):
        return False
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def pick_device(device: str) -> str:
    """"cuda" or "cpu" for a device setting of auto, cpu or cuda."""
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if device == "cuda" and not cuda_available():
        raise RagError("--device cuda: no CUDA GPU is visible to torch (nvidia-smi, and a CUDA build of torch)")
    return device


def pick_dtype(dtype: str, device: str, cpuinfo: str | None = None) -> str:
    """The precision an embedder runs in: on a GPU float16, on a CPU bfloat16 where it has native
    bf16 units (AMX or AVX-512 BF16), float32 elsewhere; an explicit setting wins."""
    if dtype != "auto":
        return dtype
    if device == "cuda":
        return "float16"
    return "bfloat16" if bf16_supported(cpuinfo) else "float32"


def device_batch_size(device: str, memory_bytes: int = 0) -> int | None:
    """Chunks per forward pass for a device: None on a CPU (the settings' batch size, 32, is
    best there), and on a GPU as many as its memory comfortably holds for a small encoder
    (MiniLM at 256 tokens needs ~6 MB of activations per chunk in float16)."""
    if device != "cuda":
        return None
    gib = memory_bytes / 2**30
    return 1024 if gib >= 40 else 512 if gib >= 16 else 256 if gib >= 8 else 128


class SentenceTransformerEmbedder:
    """sentence-transformers: on a GPU in float16 with large batches, on a CPU in bfloat16 where
    it runs natively, float32 elsewhere."""

    vectors = "float"

    def __init__(self, name: str, dtype: str = "auto", device: str = "auto") -> None:
        self.name = name
        self.path = resolve_model_path(name)
        self.device = pick_device(device)
        self.dtype = pick_dtype(dtype, self.device)
        self.batch_size: int | None = None
        if self.device == "cuda":
            import torch

            self.batch_size = device_batch_size("cuda", torch.cuda.get_device_properties(0).total_memory)
        self.backend = "torch"
        self.path_name = f"torch {self.device} {self.dtype}"
        self._model = None
        self._query_encoder: NumpyBertEncoder | None | bool = None
        self._load_lock = threading.Lock()
        self.dim = model_dim(self.path)

    @property
    def model(self):
        with self._load_lock:  # a preload thread and the indexer may ask at once
            if self._model is None:
                self._load()
        return self._model

    def _load(self) -> None:
        quiet_offline_transformers()
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as e:
            raise RagError(f"sentence-transformers is not installed ({e})") from None
        model = SentenceTransformer(str(self.path), device=self.device)
        if self.dtype in ("bfloat16", "float16"):
            model = model.to(getattr(torch, self.dtype))
        self._model = model
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dim = int(get_dim() or self.dim)

    def warm(self) -> None:
        """Load the torch model now, for a long-running process (faster per query)."""
        _ = self.model

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = self.model.encode(
            texts, batch_size=batch_size, normalize_embeddings=True,
            convert_to_numpy=False, convert_to_tensor=True, show_progress_bar=False,
        )
        # Normalised in bfloat16 the norms drift by ~1e-3; renormalise in float32.
        return unit_rows(np.ascontiguousarray(vecs.float().cpu().numpy(), dtype=np.float32))

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode_short([text])[0]

    def encode_short(self, texts: list[str]) -> np.ndarray:
        """A few short texts (a query, candidate answer sentences) without loading torch."""
        if self._model is None and self._query_encoder is None:
            self._query_encoder = NumpyBertEncoder.load(self.path) or False
        if self._model is None and self._query_encoder:
            return self._query_encoder.encode(texts)
        return self._forward(texts)

    def _forward(self, texts: list[str]) -> np.ndarray:
        """One batch straight through the model, skipping ``encode``'s per-call set-up (~1.3 ms a query)."""
        import torch

        model = self.model
        prepare = getattr(model, "preprocess", None) or model.tokenize
        features = {k: v.to(model.device) if hasattr(v, "to") else v for k, v in prepare(texts).items()}
        with torch.inference_mode():
            vecs = model.forward(features)["sentence_embedding"]
        return unit_rows(np.ascontiguousarray(vecs.float().cpu().numpy(), dtype=np.float32))
