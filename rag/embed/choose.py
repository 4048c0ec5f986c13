"""Which embedder runs: a registry of model-name prefixes (the tests' fake model), the backend
chosen for this machine and index, and one cached embedder per model, backend and device."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from rag.embed.base import INT8_VECTORS, Embedder
from rag.errors import RagError

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
    if manifest is not None and manifest.get("embedding_backend"):
        backend = manifest["embedding_backend"]
    else:  # no index, or one of an older format that is rebuilt
        if cuda is None:
            from rag.embed.torch_model import cuda_available

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
    from rag.embed.torch_model import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(name, dtype, device)


def clear_cache() -> None:
    _cached_embedder.cache_clear()
