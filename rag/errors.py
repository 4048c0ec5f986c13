"""Exceptions whose messages tell the user how to fix the problem."""

from __future__ import annotations


class RagError(Exception):
    """Base class: a problem the user can fix; the CLI prints it without a traceback."""


class CorpusError(RagError):
    """The corpus is missing, empty or unreadable."""


class RagIndexError(RagError):
    """The index is missing, damaged, locked by another run, or its folder unusable."""


class QuestionError(RagError):
    """The question is empty or malformed."""


class SpanError(QuestionError):
    """A span of a document that is not inside it."""


class UnknownModelError(RagError):
    """A backend or model name that is not registered."""


class MissingExtraError(RagError):
    """An optional dependency is not installed."""

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(
            f"{module} is not installed: install the '{extra}' extra "
            f"(pip install -e '.[{extra}]')"
        )
