"""Compare answer-sentence scorers on one question year, from one pass of retrieval.

For each question the real ``ask`` retrieval runs once (hybrid, the question's date as
``reference_day``); the sentences of the top 10 passages are scored by the hand-written scorer and by
the learned reader (every candidate, so pool sizes can be compared offline), and each
sentence's features are dumped. Then the table: the ceiling (some candidate holds an answer),
top-sentence hit for each option, the top passage after each re-ordering, abstention.

    python eval/reader_study.py --corpus runs/data/corpus-2024.jsonl --index-dir runs/idx-2024 \\
        --questions runs/data/questions-2024.jsonl --out runs/study-2024.jsonl [--reader DIR]
    python eval/reader_study.py --out runs/study-2024.jsonl --table-only
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import numpy as np

from rag.answer import extract as extractive
from rag.api import Rag
from rag.config import Settings
from rag.search.rerank import CrossEncoderReader
from rag.text.dates import closeness
from rag.tools.metrics import contains_answer
from rag.tuning import RERANK_DEPTH


def dump(args) -> None:
    settings = Settings.from_env(corpus=(str(args.corpus),), index_dir=str(args.index_dir), rerank="none")
    rag = Rag(settings)
    reader = CrossEncoderReader.load(args.reader)
    questions = [json.loads(line) for line in args.questions.read_text().splitlines() if line.strip()]
    done = set()
    if args.out.exists():
        done = {json.loads(line)["id"] for line in args.out.read_text().splitlines() if line.strip()}
    rag.warm()
    idf = rag.index_reader.idf()
    with args.out.open("a") as fh:
        for i, q in enumerate(questions):
            if q["id"] in done:
                continue
            ref = rag.reference_day(q["question"], q.get("date", ""))
            ranked = rag.search(q["question"], RERANK_DEPTH, reference_day=q.get("date", ""))
            pool = ranked[:RERANK_DEPTH]
            cands = extractive.candidate_sentences(pool)
            answers = q.get("answers") or []
            ordered = extractive.lexical_pool(q["question"], q["question"], cands, idf, len(cands))
            lex_rank = {id(s): r for r, s in enumerate(ordered)}
            old = extractive.score_sentences(q["question"], q["question"], copy.deepcopy(cands), rag.embedder, idf, ref)
            old_score = {(s.n, s.start): s.score for s in old}
            probs = reader.logits(q["question"], [s.text for s in cands]) if cands else []
            recent = closeness([s.date for s in cands], ref)
            rows = [{"n": s.n, "text": s.text, "start": s.start, "label": bool(answers) and contains_answer(s.text, answers),
                     "lex_rank": lex_rank[id(s)], "lexical": round(s.lexical, 4), "phrase": round(s.phrase, 4),
                     "old": round(old_score[(s.n, s.start)], 4), "logit": round(float(p), 4), "recent": round(float(r), 4)}
                    for s, p, r in zip(cands, probs, recent)]
            passages = [bool(answers) and contains_answer(h.chunk.text, answers) for h in pool]
            fh.write(json.dumps({"id": q["id"], "date": q.get("date", ""), "answerable": bool(q.get("answerable", True)),
                                 "passages": passages, "sentences": rows}) + "\n")
            fh.flush()
            if i % 25 == 0:
                print(f"{i}/{len(questions)}", file=sys.stderr, flush=True)


def top_hit(rows: list[dict], key: str, pool: int | None = None) -> bool:
    cand = [r for r in rows if pool is None or r["lex_rank"] < pool]
    if not cand:
        return False
    return max(cand, key=lambda r: r[key])["label"]


def passage_top(q: dict, key: str, pool: int | None) -> bool:
    """Does passage [1] hold an answer after re-ordering passages by their best sentence?"""
    best: dict[int, float] = {}
    for r in q["sentences"]:
        if pool is None or r["lex_rank"] < pool:
            best[r["n"]] = max(best.get(r["n"], -1e9), r[key])
    if not q["passages"]:
        return False
    order = sorted(range(len(q["passages"])), key=lambda i: (-best.get(i + 1, -1e9), i))
    return q["passages"][order[0]]


FEATURES = {
    "learned + cheap signals": ["logit", "lexical", "phrase", "recent", "inv_n"],
    "learned + hand-written score": ["logit", "old", "inv_n"],
}


def feature_matrix(rows: list[dict], names: list[str]) -> np.ndarray:
    return np.array([[1.0 / r["n"] if f == "inv_n" else r[f] for f in names] for r in rows], dtype=np.float64)


def fit_combiner(qs: list[dict], names: list[str], pool: int, l2: float = 1e-3, iters: int = 300) -> np.ndarray:
    """Listwise logistic weights (softmax over a question's candidates), plain gradient descent."""
    groups = []
    for q in qs:
        rows = [r for r in q["sentences"] if r["lex_rank"] < pool]
        if rows and any(r["label"] for r in rows) and not all(r["label"] for r in rows):
            groups.append((feature_matrix(rows, names), np.array([r["label"] for r in rows], dtype=np.float64)))
    x_all = np.concatenate([x for x, _ in groups])
    mu, sd = x_all.mean(0), x_all.std(0) + 1e-9
    w = np.zeros(len(names))
    w[0] = 1.0
    for _ in range(iters):
        grad = l2 * w
        for x, y in groups:
            z = ((x - mu) / sd) @ w
            p = np.exp(z - z.max())
            p /= p.sum()
            target = y / y.sum()
            grad += ((x - mu) / sd).T @ (p - target) / len(groups)
        w -= 0.5 * grad
    return np.concatenate([w / sd, [-(mu / sd) @ w]])  # raw-feature weights and bias


def combined_hits(qs: list[dict], names: list[str], pool: int, folds: int = 5) -> int:
    """Top-sentence hits of a combiner fitted on the other time folds (weeks in order)."""
    ordered = sorted(qs, key=lambda q: q["date"])
    size = -(-len(ordered) // folds)
    hits = 0
    for f in range(folds):
        test = ordered[f * size:(f + 1) * size]
        train = ordered[: f * size] + ordered[(f + 1) * size:]
        w = fit_combiner(train, names, pool)
        for q in test:
            rows = [r for r in q["sentences"] if r["lex_rank"] < pool]
            if rows:
                z = feature_matrix(rows, names) @ w[:-1]
                hits += rows[int(np.argmax(z))]["label"]
    return hits


def table(path: Path) -> None:
    qs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    ans = [q for q in qs if q["answerable"]]
    n = len(ans)

    def pct(x: float) -> str:
        return f"{100 * x / n:.1f}"

    print(f"{path.name}: {len(qs)} questions, {n} answerable")
    print("| option | top sentence holds an answer | passage [1] holds an answer |")
    print("|---|---|---|")
    print(f"| retrieval order | | {pct(sum(q['passages'][0] for q in ans if q['passages']))} |")
    print(f"| hand-written scorer (24 candidates) | {pct(sum(top_hit(q['sentences'], 'old', 24) for q in ans))} | "
          f"{pct(sum(passage_top(q, 'old', 24) for q in ans))} |")
    for pool in (16, 24, 32, None):
        print(f"| learned reader, {pool or 'all'} candidates | {pct(sum(top_hit(q['sentences'], 'logit', pool) for q in ans))} | "
              f"{pct(sum(passage_top(q, 'logit', pool) for q in ans))} |")
    for label, names in FEATURES.items():
        print(f"| {label}, 24 candidates (5-fold by week) | {pct(combined_hits(ans, names, 24))} | |")
    for pool in (24, 32, None):
        ceil = sum(any(r["label"] for r in q["sentences"] if pool is None or r["lex_rank"] < pool) for q in ans)
        print(f"| ceiling: some sentence of {pool or 'all'} candidates holds an answer | {pct(ceil)} | |")
    print(f"| ceiling: some of the 10 passages holds an answer | | {pct(sum(any(q['passages']) for q in ans))} |")
    avg = np.mean([len(q["sentences"]) for q in qs])
    print(f"candidates a question: {avg:.1f}")
    abstention(qs)


def best(q: dict, key: str, pool: int = 24) -> float:
    vals = [r[key] for r in q["sentences"] if r["lex_rank"] < pool]
    if not vals:
        return -1e9
    return max(vals) if key != "logit" else float(1 / (1 + np.exp(-max(vals))))


def abstention(qs: list[dict], hand_threshold: float = 0.42) -> float:
    """The reader threshold whose false-abstention rate on answerable questions matches the
    hand-written scorer's; both scorers' error rates at their thresholds."""
    ans = [q for q in qs if q["answerable"]]
    unans = [q for q in qs if not q["answerable"]]
    old_false = np.mean([best(q, "old") < hand_threshold for q in ans])
    old_right = np.mean([best(q, "old") < hand_threshold for q in unans]) if unans else float("nan")
    probs = np.sort([best(q, "logit") for q in ans])
    threshold = float(probs[int(old_false * len(probs))]) if old_false > 0 else float(probs[0])
    new_false = np.mean([best(q, "logit") < threshold for q in ans])
    new_right = np.mean([best(q, "logit") < threshold for q in unans]) if unans else float("nan")
    print(f"abstention: hand-written at {hand_threshold}: false abstention {100 * old_false:.1f}%, "
          f"unanswerable abstained {100 * old_right:.1f}%; reader at {threshold:.4f}: "
          f"false abstention {100 * new_false:.1f}%, unanswerable abstained {100 * new_right:.1f}% "
          f"({len(ans)} answerable, {len(unans)} unanswerable)")
    return threshold


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path)
    ap.add_argument("--index-dir", type=Path)
    ap.add_argument("--questions", type=Path)
    ap.add_argument("--reader", type=Path, default=Path(__file__).resolve().parent.parent / "rag" / "models" / "reader")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--table-only", action="store_true")
    args = ap.parse_args()
    if not args.table_only:
        dump(args)
    table(args.out)


if __name__ == "__main__":
    main()
