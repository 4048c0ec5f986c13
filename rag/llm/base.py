"""What every LLM backend is: a name, a context size and one streaming method."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from rag.errors import RagError


class LLMError(RagError):
    """A backend that could not answer: server down or slow, HTTP error, missing model file.

    ``Rag.ask`` turns it into a warning and keeps the extractive answer.
    """


class LLM(Protocol):
    name: str
    context: int  # tokens the model attends to: prompt and answer together

    def stream(self, messages: list[dict], max_tokens: int, timeout: float) -> Iterator[str]:
        """Yield the reply to the chat ``messages`` in text chunks as they are generated.

        Raises LLMError when the backend fails or is silent for longer than ``timeout`` seconds.
        """
        ...
