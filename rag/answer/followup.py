"""Follow-up questions: a conversation's earlier turns turn "whom did he call?" into a standalone query."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rag.types import Answer

_PRONOUN = re.compile(r"\b(he|him|his|she|her|hers|they|them|their|it|its|this|that|these|those|there|then)\b", re.I)
_NAMES = re.compile(r"\b[A-Z][\w’'-]+(?:\s+[A-Z][\w’'-]+)*")
_PERSONAL = re.compile(r"\b(he|him|his|she|her|they|them|their|it|its)\b", re.I)
SHORT_QUESTION_WORDS = 4  # a question this short is read as a follow-up


@dataclass
class Turn:
    question: str
    answer: Answer


@dataclass
class Conversation:
    """Earlier turns, so that "whom did he call?" is read with the question before it."""

    turns: list[Turn] = field(default_factory=list)

    def contextualize(self, question: str) -> str:
        """A standalone query: a follow-up is joined with the previous question and its answer's names."""
        if not self.turns:
            return question
        if not (_PRONOUN.search(question) or len(re.findall(r"\w+", question)) <= SHORT_QUESTION_WORDS):
            return question
        prev = self.turns[-1]
        names = [] if prev.answer.abstained else _NAMES.findall(re.sub(r"\[\d+\]", "", prev.answer.answer))
        context = prev.question + " " + " ".join(dict.fromkeys(names))
        return f"{question} {context}".strip()

    def resolved(self, question: str) -> str:
        """The follow-up as one question for the reader: its first personal pronoun replaced by
        the previous answer's short answer, or else its first name ("whom did he call?" ->
        "whom did Abbas Araghchi call?"); ``contextualize``'s query when there is none."""
        if not self.turns:
            return question
        prev = self.turns[-1].answer
        m = _PERSONAL.search(question)
        names = [] if prev.abstained else _NAMES.findall(re.sub(r"\[\d+\]", "", prev.answer))
        name = prev.short_answer.text if prev.short_answer and not prev.abstained else (names[0] if names else "")
        if not m or not name:
            return self.contextualize(question)
        word = m.group(0).lower()
        possessive = word in ("his", "their", "its") or (word == "her" and bool(re.match(r"\s+[a-z]", question[m.end():]))
                                                          and not re.match(r"\s+(to|for|with|about|in|on|at|from|by)\b",
                                                                           question[m.end():]))
        return question[:m.start()] + name + ("'s" if possessive else "") + question[m.end():]

    def said(self) -> frozenset[tuple[str, int]]:
        """(doc_id, start) of the sentences the last answer quoted: a follow-up asks for something new."""
        if not self.turns:
            return frozenset()
        return frozenset((e.doc_id, e.start) for e in self.turns[-1].answer.evidence)

    def add(self, question: str, answer: Answer) -> None:
        self.turns.append(Turn(question, answer))
