"""The output schema: what ``ask --json``, the HTTP API and the MCP tools return, as pydantic models.

The objects themselves come from one ``to_dict`` family (``Answer.to_dict``, ``Timeline.to_dict``,
``search_dict``, ``document_dict``); these models describe them for OpenAPI and MCP clients and
forbid unknown keys, so a ``to_dict`` that changes fails ``tests/test_schema.py`` until the
schema says the same.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Shape(BaseModel):
    """A result object: every key described, no other allowed."""

    model_config = ConfigDict(extra="forbid")


class ArticleSpan(Shape):
    """Characters ``start``-``end`` of the article ``doc_id``, with the article's metadata."""

    doc_id: str = Field(description="the article's id (get_document reads it)")
    title: str
    date: str = Field(description="the article's date, YYYY-MM-DD, or empty when unknown")
    source: str = Field(description="the publisher, or empty when unknown")
    url: str = ""
    start: int = Field(description="first character of the span in the article's text")
    end: int = Field(description="character after the span in the article's text")
    text: str = Field(description="the span, exactly the article's text[start:end]")
    page: int = Field(0, description="the page of a PDF where the span starts; absent when not paged")


class Passage(ArticleSpan):
    """A numbered passage: characters ``start``-``end`` of the article ``doc_id``."""

    n: int = Field(description="the passage number; the answer cites it as [n]")
    score: float = Field(description="retrieval score (higher is better; comparable within one result only)")


class SearchResult(Shape):
    results: list[Passage] = Field(description="the passages, best first")


class EvidenceSpan(Shape):
    """An answer sentence: characters ``start``-``end`` of the article ``doc_id``, from passage [n]."""

    n: int
    doc_id: str
    start: int
    end: int


class ShortAnswerSpan(EvidenceSpan):
    """The name, place, number, date or phrase asked for: its text, at characters ``start``-``end``
    of the article ``doc_id`` (passage [n]), and the ranker's probability that it is right."""

    text: str
    probability: float


class ConflictValueResult(Shape):
    """One value the sources give, with the passages ([n]) and articles that give it."""

    value: str
    as_of: str = Field(description="the newest date of the articles that give it")
    citations: list[int]
    dates: list[str]
    doc_ids: list[str]


class ConflictResult(Shape):
    """Sources that give different values for what the question asks."""

    what: str
    kind: str = Field(description="update (the value changed over time; newest first) or disagree")
    values: list[ConflictValueResult]


class AskResult(Shape):
    """``Answer.to_dict()``: the ``ask --json`` object."""

    question: str
    standalone_question: str = Field("", description="a follow-up as one standalone question (present only when "
                                                     "it differs): what the search and the reader read")
    answer: str = Field(description="the answer; each sentence ends with [n] markers naming the citations")
    abstained: bool = Field(description="true when the articles do not answer the question")
    short_answer: ShortAnswerSpan | None = Field(None, description="the name, number, date... asked for (absent "
                                                 "when a sentence answers: why/how questions, or unsure)")
    citations: list[Passage] = Field(description="the passages [1], [2], ... the answer's markers refer to")
    evidence: list[EvidenceSpan] = Field(description="where each answer sentence comes from (empty when abstained)")
    timings_ms: dict[str, float]
    reference_day: str = Field("", description="for a question about 'now': articles dated near this day came first")
    llm: str = Field("none", description="the LLM backend that wrote the answer (present only when one was used)")
    warnings: list[str] = []
    invalid_citations: list[int] = []
    ungrounded: bool = False
    extractive_answer: str = ""
    conflicts: list[ConflictResult] = Field([], description="values the sources give differently (absent when they agree)")


class TimelineSource(ArticleSpan):
    """An article reporting an event: the span is the sentence that says what happened."""


class TimelineEvent(Shape):
    """One event: when, what (a sentence quoted from an article), and every article reporting it."""

    date: str = Field(description="YYYY-MM-DD; the first day of the week, month or year for a coarser date")
    precision: str = Field(description="day, week, month or year")
    basis: str = Field(description="'stated': a date the sentence gives, resolved against the article's date; "
                                   "'article': the article's own date")
    stated: str = Field(description="the words that gave the date ('last week', 'December 24, 2018'); "
                                    "empty when basis is 'article'")
    text: str = Field(description="the sentence that says what happened")
    source: TimelineSource = Field(description="the article the sentence is quoted from")
    also: list[TimelineSource] = Field(description="other articles reporting the same event")


class TimelineResult(Shape):
    """``Timeline.to_dict()``: the ``timeline --json`` object."""

    query: str
    variants: dict[str, list[str]] = Field(description="a query word -> other spellings the articles use")
    articles: int = Field(description="articles read that name the subject")
    main_only: bool = Field(description="true: only the main events are listed (reported by min_sources+ articles)")
    min_sources: int = Field(description="the fewest articles reporting a listed event")
    more: int = Field(description="events left out: reported by fewer articles, or past k")
    entries: list[TimelineEvent] = Field(description="the events, oldest first")


class DocumentResult(Shape):
    doc_id: str
    title: str
    date: str
    source: str
    url: str
    text: str = Field(description="the article's text, or characters start-end of it")
    start: int
    end: int
    length: int = Field(description="characters in the whole article")
