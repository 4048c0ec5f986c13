"""The answer step with the span reader (``rerank`` "span", the default): the short answer is
the reader's best span (``rag.answer.reader``); the sentences and the abstention are the
sentence scorer's (``extract.read``), but for questions in another script, which the reader
answers alone."""

from __future__ import annotations

from rag.answer.article_values import READER_SLOTS, read_conflicts
from rag.answer.conflicts import asked_slot
from rag.answer.extract import NOT_FOUND, Reading, abstain_threshold, read, with_conflicts
from rag.text.chunk import sentence_spans
from rag.text.lexical import bm25_tokens, coverage, script
from rag.types import Evidence, Hit, ShortAnswer

RUNNER_UP_SPAN = 0.5  # a second sentence joins when its best span is at least this share as probable


def read_spans(query: str, question: str, ranked: list[Hit], k: int, reader, idf=None,
               threshold: float | None = None, short_threshold: float | None = None, short: bool = True,
               depth: int | None = None) -> Reading:
    """The answer from the span reader (``rag.answer.reader``): it reads ``query`` against the top
    ``k`` passages in one batch and points at the best span.

    The reader reads the top ``max(k, depth)`` passages (default depth: the reader's own); the passage holding the best span is cited first ([1]); the others keep retrieval's order.
    The answer's first sentence is the one holding the span (its exact characters cited); a
    second sentence joins when its own best span is nearly as probable and it says something
    new. The short answer is the span itself, shown from ``short_threshold`` (default: the
    reader's, chosen on the validation months) unless the question asks why or how. Below
    ``threshold`` (default: the reader's) the answer abstains.
    """
    from rag.answer.short import question_kind

    threshold = reader.abstain if threshold is None else threshold
    short_threshold = reader.threshold if short_threshold is None else short_threshold
    depth = max(k, reader.depth if depth is None else depth)
    pool, rest = ranked[:depth], ranked[depth:]
    # A passage that shares no word with the question gives no answer (every training passage shared one).
    q_words = set(bm25_tokens(query))
    words = [set(bm25_tokens(h.chunk.title + " " + h.chunk.text)) for h in pool]
    unread = {i for i, w in enumerate(words) if not q_words & w}
    cover = [coverage(query, w, idf) for w in words] if idf else None
    spans = reader.read(query, [h.chunk.text for h in pool], top=50, coverage=cover) if pool else []
    # a span that only repeats the question's words names what is asked about, not the answer
    # ("Abbas Araghchi" for "whom did Abbas Araghchi call?")
    spans = [s for s in spans if not set(bm25_tokens(s.text)) <= q_words]
    for s in spans:
        if s.passage in unread:
            s.probability = 0.0  # given only with a negative abstention threshold ("never abstain")
    # a span of a passage retrieval ranks lower needs a wider margin (weight chosen on validation)
    spans.sort(key=lambda s: (s.passage in unread, -(s.margin - reader.rank_weight * s.passage)))
    asked_in = script(question)
    if asked_in != "latin" and pool and script(pool[0].chunk.text) == asked_in:
        # The reader learned on English news: in another script its probabilities mean less,
        # so the passage search ranks first, in the question's own script, is answered from
        # (its best span), never abstained on.
        in_script = {i for i, h in enumerate(pool) if script(h.chunk.text) == asked_in}
        spans = [s for s in spans if s.passage in in_script] or \
            reader.read(query, [pool[0].chunk.text], top=1)
        threshold = 0.0
    located = []
    for s in spans:
        chunk = pool[s.passage].chunk
        a, b = next(((a, b) for a, b in sentence_spans(chunk.text) if a <= s.start < b), (0, len(chunk.text)))
        located.append((s, a, b))
    if not located or located[0][0].probability < threshold:
        best = located[0][0].probability if located else 0.0
        return Reading(ranked, NOT_FOUND, [], best, True)
    top = located[0][0]
    order = [top.passage] + [i for i in range(len(pool)) if i != top.passage]
    ranked = [pool[i] for i in order] + rest
    n_of = {old: new for new, old in enumerate(order, 1)}
    chosen = [located[0]]
    known = set(bm25_tokens(question)) | set(bm25_tokens(pool[top.passage].chunk.text[located[0][1]:located[0][2]]))
    for s, a, b in located[1:]:
        if s.probability < RUNNER_UP_SPAN * top.probability:
            break
        text = pool[s.passage].chunk.text[a:b]
        words = set(bm25_tokens(text))
        if any(c.passage == s.passage and ca == a for c, ca, _ in chosen) or len(words - known) < 2:
            continue
        chosen.append((s, a, b))
        known |= words
        break
    evidence, parts = [], []
    for s, a, b in chosen:
        chunk = pool[s.passage].chunk
        evidence.append(Evidence(n_of[s.passage], chunk.doc_id, chunk.start + a, chunk.start + b))
        parts.append(f"{chunk.text[a:b]} [{n_of[s.passage]}]")
    answer = None
    if short and top.probability >= short_threshold and question_kind(question) != "explain":
        chunk = pool[top.passage].chunk
        answer = ShortAnswer(top.text, 1, chunk.doc_id, chunk.start + top.start, chunk.start + top.end,
                             round(top.probability, 4))
    return Reading(ranked, " ".join(parts), evidence, top.probability, False, [], k, answer)


