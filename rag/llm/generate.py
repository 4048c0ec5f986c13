"""A grounded LLM answer: fit the passages, build the prompt, stream the reply, check its citations."""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator

from rag.config import Settings
from rag.llm.base import LLM, LLMError
from rag.llm.check import Checked, check_answer
from rag.llm.prompt import build_messages, fit_passages
from rag.types import Answer, Citation


def generate(backend: LLM, question: str, citations: list[Citation], max_tokens: int,
             timeout: float) -> Generator[str, None, tuple[Checked, list[Citation], int]]:
    """Yield the text of ``backend`` as it streams; return the checked answer, the passages its
    prompt held, and the chunks streamed (one per token for llama.cpp and most
    OpenAI-compatible servers). Closing the generator closes the backend's stream.

    Raises:
        LLMError: the backend failed, stalled or said nothing.
    """
    passages = fit_passages(citations, question, backend.context, max_tokens)
    parts: list[str] = []
    for text in backend.stream(build_messages(passages, question), max_tokens, timeout):
        parts.append(text)
        yield text
    reply = "".join(parts)
    if not reply.strip():
        raise LLMError(f"the {backend.name} model returned an empty answer")
    return check_answer(reply, {c.n for c in passages}), passages, len(parts)


def answer_with_llm(result: Answer, backend: LLM | LLMError, settings: Settings) -> Iterator[str]:
    """Yield the LLM's answer as it is written, then replace ``result``'s extractive answer with
    the checked answer, or keep it and say why in ``result.warnings`` (``backend`` may be the
    LLMError that kept it from starting); what the model's answer lacks is said there too."""
    result.extractive_answer = result.answer
    try:
        if isinstance(backend, LLMError):
            raise backend
        t0 = time.perf_counter()
        # the standalone question: a follow-up ("whom did she defeat?") keeps its context
        question = result.standalone_question or result.question
        checked, shown, result.llm_tokens = yield from generate(backend, question, result.citations,
                                                                settings.llm_max_tokens, settings.llm_timeout)
        result.timings_ms["generate"] = (time.perf_counter() - t0) * 1000
    except LLMError as e:
        result.warnings.append(f"{e}; showing the extractive answer")
        return
    if len(shown) < len(result.citations):
        result.warnings.append(f"only {len(shown)} of {len(result.citations)} passages fit the model's "
                               f"{settings.llm_context}-token context")
    result.answer, result.abstained = checked.text, checked.abstained
    result.invalid_citations, result.ungrounded = checked.invalid, checked.ungrounded
    if checked.invalid:
        marks = ", ".join(f"[{n}]" for n in dict.fromkeys(checked.invalid))
        result.warnings.append(f"removed citation {marks}: no such passage")
    if checked.ungrounded:
        result.warnings.append("the model's answer cites no passage; the extractive answer is kept beside it")
    if checked.abstained:
        result.evidence = []
