"""Retrieval and answer metrics over question sets (pure functions, unit-tested by hand)."""

from __future__ import annotations

import statistics
from collections import Counter

from rag.answer.short import normalise
from rag.text.markers import citation_markers, strip_markers


def contains_answer(text: str, answers: list[str]) -> bool:
    """True when any answer string occurs in ``text`` (case-insensitive)."""
    low = text.lower()
    return any(a and a.lower() in low for a in answers)


def first_answer_rank(passages: list[str], answers: list[str]) -> int | None:
    """1-based rank of the first passage holding an answer, or None."""
    for i, p in enumerate(passages, 1):
        if contains_answer(p, answers):
            return i
    return None


def within_token_budget(passages: list[str], budget: int, count_tokens, truncate) -> str:
    """The ranked passages joined in order and cut at ``budget`` tokens."""
    out, used = [], 0
    for p in passages:
        n = count_tokens(p)
        if used + n <= budget:
            out.append(p)
            used += n
        else:
            out.append(truncate(p, budget - used))
            break
    return "\n".join(out)


def answer_recall_at_tokens(passages: list[str], answers: list[str], budget: int, count_tokens, truncate) -> bool:
    return contains_answer(within_token_budget(passages, budget, count_tokens, truncate), answers)


def _norm_tokens(text: str) -> list[str]:
    """The words of SQuAD's normalisation (the short answers' own), citation markers dropped."""
    return normalise(strip_markers(text)).split()


def exact_match(prediction: str, answers: list[str]) -> bool:
    """SQuAD-style exact match: the prediction equals an answer string once both are lower-cased
    and stripped of punctuation, articles and citation markers ("“Squid Game”" = "squid game")."""
    pred = _norm_tokens(prediction)
    return bool(pred) and any(pred == _norm_tokens(a) for a in answers)


def token_f1(prediction: str, answers: list[str]) -> float:
    """SQuAD-style token F1 against the best-matching answer string."""
    pred = _norm_tokens(prediction)
    best = 0.0
    for a in answers:
        gold = _norm_tokens(a)
        common = Counter(pred) & Counter(gold)
        same = sum(common.values())
        if not pred or not gold or same == 0:
            continue
        p, r = same / len(pred), same / len(gold)
        best = max(best, 2 * p * r / (p + r))
    return best


def cited_numbers(text: str) -> list[int]:
    """Every passage number the markers of ``text`` cite, repeats included ("[2, 3]" cites two)."""
    return [n for m in citation_markers(text) for n in m.numbers]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return float(values[0])
    return float(statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]) if 1 <= q <= 99 else float(max(values))
