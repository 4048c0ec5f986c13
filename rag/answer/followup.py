"""Follow-up questions: a conversation's earlier turns make "whom did she defeat?" one standalone
question, "whom did Teresa Okafor defeat?", which retrieval, the reader and an LLM all read.

1. A pronoun is replaced by what it stands for in the turn before. A person ("he", "she"): the
   earlier short answer, the names its answer's sentences give or its question asked about,
   the one the cited passages call "she" or "he" first ("Who won the election?" answered
   "Gregory Finch" by mistake still gives "she" to Teresa Okafor when the passages say "Okafor
   ... She told supporters"). A thing or a group ("it", "they"): a name of the earlier question.
   When a pronoun finds nothing, the follow-up is read with the earlier question beside it.
2. "What about Finch?" / "And in 2023?" asks the earlier question again of something else:
   its first name replaced, or the words added.
3. A short question with nothing to resolve ("why?") is read with the earlier question.
A question that is already standalone is left as typed. How well it does: docs/conversations.md.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field

from rag.text.markers import strip_markers
from rag.types import Answer

_PERSONAL = re.compile(r"\b(he|him|his|she|her|hers|they|them|their|it|its)\b", re.I)
_NAMES = re.compile(r"\b[A-Z][\w’'-]+(?:[ \t]+(?:of[ \t]+the[ \t]+|of[ \t]+|da[ \t]+|de[ \t]+|van[ \t]+|von[ \t]+|bin[ \t]+)?[A-Z][\w’'-]+)*")
_WHAT_ABOUT = re.compile(r"^\s*(?:and\s+|but\s+)?(?:what|how)\s+about\s+(.+?)\s*\??\s*$|^\s*and\s+(.+?)\s*\?\s*$", re.I)
_QUESTION_WORD = re.compile(r"^(?:Who|Whom|Whose|What|When|Where|Which|Why|How|Is|Are|Was|Were|Did|Do|Does|Has|Have|"
                            r"Had|Will|Would|Can|Could|Should|The|A|An|In|On|At|After|Before|And|But|Since|"
                            r"According|Between)$")
# words of an office written before a name ("Foreign Minister Abbas Araghchi"): not the name
_TITLE = re.compile(r"^(?:Foreign|Prime|Defen[cs]e|Interior|Finance|Deputy|Vice|Chief|Executive|Minister|President|"
                    r"Secretary|General|Mayor|Speaker|Senator|Governor|King|Queen|Prince|Princess|Pope|Dr|Mr|Mrs|Ms|"
                    r"Ambassador|Envoy|Special|Spokesman|Spokeswoman|Spokesperson|Judge|Justice|Sen|Rep|Gov|"
                    r"Former|Acting|Interim|Businessman|Businesswoman)\.?$")
_CALENDAR = {m.lower() for m in calendar.month_name[1:] + calendar.day_name[:]}
# words that start a question or sentence capitalised without being a name ("Off which coast ...")
_COMMON = {"off", "for", "from", "to", "with", "by", "of", "as", "during", "under", "over", "near", "about", "this",
           "that", "these", "those", "there", "then", "so", "if", "while", "how", "its", "it", "his", "her", "their"}
_NOT_PERSON = set("""party bank university college council ministry department front alliance army force forces
agency office court house senate congress parliament government company group times post news union committee
commission association corporation airlines airline airport bridge city county state states province river street
square hall school hospital center centre institute organisation organization movement league club fund
network kingdom republic emirates islands island coast sea ocean region valley east west north south""".split())
_PAIR = re.compile(r"\b[A-Z][\w’'-]+(?:[ \t]+[A-Z][\w’'-]+)*[ \t]+and[ \t]+[A-Z][\w’'-]+(?:[ \t]+[A-Z][\w’'-]+)*")
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
    for m in _NAMES.finditer(strip_markers(text)):
        words = re.split(r"['’]s\s+", m.group(0))[-1].split()  # "Iran’s Foreign Minister X": X
        while words and (_QUESTION_WORD.match(words[0]) or words[0].lower() in _COMMON
                         or (len(words) > 2 and _TITLE.match(words[0]))):
            words = words[1:]
        if words and not (len(words) == 1 and words[0].lower() in _CALENDAR):
            out.append(" ".join(words))
    return list(dict.fromkeys(out))


def _person_like(name: str) -> bool:
    """Whether ``name`` may be a person's: a few capitalised words, no digits, not an
    organisation's or a place's ("Conservative Party", "National Resistance Front")."""
    words = name.split()
    return (0 < len(words) <= 4 and all(w[:1].isupper() for w in words) and not re.search(r"[\d,;:()]", name)
            and words[-1].lower() not in _NOT_PERSON)


def gender_of(name: str, texts: list[str]) -> str:
    """"f" or "m" when the ``texts`` call ``name`` "she" or "he": where a sentence opens with the
    name (its last word among the sentence's first three), the pronouns of the rest of that
    sentence and the next ("Okafor will take office ... She told supporters"), more one way
    than the other; "" when they do not tell (a place or a group is rarely a sentence's subject
    followed by "he" or "she")."""
    last = re.escape(name.split()[-1])
    female = male = 0
    for text in texts:
        for m in re.finditer(rf"\b{last}\b", text):
            opening = re.split(r"[.!?][\"'”’]?\s+", text[max(0, m.start() - 120):m.start()])[-1]
            if len(opening.split()) > 2:
                continue  # not the sentence's subject
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
        if about and about.group(2) and (not re.search(r"[A-Z0-9]", about.group(2))
                                         or len(about.group(2).split()) > SHORT_QUESTION_WORDS):
            about = None  # "and then?", "and which analyst warned ...?": nothing else asked about
        if about:
            other = (about.group(1) or about.group(2)).strip()
            asked = names_in(before)
            if asked and names_in(other):  # "What about Finch?": the earlier question, of Finch
                return before.replace(asked[0], other, 1)
            return f"{before.rstrip(' ?')} {other}?"
        pronouns = list(_PERSONAL.finditer(question))
        if pronouns:
            names = {m.group(0).lower(): self._antecedent(m.group(0).lower(), prev) for m in pronouns}
            for m in reversed(pronouns):  # from the end, so that earlier offsets hold
                if names[m.group(0).lower()]:
                    question = _replace(question, m, names[m.group(0).lower()])
            if all(names.values()):
                return question
            # "which jet shot it down?" after a question about "the Chinese spy balloon": no name
            # stands for "it", so the question is read with the earlier one
            answer = prev.answer.short_answer.text if prev.answer.short_answer and not prev.answer.abstained else ""
            return f"{question} ({before.rstrip(' ?')}{': ' + answer if answer else ''})"
        if len(re.findall(r"\w+", question)) <= SHORT_QUESTION_WORDS:
            return f"{question} {before}".strip()
        return question

    def _antecedent(self, pronoun: str, prev: Turn) -> str:
        """The name ``pronoun`` stands for in the turn ``prev``, or ""."""
        answer = prev.answer
        before = answer.standalone_question or prev.question
        asked = names_in(before)
        short = answer.short_answer.text if answer.short_answer and not answer.abstained else ""
        said = names_in(answer.answer.split("\n")[0]) if not answer.abstained else []
        if pronoun in ("it", "its", "they", "them", "their"):
            # a thing or a group: two names the earlier question joined ("Ahmed Shah Massoud and
            # Ismail Khan") for "they"; else a name of two words or more it asked about
            # ("Hurricane Idalia"). A single capitalised word there is too often a modifier ("the
            # Chinese spy balloon"), and the earlier answer may be where it was, not what
            # ("Off which state's coast was the balloon shot down?" "South Carolina").
            pair = _PAIR.search(before)
            if pronoun in ("they", "them", "their") and pair:
                return pair.group(0)
            found = [n for n in asked if len(n.split()) >= 2]
            return found[0] if found else ""
        # A person. After "who ...?" the one asked for (the short answer, or a name the answer's
        # first sentence gives and the question does not) comes before the names asked about:
        # "Who defeated Jair Bolsonaro?" "When was he inaugurated?" asks about the winner.
        who = bool(re.match(r"\s*(?:who|whom|whose)\b", before, re.I))
        # the short answer names a person when asked "who" or when it is a full name ("Brittney
        # Griner" for "which WNBA star"), not a city answering "which city"
        short = short if _person_like(short) and (who or len(short.split()) >= 2) else ""
        answered = [n for n in said if n not in asked]
        order = [short, *answered, *asked] if who else [short, *asked, *said]
        # a person is named in full ("Elon Musk"): one word is a place or a group ("Brazil") but as the short answer
        candidates = [n for n in dict.fromkeys(order) if n and _person_like(n) and (n == short or len(n.split()) >= 2)]
        gender = _PERSON_PRONOUNS.get(pronoun, "")
        texts = [c.text for c in answer.citations] or [answer.answer]
        for name in candidates:  # a name the passages call "she" for "she", "he" for "he"
            if gender_of(name, texts) == gender:
                return name
        # else a name of two words or more they do not tell of ("Teresa Okafor", not "Marlow")
        return next((n for n in candidates if len(n.split()) >= 2 and not gender_of(n, texts)), "")

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
