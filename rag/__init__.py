"""rag: answer questions about a collection of news articles, with cited evidence.

Public API::

    from rag import Rag, Settings
    rag = Rag(Settings.from_env(corpus=("corpus",)))
    rag.ensure_index()
    answer = rag.ask("Who offered to mediate between Kabul and Islamabad?")
"""

from __future__ import annotations

from .api import Conversation, Rag
from .config import Settings
from .errors import CorpusError, IndexError_, MissingExtraError, QuestionError, RagError, UnknownModelError
from .retrieve import Filters
from .types import Answer, Chunk, Citation, Document, Hit, SkippedInput

__all__ = [
    "Answer", "Chunk", "Citation", "Conversation", "CorpusError", "Document", "Filters", "Hit", "IndexError_",
    "MissingExtraError", "QuestionError", "Rag", "RagError", "Settings", "SkippedInput", "UnknownModelError",
]
__version__ = "0.1.0"
