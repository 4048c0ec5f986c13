"""A grounded LLM answer: fit the passages, build the prompt, stream the reply, check its citations."""

from __future__ import annotations

from collections.abc import Callable

from rag.llm.base import LLM, LLMError
from rag.llm.check import Checked, check_answer
from rag.llm.prompt import build_messages, fit_passages
from rag.types import Citation


def generate(backend: LLM, question: str, citations: list[Citation], max_tokens: int, timeout: float,
             on_token: Callable[[str], None] | None = None) -> tuple[Checked, list[Citation], int]:
    """The checked answer of ``backend``, the passages its prompt held, and the chunks streamed
    (one per token for llama.cpp and most OpenAI-compatible servers).

    Raises:
        LLMError: the backend failed, stalled or said nothing.
    """
    passages = fit_passages(citations, question, backend.context, max_tokens)
    parts: list[str] = []
    for text in backend.stream(build_messages(passages, question), max_tokens, timeout):
        parts.append(text)
        if on_token:
            on_token(text)
    reply = "".join(parts)
    if not reply.strip():
        raise LLMError(f"the {backend.name} model returned an empty answer")
    return check_answer(reply, {c.n for c in passages}), passages, len(parts)
