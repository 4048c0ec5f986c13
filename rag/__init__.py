"""rag: answer questions about a collection of news articles, with cited evidence.

Public API::

    from rag import Rag, Settings
    rag = Rag(Settings.from_env(corpus=("corpus",)))
    rag.ensure_index()
    answer = rag.ask("Who offered to mediate between Kabul and Islamabad?")
"""

from __future__ import annotations

from .api import IndexState, Rag
from .config import Settings
from .conflicts import Conflict
from .errors import CorpusError, MissingExtraError, QuestionError, RagError, RagIndexError, UnknownModelError
from .filters import FilterError, Filters
from .followup import Conversation
from .llm import available as llm_backends
from .timeline import Timeline, TimelineEntry
from .types import Answer, Chunk, Citation, Document, Evidence, Hit, SkippedInput
from .uploads import MAX_UPLOAD_BYTES, UPLOAD_SUFFIXES, Upload

__all__ = [
    "Answer", "Chunk", "Conflict", "Citation", "Conversation", "CorpusError", "Document", "Evidence", "FilterError", "Filters",
    "Hit", "IndexState", "MissingExtraError", "QuestionError", "Rag", "RagError", "RagIndexError", "Settings",
    "SkippedInput", "UnknownModelError", "Upload", "UPLOAD_SUFFIXES", "MAX_UPLOAD_BYTES", "llm_backends", "Timeline", "TimelineEntry",
]
__version__ = "0.1.0"
