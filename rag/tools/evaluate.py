"""Batch answering of question sets with metrics: the same ``Rag.ask`` path as the CLI.

Question files are JSONL: ``{"id", "question", "answers": [...], "docs": [...], "unanswerable": false}``;
``docs`` and ``unanswerable`` are optional, a line with ``"answerable": false`` (RealTime QA's
field) is left out of the recall metrics, other fields are ignored.

A line may instead hold a conversation: ``{"id", "turns": [{"question", "answers", "standalone"}, ...]}``.
Its turns are asked in order, each a follow-up of the ones before (``Conversation``); a turn
with ``standalone`` (the same question written to stand alone) is also asked so, alone, and the
summary's ``follow_ups`` sets the follow-ups' figures beside the standalone ones.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from rag.answer.followup import Conversation
from rag.api import Rag
from rag.errors import RagError
from rag.text.chunk import count_tokens, truncate_tokens
from rag.text.dates import parse_date
from rag.tools.metrics import (
    answer_recall_at_tokens,
    cited_numbers,
    contains_answer,
    exact_match,
    first_answer_rank,
    percentile,
    token_f1,
)
from rag.types import SkippedInput

TOKEN_BUDGETS = (512, 1024)


def load_questions(path: Path, use_dates: bool = True) -> tuple[list[dict], list[SkippedInput]]:
    """Questions from a JSONL file; bad lines are skipped and reported with their line number.

    A question's ``date`` (when ``use_dates``) is the day it was asked: ``ask(reference_day=...)``.
    """

    if not path.is_file():
        raise RagError(f"question file not found: {path}")
    questions, skipped, ids = [], [], set()
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                q = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                skipped.append(SkippedInput(str(path), lineno, f"not valid JSON ({e})"))
                continue
            if isinstance(q, dict) and "turns" in q:
                problem = _expand_turns(q, lineno, questions, ids)
                if problem:
                    skipped.append(SkippedInput(str(path), lineno, problem))
                continue
            if not isinstance(q, dict) or not isinstance(q.get("question"), str) or not q["question"].strip():
                skipped.append(SkippedInput(str(path), lineno, 'no "question" field'))
                continue
            answers = q.get("answers") or []
            if isinstance(answers, str):
                answers = [answers]
            q["answers"] = [str(a) for a in answers if str(a).strip()]
            q["docs"] = [str(d) for d in q.get("docs") or []]
            q["id"] = str(q.get("id") or f"line{lineno}")
            if q["id"] in ids:
                skipped.append(SkippedInput(str(path), lineno, f"duplicate id {q['id']!r}"))
                continue
            q["asked_on"] = parse_date(str(q.get("date") or "")) if use_dates else ""
            if use_dates and q.get("date") and not q["asked_on"]:
                skipped.append(SkippedInput(str(path), lineno, f"date {q['date']!r} is not a date (YYYY-MM-DD)"))
                continue
            ids.add(q["id"])
            q["unanswerable"] = bool(q.get("unanswerable", False))
            q["scored"] = bool(q["answers"]) and q.get("answerable", True) is not False and not q["unanswerable"]
            questions.append(q)
    if not questions:
        raise RagError(f"{path}: no questions found")
    return questions, skipped


def _expand_turns(line: dict, lineno: int, questions: list[dict], ids: set[str]) -> str:
    """A conversation's turns as questions (``id#n``, and ``id#n-standalone`` for a turn written
    to stand alone too), appended to ``questions``; what is wrong with the line, else ""."""
    turns = line.get("turns")
    cid = str(line.get("id") or f"line{lineno}")
    if not isinstance(turns, list) or not turns:
        return '"turns" is not a list of turns'
    if any(not isinstance(t, dict) or not isinstance(t.get("question"), str) or not t["question"].strip()
           for t in turns):
        return 'a turn has no "question"'
    if cid in ids:
        return f"duplicate id {cid!r}"
    ids.add(cid)
    for i, t in enumerate(turns, 1):
        answers = t.get("answers") or []
        answers = [str(a) for a in ([answers] if isinstance(answers, str) else answers) if str(a).strip()]
        base = {"answers": answers, "docs": [str(d) for d in t.get("docs") or []], "asked_on": "",
                "unanswerable": False, "scored": bool(answers), "conversation": cid, "turn": i}
        questions.append({**base, "id": f"{cid}#{i}", "question": t["question"]})
        if i > 1 and isinstance(t.get("standalone"), str) and t["standalone"].strip():
            questions.append({**base, "id": f"{cid}#{i}-standalone", "question": t["standalone"], "conversation": "",
                              "standalone_of": f"{cid}#{i}"})
    return ""


def answer_one(rag: Rag, q: dict, ks: list[int], llm: str = "none", conversation: Conversation | None = None) -> dict:
    """Answer one question (with the ``llm`` backend; a turn of ``conversation``) and compute its
    per-question metric values."""
    t0 = time.perf_counter()
    depth = max(max(ks), 16)
    ans = rag.ask(q["question"], k=rag.settings.k, retrieve_k=depth, llm=llm, reference_day=q.get("asked_on", ""),
                  conversation=conversation)
    latency = (time.perf_counter() - t0) * 1000
    passages = [h.chunk.text for h in ans.retrieved]
    doc_ids = [h.chunk.doc_id for h in ans.retrieved]
    row = {
        "id": q["id"], "question": q["question"], "answers": q["answers"], "docs": q["docs"],
        "unanswerable": q["unanswerable"], "scored": q["scored"],
        "answer": ans.answer, "abstained": ans.abstained, "confidence": round(ans.confidence, 4),
        "short_answer": ans.short_answer.text if ans.short_line() else "",
        "citations": [c.to_dict() for c in ans.citations], "retrieved_doc_ids": doc_ids, "latency_ms": round(latency, 2),
        "asked_on": q.get("asked_on", ""), "reference_day": ans.reference_day,
        "conversation": q.get("conversation", ""), "turn": q.get("turn", 0), "standalone_of": q.get("standalone_of", ""),
        "standalone_question": ans.standalone_question,
    }
    if llm != "none":
        row.update(llm_tokens=ans.llm_tokens, generate_ms=round(ans.timings_ms.get("generate", 0.0), 2))
        row.update(llm=llm, warnings=ans.warnings, ungrounded=ans.ungrounded,
                   invalid_citations=ans.invalid_citations, extractive_answer=ans.extractive_answer)
    metrics: dict[str, float | None] = {}
    if q["scored"]:
        for k in ks:
            metrics[f"answer_recall@{k}"] = float(contains_answer("\n".join(passages[:k]), q["answers"]))
        for budget in TOKEN_BUDGETS:
            metrics[f"answer_recall@{budget}tok"] = float(
                answer_recall_at_tokens(passages, q["answers"], budget, count_tokens, truncate_tokens))
        rank = first_answer_rank(passages, q["answers"])
        metrics["rr"] = 1.0 / rank if rank else 0.0
        metrics["answer_hit"] = float(not ans.abstained and contains_answer(ans.answer, q["answers"]))
        metrics["token_f1"] = 0.0 if ans.abstained else token_f1(ans.answer, q["answers"])
        # the short answer against the gold answers, SQuAD-style (0 when a sentence answers or it abstains)
        metrics["short_em"] = float(exact_match(row["short_answer"], q["answers"]))
        metrics["short_f1"] = token_f1(row["short_answer"], q["answers"]) if row["short_answer"] else 0.0
    if q["docs"]:
        for k in ks:
            metrics[f"source_recall@{k}"] = float(any(d in q["docs"] for d in doc_ids[:k]))
    markers = cited_numbers(ans.answer)
    # Markers to no passage were removed from an LLM answer; they still count against validity.
    metrics["citations_total"] = len(markers) + len(ans.invalid_citations)
    metrics["citations_valid"] = sum(1 for m in markers if 1 <= m <= len(ans.citations))
    row["metrics"] = metrics
    return row


def summarize(rows: list[dict], ks: list[int]) -> dict:
    """Aggregate per-question rows into the summary metrics (a follow-up asked again standalone
    counts once, as asked in its conversation; ``follow_ups`` compares the two)."""
    standalone = {r["standalone_of"]: r for r in rows if r.get("standalone_of")}
    rows = [r for r in rows if not r.get("standalone_of")]
    follow = [r for r in rows if r.get("turn", 0) > 1 and r["scored"]]
    scored = [r for r in rows if r["scored"]]
    with_docs = [r for r in rows if r["docs"]]
    unans = [r for r in rows if r["unanswerable"]]
    abstained = [r for r in rows if r["abstained"]]

    def mean(rs: list[dict], key: str) -> float | None:
        vals = [r["metrics"][key] for r in rs if r["metrics"].get(key) is not None]
        return round(sum(vals) / len(vals), 4) if vals else None

    s: dict[str, object] = {"questions": len(rows), "answerable": len(scored)}
    for k in ks:
        s[f"answer_recall@{k}"] = mean(scored, f"answer_recall@{k}")
    for budget in TOKEN_BUDGETS:
        s[f"answer_recall@{budget}tok"] = mean(scored, f"answer_recall@{budget}tok")
    for k in ks:
        s[f"source_recall@{k}"] = mean(with_docs, f"source_recall@{k}")
    s["mrr"] = mean(scored, "rr")
    s["answer_hit"] = mean(scored, "answer_hit")
    s["token_f1"] = mean(scored, "token_f1")
    s["short_em"] = mean(scored, "short_em")
    s["short_f1"] = mean(scored, "short_f1")
    s["short_given"] = round(sum(bool(r.get("short_answer")) for r in scored) / len(scored), 4) if scored else None
    true_abst = sum(1 for r in abstained if r["unanswerable"])
    s["abstention_precision"] = round(true_abst / len(abstained), 4) if abstained and unans else None
    s["abstention_recall"] = round(true_abst / len(unans), 4) if unans else None
    s["false_abstention_rate"] = round(sum(r["abstained"] for r in scored) / len(scored), 4) if scored else None
    lat = [r["latency_ms"] for r in rows]
    llm_rows = [r for r in rows if r.get("llm", "none") != "none"]
    if llm_rows:
        s["llm"] = llm_rows[0]["llm"]
        # Only an LLM can cite a passage that is not there: extractive markers are valid by construction.
        total = sum(r["metrics"]["citations_total"] for r in llm_rows)
        s["citation_validity"] = round(sum(r["metrics"]["citations_valid"] for r in llm_rows) / total, 4) if total else None
        s["llm_fallbacks"] = sum(1 for r in llm_rows if r["answer"] == r["extractive_answer"] and r["warnings"])
        s["ungrounded_rate"] = round(sum(r["ungrounded"] for r in llm_rows) / len(llm_rows), 4)
        gen_s = sum(r.get("generate_ms", 0.0) for r in llm_rows) / 1000
        s["generation_tokens_per_s"] = round(sum(r.get("llm_tokens", 0) for r in llm_rows) / gen_s, 1) if gen_s else None
    s["latency_ms_p50"] = round(percentile(lat, 50), 2)
    s["latency_ms_p95"] = round(percentile(lat, 95), 2)
    s["primary"] = "answer_recall@1024tok"
    if follow:
        alone = [standalone[r["id"]] for r in follow if r["id"] in standalone]
        s["follow_ups"] = {"questions": len(follow), "answer_hit": mean(follow, "answer_hit"),
                           "short_em": mean(follow, "short_em"), "standalone_questions": len(alone),
                           "standalone_answer_hit": mean(alone, "answer_hit"), "standalone_short_em": mean(alone, "short_em")}
        paired = [r for r in follow if r["id"] in standalone]
        hit, alone_hit = mean(paired, "answer_hit"), mean(alone, "answer_hit")
        s["follow_ups"]["answer_hit_vs_standalone"] = round(hit / alone_hit, 4) if hit is not None and alone_hit else None
    return s


def evaluate(rag: Rag, questions: list[dict], ks: list[int], out_dir: Path | None = None,
             progress: Callable[[int, int], None] | None = None, llm: str = "none") -> tuple[dict, list[dict]]:
    """Answer every question (resuming from ``out_dir/results.jsonl``) and write the reports.

    ``llm`` names the answer backend; rows saved with another backend are answered again.
    """
    rows: dict[str, dict] = {}
    results_path = out_dir / "results.jsonl" if out_dir else None
    if results_path and results_path.exists():
        for line in results_path.read_text().splitlines():
            try:
                row = json.loads(line)
                rows[row["id"]] = row
            except (ValueError, KeyError):
                continue  # a line cut short by an interruption is answered again
    wanted = {q["id"] for q in questions}
    asked_on = {q["id"]: q.get("asked_on", "") for q in questions}
    # Rows answered with another backend or for another day are answered again.
    rows = {i: r for i, r in rows.items()
            if i in wanted and r.get("llm", "none") == llm and r.get("asked_on", "") == asked_on[i]}
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
        # Rewrite without any torn last line, then append as we go.
        results_path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows.values()))
    # a conversation is asked again whole unless every turn of it was answered
    unfinished = {q["conversation"] for q in questions if q.get("conversation") and q["id"] not in rows}
    rows = {i: r for i, r in rows.items() if r.get("conversation", "") not in unfinished}
    if out_dir:
        results_path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows.values()))
    todo = [q for q in questions if q["id"] not in rows]
    done = len(questions) - len(todo)
    fh = results_path.open("a") if results_path else None
    conversations: dict[str, Conversation] = {}
    try:
        for q in todo:
            cid = q.get("conversation", "")
            conversation = conversations.setdefault(cid, Conversation()) if cid else None
            row = answer_one(rag, q, ks, llm, conversation)
            rows[q["id"]] = row
            if fh:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                fh.flush()
            done += 1
            if progress:
                progress(done, len(questions))
    finally:
        if fh:
            fh.close()
    ordered = [rows[q["id"]] for q in questions]
    summary = summarize(ordered, ks)
    if out_dir:
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        (out_dir / "summary.md").write_text(summary_markdown(summary))
    return summary, ordered


def summary_markdown(summary: dict) -> str:
    lines = ["| metric | value |", "|---|---|"]
    flat = {}
    for key, value in summary.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    for key, value in flat.items():
        if isinstance(value, float):
            value = f"{value:.3f}"
        lines.append(f"| {key} | {value if value is not None else 'n/a'} |")
    return "\n".join(lines) + "\n"


def plot_recall(summary: dict, ks: list[int], path: Path) -> bool:
    """A PNG of answer recall against k; False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    ys = [summary.get(f"answer_recall@{k}") or 0.0 for k in ks]
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    ax.plot(ks, ys, marker="o")
    ax.set_xlabel("k (passages)")
    ax.set_ylabel("answer recall")
    ax.set_ylim(0, 1)
    ax.set_xticks(ks)
    ax.grid(alpha=0.3)
    ax.set_title(f"Answer recall@k ({summary['answerable']} answerable questions)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True
