"""The values articles give, compared across articles: numbers as amounts (a count, a sum of
money with its currency and scale), names with their spelling variants merged; and each
article's answer to a question as the short-answer ranker reads it (``ranked_values``), which
``rag.answer.conflicts`` compares.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag.answer.short import (
    answer_groups,
    group_of,
    normalise,
    noun_kind,
    parse,
    question_head,
    rank,
)
from rag.text.chunk import sentence_spans
from rag.text.lexical import bm25_tokens, match_tokens
from rag.types import Sentence

WORD_NUMBERS = {w: float(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split()) if i >= 2}  # "one" is too often not a count
WORD_NUMBERS.update({"thirty": 30.0, "forty": 40.0, "fifty": 50.0, "a dozen": 12.0, "two dozen": 24.0})
# a count, in figures or words, with its scale ("5,000", "two dozen", "3.5 million")
NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?|"
                    + "|".join(sorted(WORD_NUMBERS, key=len, reverse=True))
                    + r")(?:\s*(million|billion|thousand))?(?![\w])", re.I)

# Money, with its currency and scale: "$51m", "42 million dollars", "£3.5bn", "€200,000"
_CURRENCY = {"$": "USD", "dollars": "USD", "dollar": "USD", "usd": "USD", "£": "GBP", "pounds": "GBP", "gbp": "GBP",
             "€": "EUR", "euros": "EUR", "eur": "EUR"}
SCALE = {"thousand": 1e3, "k": 1e3, "million": 1e6, "m": 1e6, "mn": 1e6, "billion": 1e9, "bn": 1e9, "b": 1e9,
         "trillion": 1e12, "tn": 1e12}
_AMOUNT = r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)(?![\d,]|\.\d)"  # the whole number
_SCALE_WORD = r"(?:\s*(?P<scale>million|billion|trillion|thousand|bn|mn|tn|m|b|k)\b)?"
# a rate ("$54.20 a share", "$15 an hour") is not the sum asked for
_RATE = r"(?!\s*(?:a|an|per|each)\s+(?:share|hour|year|month|week|day|head|person|barrel|gallon|ton|unit)\b)"
_MONEY = re.compile(r"(?P<cur>[$£€])\s?" + _AMOUNT + _SCALE_WORD + _RATE
                    + r"|" + _AMOUNT.replace("num", "num2") + _SCALE_WORD.replace("scale", "scale2")
                    + r"\s+(?P<cur2>dollars|pounds|euros|USD|GBP|EUR)\b" + _RATE, re.I)


def money_values(text: str):
    """Each sum of money ``text`` gives: (match, (currency, amount))."""
    for m in _MONEY.finditer(text):
        number = m.group("num") or m.group("num2")
        scale = (m.group("scale") or m.group("scale2") or "").lower()
        currency = _CURRENCY[(m.group("cur") or m.group("cur2")).lower()]
        yield m, (currency, round(float(number.replace(",", "")) * SCALE.get(scale, 1.0)))


def money_value(text: str) -> tuple[str, tuple[str, float]] | None:
    """The one sum of money ``text`` gives, as written and as (currency, amount); None for none or several."""
    found = {(m.group(0).strip(), key) for m, key in money_values(text)}
    if len({key for _, key in found}) != 1:
        return None
    return found.pop()


def typed_kind(question: str) -> str:
    """The kind of value a question's answers are compared as: a person, place or organisation, a
    number or a date, by the question word or the noun it asks for ("which automaker": org); ""
    for a thing of no known kind ("which church"), which may be named many ways."""
    head = question_head(question)
    if head in ("who", "whom", "whose"):
        return "person"
    if head in ("where", "when"):
        return {"where": "place", "when": "date"}[head]
    if head.startswith("how "):
        return "number" if head in ("how many", "how much", "how old", "how long") else ""
    kind = noun_kind(head) if head not in ("why", "how") else ""
    return kind if kind in ("person", "place", "org", "number", "date") else ""


def on_topic(text: str, chunk, rare, or_title: bool = False) -> bool:
    """Whether ``text`` (or, with ``or_title``, its article's title) holds one of the ``rare`` terms."""
    if not rare:
        return True
    return bool(set(bm25_tokens(text + (" " + chunk.title if or_title and chunk.title else ""))) & set(rare))


@dataclass
class ArticleValue:
    """One article's answer to the question: the ranker's most probable typed candidate among
    its best sentences."""

    doc_id: str
    key: object  # what values are compared by: (currency, amount) or amount for numbers, name words for names
    written: str
    n: int  # its passage's rank
    date: str
    probability: float
    label: str
    sentence: str = ""  # the sentence it was read in


def amount(text: str) -> object | None:
    """A number as compared: a sum of money as (currency, amount), a count as its value
    ("two dozen" 24, "5,000" 5000, "3.5 million" 3.5e6); None when ``text`` gives no one number."""
    money = money_value(text)
    if money:
        return money[1]
    found = {value for _, value in counts(text)}
    return found.pop() if len(found) == 1 else None


def counts(text: str):
    """Each count ``text`` gives (``NUMBER``; not a year) with its value: ("5,000", 5000.0)."""
    for m in NUMBER.finditer(text):
        if re.fullmatch(r"(?:19|20)\d\d", m.group(1)) and not m.group(2):
            continue  # a year, not a count
        word = m.group(1).lower()
        base = WORD_NUMBERS[word] if word in WORD_NUMBERS else float(word.replace(",", ""))
        yield m, base * SCALE.get((m.group(2) or "").lower(), 1.0)


def name_key(text: str) -> tuple[str, ...]:
    """A name as compared: its words, normalised ("the Bahamas" -> ("bahamas",))."""
    return tuple(normalise(text).split())


def same_name(a: object, b: object) -> bool:
    """Spelling variants of one name: one's words within the other's ("Truss", "Liz Truss"), or
    the same last word ("Prime Minister Sunak", "Rishi Sunak"); other values when equal."""
    if not (isinstance(a, tuple) and isinstance(b, tuple) and all(isinstance(x, str) for x in a + b)):
        return a == b
    return bool(a and b) and (set(a) <= set(b) or set(b) <= set(a) or a[-1] == b[-1])


def ranked_values(query: str, question: str, scored: list, hits: list, short, rare: list[str] | tuple = (),
                  parsed: list = (), reference_day: str = "", slot: str = "", per_article: int = 2) -> list[ArticleValue]:
    """Each article's answer to ``question``: the short-answer ranker's most probable candidate
    of the kind asked (a number, a name, a date) among the article's best sentences.

    ``scored``: the scored sentences of the first passages (``n`` indexing ``hits``); an
    article's ``per_article`` best that share a word with the question are read. For a passage
    past the scored ones, its sentence sharing most of the question's words is. ``parsed``:
    sentences spaCy already read (the short answer's), not read again. A sentence counts only
    when it (or, for a scored one, its article's title) holds one of the ``rare`` terms. ``slot``:
    what the hand-written slot of ``rag.answer.conflicts`` reads the question for ("number",
    "money", "name"), whose kind the values then are."""
    kind = {"number": "number", "money": "number", "name": "person"}.get(slot, "") if slot else typed_kind(question)
    if not kind or short is None or short.ranker is None:
        return []
    q_terms = match_tokens(question)

    chosen: dict[str, list] = {}
    for s in sorted(scored, key=lambda s: -s.score):
        c = hits[s.n - 1].chunk
        mine = chosen.setdefault(c.doc_id, [])
        if len(mine) < per_article and match_tokens(s.text) & q_terms and on_topic(s.text, c, rare, or_title=True):
            mine.append(s)
    scored_n = {s.n for s in scored}
    for n, hit in enumerate(hits, 1):
        c = hit.chunk
        if n in scored_n or chosen.get(c.doc_id):
            continue
        best, best_cover = None, 0
        for start, end in sentence_spans(c.text):
            text = c.text[start:end]
            cover = len(match_tokens(text) & q_terms)
            if cover > best_cover and on_topic(text, c, rare):
                best, best_cover = Sentence(n, c.start + start, c.start + end, text, date=c.date), cover
        if best is not None:
            best.lexical = best_cover / max(1, len(q_terms))
            chosen[c.doc_id] = [best]
    done = {id(p.sentence): p for p in parsed}
    todo = [s for ss in chosen.values() for s in ss if id(s) not in done]
    for p in parse(todo, short.pipeline()) if todo else []:
        done[id(p.sentence)] = p
    read = [done[id(s)] for ss in chosen.values() for s in ss]
    if not read:
        return []
    passages = [(h.chunk.doc_id, h.chunk.text) for h in hits]
    cands = rank(query, read, passages, short.ranker, reference_day, question)  # most probable first
    wanted = answer_groups(kind)
    if kind == "number" and question_head(question) in ("how old", "how long"):
        wanted = wanted | {"date"}  # spaCy calls an age or a span of time a date ("aged 96", "nine years")
    out = []
    for doc_id, ss in chosen.items():
        where = {normalise(m.text): done[id(s)].sentence for s in reversed(ss) for m in done[id(s)].mentions}
        for c in cands:
            if c.key not in where or group_of(c.label) not in wanted:
                continue
            key = amount(c.text) if kind == "number" else name_key(c.text)
            if key not in (None, ()):
                s = where[c.key]
                out.append(ArticleValue(doc_id, key, c.text, s.n, s.date, c.probability, c.label, s.text))
                break
    return out
