"""The public API: ``Rag(settings).ask(question)``. The CLI, chat and web UI call only this."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import answer as extractive
from .config import Settings
from .errors import CorpusError, QuestionError, RagError
from .index import (
    BuildReport,
    IndexReader,
    build_index,
    current_generation,
    file_stamps,
    open_index,
    read_manifest,
    signature_mismatch,
)
from .ingest import list_files
from .retrieve import BM25Retriever, DenseRetriever, Filters, HybridRetriever, attach_and_collapse, day_number
from .types import Answer, Hit

NO_LLM = "none"

RERANK_DEPTH = 10  # passages whose sentences are scored; the best-evidenced come first
_PRONOUN = re.compile(r"\b(he|him|his|she|her|hers|they|them|their|it|its|this|that|these|those|there|then)\b", re.I)


@dataclass
class Turn:
    question: str
    answer: Answer


@dataclass
class Conversation:
    """Earlier turns, so that "whom did he call?" is read with the question before it."""

    turns: list[Turn] = field(default_factory=list)

    def contextualize(self, question: str) -> str:
        """A standalone query: a follow-up is joined with the previous question and its answer's names."""
        if not self.turns:
            return question
        words = re.findall(r"\w+", question)
        if not (_PRONOUN.search(question) or len(words) <= 4):
            return question
        prev = self.turns[-1]
        names = []
        if not prev.answer.abstained:
            names = re.findall(r"\b[A-Z][\w’'-]+(?:\s+[A-Z][\w’'-]+)*", re.sub(r"\[\d+\]", "", prev.answer.answer))
        context = prev.question + " " + " ".join(dict.fromkeys(names))
        return f"{question} {context}".strip()


