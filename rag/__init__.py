"""rag: answer questions about a collection of news articles, with cited evidence.

Public API::

    from rag import Rag, Settings
    rag = Rag(Settings.from_env(corpus=("corpus",)))
    rag.start()  # the one start-up: settings checked, the index built or updated when it must be
    answer = rag.ask("Who offered to mediate between Kabul and Islamabad?")
    for event in rag.ask_stream(question, llm="openai"):  # tokens as written, then the Answer
        ...
"""

from __future__ import annotations

from rag.answer.conflicts import Conflict
from rag.answer.followup import Conversation
from rag.answer.timeline import Timeline, TimelineEntry
from rag.api import START_POLICIES, AskEvent, Rag, Startup, check_question
from rag.config import LOOPBACK_HOSTS, Settings
from rag.errors import (
    CorpusError,
    MissingExtraError,
    QuestionError,
    RagError,
    RagIndexError,
    SpanError,
    UnknownModelError,
)
from rag.filters import FilterError, Filters
from rag.index.build import IndexState
from rag.ingest.uploads import MAX_UPLOAD_BYTES, UPLOAD_SUFFIXES, Upload
from rag.llm import available as llm_backends
from rag.text.dates import FORMATS_HELP as DATE_FORMATS
from rag.text.dates import parse_date
from rag.text.markers import citation_markers
from rag.types import Answer, Chunk, Citation, Document, Evidence, Hit, SkippedInput, document_dict, search_dict

__all__ = [
    "LOOPBACK_HOSTS",
    "SpanError",
    "Answer", "Chunk", "Conflict", "Citation", "Conversation", "CorpusError", "Document", "Evidence", "FilterError", "Filters",
    "Hit", "IndexState", "MissingExtraError", "QuestionError", "Rag", "RagError", "RagIndexError", "Settings",
    "SkippedInput", "UnknownModelError", "Upload", "UPLOAD_SUFFIXES", "MAX_UPLOAD_BYTES", "llm_backends", "Timeline", "TimelineEntry",
    "check_question", "parse_date", "DATE_FORMATS", "Startup", "START_POLICIES", "AskEvent",
    "citation_markers", "search_dict", "document_dict",
]
__version__ = "0.1.0"