def with_short_answer(hand: Reading, spans: Reading) -> Reading:
    """The sentence scorer's reading (``hand``) with the span reader's short answer: the short
    answer's sentence comes first, then the scorer's best sentence when it is another one."""
    short = spans.short
    if short is None:
        return hand
    span_hit = spans.ranked[0].chunk
    n = next((i for i, h in enumerate(hand.ranked, 1)
              if h.chunk.doc_id == span_hit.doc_id and h.chunk.start == span_hit.start), None)
    if n is None or n > hand.shown:
        return hand  # the scorer does not show the reader's passage: no short answer rather than a hidden source
    support = spans.evidence[0]
    first = Evidence(n, support.doc_id, support.start, support.end)
    evidence, parts = [first], [f"{_evidence_text(hand.ranked, first)} [{n}]"]
    if not hand.abstained and hand.evidence and (hand.evidence[0].doc_id, hand.evidence[0].start) != \
            (first.doc_id, first.start):
        evidence.append(hand.evidence[0])
        parts.append(f"{_evidence_text(hand.ranked, hand.evidence[0])} [{hand.evidence[0].n}]")
    hand.short = ShortAnswer(short.text, n, short.doc_id, short.start, short.end, short.probability)
    hand.text, hand.evidence, hand.abstained = " ".join(parts), evidence, False
    hand.confidence = max(hand.confidence, spans.confidence)
    return hand


def _evidence_text(ranked: list[Hit], e: Evidence) -> str:
    chunk = ranked[e.n - 1].chunk
    return chunk.text[e.start - chunk.start:e.end - chunk.start]


def read_with_span_reader(query: str, asked: str, question: str, ranked: list[Hit], k: int, reader, embedder, idf,
                          reference_day: str = "",
                          threshold: float | None = None, short_threshold: float | None = None,
                          short: bool = True) -> Reading:
    """The answer step with the span reader (``rerank`` "span", the default).

    ``query`` is what retrieval read (a follow-up with its context), ``asked`` the follow-up
    resolved for the reader ("whom did Abbas Araghchi call?"), ``question`` the turn as typed.
    The sentences and the abstention come from the sentence scorer (``read``), the short answer
    from the reader (``read_spans``, ``with_short_answer``): on the tuned seed file the reader's
    own sentences held the answer 0.62 of the time, the scorer's 0.93 (docs/span_reader.md).
    Why and how questions get no short answer. A question in another script than Latin is
    answered by the reader alone: the scorer reads English words only.
    """
    from rag.answer.short import question_kind

    if script(question) != "latin":
        return read_spans(asked, question, ranked, k, reader, idf, short_threshold=short_threshold, short=short)
    by_reader = asked_slot(question)[0] in READER_SLOTS  # the values compared are the reader's, not the patterns'
    reading = read(query, question, ranked, k, embedder, idf, None, reference_day,
                   abstain_threshold(None, threshold), None, conflicts=not by_reader)
    if short and question_kind(question) != "explain":
        reading = with_short_answer(reading, read_spans(asked, question, ranked, k, reader, idf,
                                                        short_threshold=short_threshold))
    if reading.abstained:
        return reading  # an unanswered question lists no values
    if not by_reader:
        return reading
    embed = embedder.encode_short if embedder is not None else None
    return with_conflicts(reading, read_conflicts(asked, reading.ranked, reader, idf, embed), k)
