"""Score timelines and conflict detection on the RealTime QA gold sets (eval/TIMELINE_CONFLICTS.md).

    python eval/timeline_eval.py --data ../shared/datasets --work runs/timeline-eval

The evaluation corpus is built from the shared data at run time (nothing of it is copied into
the project): every article of the query's corpus file that names a timeline subject (its
longest word or a listed variant) or holds the rare words of a conflict question, plus every
gold article. It is indexed once under ``--work``; the timelines and answers then come from
the public API, and the scores follow the matching rules of eval/TIMELINE_CONFLICTS.md.

Scores are given for the older half of each set (by gold date; the choices of issue 14 were
measured on it), the newer half (held out), and both; ``when_questions.jsonl`` asks the date of
one event of the timelines (32 questions): an answer should date it and list no other dates; timelines in their default view (main
events) and, for all queries, with every event. Each query and question is also asked in other
words than the articles use (its ``paraphrases``, same gold, same half): the ``*_paraphrased``
scores, and for conflicts the share of questions whose outcome is the same both ways.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import gzip
import json
import re
from pathlib import Path
from types import SimpleNamespace

from rag import Rag, Settings
from rag.text.lexical import bm25_tokens

EVAL = Path(__file__).resolve().parent
DAYS = 3  # an entry dated within this many days of a gold event matches it (month-precision: same month)


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _subject_words(q: dict) -> list[str]:
    words = [max(re.findall(r"[\w'’-]+", q["query"]), key=len).lower()]
    return words + [max(re.findall(r"[\w'’-]+", v), key=len).lower() for v in q.get("variants", [])]


def _question_words(q: dict, df: dict[str, int]) -> list[str]:
    toks = [t for t in dict.fromkeys(bm25_tokens(q["question"])) if len(t) > 3]
    return sorted(toks, key=lambda t: df.get(t, 0))[:2]


def build_corpus(data: Path, timelines: list[dict], conflicts: list[dict], out: Path) -> dict:
    """Write the evaluation corpus (JSONL) and return counts."""
    wanted_ids = {d for q in timelines for e in q["events"] for d in e["docs"]}
    wanted_ids |= {d for q in conflicts for v in q["values"] for d in v["docs"]}
    files = sorted({q["corpus"] for q in timelines + conflicts})
    kept = 0
    with out.open("w") as fh:
        for name in files:
            rows = [json.loads(line) for line in gzip.open(data / name, "rt")]
            df: dict[str, int] = {}
            for r in rows:
                for t in set(bm25_tokens(r.get("text", "")[:4000])):
                    df[t] = df.get(t, 0) + 1
            subjects = [w for q in timelines if q["corpus"] == name for w in _subject_words(q)]
            pairs = [_question_words(q, df) for q in conflicts if q["corpus"] == name]
            pattern = re.compile(r"\b(?:" + "|".join(map(re.escape, subjects)) + r")", re.I) if subjects else None
            for r in rows:
                text = r.get("text") or ""
                low = text.lower()
                keep = r.get("id") in wanted_ids or (pattern is not None and pattern.search(text))
                if not keep:
                    stems = set(bm25_tokens(low[:20000]))
                    keep = any(p and all(t in stems for t in p) for p in pairs)
                if keep:
                    fh.write(json.dumps({k: r.get(k) for k in ("id", "title", "url", "date", "text")}) + "\n")
                    kept += 1
    return {"articles": kept, "corpus_files": files}


def _day(s: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(s[:10])
    except ValueError:
        return None


def _matches(entry: dict, event: dict) -> bool:
    docs = {entry["source"]["doc_id"], *(s["doc_id"] for s in entry["also"])}
    if not docs & set(event["docs"]):
        return False
    a, b = _day(entry["date"]), _day(event["date"])
    if a is None or b is None:
        return False
    if entry["precision"] in ("month", "year"):
        return entry["date"][:7] == event["date"][:7] or (entry["precision"] == "year" and entry["date"][:4] == event["date"][:4])
    return abs((a - b).days) <= DAYS


def score_timelines(rag, queries: list[dict]) -> tuple[dict, list[dict]]:
    from rag import Filters

    rows = []
    for q in queries:
        t = rag.timeline(q["query"], filters=Filters(since=q.get("since", ""), until=q.get("until", ""))).to_dict()
        entries, events = t["entries"], q["events"]
        matched_events = [e for e in events if any(_matches(x, e) for x in entries)]
        matching_entries = [x for x in entries if any(_matches(x, e) for e in events)]
        duplicates = sum(max(0, sum(_matches(x, e) for x in entries) - 1) for e in events)
        exact = [x for x in matching_entries if any(_matches(x, e) and x["date"] == e["date"] for e in events)]
        rows.append({"id": q["id"], "query": q["query"], "entries": len(entries), "gold": len(events),
                     "recall": len(matched_events) / len(events) if events else 0.0,
                     "precision": len(matching_entries) / len(entries) if entries else 0.0,
                     "date_exact": len(exact) / len(matching_entries) if matching_entries else 0.0,
                     "duplicates": duplicates, "variants": t["variants"]})
    n = len(rows)
    summary = {"queries": n,
               "event_recall": round(sum(r["recall"] for r in rows) / n, 3),
               "event_precision": round(sum(r["precision"] for r in rows) / n, 3),
               "date_accuracy": round(sum(r["date_exact"] for r in rows) / n, 3),
               "duplicate_entries_per_timeline": round(sum(r["duplicates"] for r in rows) / n, 2),
               "entries_per_timeline": round(sum(r["entries"] for r in rows) / n, 1)}
    return summary, rows


def _norm(value: str) -> str:
    return re.sub(r"[\s,]", "", value.lower())


def score_conflicts(rag: Rag, questions: list[dict]) -> tuple[dict, list[dict]]:
    rows = []
    for q in questions:
        answer = rag.ask(q["question"])
        gold = {_norm(v["value"]) for v in q["values"]}
        found = [[_norm(v.value) for v in c.values] for c in answer.conflicts]
        flagged = bool(found)
        right = any(len({v for v in vs if any(g in v or v in g for g in gold)}) >= 2 for vs in found)
        rows.append({"id": q["id"], "kind": q["kind"], "flagged": flagged, "right_values": right,
                     "found": [c.to_dict() for c in answer.conflicts], "gold": sorted(gold)})
    differ = [r for r in rows if r["kind"] != "agree"]
    agree = [r for r in rows if r["kind"] == "agree"]
    flagged = [r for r in rows if r["flagged"]]
    summary = {"questions_differ": len(differ), "questions_agree": len(agree),
               "recall": round(sum(r["right_values"] for r in differ) / len(differ), 3) if differ else None,
               "precision": round(sum(r["kind"] != "agree" and r["right_values"] for r in flagged) / len(flagged), 3)
               if flagged else None,
               "agreeing_flagged": sum(r["flagged"] for r in agree), "flagged": len(flagged)}
    return summary, rows


def score_when(rag: Rag, questions: list[dict]) -> tuple[dict, list[dict]]:
    """"When" questions of one event (eval/when_questions.jsonl): how many list dates the sources
    give differently (each such list is wrong: the event has one date), and how many answer with
    a sentence that dates it (its stated date, resolved against its article's, within ``DAYS``)."""
    from rag.text.dates import stated_date

    rows = []
    for q in questions:
        answer = rag.ask(q["question"])
        dated = ""
        if answer.evidence:
            e = answer.evidence[0]
            c = answer.citations[e.n - 1]
            sentence = rag.document(e.doc_id, e.start, e.end)["text"]
            day, precision, _ = stated_date(sentence, c.date)
            dated = day if day and _matches({"source": {"doc_id": e.doc_id}, "also": [], "date": day,
                                             "precision": precision}, {"docs": [e.doc_id], "date": q["date"]}) else ""
        rows.append({"id": q["id"], "flagged": bool(answer.conflicts), "abstained": answer.abstained,
                     "dated": bool(dated), "found": [c.to_dict() for c in answer.conflicts]})
    n = len(rows)
    return {"questions": n, "listing_dates": sum(r["flagged"] for r in rows),
            "answer_dates_it": round(sum(r["dated"] for r in rows) / n, 3) if n else None,
            "abstained": sum(r["abstained"] for r in rows)}, rows


def paraphrased(items: list[dict], key: str) -> list[dict]:
    """Each item asked in its other words (``paraphrases``: written without the articles' wording),
    with the same gold; an item keeps its half of the split."""
    return [{**q, "id": f"{q['id']}-p{i}", key: text} for q in items for i, text in enumerate(q.get("paraphrases", []), 1)]


def by_time(items: list[dict], dates) -> tuple[list[dict], list[dict]]:
    """The older half (the choices of issue 14 were tuned on it) and the newer half (held out)."""
    items = sorted(items, key=lambda q: min(dates(q)))
    return items[:len(items) // 2], items[len(items) // 2:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--work", type=Path, default=Path("runs/timeline-eval"))
    parser.add_argument("--only", default="timelines,conflicts,when",
                        help="what to score, comma-separated: timelines, conflicts, when")
    args = parser.parse_args()
    only = set(args.only.split(","))
    args.work.mkdir(parents=True, exist_ok=True)
    timelines = load(EVAL / "timeline_queries.jsonl")
    conflicts = load(EVAL / "conflict_questions.jsonl")
    corpus = args.work / "corpus.jsonl"
    if not corpus.exists():
        print(json.dumps(build_corpus(args.data, timelines, conflicts, corpus)), flush=True)
    rag = Rag(Settings.from_env(corpus=(str(corpus),), index_dir=str(args.work / "index")))
    rag.prepare(log=print)
    rag.warm()
    report: dict = {}
    t_tune, t_held = by_time(timelines, lambda q: [e["date"] for e in q["events"]])
    c_tune, c_held = by_time(conflicts, lambda q: [d for v in q["values"] for d in v["dates"]])
    when = load(EVAL / "when_questions.jsonl")
    w_tune, w_held = by_time(when, lambda q: [q["date"]])
    t_rows = c_rows = w_rows = []
    for part, tl, cf, wq in (("tuned_on", t_tune, c_tune, w_tune), ("held_out", t_held, c_held, w_held),
                             ("all", timelines, conflicts, when)):
        report[part] = {}
        if "timelines" in only:
            report[part]["timeline"], t_rows = score_timelines(rag, tl)
            report[part]["timeline_paraphrased"], _ = score_timelines(rag, paraphrased(tl, "query"))
        if "conflicts" in only:
            report[part]["conflicts"], c_rows = score_conflicts(rag, cf)
            cp_summary, cp_rows = score_conflicts(rag, paraphrased(cf, "question"))
            same = sum(a["right_values"] == b["right_values"] and a["flagged"] == b["flagged"]
                       for a, b in zip(c_rows, cp_rows))
            cp_summary["same_outcome_as_original"] = round(same / len(c_rows), 3) if c_rows else None
            report[part]["conflicts_paraphrased"] = cp_summary
        if "when" in only:
            report[part]["when"], w_rows = score_when(rag, wq)
        print(part, json.dumps(report[part]), flush=True)
    if "timelines" in only:
        every = functools.partial(rag.timeline, all_events=True)
        report["all"]["timeline_all_events"], _ = score_timelines(SimpleNamespace(timeline=every), timelines)
    (args.work / "timelines.json").write_text(json.dumps(t_rows, indent=1, ensure_ascii=False))
    (args.work / "conflicts.json").write_text(json.dumps(c_rows, indent=1, ensure_ascii=False))
    (args.work / "when.json").write_text(json.dumps(w_rows, indent=1, ensure_ascii=False))
    (args.work / "report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
