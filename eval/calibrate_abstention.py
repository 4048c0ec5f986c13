"""Calibrate the abstention threshold on answerable and unanswerable questions.

Usage: python eval/calibrate_abstention.py SETS...   where each SET is
    QUESTIONS.jsonl:CORPUS:INDEX_DIR:LABEL
LABEL is "auto" (a question counts as answerable when an answer string is in the
passages shown to the user, i.e. the evidence is there; questions marked unanswerable
count as unanswerable; the rest are left out) or "unanswerable" (every question is
off-corpus for that corpus, e.g. questions about later events or another topic).
Prints the confidence distribution and, for each threshold, the false-abstention
rate on answerable questions and the abstention rate on unanswerable ones.
"""

from __future__ import annotations

import json
import sys

from rag import Rag, Settings
from rag.tools.metrics import contains_answer


def main() -> None:
    answerable, unanswerable = [], []
    for spec in sys.argv[1:]:
        qfile, corpus, index_dir, label = spec.split(":")
        rag = Rag(Settings.from_env(corpus=(corpus,), index_dir=index_dir))
        rag.prepare()
        for line in open(qfile):
            q = json.loads(line)
            ans = rag.ask(q["question"])
            if label == "unanswerable" or q.get("unanswerable"):
                unanswerable.append(ans.confidence)
            elif any(contains_answer(c.text, q.get("answers") or []) for c in ans.citations):
                answerable.append(ans.confidence)
        print(f"{spec}: {len(answerable)} answerable, {len(unanswerable)} unanswerable so far", flush=True)
    print("| threshold | false abstention (answerable) | abstention recall (unanswerable) |")
    print("|---|---|---|")
    best = None
    for t in [x / 100 for x in range(20, 61, 2)]:
        fa = sum(c < t for c in answerable) / len(answerable)
        ar = sum(c < t for c in unanswerable) / len(unanswerable)
        print(f"| {t:.2f} | {fa:.3f} | {ar:.3f} |")
        if best is None or (ar - fa) > best[1]:
            best = (t, ar - fa, fa, ar)
    print(f"\nbest balanced threshold {best[0]:.2f}: false abstention {best[2]:.3f}, abstention recall {best[3]:.3f} "
          f"({len(answerable)} answerable, {len(unanswerable)} unanswerable)")


if __name__ == "__main__":
    main()
