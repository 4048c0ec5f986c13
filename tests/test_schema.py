"""One output schema: the objects come from one ``to_dict`` family and the pydantic models of
``rag.surfaces.schema`` (what OpenAPI and the MCP tools publish) describe exactly those objects."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from rag import Answer, Conversation, document_dict, search_dict
from rag.answer.conflicts import Conflict, ConflictValue
from rag.surfaces.schema import AskResult, DocumentResult, SearchResult, TimelineResult
from rag.types import ShortAnswer

QUESTION = "Who offered to mediate between Kabul and Islamabad?"


def described(model, obj: dict) -> None:
    """``obj`` is valid for ``model``, and the model gives back exactly ``obj`` (no key added or lost)."""
    assert model.model_validate(obj).model_dump(exclude_unset=True) == obj


def test_an_answer_with_every_optional_key_is_described(fake_rag):
    answer = fake_rag.ask(QUESTION)
    described(AskResult, answer.to_dict())
    c = answer.citations[0]
    full = Answer(question="how many?", answer="Four [1].", abstained=False, citations=answer.citations,
                  evidence=answer.evidence, timings_ms={"total": 1.0}, standalone_question="how many troops?",
                  reference_day="2025-11-09", llm="openai", warnings=["w"], invalid_citations=[7],
                  extractive_answer="Four troops [1].",
                  short_answer=ShortAnswer("Four", 1, c.doc_id, c.start, c.start + 4, 0.5),
                  conflicts=[Conflict("troops (a number)", "update",
                                      [ConflictValue("four", [1], [c.date], [c.doc_id], c.date)])])
    d = full.to_dict()
    assert {"short_answer", "conflicts", "llm", "reference_day", "standalone_question"} <= set(d)
    described(AskResult, d)


def test_a_key_the_schema_does_not_describe_fails(fake_rag):
    d = fake_rag.ask(QUESTION).to_dict()
    with pytest.raises(ValidationError, match="bogus"):
        AskResult.model_validate({**d, "bogus": 1})
    with pytest.raises(ValidationError):
        AskResult.model_validate({**d, "citations": [{**d["citations"][0], "chunk_id": 3}]})


def test_follow_up_search_timeline_and_document_objects_are_described(fake_rag):
    conversation = Conversation()
    fake_rag.ask(QUESTION, conversation=conversation)
    described(AskResult, fake_rag.ask("what did he urge?", conversation=conversation).to_dict())
    described(SearchResult, search_dict(fake_rag.search(QUESTION, k=3)))
    described(TimelineResult, fake_rag.timeline("Araghchi").to_dict())
    doc_id = fake_rag.search(QUESTION, k=1)[0].chunk.doc_id
    described(DocumentResult, document_dict(fake_rag.document(doc_id)))
    described(DocumentResult, document_dict(fake_rag.document(doc_id, 5, 40)))
