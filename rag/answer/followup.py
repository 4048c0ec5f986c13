"""Follow-up questions: a conversation's earlier turns make "whom did she defeat?" one standalone
question, "whom did Teresa Okafor defeat?", which retrieval, the reader and an LLM all read.

1. A pronoun is replaced by what it stands for in the turn before: the earlier answer's short
   answer, the names its question asked about, or the names its answer's first sentence gives.
   "she" and "he" go to a name the cited passages call "she" or "he" (the sentence naming it
   and the next): "Who won the election?" answered "Gregory Finch" by mistake still gives
   "she" to Teresa Okafor when the passages say "Okafor ... She told supporters".
2. "What about Finch?" / "And in 2023?" asks the earlier question again of something else: the
   earlier (standalone) question with that added.
3. A short question with nothing to resolve ("why?") is read with the earlier question.
A question that is already standalone is left as typed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rag.types import Answer

_PERSONAL = re.compile(r"\b(he|him|his|she|her|hers|they|them|their|it|its)\b", re.I)
_NAMES = re.compile(r"\b[A-Z][\w’'-]+(?:\s+(?:of\s+the\s+|of\s+)?[A-Z][\w’'-]+)*")
_WHAT_ABOUT = re.compile(r"^\s*(?:and\s+|but\s+)?(?:what|how)\s+about\s+(.+?)\s*\??\s*$|^\s*and\s+(.+?)\s*\?\s*$", re.I)
_QUESTION_WORD = re.compile(r"^(?:Who|Whom|Whose|What|When|Where|Which|Why|How|Is|Are|Was|Were|Did|Do|Does|Has|Have|"
                            r"Had|Will|Would|Can|Could|Should|The|A|An|In|On|At|After|Before|And|But|Since|"
                            r"According|Between)$")
# words of an office written before a name ("Foreign Minister Abbas Araghchi"): not the name
_TITLE = re.compile(r"^(?:Foreign|Prime|Defen[cs]e|Interior|Finance|Deputy|Vice|Chief|Executive|Minister|President|"
                    r"Secretary|General|Mayor|Speaker|Senator|Governor|King|Queen|Prince|Princess|Pope|Dr|Mr|Mrs|Ms|"
                    r"Ambassador|Envoy|Special|Spokesman|Spokeswoman|Spokesperson|Judge|Justice|Sen|Rep|Gov|"
                    r"Former|Acting|Interim|Businessman|Businesswoman)\.?$")
_FEMALE = re.compile(r"\b(?:she|her|hers|herself|Mrs|Ms)\b", re.I)
_MALE = re.compile(r"\b(?:he|him|his|himself|Mr)\b", re.I)
_SENTENCE_END = re.compile(r"[.!?][\"'”’]?\s")
_PERSON_PRONOUNS = {"he": "m", "him": "m", "his": "m", "she": "f", "her": "f", "hers": "f"}
SHORT_QUESTION_WORDS = 4  # a question this short with nothing to resolve is read with the earlier one


@dataclass
class Turn:
    question: str
    answer: Answer


def names_in(text: str) -> list[str]:
    """The capitalised names of ``text`` ("Teresa Okafor", "Linden Harbor Bridge"), first words
    that only start the sentence or ask ("Who", "The") left out."""
    out = []
    for m in _NAMES.finditer(re.sub(r"\[\d+\]", "", text)):
        words = re.split(r"['’]s\s+", m.group(0))[-1].split()  # "Iran’s Foreign Minister X": X
        while words and (_QUESTION_WORD.match(words[0]) or (len(words) > 2 and _TITLE.match(words[0]))):
            words = words[1:]
        if words:
            out.append(" ".join(words))
    return list(dict.fromkeys(out))


def gender_of(name: str, texts: list[str]) -> str:
    """"f" or "m" when the ``texts`` that name ``name`` (its last word) call it "she" or "he" in
    that sentence or the next, more one way than the other; "" when they do not tell."""
    last = re.escape(name.split()[-1])
    female = male = 0
    for text in texts:
        for m in re.finditer(rf"\b{last}\b", text):
            window = text[m.end():m.end() + 300]
            ends = [e.end() for e in _SENTENCE_END.finditer(window)]
            window = window[:ends[1]] if len(ends) > 1 else window  # through the next sentence
            female += len(_FEMALE.findall(window))
            male += len(_MALE.findall(window))
    if female > male:
        return "f"
    if male > female:
        return "m"
    return ""


@dataclass
class Conversation:
    """Earlier turns, so that "whom did she defeat?" is read with the question before it."""

    turns: list[Turn] = field(default_factory=list)

    def standalone(self, question: str) -> str:
        """The question as one standalone question: what retrieval, the reader and an LLM read."""
        if not self.turns:
            return question
        prev = self.turns[-1]
        before = prev.answer.standalone_question or prev.question
        about = _WHAT_ABOUT.match(question)
        if about and about.group(2) and not re.search(r"[A-Z0-9]", about.group(2)):
            about = None  # "and then?": nothing else asked about
        if about:
            other = (about.group(1) or about.group(2)).strip()
            asked = names_in(before)
            if asked and names_in(other):  # "What about Finch?": the earlier question, of Finch
                return before.replace(asked[0], other, 1)
            return f"{before.rstrip(' ?')} {other}?"
        m = _PERSONAL.search(question)
        if m:
            name = self._antecedent(m.group(0).lower(), prev)
            if name:
                return _replace(question, m, name)
        if len(re.findall(r"\w+", question)) <= SHORT_QUESTION_WORDS:
            return f"{question} {before}".strip()
        return question

    def _antecedent(self, pronoun: str, prev: Turn) -> str:
        """The name ``pronoun`` stands for in the turn ``prev``, or ""."""
        answer = prev.answer
        asked = names_in(answer.standalone_question or prev.question)
        short = answer.short_answer.text if answer.short_answer and not answer.abstained else ""
        said = names_in(answer.answer.split("\n")[0]) if not answer.abstained else []
        candidates = list(dict.fromkeys(n for n in [short, *asked, *said] if n and n[:1].isupper()))
        if pronoun in ("it", "its", "they", "them", "their"):
            # a thing or a group: what was asked about comes before the answer's names
            candidates = list(dict.fromkeys([*asked, *candidates]))
            return candidates[0] if candidates else ""
        # a person: the short answer, or a name of two words or more ("Teresa Okafor", not "Marlow")
        candidates = [n for n in candidates if n == short or len(n.split()) >= 2]
        gender = _PERSON_PRONOUNS.get(pronoun, "")
        texts = [c.text for c in answer.citations] or [answer.answer]
        for name in candidates:
            if gender_of(name, texts) == gender:
                return name
        return next((n for n in candidates if not gender_of(n, texts)), "")

    def add(self, question: str, answer: Answer) -> None:
        self.turns.append(Turn(question, answer))


def _replace(question: str, m: re.Match, name: str) -> str:
    """``question`` with the pronoun ``m`` replaced by ``name`` ("her company" -> "Teresa Okafor's company")."""
    word = m.group(0).lower()
    rest = question[m.end():]
    possessive = word in ("his", "their", "its") or (
        word == "her" and bool(re.match(r"\s+[a-z]", rest))
        and not re.match(r"\s+(?:to|for|with|about|in|on|at|from|by|as|after|before|and|or|if|when|that)\b", rest))
    return question[:m.start()] + name + ("'s" if possessive else "") + rest
