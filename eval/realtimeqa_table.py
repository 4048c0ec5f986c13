"""Our short answers beside the RealTime QA paper's table (generation setting, exact match / F1).

    python eval/realtimeqa_table.py RUN_DIR [RUN_DIR ...] [--labels "2025 test" ...]

Each RUN_DIR is the output folder of ``python -m rag eval QUESTIONS.jsonl --out RUN_DIR`` on
RealTime QA questions (its ``summary.json``: ``short_em``, ``short_f1``, ``answer_hit``, the
number of answerable questions). The published rows are the paper's (Kasai et al., "RealTime
QA: What's the Answer Right Now?", NeurIPS 2023 Datasets and Benchmarks), computed from the
authors' released predictions as issue 23 quotes them; they read Google's top 5 articles per
question, we read our own retrieval over the whole archive. Note the difference in scoring
base: the paper scores every question of its weeks, ``rag eval`` the answerable ones (an
answer string occurs in some article), so our figures over all questions are also printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

PUBLISHED = [  # (system, weeks, EM, F1)
    ("GPT-3 reading Google's top 5 articles (paper)", "2022", 37.5, 49.3),
    ("GPT-3 reading Google's top 5 articles (paper)", "2022 to mid-2023", 34.5, 45.3),
    ("2026 LLMs with the same search results (issue 23)", "2022-2023", "28-36", ""),
    ("RAG (retrieval-augmented BART) on the same articles (paper)", "2022", 25.3, 32.1),
]


def _row(system: str, weeks: str, em, f1) -> str:
    fmt = lambda v: f"{v:.1f}" if isinstance(v, float) else str(v)  # noqa: E731
    return f"| {system} | {weeks} | {fmt(em)} | {fmt(f1)} |"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="rag eval output folders (summary.json)")
    ap.add_argument("--labels", nargs="*", default=[], help="the weeks each run covers, e.g. '2025 (test)'")
    args = ap.parse_args(argv)
    lines = ["| system | weeks | EM | F1 |", "|---|---|---|---|"]
    lines += [_row(*r) for r in PUBLISHED]
    for i, run in enumerate(args.runs):
        path = run / "summary.json"
        if not path.is_file():
            print(f"error: {path} not found (run 'python -m rag eval ... --out {run}' first)", file=sys.stderr)
            return 1
        s = json.loads(path.read_text())
        if s.get("short_em") is None:
            print(f"error: {path} has no short_em (evaluated before short answers existed)", file=sys.stderr)
            return 1
        label = args.labels[i] if i < len(args.labels) else run.name
        share = s["answerable"] / s["questions"]
        lines.append(_row(f"rag, no LLM: answerable questions ({s['answerable']})", label,
                          100 * s["short_em"], 100 * s["short_f1"]))
        lines.append(_row(f"rag, no LLM: every question ({s['questions']}, unanswerable scored 0)", label,
                          100 * s["short_em"] * share, 100 * s["short_f1"] * share))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
