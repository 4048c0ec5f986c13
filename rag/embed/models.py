"""Embedding models: sentence-transformers for indexing, and a torch-free encoder for queries.

Importing torch and sentence-transformers costs seconds, so a query against a
BERT-family model (all-MiniLM-L6-v2, BGE, E5, ...) is embedded by ``NumpyBertEncoder``,
which runs the same network from the same weights in numpy and matches
sentence-transformers to within float rounding (checked in the tests).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

from rag.embed.base import (  # noqa: F401 (also imported from here)
    BUNDLED_MODELS,
    INT8_VECTORS,
    pad_encodings,
    quiet_offline_transformers,
    resolve_model_path,
)
from rag.embed.cpu import cpu_model_and_flags
from rag.errors import RagError
from rag.types import Chunk


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


_REGISTRY: dict[str, Callable[[str, str], Embedder]] = {}


def register_embedder(prefix: str, factory: Callable[[str, str], Embedder]) -> None:
    """Make model names starting with ``prefix`` resolve to ``factory(name, dtype)``."""
    _REGISTRY[prefix] = factory


BACKENDS = ("torch", "onnx", "onnx-int8")
CPU_BACKEND = "onnx-int8"  # what "auto" embeds with on a machine without a GPU (docs/experiments.md, "Embedding speed")


def vector_kind(backend: str) -> str:
    """The kind of vectors a backend writes: ``INT8_VECTORS`` for quantised weights, "float"
    otherwise (torch in float32, bfloat16 or float16 on any device, and ONNX float32 agree to
    cosine 0.999)."""
    return INT8_VECTORS if backend.endswith("int8") else "float"


def choose_backend(setting: str, manifest: dict | None, cuda: bool | None = None, model: str = "") -> str:
    """The backend that embeds: an explicit setting; else the one the existing index was built
    with (its vectors are never mixed with another kind); else the machine's fastest: torch on a
    GPU, ``CPU_BACKEND`` on a CPU (measured in docs/experiments.md, "Embedding speed").

    Chosen by "auto", int8 is checked against float32 on this CPU for ``model`` (once, then
    remembered): where they disagree, ONNX float32 embeds instead, with one warning."""
    if setting != "auto":
        return setting
    if manifest is not None:
        backend = manifest.get("embedding_backend") or "torch"  # indexes before backends: torch
    else:
        if cuda is None:
            cuda = cuda_available()
        backend = "torch" if cuda else CPU_BACKEND
    if backend == "onnx-int8" and model and not int8_usable(model):
        return "onnx"
    return backend


def int8_usable(model: str) -> bool:
    """Whether int8 vectors of ``model`` agree with float32 ones on this CPU (a model resolved by
    a registered factory, such as the tests' fake embedder, has no int8 form to check)."""
    if any(model.startswith(prefix) for prefix in _REGISTRY):
        return True
    from rag.embed.onnx_model import int8_agrees

    return int8_agrees(model)


def get_embedder(name: str, dtype: str = "auto", backend: str = "torch", device: str = "auto") -> Embedder:
    """The embedder for a model name or path on a backend (``BACKENDS``) and device (auto, cpu,
    cuda); loaded once per process."""
    return _cached_embedder(name, dtype, backend, device)


@lru_cache(maxsize=4)
def _cached_embedder(name: str, dtype: str, backend: str, device: str) -> Embedder:
    for prefix, factory in _REGISTRY.items():
        if name.startswith(prefix):
            return factory(name, dtype)
    if backend.startswith("onnx"):
        from rag.embed.onnx_model import OnnxEmbedder

        return OnnxEmbedder(name, quantized=backend == "onnx-int8")
    if backend != "torch":
        raise RagError(f"unknown embedding backend {backend!r} (one of {', '.join(BACKENDS)})")
    return SentenceTransformerEmbedder(name, dtype, device)


def clear_cache() -> None:
    _cached_embedder.cache_clear()


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
        self.dim = _read_dim(self.path)

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
        out = np.ascontiguousarray(vecs.float().cpu().numpy(), dtype=np.float32)
        # Normalised in bfloat16 the norms drift by ~1e-3; renormalise in float32.
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

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
        out = np.ascontiguousarray(vecs.float().cpu().numpy(), dtype=np.float32)
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out


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


def _read_dim(path: Path) -> int:
    try:
        return int(json.loads((path / "config.json").read_text())["hidden_size"])
    except (OSError, KeyError, ValueError):
        return 0


class NumpyBertEncoder:
    """BERT + mean pooling + L2 normalisation in numpy, for fast cold starts."""

    def __init__(self, tokenizer, weights: dict[str, np.ndarray], config: dict, max_len: int) -> None:
        self.tok = tokenizer
        self.w = weights
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.max_len = max_len
        self._wt: dict[str, np.ndarray] = {}
        self.prefix = next((p for p in ("", "bert.", "model.") if f"{p}embeddings.word_embeddings.weight" in weights), None)

    @classmethod
    def load(cls, path: Path) -> NumpyBertEncoder | None:
        """The encoder for a plain BERT mean-pooling model, or None for anything else."""
        try:
            config = json.loads((path / "config.json").read_text())
            modules = json.loads((path / "modules.json").read_text())
            pooling = json.loads((path / "1_Pooling" / "config.json").read_text())
            if config.get("model_type") != "bert" or config.get("hidden_act") != "gelu":
                return None
            if not pooling.get("pooling_mode_mean_tokens") or any(
                pooling.get(k) for k in ("pooling_mode_cls_token", "pooling_mode_max_tokens")
            ):
                return None
            if [m.get("type", "").rsplit(".", 1)[-1] for m in modules] != ["Transformer", "Pooling", "Normalize"]:
                return None
            from safetensors.numpy import load_file
            from tokenizers import Tokenizer

            weights = load_file(str(path / "model.safetensors"))
            tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
            st_cfg_path = path / "sentence_bert_config.json"
            max_len = json.loads(st_cfg_path.read_text()).get("max_seq_length", 256) if st_cfg_path.exists() else 256
            tokenizer.no_padding()
            tokenizer.enable_truncation(max_length=max_len)
            enc = cls(tokenizer, weights, config, max_len)
            return enc if enc.prefix is not None else None
        except (OSError, ValueError, KeyError, ImportError):
            return None

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length vectors for ``texts`` (each truncated to the model's maximum length).

        Texts of similar length share a padded batch; a long question is not run together
        with short sentences, which would pad each of them to its length.
        """
        encs = self.tok.encode_batch(texts)
        out = np.zeros((len(texts), self._p("embeddings.word_embeddings.weight").shape[1]), np.float32)
        for idx in length_batches([len(e.ids) for e in encs]):
            ids, mask, types = pad_encodings([encs[i] for i in idx])
            pooled = mean_pool(self.hidden(ids, mask, types), mask)
            out[idx] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return out

    def hidden(self, ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> np.ndarray:
        """The last layer's hidden states, (batch, tokens, dim), for padded token ids."""
        b, n = ids.shape
        x = (self._p("embeddings.word_embeddings.weight")[ids]
             + self._p("embeddings.position_embeddings.weight")[:n][None]
             + self._p("embeddings.token_type_embeddings.weight")[types])
        x = _layer_norm(x, self._p("embeddings.LayerNorm.weight"), self._p("embeddings.LayerNorm.bias"), self.eps)
        d = x.shape[-1]
        hd = d // self.heads
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            # Contiguous copies: numpy multiplies strided stacks of matrices without BLAS, which
            # made one 256-token question take seconds (a 25 x 256-token batch took 21 s).
            q, k, v = (
                np.ascontiguousarray(
                    self._lin(x, p + f"attention.self.{name}").reshape(b, n, self.heads, hd).transpose(0, 2, 1, 3))
                for name in ("query", "key", "value")
            )
            att = q @ np.ascontiguousarray(k.transpose(0, 1, 3, 2)) * np.float32(1.0 / np.sqrt(hd)) + bias
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            ctx = np.ascontiguousarray((att @ v).transpose(0, 2, 1, 3)).reshape(b, n, d)
            x = _layer_norm(x + self._lin(ctx, p + "attention.output.dense"),
                            self._p(p + "attention.output.LayerNorm.weight"),
                            self._p(p + "attention.output.LayerNorm.bias"), self.eps)
            h = _gelu(self._lin(x, p + "intermediate.dense"))
            x = _layer_norm(x + self._lin(h, p + "output.dense"),
                            self._p(p + "output.LayerNorm.weight"), self._p(p + "output.LayerNorm.bias"), self.eps)
        return x

    def _p(self, name: str) -> np.ndarray:
        return self.w[self.prefix + name]

    def _lin(self, x: np.ndarray, name: str) -> np.ndarray:
        wt = self._wt.get(name)
        if wt is None:  # transposed once, contiguous, so matmul runs as one BLAS gemm
            wt = self._wt[name] = np.ascontiguousarray(self._p(name + ".weight").T)
        return (x.reshape(-1, x.shape[-1]) @ wt + self._p(name + ".bias")).reshape(*x.shape[:-1], wt.shape[1])


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


def _layer_norm(x: np.ndarray, g: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def _gelu(x: np.ndarray) -> np.ndarray:
    # Exact (erf) GELU as in BERT; math.erf vectorised via numpy's frompyfunc is slow,
    # so use the Abramowitz-Stegun erf approximation (max error 1.5e-7).
    z = x * np.float32(1.0 / np.sqrt(2.0))
    s = np.sign(z)
    a = np.abs(z)
    t = 1.0 / (1.0 + 0.3275911 * a)
    y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * np.exp(-a * a)
    return 0.5 * x * (1.0 + s * y)
