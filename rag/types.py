"""Dataclasses that flow through the pipeline: files -> documents -> chunks -> hits -> answer."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Document:
    """One article: its full text and what we know about it."""

    doc_id: str
    text: str
    title: str = ""
    date: str = ""  # ISO YYYY-MM-DD, or "" when unknown
    source: str = ""
    url: str = ""
    path: str = ""  # file the document came from
    line: int = 0  # line number within a JSONL file, 0 otherwise
    # PDF only: character offsets in ``text`` where page 2, 3, ... start (page 1 starts at 0);
    # empty for other formats and for a one-page PDF.
    pages: list[int] = field(default_factory=list)


@dataclass
class Chunk:
    """A passage of a document; ``text == document.text[start:end]``."""

    doc_id: str
    start: int
    end: int
    text: str
    n_tokens: int
    title: str = ""
    date: str = ""
    source: str = ""
    url: str = ""
    page: int = 0  # the page of a paged document (PDF) where the chunk starts; 0 when not paged


@dataclass
class Hit:
    """A retrieved chunk with its fused score and the ranks it had in each retriever."""

    chunk_id: int
    chunk: Chunk
    score: float
    dense_score: float | None = None
    dense_rank: int | None = None
    bm25_rank: int | None = None

    def citation(self, n: int) -> Citation:
        """This passage shown as [n]."""
        c = self.chunk
        return Citation(n=n, doc_id=c.doc_id, title=c.title, date=c.date, source=c.source, start=c.start, end=c.end,
                        text=c.text, score=round(self.score, 6), url=c.url, page=c.page)


@dataclass
class Citation:
    """A numbered passage shown to the user: [n] -> title, date, source, exact span."""

    n: int
    doc_id: str
    title: str
    date: str
    source: str
    start: int
    end: int
    text: str
    score: float
    url: str = ""
    page: int = 0  # the page of a PDF where the passage starts; 0 when not paged

    def to_dict(self) -> dict:
        return paged_dict(self)


def paged_dict(span) -> dict:
    """A dataclass with a ``page`` as a dict, without ``page`` when it is 0 (not a paged document)."""
    out = asdict(span)
    if not out.get("page"):
        out.pop("page", None)
    return out


@dataclass
class Evidence:
    """A sentence the answer quotes: from passage [n], characters start-end of the article ``doc_id``."""

    n: int
    doc_id: str
    start: int
    end: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ShortAnswer:
    """The name, place, number, date or phrase asked for: its text as the article writes it,
    read from passage [n], characters start-end of the article ``doc_id``."""

    text: str
    n: int
    doc_id: str
    start: int
    end: int
    probability: float = 0.0  # the ranker's calibrated probability that it is the answer

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Trace:
    """How an extractive answer was read, kept for training and diagnosis, not part of any output."""

    parsed: list = field(default_factory=list)  # the sentences read for short answers (rag.answer.short.Parsed)
    candidates: list = field(default_factory=list)  # their candidate answers, most probable first


@dataclass
class Answer:
    """What ``ask`` returns."""

    question: str
    answer: str
    abstained: bool
    citations: list[Citation] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    confidence: float = 0.0
    standalone_question: str = ""
    retrieved: list[Hit] = field(default_factory=list)  # every ranked passage, best first
    evidence: list[Evidence] = field(default_factory=list)  # the answer's sentences ([] when it abstains)
    llm_tokens: int = 0  # tokens (stream chunks) the LLM generated
    llm: str = "none"  # the answer backend asked for; "none" is the extractive answer
    warnings: list[str] = field(default_factory=list)  # why the LLM answer was not used, and other notes
    invalid_citations: list[int] = field(default_factory=list)  # [n] markers removed: no such passage
    ungrounded: bool = False  # an LLM answer that cites no passage
    extractive_answer: str = ""  # the extractive answer, kept beside an LLM answer
    reference_day: str = ""  # a question about "now": articles dated near this day (ISO) were favoured
    conflicts: list = field(default_factory=list)  # values the sources give differently (rag.conflicts.Conflict)
    short_answer: ShortAnswer | None = None  # the name, number, date... asked for (None: a sentence answers)
    trace: Trace | None = field(default=None, repr=False)  # how the answer was read, for training (not in to_dict)

    def short_line(self) -> str:
        """"Answer: Ishaq Dar [1]" for an extractive answer with a short answer, else ""."""
        s = self.short_answer
        if s is None or self.abstained or self.llm_tokens:
            return ""
        return f"Answer: {s.text} [{s.n}]"

    def reply(self) -> str:
        """The answer as a chat message shows it: the short answer first, then the sentences."""
        line = self.short_line()
        return f"{line}\n\n{self.answer}" if line else self.answer

    def to_dict(self) -> dict:
        """The documented ``ask --json`` object; the LLM keys appear only when an LLM was asked for,
        ``reference_day`` only for a question about "now", ``standalone_question`` only for a
        follow-up read as another question ("whom did she defeat?" -> "whom did Teresa Okafor defeat?")."""
        out = {
            "question": self.question,
            "answer": self.answer,
            "abstained": self.abstained,
            **({"short_answer": self.short_answer.to_dict()} if self.short_answer else {}),
            "citations": [c.to_dict() for c in self.citations],
            "evidence": [e.to_dict() for e in self.evidence],
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
        }
        if self.reference_day:
            out["reference_day"] = self.reference_day
        if self.standalone_question and self.standalone_question != self.question:
            out["standalone_question"] = self.standalone_question  # a follow-up, as retrieval and the reader read it
        if self.conflicts:
            out["conflicts"] = [c.to_dict() for c in self.conflicts]
        if self.llm != "none":
            out.update(llm=self.llm, warnings=list(self.warnings), invalid_citations=list(self.invalid_citations),
                       ungrounded=self.ungrounded, extractive_answer=self.extractive_answer)
        return out


@dataclass
class Sentence:
    """A sentence of a ranked passage, as the answer step scores it."""

    n: int  # citation number of the passage it comes from
    start: int  # span in the document
    end: int
    text: str
    score: float = 0.0
    dense: float = 0.0
    lexical: float = 0.0
    phrase: float = 0.0  # share of the question's word pairs that the sentence has side by side
    appositive: float = 0.0  # share of the question's focus phrase beside a new name
    date: str = ""  # the article's date
    chance: float = 0.0  # the learned reader's probability that the sentence answers (0 without it)
    headline: bool = False  # the article's title, as its text repeats it


@dataclass
class SkippedInput:
    """An input that could not be read, with where and why."""

    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.reason}"


def search_dict(hits: list[Hit]) -> dict:
    """The search result object: ``{"results": [citation, ...]}``, passages numbered from 1, best first."""
    return {"results": [h.citation(n).to_dict() for n, h in enumerate(hits, 1)]}


def document_dict(doc: dict) -> dict:
    """The document object of ``Rag.document``'s result: the article's metadata, ``text`` (the
    whole article or the span asked for), ``start``, ``end`` and ``length``."""
    out = {k: doc.get(k) or "" for k in ("doc_id", "title", "date", "source", "url", "text")}
    return {**out, "start": doc["start"], "end": doc["end"], "length": doc["length"]}
