"""Train the short-answer ranker (rag/short_answer.py) on RealTime QA news quizzes.

    python -m rag.short_train recipe [--data ../shared/datasets] [--work runs/short] [--seed 0]

does everything: splits RealTime QA by year, indexes each year's articles with the project's
own ``rag index`` (kept between runs), answers every question with ``Rag.ask`` and stores what
its short-answer step read (the best sentences of the shown passages with spaCy's mentions,
and the ranked passages: ``build``, cached and resumable per question), then trains
(``fit``): candidates of the 2022 and April-August 2024 weeks (and 2023 when given) for
training, September-December 2024 for choosing the model, the calibration and the
thresholds; 2025 is only reported. Positives are the candidates equal to a gold answer
(SQuAD normalisation); negatives every other candidate, the quiz's wrong choices among them
weighted up (hard negatives). The model and its card go to ``rag/models/short_ranker/``.

Needs the ``eval`` extra (spaCy's pipeline is a product dependency; LightGBM and
scikit-learn only train).
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

from .answer import Sentence, compose
from .metrics import contains_answer, exact_match, token_f1
from .short_answer import (
    FEATURES,
    RANKER_DIR,
    Mention,
    Parsed,
    ShortRanker,
    ShortReader,
    candidate_groups,
    feature_matrix,
    question_kind,
)

SPLITS = {  # name -> (question filter, articles file)
    "2022": (lambda d: d["date"][:4] == "2022", "more"),
    "2024train": (lambda d: "2024-01" <= d["date"] < "2024-09", "more"),
    "2024valid": (lambda d: "2024-09" <= d["date"] < "2025", "more"),
    "2025": (lambda d: d["date"][:4] == "2025", "more"),
}
TRAIN, VALID, TEST = ("2022", "2024train"), "2024valid", "2025"
BUILD_SENTENCES = 24  # sentences parsed when building (the pool the scorer embeds); fit tries fewer


# ---------------------------------------------------------------- build


def _sentence_dict(s: Sentence) -> dict:
    return {k: getattr(s, k) for k in ("n", "start", "end", "text", "score", "dense", "lexical", "phrase",
                                         "appositive", "date", "chance", "headline")}


def build(questions: list[dict], index_dir: Path, corpus: Path, out: Path, log=print) -> None:
    """Answer each question with ``Rag.ask`` over ``index_dir`` and append what the short-answer
    step read to ``out`` (JSONL); questions already there are skipped (resumable)."""
    from .api import Rag

    done = set()
    if out.exists():
        for line in out.read_text().splitlines():
            try:
                done.add(json.loads(line)["id"])
            except (ValueError, KeyError):
                continue
    todo = [q for q in questions if q["id"] not in done]
    rag = Rag(index_dir=str(index_dir), corpus=(str(corpus),), short_answers=True)
    rag._short = ShortReader(None, BUILD_SENTENCES)  # parse, do not rank: the ranker is what we train
    t0 = time.perf_counter()
    with out.open("a") as fh:
        for i, q in enumerate(todo, 1):
            ans = rag.ask(q["question"], reference_day=q["date"])
            row = {key: q.get(key) for key in ("id", "question", "answers", "choices", "date", "answerable")}
            row.update(
                answer=ans.answer, abstained=ans.abstained, confidence=ans.confidence,
                passages=[[h.chunk.doc_id, h.chunk.text] for h in ans.retrieved[:10]],
                parsed=[{"sentence": _sentence_dict(p.sentence),
                         "mentions": [[m.start, m.end, m.text, m.label, m.variant] for m in p.mentions]} for p in ans.parsed],
            )
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            fh.flush()
            if i % 25 == 0 or i == len(todo):
                rate = i / (time.perf_counter() - t0)
                log(f"  {out.name}: {i}/{len(todo)} questions ({rate:.1f}/s, ETA {(len(todo) - i) / rate:.0f}s)")


def load_material(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for r in rows:
        r["parsed_objs"] = [Parsed(Sentence(**p["sentence"]), [Mention(*m) for m in p["mentions"]])
                            for p in r["parsed"]]
    return rows


# ---------------------------------------------------------------- fit


def featurise(rows: list[dict], sentences: int, hard_weight: float) -> list[dict]:
    """Per question: its candidates (top ``sentences`` parsed sentences), features, labels, weights."""
    out = []
    for r in rows:
        parsed = sorted(r["parsed_objs"], key=lambda p: -p.sentence.score)[:sentences]
        if question_kind(r["question"]) == "explain":
            parsed = []
        cands = candidate_groups(r["question"], parsed, [tuple(p) for p in r["passages"]], r["date"])
        answers = r["answers"] or []
        wrong = [c for c in (r.get("choices") or []) if c not in answers]
        y = np.array([float(exact_match(c.text, answers)) for c in cands])
        f1 = np.array([token_f1(c.text, answers) for c in cands])
        w = np.array([hard_weight if exact_match(c.text, wrong) else 1.0 for c in cands])
        out.append({"row": r, "cands": cands, "x": feature_matrix(cands), "y": y, "f1": f1, "w": w})
    return out


def _stack(qs: list[dict], target: str):
    xs = [q["x"] for q in qs if len(q["cands"])]
    ys = [q["y"] if target == "em" else (q["f1"] >= 0.5).astype(float) for q in qs if len(q["cands"])]
    ws = [q["w"] for q in qs if len(q["cands"])]
    groups = [len(q["cands"]) for q in qs if len(q["cands"])]
    return np.vstack(xs), np.concatenate(ys), np.concatenate(ws), groups


def _train(kind: str, train: list[dict], seed: int, target: str):
    """A scoring function (features -> raw score) and, for trees, the LightGBM booster."""
    x, y, w, groups = _stack(train, target)
    if kind == "logreg":
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(x)
        model = LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced", random_state=seed)
        model.fit(scaler.transform(x), y, sample_weight=w)
        return (lambda a: model.decision_function(scaler.transform(a))), None
    import lightgbm as lgb

    params = {"learning_rate": 0.05, "num_leaves": 15, "min_data_in_leaf": 20, "feature_fraction": 0.8,
              "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 1.0, "seed": seed, "verbose": -1,
              "deterministic": True, "num_threads": 2}
    if kind == "lambdarank":
        params.update(objective="lambdarank", lambdarank_truncation_level=5, eval_at=[1])
        data = lgb.Dataset(x, y, weight=None, group=groups)
    else:
        params.update(objective="binary")
        data = lgb.Dataset(x, y, weight=w)
    booster = lgb.train(params, data, num_boost_round=300)
    return (lambda a: booster.predict(a, raw_score=True)), booster


def _best_per_question(qs: list[dict], score) -> list[tuple[dict, object, float]]:
    """(question, its best candidate or None, raw score) per question."""
    out = []
    for q in qs:
        if not len(q["cands"]):
            out.append((q, None, -1e9))
            continue
        z = score(q["x"])
        i = int(np.argmax(z))
        out.append((q, q["cands"][i], float(z[i])))
    return out


def _platt(best: list[tuple[dict, object, float]]) -> tuple[float, float]:
    """Sigmoid (scale, bias) fitted to whether the chosen candidate is right."""
    from sklearn.linear_model import LogisticRegression

    pts = [(z, float(exact_match(c.text, q["row"]["answers"]))) for q, c, z in best if c is not None]
    z = np.array([[p[0]] for p in pts])
    y = np.array([p[1] for p in pts])
    lr = LogisticRegression(C=100.0).fit(z, y)
    return float(lr.coef_[0][0]), float(lr.intercept_[0])


def _sentence_answer_hit(q: dict, cand) -> bool:
    """Whether the answer holds a gold answer when ``cand`` is the short answer (its best sentence
    first, as ``rag.answer.read`` composes it)."""
    shown = sorted((p.sentence for p in q["row"]["parsed_objs"]), key=lambda s: -s.score)
    support = cand.parsed.sentence
    text, _ = compose(q["row"]["question"], [support] + [s for s in shown if s is not support])
    return contains_answer(text, q["row"]["answers"])


def simulate(qs: list[dict], best, scale: float, bias: float, threshold: float, floor: float | None,
             hand_threshold: float) -> dict:
    """The product's decision per question (short answer above ``threshold``; else the sentence
    answer, abstaining under ``hand_threshold`` or, with ``floor``, when the best candidate is
    under it) and the metrics ``rag eval`` reports."""
    em = f1 = hit = abst = n = short_given = short_right = unans = unans_abst = 0
    for q, c, z in best:
        r = q["row"]
        p = 1.0 / (1.0 + np.exp(-(scale * z + bias))) if c is not None else 0.0
        if c is not None and p >= threshold:
            abstained, short, sentence_hit = False, c.text, _sentence_answer_hit(q, c)
        else:
            short = ""
            abstained = r["abstained"] or (floor is not None and c is not None and p < floor)
            sentence_hit = not abstained and contains_answer(r["answer"], r["answers"] or [])
        if r.get("answerable") and r["answers"]:
            n += 1
            em += bool(short) and exact_match(short, r["answers"])
            f1 += token_f1(short, r["answers"]) if short else 0.0
            hit += sentence_hit
            abst += abstained
            short_given += bool(short)
            short_right += bool(short) and exact_match(short, r["answers"])
        else:
            unans += 1
            unans_abst += abstained
    return {"short_em": em / n, "short_f1": f1 / n, "answer_hit": hit / n, "false_abstention": abst / n,
            "short_given": short_given / n, "short_precision": short_right / max(1, short_given),
            "unanswerable_abstained": unans_abst / max(1, unans), "answerable": n}


def ceiling(qs: list[dict]) -> float:
    n = [q for q in qs if q["row"].get("answerable") and q["row"]["answers"]]
    return sum(bool(q["y"].sum()) for q in n) / max(1, len(n))


def fit(material: dict[str, list[dict]], out_dir: Path, seed: int = 0, log=print) -> dict:
    """Try each model, candidate depth and target; choose on the validation weeks; write the model."""
    from .tuning import HAND_THRESHOLD

    random.seed(seed)
    np.random.seed(seed)
    results, best_cfg = [], None
    cache: dict[int, dict[str, list[dict]]] = {}
    for sentences in (8, 12, 24):
        cache[sentences] = {name: featurise(rows, sentences, 3.0) for name, rows in material.items()}
        train = [q for name in TRAIN if name in cache[sentences] for q in cache[sentences][name]]
        if "2023" in cache[sentences]:
            train += cache[sentences]["2023"]
        valid = cache[sentences][VALID]
        log(f"  {sentences} sentences: candidate ceiling train {ceiling(train):.3f}, valid {ceiling(valid):.3f}")
        for kind in ("logreg", "binary", "lambdarank"):
            for target in ("em", "f1"):
                score, booster = _train(kind, train, seed, target)
                best = _best_per_question(valid, score)
                scale, bias = _platt(best)
                m = simulate(valid, best, scale, bias, 0.0, None, HAND_THRESHOLD)
                row = {"sentences": sentences, "model": kind, "target": target, **{k: round(v, 4) for k, v in m.items()}}
                results.append(row)
                log(f"    {kind:10s} {target}: valid short_em {m['short_em']:.3f} f1 {m['short_f1']:.3f} "
                    f"answer_hit {m['answer_hit']:.3f}")
                if kind != "logreg" and (best_cfg is None or m["short_em"] > best_cfg["metrics"]["short_em"]):
                    best_cfg = {"sentences": sentences, "model": kind, "target": target, "booster": booster,
                                "score": score, "scale": scale, "bias": bias, "metrics": m}
    # thresholds on the validation weeks: the short-answer threshold maximises answer_hit (ties:
    # short_em), then an abstention floor is kept only if it lowers abstention on unanswerable
    # questions without raising false abstention above what the sentence answer alone gives
    valid = cache[best_cfg["sentences"]][VALID]
    best = _best_per_question(valid, best_cfg["score"])
    sweep = []
    for t in [x / 100 for x in range(0, 80, 5)]:
        m = simulate(valid, best, best_cfg["scale"], best_cfg["bias"], t, None, HAND_THRESHOLD)
        sweep.append((round(m["answer_hit"], 4), round(m["short_em"], 4), t, m))
    _, _, threshold, m_t = max(sweep)
    floors = []
    for fl in [None] + [x / 100 for x in range(5, min(60, int(threshold * 100) + 1), 5)]:
        m = simulate(valid, best, best_cfg["scale"], best_cfg["bias"], threshold, fl, HAND_THRESHOLD)
        floors.append((fl, m))
    ok = [(fl, m) for fl, m in floors if m["false_abstention"] <= max(0.10, floors[0][1]["false_abstention"])]
    floor, m_f = max(ok, key=lambda p: (round(p[1]["answer_hit"], 3), p[1]["unanswerable_abstained"]))
    model = {
        "features": list(FEATURES), "trees": best_cfg["booster"].dump_model()["tree_info"],
        "scale": best_cfg["scale"], "bias": best_cfg["bias"], "threshold": threshold, "abstain_below": floor,
        "sentences": best_cfg["sentences"], "objective": best_cfg["model"], "target": best_cfg["target"], "seed": seed,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "model.json").write_text(json.dumps(model, separators=(",", ":")))
    # the numpy evaluator must give LightGBM's own scores
    ranker = ShortRanker(model)
    x = valid[0]["x"] if len(valid[0]["cands"]) else np.vstack([q["x"] for q in valid if len(q["cands"])][:1])
    assert np.allclose(ranker.raw(x), best_cfg["booster"].predict(x, raw_score=True), atol=1e-6)
    report = {"choices": results, "chosen": {k: v for k, v in best_cfg.items() if k not in ("booster", "score")},
              "threshold_sweep": [{"threshold": t, **{k: round(v, 4) for k, v in m.items()}} for _, _, t, m in sweep],
              "floors": [{"floor": fl, **{k: round(v, 4) for k, v in m.items()}} for fl, m in floors],
              "valid": m_f, "importance": dict(zip(FEATURES, best_cfg["booster"].feature_importance("gain").round(1).tolist()))}
    test = cache[best_cfg["sentences"]].get(TEST)
    if test:
        tb = _best_per_question(test, best_cfg["score"])
        report["test"] = simulate(test, tb, best_cfg["scale"], best_cfg["bias"], threshold, floor, HAND_THRESHOLD)
        report["test_ceiling"] = ceiling(test)
    report["valid_ceiling"] = ceiling(valid)
    return report


# ---------------------------------------------------------------- recipe


def split_data(data: Path, work: Path) -> dict[str, tuple[Path, Path]]:
    """Write each split's questions and the articles of its year's block; (questions, articles) per split."""
    more = data / "realtimeqa-more"
    lines = gzip.open(more / "corpus.jsonl.gz", "rt", encoding="utf-8").readlines()
    years = [json.loads(line)["date"][:4] for line in lines]
    # the corpus is the weekly search results in order: a year's block runs from its first article dated that year
    first = {y: years.index(y) for y in ("2024", "2025")}
    blocks = {"2022": lines[:first["2024"]], "2024": lines[first["2024"]:first["2025"]], "2025": lines[first["2025"]:]}
    work.mkdir(parents=True, exist_ok=True)
    for year, block in blocks.items():
        path = work / f"corpus-{year}.jsonl"
        if not path.exists():
            path.write_text("".join(block))
    qs = [json.loads(line) for line in (more / "questions.jsonl").read_text().splitlines() if line.strip()]
    out = {}
    for name, (keep, _) in SPLITS.items():
        path = work / f"questions-{name}.jsonl"
        path.write_text("".join(json.dumps(q) + "\n" for q in qs if keep(q)))
        out[name] = (path, work / f"corpus-{name[:4]}.jsonl")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rag.short_train", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("recipe", help="split, index, build and fit: the whole rebuild")
    r.add_argument("--data", type=Path, default=Path("../shared/datasets"))
    r.add_argument("--work", type=Path, default=Path("runs/short"))
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--out", type=Path, default=RANKER_DIR)
    f = sub.add_parser("fit", help="fit from built material")
    f.add_argument("--work", type=Path, default=Path("runs/short"))
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--out", type=Path, default=RANKER_DIR)
    b = sub.add_parser("build", help="answer one question file and store what the short-answer step read")
    b.add_argument("questions", type=Path)
    b.add_argument("--index-dir", type=Path, required=True)
    b.add_argument("--corpus", type=Path, required=True)
    b.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    if args.cmd == "build":
        qs = [json.loads(line) for line in args.questions.read_text().splitlines() if line.strip()]
        build(qs, args.index_dir, args.corpus, args.out)
        return 0
    if args.cmd == "recipe":
        from .api import Rag

        splits = split_data(args.data, args.work)
        for name, (qpath, corpus) in splits.items():
            index_dir = args.work / f"index-{name[:4]}"
            print(f"{name}: indexing {corpus} into {index_dir}", file=sys.stderr)
            Rag(index_dir=str(index_dir), corpus=(str(corpus),), short_answers=False).ensure_index(log=print)
            qs = [json.loads(line) for line in qpath.read_text().splitlines() if line.strip()]
            build(qs, index_dir, corpus, args.work / f"material-{name}.jsonl")
    material = {}
    for name in (*TRAIN, VALID, TEST, "2023"):
        path = args.work / f"material-{name}.jsonl"
        if path.exists():
            material[name] = load_material(path)
    if VALID not in material or not any(n in material for n in TRAIN):
        print(f"error: no built material in {args.work} (run 'recipe' or 'build' first)", file=sys.stderr)
        return 1
    report = fit(material, args.out, args.seed)
    (args.work / "fit-report.json").write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps({k: report[k] for k in ("chosen", "valid", "test", "valid_ceiling", "test_ceiling") if k in report},
                     indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
