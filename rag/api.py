"""The public API: ``Rag(settings).ask(question)``. The CLI, chat, web UI and servers call only this.

``ask`` reads as the pipeline: the follow-up made standalone (``followup``), the day a
question about "now" refers to (``dates``), the passages (``retrieve``), the answer
sentences or an abstention (``answer``), and optionally an LLM's answer (``llm``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path

from rag.answer import extract as extractive
from rag.answer import spans
from rag.answer.conflicts import asked_slot
from rag.answer.followup import Conversation
from rag.answer.timeline import Timeline, build_timeline
from rag.config import Settings
from rag.errors import QuestionError, RagError, RagIndexError, SpanError
from rag.filters import Filters
from rag.index.build import BuildReport, IndexState, build_index, index_state
from rag.index.layout import current_generation, indexing_in_progress, read_documents, read_manifest
from rag.index.reader import IndexReader, newest_documents, open_index
from rag.ingest.corpus import check_paths
from rag.ingest.uploads import Upload, save_files, upload_folder
from rag.search.retrieve import BM25Retriever, DenseRetriever, HybridRetriever, attach_and_collapse
from rag.text.dates import FORMATS_HELP, parse_date, reference_day
from rag.tuning import CONFLICT_DEPTH, MAX_QUESTION_CHARS, RERANK_DEPTH
from rag.types import Answer, Hit, SkippedInput, Trace

NO_LLM = "none"
START_POLICIES = ("wait", "update", "background", "serve")


@dataclass
class Startup:
    """What ``Rag.start`` found and did to make the index usable."""

    state: str  # the index as found: current | stale | missing | rebuild ... (``IndexState.state``)
    reason: str = ""  # why it was not current
    usable: bool = True  # whether the index as found could answer
    report: BuildReport | None = None  # the indexing run made (now, or by the background thread once done)
    updating: threading.Thread | None = None  # the background run, for "background" and "serve"
    building: str = ""  # while a background run makes an index that nothing could answer from: the state it had
    error: str = ""  # why the background run failed


@dataclass
class AskEvent:
    """One step of ``Rag.ask_stream``: ``"token"``, a piece of the LLM's answer as it is written
    (``text``), or ``"answer"``, the final Answer (``answer``), always last."""

    kind: str
    text: str = ""
    answer: Answer | None = None


RETRIEVERS = ("hybrid", "dense", "bm25")


def check_question(question: str) -> str:
    """The question stripped; QuestionError when it is empty or too long to be one question."""
    question = (question or "").strip()
    if not question:
        raise QuestionError("the question is empty; ask something about the articles")
    if len(question) > MAX_QUESTION_CHARS:
        raise QuestionError(f"the question is {len(question):,} characters long; the limit is "
                            f"{MAX_QUESTION_CHARS:,} (ask about one thing at a time)")
    return question


class Rag:
    """Index a corpus and answer questions about it with cited passages.

    ``Rag(settings, k=10)`` applies the keyword overrides to ``settings`` (default: the
    environment's settings, ``Settings.from_env``).
    """

    def __init__(self, settings: Settings | None = None, **overrides: object) -> None:
        if settings is None:
            settings = Settings.from_env(**overrides)
        elif overrides:
            known = {f.name for f in fields(Settings)}
            unknown = sorted(set(overrides) - known)
            if unknown:
                raise RagError(f"unknown setting{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}")
            settings = settings.with_(**{k: v for k, v in overrides.items() if v is not None})
            settings.validate()
        self.settings = settings
        self._index: IndexReader | None = None
        self._embedder = None
        self._reader_model = None
        self._short = None
        if settings.rerank == "span":
            from rag.answer.reader import preload

            preload(settings.reranker or None)  # the reader loads while the index and the embedding model do
        elif settings.short_answers:
            from rag.answer.short import preload

            preload()  # spaCy loads while the index and the embedding model do
        self._lock = threading.RLock()
        self._llms: dict[str, object] = {}

    # ------------------------------------------------------------ indexing

    @property
    def embedder(self):
        if self._embedder is None:
            from rag.index.build import embedder_for

            self._embedder = embedder_for(self.settings)
        return self._embedder

    def index(self, paths: list[Path] | None = None, progress: Callable[[int, int, str], None] | None = None,
              log: Callable[[str], None] = lambda m: None,
              on_issue: Callable[[SkippedInput, bool], None] | None = None, wait: bool = False,
              verify: bool = False, optimize: bool = False, ray: str = "", ray_workers: int = 0) -> BuildReport:
        """Index the corpus, and ``paths`` added to it, incrementally; later questions use the new
        index. Documents leave it only when deleted or changed in the paths indexed into it.

        ``on_issue(item, skipped)`` hears of each unreadable input or input kept with a
        problem as it is found; with ``wait``, another indexing run is waited for. Files whose
        size and time did not change are not read again unless ``verify``. ``optimize`` merges
        the index's segments into one. ``ray`` (an address, "auto" or "local") embeds on a Ray
        cluster with ``ray_workers`` embedders (default: one per GPU, else one per CPU).
        """
        check_paths([*self.settings.corpus_paths, *(paths or [])])  # before the model is loaded (seconds)
        report = build_index(self.settings, paths, progress=progress, embedder=None if ray else self.embedder, log=log,
                             on_issue=on_issue, wait=wait, verify=verify, optimize=optimize, ray=ray,
                             ray_workers=ray_workers)
        if report.changed:
            with self._lock:
                self._close_index()
        return report

    def index_state(self) -> IndexState:
        """Whether the index exists, was built for these settings and corpus, and is up to date."""
        return index_state(self.settings, self.embedder.vectors)

    def needs_index(self) -> str:
        """Why the index must be built or updated before it is current, or "" when it is."""
        return self.index_state().reason

    def prepare(self, progress=None, log: Callable[[str], None] = lambda m: None,
                     on_issue: Callable[[SkippedInput, bool], None] | None = None,
                     update_stale: bool = True, state: IndexState | None = None) -> BuildReport | None:
        """Make the index usable: build it when missing or built for other settings (waiting for
        another run that is building it); update a stale one unless ``update_stale`` is False,
        in which case the live index keeps answering and ``log`` says how to update it.
        ``state``: the ``index_state()`` just found, so the corpus is not looked over again."""
        state = state or self.index_state()
        if state.state == "current":
            return None
        running = indexing_in_progress(self.settings.index_path)
        if state.state == "stale" and not update_stale:
            if running:
                log(f"Note: the index is out of date ({state.reason}) and an indexing run is under way in "
                    "another process; answering from the current index meanwhile.")
            else:
                log(f"Note: the index is out of date ({state.reason}); answering from it. "
                    "Run 'python -m rag index' to update it.")
            return None
        if not (running and not state.usable):  # else the lock's holder is waited for, as the log will say
            log(f"Indexing {', '.join(map(str, self.settings.corpus_paths))}: {state.reason}.")
        return self.index(progress=progress, log=log, on_issue=on_issue, wait=not state.usable or running)

    def check(self) -> None:
        """Validate what can be checked before any model loads: the settings and that every corpus
        path exists (a ``CorpusError`` naming the first that does not)."""
        self.settings.validate()
        check_paths(self.settings.corpus_paths)

    def start(self, policy: str = "wait", progress=None, log: Callable[[str], None] = lambda m: None,
              on_issue: Callable[[SkippedInput, bool], None] | None = None) -> Startup:
        """Make the index usable for answering: the one start-up every surface calls.

        Settings and corpus paths are checked first, before any model loads, then the configured
        LLM backend (``settings.llm``: an unknown name, missing extra or model file fails here,
        before any indexing). Then, by ``policy``:

        - ``"wait"`` (the CLI's questions, the MCP server): a missing index, or one built with
          other settings, is built now (waiting for another process building it); a stale one
          answers, and ``log`` says how to update it.
        - ``"update"`` (``eval``): a missing or stale index is built or updated now.
        - ``"background"`` (the browser chat): a missing index is built now; a stale one answers
          while it is updated in a background thread (``Startup.updating``).
        - ``"serve"`` (the HTTP API): both happen in the background; ``Startup.building`` says
          while no index can answer, ``Startup.error`` why a run failed.

        With "background" and "serve" the background thread then loads the models.
        """
        if policy not in START_POLICIES:
            raise RagError(f"unknown start-up policy {policy!r}; use {', '.join(START_POLICIES)}")
        self.check()
        if self.settings.llm != NO_LLM:
            self.llm_backend(self.settings.llm)
        state = self.index_state()  # the one look over the corpus: prepare is given it
        startup = Startup(state.state, state.reason, state.usable)
        background = policy == "serve" or (policy == "background" and state.usable)
        if not background:
            startup.report = self.prepare(progress, log, on_issue, update_stale=policy == "update", state=state)
            if startup.report is not None:
                log(startup.report.summary())
            if policy != "background":
                return startup
        elif state.state == "stale":
            log(f"The index is out of date ({state.reason}); answering from it while it is updated in the background.")
        elif not state.usable:
            startup.building = state.state

        def run() -> None:
            if background:  # else the index was built above: the thread only loads the models
                try:
                    startup.report = self.prepare(None, log, on_issue, update_stale=True, state=state)
                    if startup.report is not None:
                        log(startup.report.summary())
                except Exception as e:  # noqa: BLE001 - logged; while nothing answers, the surface says it too
                    startup.error = str(e)
                    log(f"{'warning' if state.usable else 'Error'}: indexing failed: {e}")
                finally:
                    startup.building = ""
            if not (startup.error and not state.usable):
                try:
                    self.warm()  # the first question is answered sooner
                except Exception as e:  # noqa: BLE001 - answering still works, only slower
                    log(f"warning: could not load the model ahead of the first question: {e}")

        startup.updating = threading.Thread(target=run, name="rag-index", daemon=True)
        startup.updating.start()
        return startup

    @property
    def sentence_reader(self):
        """The learned answer reader (``settings.reranker``, default the shipped one); None for ``rerank=none``."""
        if self.settings.rerank != "learned":
            return None
        if self._reader_model is None:
            from rag.search.rerank import get_reader

            self._reader_model = get_reader(self.settings.reranker)
        return self._reader_model

    @property
    def span_reader(self):
        """The trained span reader (``rag.answer.reader``); None unless ``rerank`` is "span"."""
        if self.settings.rerank != "span":
            return None
        from rag.answer.reader import get_span_reader

        return get_span_reader(self.settings.reranker or None)

    @property
    def short_reader(self):
        """spaCy and the shipped short-answer ranker; None with ``short_answers`` off."""
        if not self.settings.short_answers:
            return None
        if self._short is None:
            from rag.answer.short import ShortReader, load_ranker

            self._short = ShortReader(load_ranker(), threshold=self.settings.short_threshold)
        return self._short

    @property
    def abstain_threshold(self) -> float:
        """``settings.abstain_threshold``, else the one calibrated for the scorer in use."""
        return extractive.abstain_threshold(self.sentence_reader, self.settings.abstain_threshold)

    # ------------------------------------------------------------ searching

    @property
    def index_reader(self) -> IndexReader:
        """The live index generation, reopened when an indexing run replaced it."""
        with self._lock:
            gen = current_generation(self.settings.index_path)
            if self._index is None or (gen is not None and gen != self._index.dir):
                self._close_index()
                self._index = open_index(self.settings.index_path)
            return self._index

    def _close_index(self) -> None:
        # Dropped, not closed: a question answered in another thread may still be reading it.
        # Its files stay readable after the writer deletes them, and the connection closes
        # when the last reference goes.
        self._index = None

    def warm(self) -> None:
        """Load everything a query touches, for a long-running process."""
        self.embedder.warm()
        _ = self.index_reader.bm25

    def reference_day(self, question: str, given: str = "") -> str:
        """The day a question about "now" refers to (``given``, else the newest article's date);
        "" for a question that is not about "now"."""
        return self._reference_day(self.index_reader, question, given)

    @staticmethod
    def _reference_day(index: IndexReader, question: str, given: str) -> str:
        if given and not parse_date(given):
            raise QuestionError(f"reference day: not a date: {given!r} (use {FORMATS_HELP})")
        return reference_day(question, parse_date(given), index.newest_day() if not given else "")

    def matches(self, filters: Filters) -> bool:
        """True when some indexed article passes ``filters``."""
        return self._matches(self.index_reader, filters)

    @staticmethod
    def _matches(index: IndexReader, filters: Filters) -> bool:
        allowed = index.allowed_ids(filters)
        return allowed is None or len(allowed) > 0

    def search(self, query: str, k: int | None = None, filters: Filters = Filters(),
               retriever: str = "hybrid", reference_day: str = "") -> list[Hit]:
        """The top ``k`` passages for ``query`` (hybrid, dense or bm25), near-duplicates collapsed.

        ``reference_day`` (ISO) is the day a question about "now" ("this week") refers to;
        the hybrid retriever favours articles dated near it (default: the newest article's).
        """
        query = check_question(query)
        index = self.index_reader
        day = self._reference_day(index, query, reference_day)
        return self._retrieve(query, k or self.settings.k, filters, retriever, day, index)

    def _retrieve(self, query: str, k: int, filters: Filters, retriever: str, day: str,
                  index: IndexReader) -> list[Hit]:
        if retriever == "hybrid":
            hybrid = HybridRetriever(index, self.embedder, self.settings.rrf_k, self.settings.candidates)
            return hybrid.search(query, k, filters, day)
        if retriever not in RETRIEVERS:
            raise RagError(f"unknown retriever {retriever!r}; use {', '.join(RETRIEVERS)}")
        base = DenseRetriever(index, self.embedder) if retriever == "dense" else BM25Retriever(index)
        return attach_and_collapse(index, base.search(query, max(k * 4, self.settings.candidates), filters), k)

    def ask(self, question: str, k: int | None = None, filters: Filters = Filters(),
            conversation: Conversation | None = None, retrieve_k: int = 0, llm: str | None = None,
            reference_day: str = "") -> Answer:
        """Answer ``question`` from the index: extractive sentences with [n] citations, or abstain.

        The answer and citations use the top ``k`` passages; ``retrieve_k`` ranks more
        (kept in ``Answer.retrieved``) for evaluation at deeper cut-offs. With ``llm`` (a
        backend name; default ``settings.llm``) other than "none", the answer is the model's,
        checked against the passages; when the backend fails the extractive answer is kept and
        ``Answer.warnings`` says why. ``reference_day`` is the day a question about "now" refers
        to (see ``search``). ``ask_stream`` gives the model's answer as it is written.
        """
        *_, last = self.ask_stream(question, k, filters, conversation, retrieve_k, llm, reference_day)
        return last.answer

    def ask_stream(self, question: str, k: int | None = None, filters: Filters = Filters(),
                   conversation: Conversation | None = None, retrieve_k: int = 0, llm: str | None = None,
                   reference_day: str = "") -> Iterator[AskEvent]:
        """``ask`` as events: the LLM's answer token by token (``AskEvent("token", text)``), then
        ``AskEvent("answer", answer=...)``. The extractive answer has no tokens: only the answer.

        Cancel by closing the iterator (``close()``, or leaving a ``for`` loop over it and
        dropping it): the model's stream is closed at the next token, and the question does
        not join ``conversation``. An unknown backend name fails before anything is retrieved.
        """
        k = k or self.settings.k
        question = check_question(question)
        llm = self.settings.llm if llm is None else llm
        backend = self._backend_or_error(llm)
        t0 = time.perf_counter()
        # a follow-up as one standalone question: what retrieval, the reader and an LLM read
        query = conversation.standalone(question) if conversation else question
        index = self.index_reader  # one index for the whole question, though an update replaces it meanwhile
        day = self._reference_day(index, query, reference_day)
        if filters and not self._matches(index, filters):
            yield AskEvent("answer", answer=self._no_match(question, query, filters, conversation))
            return
        depth = max(k, retrieve_k, RERANK_DEPTH, CONFLICT_DEPTH if asked_slot(query)[0] else 0)
        ranked = self._retrieve(query, depth, filters, "hybrid", day, index)
        t1 = time.perf_counter()
        idf = index.idf()
        if self.span_reader is not None:
            reading = spans.read_with_span_reader(
                query, query, query, ranked, k, self.span_reader, self.embedder, idf, day,
                self.settings.abstain_threshold, self.settings.short_threshold, self.settings.short_answers)
        else:
            reading = extractive.read(query, query, ranked, k, self.embedder, idf, self.sentence_reader, day,
                                      self.abstain_threshold, self.short_reader)
        hits = reading.ranked[:max(k, reading.shown)]
        t2 = time.perf_counter()
        result = Answer(
            question=question,
            answer=reading.text,
            abstained=reading.abstained,
            citations=extractive.citations_for(hits),
            timings_ms={"retrieve": (t1 - t0) * 1000, "answer": (t2 - t1) * 1000, "total": (t2 - t0) * 1000},
            confidence=reading.confidence,
            standalone_question=query,
            retrieved=reading.ranked,
            evidence=reading.evidence,
            reference_day=day,
            conflicts=reading.conflicts,
            short_answer=reading.short,
            trace=Trace(reading.parsed, reading.candidates),
        )
        if llm != NO_LLM:
            from rag.llm.generate import answer_with_llm

            result.llm = llm
            for text in answer_with_llm(result, backend, self.settings):
                yield AskEvent("token", text)
            result.timings_ms["llm"] = (time.perf_counter() - t2) * 1000
            result.timings_ms["total"] = (time.perf_counter() - t0) * 1000
        if conversation is not None:
            conversation.add(question, result)
        yield AskEvent("answer", answer=result)

    def _backend_or_error(self, llm: str):
        """The backend ``llm`` (None for "none"), or the LLMError that says why it cannot start
        (``ask`` keeps the extractive answer and warns); an unknown name or a missing extra raises."""
        if llm == NO_LLM:
            return None
        from rag.llm import LLMError

        try:
            return self.llm_backend(llm)
        except LLMError as e:
            return e

    def timeline(self, query: str, filters: Filters = Filters(), limit: int = 0, all_events: bool = False,
                 progress: Callable[[int, int, str], None] | None = None) -> Timeline:
        """The dated events about ``query`` (a person, organisation, place or topic), oldest
        first, each with the sentence that says what happened and every article reporting it.

        By default only the main events are listed: those reported by at least
        ``TIMELINE_MAIN_SOURCES`` articles (every event when fewer than two are);
        ``all_events`` lists every event. ``limit`` then keeps the events reported by the most
        articles (0: no limit), still in date order. ``Timeline.more`` counts those left out.
        """
        query = check_question(query)
        if filters and not self.matches(filters):
            return Timeline(query=query)
        result = build_timeline(self.index_reader, self.embedder, query, filters, progress=progress)
        if not all_events:
            result.keep_main()
        result.keep_most_reported(limit)
        return result

    def _no_match(self, question: str, query: str, filters: Filters, conversation: Conversation | None) -> Answer:
        result = Answer(question=question, answer=f"No article matches the filters ({filters.describe()}).",
                        abstained=True, standalone_question=query)
        if conversation is not None:
            conversation.add(question, result)
        return result

    def llm_backend(self, name: str):
        """The LLM backend ``name``, loaded once per Rag; None for "none".

        Raises UnknownModelError, MissingExtraError, or LLMError when it cannot start.
        """
        from rag.llm import get_llm

        with self._lock:
            if name not in self._llms:
                self._llms[name] = get_llm(name, self.settings)
            return self._llms[name]

    def add_documents(self, files: list[tuple[str, bytes]],
                      progress: Callable[[int, int, str], None] | None = None) -> tuple[list[Upload], BuildReport]:
        """Save ``(file name, content)`` pairs under the corpus folder's ``uploads/`` and index them.

        Same formats and limits as a corpus (``uploads.UPLOAD_SUFFIXES``, ``MAX_UPLOAD_BYTES``
        each); a file that is not saved says why (``Upload.problem``), a saved one lists the
        documents indexed from it and the problems found reading it. Waits for another
        indexing run. Raises RagError when the corpus is not a folder or indexing fails.
        """
        corpus = upload_folder(self.settings.corpus_paths).parent
        uploads = save_files(corpus, files)
        saved = {(corpus / u.saved).resolve(): u for u in uploads if u.saved}
        report = self.index(progress=progress, wait=True)
        # The document list gives every document's file: one read, not a query (and its full text) per document.
        paths = read_documents(self.settings.index_path)
        for doc_id in [*report.added, *report.updated]:
            path = paths.get(doc_id, {}).get("path") or ""
            u = saved.get(Path(path).resolve()) if path else None
            if u is not None:
                u.documents.append(doc_id)
        for item in report.skipped + report.warnings:
            u = saved.get(Path(item.path).resolve())
            if u is not None:
                (u.skipped if item in report.skipped else u.warnings).append(item)
        return uploads, report

    # ------------------------------------------------------------ info

    def document(self, doc_id: str, start: int | None = None, end: int | None = None) -> dict | None:
        """An indexed document: title, date, source, url, path, ``length`` and ``text`` (the whole
        article, or ``text[start:end]``); None when no document has the id. A span that is not
        inside the article is a ``SpanError`` (every surface shows the same message)."""
        doc = self.index_reader.document(doc_id)
        if doc is None:
            return None
        text = doc.get("text") or ""
        lo, hi = 0 if start is None else start, len(text) if end is None else end
        if not 0 <= lo <= hi <= len(text):
            raise SpanError(f"bad span {lo}-{hi} of {doc_id!r}: the document has {len(text):,} characters "
                            "(use 0 <= start <= end <= length)")
        return {**doc, "length": len(text), "start": lo, "end": hi, "text": text[lo:hi]}

    def sources(self) -> list[tuple[str, int]]:
        """Every indexed source with its number of documents, most first ("" = unknown)."""
        return self.index_reader.sources()

    def stats(self) -> dict:
        """What is indexed, with which settings, where."""
        index_dir = self.settings.index_path
        manifest = read_manifest(index_dir)
        if manifest is None:
            return {"index_dir": str(index_dir), "indexed": False}
        try:
            index = self.index_reader
        except RagIndexError:
            return {"index_dir": str(index_dir), "indexed": False}
        sources = index.sources()
        return {
            "index_dir": str(index_dir),
            "indexed": True,
            "generation": index.dir.name,
            "created": manifest.get("created"),
            "documents": int(manifest["documents"]),
            "duplicates": len(manifest.get("duplicates", {})),
            "chunks": manifest["chunks"],
            "model": manifest["model"],
            "dimension": manifest["dimension"],
            "embedding_dtype": manifest.get("embedding_dtype"),
            "embedding_backend": manifest.get("embedding_backend", "torch"),
            "vectors": manifest.get("vectors", "float"),
            "embedded_by": sorted({s["embedded_by"] for s in manifest.get("segments", []) if s.get("embedded_by")}),
            "chunk_tokens": manifest["settings"]["chunk_tokens"],
            "chunk_overlap": manifest["settings"]["chunk_overlap"],
            "search": {"flat": "exact", "ivfpq": "ivf-pq"}.get(manifest.get("dense", ""), "hnsw" if manifest.get("ann") else "exact"),
            "segments": len(manifest.get("segments", [])) or 1,
            "date_range": list(index.date_range() or ()),
            "sources": len(sources),
            "top_sources": [{"source": s or "(unknown)", "documents": c} for s, c in sources[:10]],
            "size_bytes": index.size_bytes(),
            "corpus": manifest.get("corpus", []),
        }

    def newest_documents(self, n: int = 3) -> list[dict]:
        """Up to ``n`` indexed articles, newest first (undated ones last): doc_id, title, date, source."""
        return newest_documents(self.index_reader, n)
