"""LLM backends chosen by name: ``get_llm(name, settings)``.

A backend implements one method, ``stream(messages, max_tokens, timeout)``, that yields
text chunks as they are generated. ``none`` is the extractive answer: no model at all.
"""

from __future__ import annotations

from collections.abc import Callable

from rag.config import Settings
from rag.errors import UnknownModelError
from rag.llm.base import LLM, LLMError

NONE = "none"
_REGISTRY: dict[str, Callable[[Settings], LLM]] = {}


def register_llm(name: str, factory: Callable[[Settings], LLM]) -> None:
    """Make ``factory(settings)`` available as backend ``name``."""
    _REGISTRY[name] = factory


def available() -> list[str]:
    """Backend names, ``none`` first."""
    return [NONE, *sorted(_REGISTRY)]


def get_llm(name: str, settings: Settings) -> LLM | None:
    """The backend called ``name``; None for ``none`` (the extractive answer).

    Raises:
        UnknownModelError: no backend has that name.
        MissingExtraError: the backend needs an optional dependency that is not installed.
        LLMError: the backend cannot start (a model file that does not exist).
    """
    if name == NONE:
        return None
    factory = _REGISTRY.get(name)
    if factory is None:
        raise UnknownModelError(f"unknown LLM backend {name!r}; available: {', '.join(available())}")
    return factory(settings)


def _openai(settings: Settings) -> LLM:
    from rag.llm.openai_compat import OpenAIChat

    return OpenAIChat(settings.llm_url, settings.llm_model, settings.llm_api_key,
                      streaming=settings.llm_stream, context=settings.llm_context)


def _llamacpp(settings: Settings) -> LLM:
    from rag.llm.llamacpp import LlamaCpp

    return LlamaCpp(settings.llm_model, n_ctx=settings.llm_context)


register_llm("openai", _openai)
register_llm("llamacpp", _llamacpp)

__all__ = ["LLM", "LLMError", "NONE", "available", "get_llm", "register_llm"]
