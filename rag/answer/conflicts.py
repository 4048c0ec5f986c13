"""Sources that disagree: different values for the thing a question asks about, side by side.

For a question asking for a number ("how many troops") or a date ("when did ..."), each
answer sentence that names what is asked is read for its value: the number standing by the
question's words, or the date it states. When sentences from different articles give
different values, the answer lists each value with its citations and dates. Values from
articles of different days are an **update** (newest first, each "as of" its date); values
reported on the same days are a **disagreement**.

Each article's answer is also read by the short-answer ranker (``rag.answer.values``): its most
probable candidate of the kind asked among the article's best sentences. A question no slot
reads but whose answer is of a known kind ("where was he arrested?", "which automaker ...")
compares those; for a slot, the ranker chooses among what the patterns allow, in articles where
they find more than one value or none in the sentence they read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rag.answer.short import group_of
from rag.answer.values import (
    NUMBER,
    ArticleValue,
    counts,
    money_value,
    name_key,
    on_topic,
    same_name,
    typed_kind,
)
from rag.text.chunk import sentence_spans
from rag.text.dates import day_number, stated_date
from rag.text.lexical import bm25_tokens, match_sequence, match_tokens, words
from rag.tuning import (
    CONFLICT_MIN_SCORE_RATIO,
    CONFLICT_NUMBER_WINDOW,
    CONFLICT_RANKED_PROBABILITY,
    CONFLICT_RARE_RATIO,
    CONFLICT_RARE_TERMS,
    CONFLICT_SAME_DAYS,
    CONFLICT_SIMILAR_WORD,
)

_HOW_MANY = re.compile(r"\bhow (?:many|much)\s+([^?.,;]+)", re.I)
_PHRASE_END = re.compile(r"(?:were|was|are|is|did|do|does|have|has|had|will|would|could|can|may|might|in|on|at|of|"
                         r"for|from|to|by|with|after|before|during|since|that|who|which|\w{3,}ed|died|fled|left)$", re.I)
# "what is the death toll", "how many people died / were killed": the number of dead, written
# before the dead ("36 people", "killing 12") or after the toll ("the death toll rose to 99")
_DEATHS = re.compile(r"\bdeath toll\b|\bhow many (?:\w+ ){0,3}?(?:died|were killed|have died|dead|deaths|lost their lives)\b",
                     re.I)
# ... and in other words: a count ("how many", "the number of", "the toll") of the dead, however named
_COUNT = re.compile(r"\bhow many\b|\b(?:number|toll|tally|count) of\b|\b(?:death|final) toll\b", re.I)
_DEAD_WORDS = re.compile(r"\b(?:died|die|dead|deaths?|killed|kill|killing|fatalities|fatality|lives|perished)\b", re.I)
_AFTER_TOLL = re.compile(r"(?:\btoll\b(?:\s+[\w-]+){0,5}|\b(?:killed|killing|kills)(?:\s+(?:at least|more than|about|some|nearly))?)\s*$",
                         re.I)
# "who is the prime minister of the UK?", "who leads New Zealand as prime minister?": an office
_WHO_HOLDS = re.compile(r"^\s*who\s+(?:is|was|are|has been|became|leads|heads|runs)\s+(?:(?:the|its)\s+)?"
                        r"(?P<role>[a-z][\w -]*?)\s+(?:of|in|for|at)\b|^\s*who\s+(?:leads|heads|runs|holds|serves)\b.*?\bas\s+"
                        r"(?:the\s+)?(?P<role2>[a-z][\w -]*?)(?:\s+(?:of|in|for|at)\b[^?]*)?\s*\?*$"
                        r"|^\s*who\s+(?:is|was|are|has been|became)\s+(?:the\s+)?[\w. -]+?['’]s?\s+(?P<role3>[a-z][\w -]*?)\s*\?*$",
                        re.I)
# Offices written short in questions
_ROLE_WORDS = {"pm": "prime minister", "potus": "president"}
_NAME = r"(?P<name>(?:[A-Z][\w'’.-]+\s+){0,2}[A-Z][\w'’-]+)"
# the capitalised words right before an office ("Australian", "New Zealand's", "Tennessee House")
_QUALIFIER = re.compile(r"((?:[A-Z][\w.'’-]*\s+){1,3})$")
_PARTY_WORDS = set(match_sequence("Republican Democratic Democrat GOP Labour Conservative Tory Liberal party "
                                  "House Senate the then new acting interim incoming outgoing current"))
_TITLE_TAIL = re.compile(r"(?:Pro Tem|Pro Tempore|Emeritus|Elect|General|Designate)\b", re.I)
_NOT_NOW = re.compile(r"\b(?:former|ex|then|late|previous|future|next|would-be)\W+(?:[\w.']+\W+){0,2}$", re.I)
# measures written with their unit: a storm's category, wind speed
_MEASURES = {"category": (re.compile(r"\bwhat category\b|\bcategory (?:was|is|did)\b", re.I),
                          re.compile(r"\bCategory[\s-]+(\d)\b", re.I)),
             "wind speed": (re.compile(r"\bwinds?\b|\bwind speed", re.I),
                            re.compile(r"\b(\d{2,3})[\s-]*(?:mph|miles per hour|miles-per-hour)\b", re.I))}
# "U.S." and "U.K." as "US" and "UK": the dots would end the phrase of what is counted
_DOTTED = re.compile(r"\b((?:[A-Z]\.){2,})(?=\W|$)")
# Participles that say where or how the counted are, not which of them count: "how many U.S. troops
# were stationed in ..." counts the troops "in" it; "how many people were wounded" counts only the wounded.
_STATE_VERBS = {"stationed", "based", "deployed", "posted", "located", "positioned", "garrisoned", "housed"}
# What something costs: the question asks for a cost or price, and a sum counts only where its
# sentence speaks of one (a deal's other sums, "$13 billion of debt", are not its price).
_COST_WORDS = r"(?:cost|costs|costing|costed|price|priced|budget|budgeted|bill)"
_COST = re.compile(r"\bhow much\b[^?]*\b" + _COST_WORDS + r"\b|\bwhat (?:is|was|will be|would be) the (?:\w+ )?"
                   + _COST_WORDS + r"\b", re.I)
_COST_SENTENCE = re.compile(r"\b" + _COST_WORDS + r"\b", re.I)
_QUESTION_WORDS = set("how many much what when which who whom whose where why is are was were did do does has have "
                      "had been be the a an of in on at to for from by and or as its it their this that "
                      "lead leads led head heads hold holds run runs serve serves".split())  # "who leads X as ...": the frame
_DEAD = ["people", "dead", "death", "die", "kill", "live", "victim", "bodi", "fatal", "person", "resid"]
_WHEN = re.compile(r"^\s*when\b|\bwhat (?:year|date|day|month)\b", re.I)


@dataclass
class ConflictValue:
    """One value the sources give, with the passages ([n]) and articles that give it."""

    value: str  # as the first source writes it
    citations: list[int] = field(default_factory=list)  # [n] of the answer's passages that say it
    dates: list[str] = field(default_factory=list)  # their articles' dates, oldest first
    doc_ids: list[str] = field(default_factory=list)
    as_of: str = ""  # the newest date among them: "as of" for an update

    def to_dict(self) -> dict:
        return {"value": self.value, "as_of": self.as_of, "citations": list(self.citations),
                "dates": list(self.dates), "doc_ids": list(self.doc_ids)}


@dataclass
class Conflict:
    """Different values for the same thing: ``kind`` is "update" (the value changed over time;
    newest first) or "disagree" (sources of the same days differ)."""

    what: str  # what differs: "troops (a number)", "the date"
    kind: str
    values: list[ConflictValue]

    @property
    def headline(self) -> str:
        """The line that introduces the values: "The sources give X differently over time (newest first):"."""
        if self.kind == "update":
            return f"The sources give {self.what} differently over time (newest first):"
        return f"The sources disagree on {self.what}:"

    def to_dict(self) -> dict:
        return {"what": self.what, "kind": self.kind, "values": [v.to_dict() for v in self.values]}


def plain_question(question: str) -> str:
    """The question with dotted abbreviations undotted ("U.S." -> "US")."""
    return _DOTTED.sub(lambda m: m.group(1).replace(".", ""), question)


def asked_slot(question: str) -> tuple[str, list[str], str]:
    """What a question asks for: ("number", stems of what is counted, the words: "US troops"),
    ("money", [], "cost"), ("name", stems, the office), ("measure", [], its name), ("date", [], ""),
    or ("", [], "") for other questions."""
    question = plain_question(question)
    if _COST.search(question):
        return "money", [], "cost"
    if _DEATHS.search(question) or (_COUNT.search(question) and _DEAD_WORDS.search(question)):
        return "number", _DEAD, "deaths"
    for label, (asks, _) in _MEASURES.items():
        if asks.search(question):
            return "measure", [], label
    m = _WHO_HOLDS.search(question)
    if m:
        role = " ".join((m.group("role") or m.group("role2") or m.group("role3")).split())
        role = _ROLE_WORDS.get(role.lower(), role)
        return ("name", [t for t in match_sequence(role) if len(t) > 2], role) if role else ("", [], "")
    m = _HOW_MANY.search(question)
    if m:
        counted, words_ = [], m.group(1).split()
        for w in words_:
            if _PHRASE_END.fullmatch(w) or len(counted) == 3:
                break
            counted.append(w)
        stems = [t for t in match_sequence(" ".join(counted)) if len(t) > 2]
        verb = _asked_verb(question)  # "how many people were wounded": "30 wounded" counts too
        if verb:
            return "number", [*match_sequence(verb), *stems], " ".join([*counted, verb])
        return ("number", stems, " ".join(counted)) if stems else ("", [], "")
    if _WHEN.search(question):
        return "date", [], ""
    return "", [], ""


def _asked_verb(question: str) -> str:
    """The participle of "how many people were wounded" ("wounded"); "" when there is none, or
    when it only says where they are ("stationed")."""
    m = _HOW_MANY.search(plain_question(question))
    if not m:
        return ""
    words_ = m.group(1).split()
    for i, w in enumerate(words_[:4]):
        if w.lower() in ("were", "was", "have", "has", "had"):
            verb = next((v for v in words_[i + 1:i + 3] if v.lower() != "been"), "")
            return verb if re.fullmatch(r"\w{3,}ed", verb) and verb.lower() not in _STATE_VERBS else ""
    return ""


def number_near(sentence: str, stems: list[str]) -> tuple[str, float] | None:
    """The first number written right before one of ``stems`` ("5,000 U.S. troops", "seven
    people"), as written and as a value; for deaths also the number soon after "toll" ("the
    death toll rose to 99") or right after "killed" ("killed at least 14")."""
    return next(_numbers_near(sentence, stems), None)


def _numbers_near(sentence: str, stems: list[str], similar=None, verb: set[str] = frozenset(), said=None):
    """The numbers of ``sentence`` that count what ``stems`` name; with ``verb`` (the stems of the
    participle asked: "injured"), only those it follows ("30 people were injured", "30 injured")
    or, as "-ing", precedes ("injuring 30"); ``said`` tests that participle in other words."""
    for m, value in counts(sentence):
        after = sentence[m.end():].split()[:CONFLICT_NUMBER_WINDOW]
        following = match_sequence(" ".join(after))
        if verb:  # the participle within the number's own phrase: "killing seven and wounding dozens"
            own = re.split(r"[,;]|\b(?:and|or|but|while)\b", " ".join(after), maxsplit=1)[0]
            before = re.split(r"[,;]|\b(?:and|or|but|while)\b", " ".join(sentence[:m.start()].split()[-3:]))[-1]
            if not (set(match_sequence(own)) & verb or set(match_sequence(before)) & verb
                    or (said is not None and said(re.findall(r"[a-z]{3,}", own.lower())))):
                continue
        near = any(t.startswith(s) or s.startswith(t) for t in following for s in stems)
        if not near and similar is not None and stems is not _DEAD:  # "ballots" counted as "votes"
            near = similar([w for w in re.findall(r"[a-z]{3,}", " ".join(after).lower())])
        if not near and stems is _DEAD:
            near = _AFTER_TOLL.search(sentence[:m.start()]) is not None
        if near:
            yield m.group(0), value


def _words_after_numbers(text: str, n: int = 5) -> list[str]:
    """The words just after each number of ``text`` ("30 people were wounded": people, were, wounded)."""
    return [w for m in NUMBER.finditer(text) for w in re.findall(r"[a-z]{3,}", " ".join(text[m.end():].split()[:n]).lower())]


def _word_vectors(embed):
    """Single-word embeddings, each word embedded once (for one question)."""
    cache: dict[str, object] = {}

    def vectors(ws: list[str]):
        new = [w for w in dict.fromkeys(ws) if w not in cache]
        if new:
            cache.update(zip(new, embed(new)))
        return [cache[w] for w in ws]

    return vectors


def _similar_words(counted: str, vectors):
    """A test of whether any of some words means what ``counted`` names ("ballots" for "votes",
    "soldiers" for "troops"): the cosine of their single-word embeddings (``vectors``)."""
    nouns = [w for w in re.findall(r"[a-z]{3,}", counted.lower()) if w not in _QUESTION_WORDS]
    if not nouns:
        return None
    targets = vectors(nouns)

    def similar(words: list[str]) -> bool:
        words = [w for w in words if w not in _QUESTION_WORDS]
        return bool(words) and max(float(a @ b) for a in vectors(words) for b in targets) >= CONFLICT_SIMILAR_WORD

    return similar


def holders(text: str, role: str, where: set[str] | None = None) -> list[str]:
    """The names given the office ``role``: "Prime Minister Liz Truss", "Chris Hipkins, New
    Zealand's prime minister"; not those said to have held it ("former House Speaker Kevin
    McCarthy"). With ``where`` (the question's stems), not the holder of another country's or
    state's office: an office qualified by a name the question does not hold ("Australian Prime
    Minister Anthony Albanese" when New Zealand's is asked, "Tennessee House Speaker ...")."""
    role_words = r"\s+".join(re.escape(w) for w in role.split())
    out = []
    for m in re.finditer(rf"(?i:\b{role_words})\s+{_NAME}", text):
        if _NOT_NOW.search(text[:m.start()]):
            continue
        if where is not None:
            qualifier = _QUALIFIER.search(text[:m.start()])
            if qualifier and any(t not in where and t not in _PARTY_WORDS for t in match_sequence(qualifier.group(1))):
                continue
        out.append(m.group("name"))
    after = rf"{_NAME},\s+(?:the\s+|(?:[A-Z][\w.]*\s+){{0,2}}[A-Z][\w.]*['’]s\s+)?(?!(?i:former|ex-))(?i:{role_words})\b"
    out += [m.group("name") for m in re.finditer(after, text)]
    names = [re.sub(r"\s+(?:MP|Jr\.?|Sr\.?)$", "", re.sub(r"['’]s?$", "", name)) for name in out]
    # a name, not the rest of a title ("Speaker Pro Tem ...") nor an adverb ("Speaker Technically, ...")
    return [n for n in names if not _TITLE_TAIL.match(n) and not (len(n.split()) == 1 and n.lower().endswith("ly"))]


def rare_terms(question: str, idf, passages: list[str] | tuple = ()) -> list[str]:
    """The question's ``CONFLICT_RARE_TERMS`` rarest content stems ("lahaina", "maui"), by ``idf``
    over the index; not what is counted, not numbers. With ``passages`` (the ranked passages'
    texts), only stems that two of them hold: a word the articles do not use for the topic
    ("stampede" where they write "crush") is rare for that reason, and names nothing."""
    _, stems, _ = asked_slot(question)
    content = " ".join(w for w in words(question) if w not in _QUESTION_WORDS)
    terms = [t for t in dict.fromkeys(bm25_tokens(content)) if t.isalpha() and len(t) > 2 and t not in ("toll", "number")
             and not any(t.startswith(s) or s.startswith(t) for s in stems)]
    if passages:
        held = [set(bm25_tokens(p)) for p in passages]
        terms = [t for t in terms if sum(t in h for h in held) >= 2]
    terms = sorted(terms, key=lambda t: -idf(t))[:CONFLICT_RARE_TERMS]
    # a common word beside a rare one is no topic ("new" of "New Zealand")
    return [t for t in terms if idf(t) >= CONFLICT_RARE_RATIO * idf(terms[0])]


def find_conflicts(question: str, sentences: list, hits: list, rare: list[str] | tuple = (),
                   embed=None, ranked: list | tuple = ()) -> list[Conflict]:
    """Conflicts for what ``question`` asks among the articles of ``hits`` (ranked passages;
    ``sentences`` are the scored sentences of the first of them, ``n`` indexing ``hits``).

    Each article gives one value: the one its title states (a headline figure: "Death toll
    rises to 93"), else the one of its best-scored sentence, else, for passages past the scored
    ones, of its first sentence that gives one. A title or sentence counts only when it holds
    one of the question's ``rare`` terms (stems; "maui"); for a scored answer sentence its
    article's title may hold it. A sentence giving two values (a count "from 14,000 to 7,000")
    tells of a change, not a value.

    ``ranked`` (``ranked_values``): each article's value as the short-answer ranker reads it.
    For a question no slot reads ("where was he arrested?") they are the values compared; for a
    slot they fill the articles the patterns read nothing in, when the slot allows the value in
    its sentence (the ranker then chooses among the numbers or names the patterns find there).
    """
    kind, stems, counted = asked_slot(question)
    if not kind:
        return conflicts_of([(v.doc_id, v.key, v.written, v.n, v.date) for v in _one_kind(ranked)],
                            _what_ranked(question), same_name)
    vectors = _word_vectors(embed) if embed is not None else None
    similar = _similar_words(counted, vectors) if vectors is not None and kind == "number" else None
    asked_verb = _asked_verb(question)
    verb = set(match_sequence(asked_verb))
    said = _similar_words(asked_verb, vectors) if verb and vectors is not None else None
    count_verb = frozenset() if stems is _DEAD else verb  # a death toll is read by its own patterns
    where = set(match_sequence(plain_question(question)))

    def value_of(text: str, date: str) -> tuple[object, str] | None:
        # "how many were wounded": a sentence that does not say "wounded" (or "injured") gives no value
        if verb and not (verb & match_tokens(text)) and not (said and said(_words_after_numbers(text))):
            return None
        if kind == "name":
            found = {(name, name_key(name)) for name in holders(text, counted, where)}
            if len({key for _, key in found}) != 1:
                return None
            written, key = found.pop()
            return key, written
        if kind == "money":
            found = money_value(text) if _COST_SENTENCE.search(text) else None
            return (found[1], found[0]) if found else None
        if kind == "measure":
            found = {(m.group(0), m.group(1)) for m in _MEASURES[counted][1].finditer(text)}
            if len({key for _, key in found}) != 1:
                return None
            written, key = found.pop()
            return key, written
        if kind == "number":
            if stems is _DEAD and not _DEAD_WORDS.search(text):
                return None  # "4,000 people gathered" is no death toll
            found = set(_numbers_near(text, stems, similar, count_verb, said))
            if len({key for _, key in found}) != 1:
                return None
            written, key = found.pop()
            return key, written
        day, precision, words = stated_date(text, date)
        if not day:
            return None
        key = day[:7] if precision in ("month", "week") else day[:4] if precision == "year" else day
        return key, f"{key} (“{words}”)"

    def topical(text: str, chunk, or_title: bool = False) -> bool:
        return on_topic(text, chunk, rare, or_title)

    def slot_reads(v: ArticleValue) -> bool:
        """Whether the ranker's value is one the slot allows in its sentence: a number standing by
        what is counted (and the participle asked), a sum in a sentence of costs, a name the
        sentence gives the office: the ranker chooses among what the patterns allow."""
        if kind == "number":
            return v.key in {key for _, key in _numbers_near(v.sentence, stems, similar, count_verb, said)}
        if kind == "money":
            return bool(_COST_SENTENCE.search(v.sentence))
        return any(same_name(name_key(name), v.key) for name in holders(v.sentence, counted, where))

    per_article: dict[str, tuple[object, str, int, str]] = {}  # doc_id -> (key, as written, n, date)
    if kind in ("number", "name", "measure", "money"):  # headline figures, names, measures, sums
        for n, hit in enumerate(hits, 1):
            c = hit.chunk
            if c.doc_id not in per_article and c.title and topical(c.title, c):
                value = value_of(c.title, c.date)
                if value:
                    per_article[c.doc_id] = (*value, n, c.date)
    best = max((s.score for s in sentences), default=0.0)
    q_terms = match_tokens(question) | match_tokens(counted)  # "Britain's PM" asks for a "prime minister"
    for s in sorted(sentences, key=lambda s: -s.score):
        c = hits[s.n - 1].chunk
        if c.doc_id in per_article or s.score < CONFLICT_MIN_SCORE_RATIO * best or not (match_tokens(s.text) & q_terms):
            continue
        if topical(s.text, c, or_title=True):  # an answer sentence: its article's title may name the topic
            value = value_of(s.text, c.date)
            if value:
                per_article[c.doc_id] = (*value, s.n, c.date)
    scored = {s.n for s in sentences}
    for n, hit in enumerate(hits, 1):
        c = hit.chunk
        if n in scored or c.doc_id in per_article:
            continue
        for start, end in sentence_spans(c.text):
            text = c.text[start:end]
            value = value_of(text, c.date) if topical(text, c) else None
            if value:
                per_article[c.doc_id] = (*value, n, c.date)
                break
    what = {"number": f"the number of {counted}", "name": f"the {counted}", "measure": f"the {counted}",
            "money": f"the {counted}"}.get(kind, "the date")
    values = [(doc_id, key, written, n, date) for doc_id, (key, written, n, date) in per_article.items()]
    if kind in ("number", "name", "money"):  # the articles the patterns read nothing in: the ranker's values
        allowed = [v for v in ranked if _fits(v.key, kind) and slot_reads(v)]
        values += [(v.doc_id, v.key, v.written, v.n, v.date) for v in _one_kind(allowed) if v.doc_id not in per_article]
    return conflicts_of(values, what, same_name if kind == "name" else None)


def _fits(key: object, kind: str) -> bool:
    """Whether a ranked value's key is of the slot's ``kind``: a name, a sum of money, a count."""
    if kind == "name":
        return isinstance(key, tuple) and all(isinstance(x, str) for x in key)
    if kind == "money":
        return isinstance(key, tuple) and len(key) == 2 and isinstance(key[1], float)
    return isinstance(key, float)


def _one_kind(values: list) -> list:
    """The ranked values likely enough (``CONFLICT_RANKED_PROBABILITY``) and of the same kind (label group) as the
    most likely one: a person is not another answer than a place."""
    values = [v for v in values if v.probability >= CONFLICT_RANKED_PROBABILITY]
    if not values:
        return []
    group = group_of(max(values, key=lambda v: v.probability).label)
    return [v for v in values if group_of(v.label) == group]


def _what_ranked(question: str) -> str:
    return {"person": "the person", "place": "the place", "org": "the organisation", "date": "the date",
            "number": "the number"}.get(typed_kind(question), "the answer")


def conflicts_of(per_article: list[tuple], what: str, same=None) -> list[Conflict]:
    """The conflict among articles' values ((doc_id, key, as written, n, date) each), if they
    give two or more; ``same(a, b)`` tells keys of one value apart from others (default: equal)."""
    groups: dict[object, ConflictValue] = {}
    for doc_id, key, written, n, date in sorted(per_article, key=lambda v: v[3]):
        if same is not None:
            key = next((k for k in groups if same(k, key)), key)
        group = groups.setdefault(key, ConflictValue(written))
        group.citations.append(n)
        group.doc_ids.append(doc_id)
        if date:
            group.dates.append(date)
    values = list(groups.values())
    if len(values) < 2:
        return []
    for v in values:
        v.dates.sort()
        v.as_of = v.dates[-1] if v.dates else ""
    if _same_days(values):
        return [Conflict(what, "disagree", sorted(values, key=lambda v: -len(v.doc_ids)))]
    return [Conflict(what, "update", sorted(values, key=lambda v: v.as_of, reverse=True))]


def _same_days(values: list[ConflictValue]) -> bool:
    """True when two values were reported within CONFLICT_SAME_DAYS of each other (or undated)."""
    days = [[day_number(d) for d in v.dates] or [0] for v in values]
    for i in range(len(days)):
        for j in range(i + 1, len(days)):
            if any(a == 0 or b == 0 or abs(a - b) <= CONFLICT_SAME_DAYS for a in days[i] for b in days[j]):
                return True
    return False
