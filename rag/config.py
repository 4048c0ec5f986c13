"""One settings dataclass, overridable by ``RAG_*`` environment variables and CLI flags."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

from rag.errors import RagError

PACKAGE_DIR = Path(__file__).resolve().parent
# The shipped sample corpus lives beside the package in a source checkout.
DEFAULT_CORPUS = PACKAGE_DIR.parent / "corpus"
# The addresses that only this machine reaches: a server bound elsewhere needs an API key (HTTP) or refuses (MCP).
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
DEFAULT_MODEL = "all-MiniLM-L6-v2"


@dataclass(frozen=True)
class Settings:
    """Everything that changes what gets indexed or answered.

    The fields marked "index" are saved in the index manifest; an index built
    with other values is rebuilt, never mixed.
    """

    corpus: tuple[str, ...] = ()  # files or folders; empty means the shipped corpus/
    index_dir: str = ""  # empty means a folder under the user cache named after the corpus
    model: str = DEFAULT_MODEL  # index: sentence-transformers model name or path
    chunk_tokens: int = 96  # index: target chunk size in cl100k tokens (tuned, docs/experiments.md)
    chunk_overlap: int = 16  # index: tokens repeated from the previous chunk (tuned, docs/experiments.md)
    title_in_embedding: bool = False  # index: embed "title\ntext"; measured no gain, 15% slower
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16 (torch embedding precision)
    embed: str = "auto"  # auto | torch | onnx | onnx-int8: the embedding backend (README, "Embedding speed")
    device: str = "auto"  # auto | cpu | cuda: where torch embeds (auto: a CUDA GPU when present)
    batch_size: int = 32
    ann_threshold: int = 20_000  # chunks above which IVF-PQ + exact re-score replaces exact search (rag/index/dense.py)
    k: int = 5
    rrf_k: int = 60
    candidates: int = 200  # hits taken from each retriever before fusion
    rerank: str = "span"  # the answer read by: span (the trained span reader) | none (hand-written scorer) | learned (sentence cross-encoder)
    reranker: str = ""  # the reader's model folder (default: the shipped rag/models/span_reader, or rag/models/reader for "learned")
    short_answers: bool = True  # the name, number, date... asked for, read by the trained ranker (rag/answer/short.py)
    short_threshold: float | None = None  # the ranker's probability from which a short answer is shown; None: its own
    abstain_threshold: float | None = None  # below it the answer abstains; None: the scorer's calibrated value
    llm: str = "none"  # answer backend: none (extractive), openai, llamacpp
    llm_url: str = "http://127.0.0.1:11434/v1"  # openai: an OpenAI-compatible server (Ollama's default)
    llm_model: str = ""  # openai: model name; llamacpp: GGUF path (default: the bundled SmolLM2)
    llm_api_key: str = ""
    llm_timeout: float = 30.0  # seconds to connect, and the most a backend may stay silent
    llm_max_tokens: int = 256
    llm_context: int = 2048  # the model's context window in tokens; passages are fitted to it
    llm_stream: bool = True  # openai: false for servers that cannot stream

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Defaults, then ``RAG_<FIELD>`` variables, then explicit non-None overrides."""
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = os.environ.get(f"RAG_{f.name.upper()}")
            if raw is not None and raw != "":
                values[f.name] = _parse(f.name, raw, f.type)
        values.update({k: v for k, v in overrides.items() if v is not None})
        if isinstance(values.get("corpus"), (str, Path)):
            values["corpus"] = (str(values["corpus"]),)
        if "corpus" in values:
            values["corpus"] = tuple(str(p) for p in values["corpus"])  # type: ignore[union-attr]
        settings = cls(**values)  # type: ignore[arg-type]
        settings.validate()
        return settings

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)

    def validate(self) -> None:
        if self.chunk_tokens < 16:
            raise RagError(f"chunk_tokens must be at least 16 (got {self.chunk_tokens})")
        if not 0 <= self.chunk_overlap < self.chunk_tokens // 2 + 1:
            raise RagError(
                f"chunk_overlap must be between 0 and half of chunk_tokens (got {self.chunk_overlap})"
            )
        if self.short_threshold is not None and not 0.0 <= self.short_threshold <= 1.0:
            raise RagError(f"short_threshold must be between 0 and 1 (got {self.short_threshold})")
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise RagError(f"dtype must be auto, float32, bfloat16 or float16 (got {self.dtype!r})")
        if self.embed not in ("auto", "torch", "onnx", "onnx-int8"):
            raise RagError(f"embed must be auto, torch, onnx or onnx-int8 (got {self.embed!r})")
        if self.device not in ("auto", "cpu", "cuda"):
            raise RagError(f"device must be auto, cpu or cuda (got {self.device!r})")
        if self.rerank not in ("span", "learned", "none"):
            raise RagError(f"rerank must be span, learned or none (got {self.rerank!r})")
        if self.k < 1:
            raise RagError(f"k must be at least 1 (got {self.k})")
        if self.llm_timeout <= 0:
            raise RagError(f"llm_timeout must be positive (got {self.llm_timeout})")
        if not 1 <= self.llm_max_tokens < self.llm_context:
            raise RagError(f"llm_max_tokens must be between 1 and llm_context (got {self.llm_max_tokens})")

    @property
    def corpus_paths(self) -> list[Path]:
        return [Path(p) for p in self.corpus] if self.corpus else [DEFAULT_CORPUS]

    @property
    def index_path(self) -> Path:
        if self.index_dir:
            return Path(self.index_dir)
        paths = sorted(str(p.resolve()) for p in self.corpus_paths)
        digest = hashlib.sha1("\n".join(paths).encode()).hexdigest()[:10]
        name = self.corpus_paths[0].resolve().name or "corpus"
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        return cache / "rag" / "indexes" / f"{name}-{digest}"

    def index_signature(self) -> dict[str, object]:
        """The settings an index depends on (saved in, and checked against, its manifest)."""
        return {
            "model": self.model,
            "chunk_tokens": self.chunk_tokens,
            "chunk_overlap": self.chunk_overlap,
            "title_in_embedding": self.title_in_embedding,
        }


def _parse(name: str, raw: str, typ: object) -> object:
    typ = str(typ)
    try:
        if "tuple" in typ:
            return tuple(p for p in raw.split(os.pathsep) if p)
        if typ == "int":
            return int(raw)
        if "float" in typ:
            return float(raw)
        if typ == "bool":
            return raw.strip().lower() in ("1", "true", "yes", "on")
    except ValueError:
        raise RagError(f"RAG_{name.upper()}={raw!r} is not a valid {typ}") from None
    return raw