class Rag:
    """Index a corpus and answer questions about it with cited passages."""

    def __init__(self, settings: Settings | None = None, **overrides: object) -> None:
        self.settings = settings or Settings.from_env(**overrides)
        self._reader: IndexReader | None = None
        self._embedder = None
        self._reader_model = None
        self._lock = threading.RLock()
        self._llms: dict[str, object] = {}

    # ------------------------------------------------------------ indexing

    @property
    def embedder(self):
        if self._embedder is None:
            from .embed import get_embedder

            self._embedder = get_embedder(self.settings.model, self.settings.dtype)
        return self._embedder

    def index(self, paths: list[Path] | None = None, progress: Callable[[int, int, str], None] | None = None,
              log: Callable[[str], None] = lambda m: None) -> BuildReport:
        """Index the corpus (or ``paths``) incrementally; reopen the new index."""
        with self._lock:
            report = build_index(self.settings, paths, progress=progress, embedder=self.embedder, log=log)
            if report.changed:
                self._close_reader()
            return report

    def needs_index(self) -> str:
        """Why the index must be (re)built before answering, or "" when it is current."""
        index_dir = self.settings.index_path
        for p in self.settings.corpus_paths:
            if not p.exists():
                raise CorpusError(f"corpus path not found: {p}")
        manifest = read_manifest(index_dir)
        if manifest is None:
            return f"no index yet in {index_dir}"
        mismatch = signature_mismatch(manifest, self.settings)
        if mismatch:
            return f"the index was built with other settings ({mismatch})"
        corpus = sorted(str(p.resolve()) for p in self.settings.corpus_paths)
        if sorted(manifest.get("corpus", [])) != corpus:
            return "the index was built from another corpus"
        files = list_files(self.settings.corpus_paths)
        if file_stamps(files) != manifest.get("stamps"):
            return "corpus files were added, removed or changed since the last indexing run"
        return ""

    def ensure_index(self, progress=None, log: Callable[[str], None] = lambda m: None) -> BuildReport | None:
        """Build or update the index when the corpus or settings changed since it was built."""
        reason = self.needs_index()
        if not reason:
            return None
        log(f"Indexing {', '.join(map(str, self.settings.corpus_paths))}: {reason}.")
        return self.index(progress=progress, log=log)

    @property
    def answer_reader(self):
        """The learned answer reader (``settings.reranker``, default the shipped one); None for ``rerank=none``."""
        if self.settings.rerank == "none":
            return None
        if self._reader_model is None:
            from .reader import get_reader

            self._reader_model = get_reader(self.settings.reranker)
        return self._reader_model

    @property
    def abstain_threshold(self) -> float:
        """``settings.abstain_threshold``, else the one calibrated for the scorer in use."""
        if self.settings.abstain_threshold is not None:
            return self.settings.abstain_threshold
        reader = self.answer_reader
        if reader is None:
            return extractive.HAND_THRESHOLD
        return reader.threshold if reader.threshold is not None else extractive.READER_THRESHOLD

    # ------------------------------------------------------------ searching

    @property
    def reader(self) -> IndexReader:
        with self._lock:
            gen = current_generation(self.settings.index_path)
            if self._reader is None or (gen is not None and gen != self._reader.dir):
                self._close_reader()
                self._reader = open_index(self.settings.index_path)
            return self._reader

    def _close_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def warm(self) -> None:
        """Load everything a query touches, for a long-running process."""
        self.embedder.warm()
        _ = self.reader.bm25

    def search(self, query: str, k: int | None = None, filters: Filters = Filters(),
               retriever: str = "hybrid", as_of: str = "") -> list[Hit]:
        """The top ``k`` passages for ``query`` (hybrid, dense or bm25), near-duplicates collapsed.

        ``as_of`` (ISO date) is the day a time-sensitive question ("this week") is asked
        about; the hybrid retriever favours articles dated near it (default: the newest).
        """
        return self._search(query, k, filters, retriever, as_of)[0]

    def _search(self, query: str, k: int | None, filters: Filters, retriever: str = "hybrid",
                as_of: str = "") -> tuple[list[Hit], str]:
        k = k or self.settings.k
        if as_of and not day_number(as_of):
            raise QuestionError(f"as-of date {as_of!r} is not a date; use YYYY-MM-DD")
        reader = self.reader
        if retriever == "hybrid":
            hybrid = HybridRetriever(reader, self.embedder, self.settings.rrf_k, self.settings.candidates)
            return hybrid.search(query, k, filters, as_of), hybrid.reference_day
        if retriever not in ("dense", "bm25"):
            raise RagError(f"unknown retriever {retriever!r}; use hybrid, dense or bm25")
        base = DenseRetriever(reader, self.embedder) if retriever == "dense" else BM25Retriever(reader)
        ranked = base.search(query, max(k * 4, self.settings.candidates), filters)
        return attach_and_collapse(reader, ranked, k), ""

    def ask(self, question: str, k: int | None = None, filters: Filters = Filters(),
            conversation: Conversation | None = None, retrieve_k: int = 0, llm: str | None = None,
            on_token: Callable[[str], None] | None = None, as_of: str = "") -> Answer:
        """Answer ``question`` from the index: extractive sentences with [n] citations, or abstain.

        The answer and citations use the top ``k`` passages; ``retrieve_k`` ranks more
        (kept in ``Answer.retrieved``) for evaluation at deeper cut-offs. With ``llm`` (a
        backend name; default ``settings.llm``) other than "none", the answer is the model's,
        streamed to ``on_token`` and checked against the passages; when the backend fails the
        extractive answer is kept and ``Answer.warnings`` says why. ``as_of`` is the day the
        question is asked about (see ``search``).
        """
        k = k or self.settings.k
        question = (question or "").strip()
        if not question:
            raise QuestionError("the question is empty; ask something about the articles")
        t0 = time.perf_counter()
        query = conversation.contextualize(question) if conversation else question
        ranked, recent_to = self._search(query, max(k, retrieve_k, RERANK_DEPTH), filters, as_of=as_of)
        t1 = time.perf_counter()
        ranked, sentences = self._rerank_by_evidence(query, question, ranked, recent_to)
        hits = ranked[:k]
        if conversation and conversation.turns:
            # A follow-up asks for something new: what the last answer said is not an answer again.
            said = set(conversation.turns[-1].answer.evidence)
            sentences = [s for s in sentences if (ranked[s.n - 1].chunk.doc_id, s.start) not in said]
        citations = extractive.citations_for(hits)
        shown = [s for s in sentences if s.n <= k]
        text, chosen = extractive.compose(question, shown)
        confidence = extractive.confidence(shown, chosen)
        abstained = confidence < self.abstain_threshold
        t2 = time.perf_counter()
        result = Answer(
            question=question,
            answer=extractive.NOT_FOUND if abstained else text,
            abstained=abstained,
            citations=citations,
            timings_ms={"retrieve": (t1 - t0) * 1000, "answer": (t2 - t1) * 1000, "total": (t2 - t0) * 1000},
            confidence=confidence,
            standalone_question=query,
            retrieved=ranked,
            evidence=[] if abstained else [(hits[s.n - 1].chunk.doc_id, s.start) for s in chosen],
            recent_to=recent_to,
        )
        llm = self.settings.llm if llm is None else llm
        if llm != NO_LLM:
            self._answer_with_llm(result, llm, on_token)
            result.timings_ms["llm"] = (time.perf_counter() - t2) * 1000
            result.timings_ms["total"] = (time.perf_counter() - t0) * 1000
        if conversation is not None:
            conversation.turns.append(Turn(question, result))
        return result

    def llm_backend(self, name: str):
        """The LLM backend ``name``, loaded once per Rag; None for "none".

        Raises UnknownModelError, MissingExtraError, or LLMError when it cannot start.
        """
        from .llm import get_llm

        with self._lock:
            if name not in self._llms:
                self._llms[name] = get_llm(name, self.settings)
            return self._llms[name]

    def _answer_with_llm(self, result: Answer, name: str, on_token: Callable[[str], None] | None) -> None:
        """Replace the extractive answer with the checked LLM answer, or warn and keep it."""
        from .llm import LLMError
        from .llm.generate import generate

        result.llm = name
        result.extractive_answer = result.answer
        s = self.settings
        try:
            t0 = time.perf_counter()
            checked, shown, result.llm_tokens = generate(self.llm_backend(name), result.question, result.citations,
                                                         s.llm_max_tokens, s.llm_timeout, on_token)
            result.timings_ms["generate"] = (time.perf_counter() - t0) * 1000
        except LLMError as e:
            result.warnings.append(f"{e}; showing the extractive answer")
            return
        if len(shown) < len(result.citations):
            result.warnings.append(f"only {len(shown)} of {len(result.citations)} passages fit the model's "
                                   f"{s.llm_context}-token context")
        result.answer, result.abstained = checked.text, checked.abstained
        result.invalid_citations, result.ungrounded = checked.invalid, checked.ungrounded
        if checked.invalid:
            marks = ", ".join(f"[{n}]" for n in dict.fromkeys(checked.invalid))
            result.warnings.append(f"removed citation {marks}: no such passage")
        if checked.ungrounded:
            result.warnings.append("the model's answer cites no passage; the extractive answer is kept beside it")
        if checked.abstained:
            result.evidence = []

    def _rerank_by_evidence(self, query: str, question: str, ranked: list[Hit],
                            reference_day: str = "") -> tuple[list[Hit], list]:
        """Order the top passages by their best answer sentence; return them and the scored sentences.

        Sentence numbers (``n``) are the passages' positions after the reordering.
        ``reference_day`` is the day a question about "now" is asked about (see ``search``).
        """
        pool, rest = ranked[:RERANK_DEPTH], ranked[RERANK_DEPTH:]
        candidates = extractive.candidate_sentences(pool)
        reader = self.answer_reader
        if reader is not None:
            sentences = extractive.read_sentences(query, question, candidates, reader, self._idf(self.reader),
                                                  self.embedder, reference_day)
        else:
            sentences = extractive.score_sentences(query, question, candidates, self.embedder,
                                                   self._idf(self.reader), reference_day)
        best: dict[int, float] = {}
        for s in sentences:
            best[s.n] = max(best.get(s.n, -1.0), s.score)
        order = sorted(range(len(pool)), key=lambda i: (-best.get(i + 1, -1.0), i))
        renumber = {old + 1: new + 1 for new, old in enumerate(order)}
        for s in sentences:
            s.n = renumber[s.n]
        return [pool[i] for i in order] + rest, sentences

    def _idf(self, reader: IndexReader):
        bm25 = reader.bm25
        indptr, vocab = bm25.scores["indptr"], bm25.vocab_dict
        n = int(bm25.scores["num_docs"])

        def df(term: str) -> int:
            i = vocab.get(term)
            return 0 if i is None else int(indptr[i + 1] - indptr[i])

        return extractive.make_idf(n, df)

    # ------------------------------------------------------------ info

    def document(self, doc_id: str) -> dict | None:
        """An indexed document (title, date, source, url, path, full text), or None."""
        return self.reader.document(doc_id)

    def stats(self) -> dict:
        """What is indexed, with which settings, where."""
        index_dir = self.settings.index_path
        manifest = read_manifest(index_dir)
        if manifest is None:
            return {"index_dir": str(index_dir), "indexed": False}
        reader = self.reader
        dates = reader.db.execute("SELECT min(date), max(date) FROM docs WHERE date != ''").fetchone()
        sources = reader.db.execute(
            "SELECT source, count(*) FROM docs GROUP BY source ORDER BY count(*) DESC LIMIT 10").fetchall()
        size = sum(p.stat().st_size for p in reader.dir.rglob("*") if p.is_file())
        return {
            "index_dir": str(index_dir),
            "indexed": True,
            "generation": reader.dir.name,
            "created": manifest.get("created"),
            "documents": len(manifest["documents"]),
            "duplicates": len(manifest.get("duplicates", {})),
            "chunks": manifest["chunks"],
            "model": manifest["model"],
            "dimension": manifest["dimension"],
            "embedding_dtype": manifest.get("embedding_dtype"),
            "chunk_tokens": manifest["settings"]["chunk_tokens"],
            "chunk_overlap": manifest["settings"]["chunk_overlap"],
            "search": "hnsw" if manifest.get("ann") else "exact",
            "date_range": list(dates) if dates and dates[0] else [],
            "top_sources": [{"source": s or "(unknown)", "documents": c} for s, c in sources],
            "size_bytes": size,
            "corpus": manifest.get("corpus", []),
        }
