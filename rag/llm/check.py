"""Checks a generated answer against the passages it was given: citations, grounding, abstention."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rag.llm.prompt import ABSTAIN
from rag.text.markers import Marker, replace_markers, strip_markers


@dataclass
class Checked:
    text: str  # the answer with markers to unknown passages removed
    cited: list[int] = field(default_factory=list)  # valid passage numbers, in order of first citation
    invalid: list[int] = field(default_factory=list)  # markers removed: no such passage
    abstained: bool = False  # the model said the passages do not answer
    ungrounded: bool = False  # an answer that cites no passage


def check_answer(text: str, valid: set[int]) -> Checked:
    """Remove [n] markers that point to no passage in ``valid``; flag uncited answers."""
    cited: list[int] = []
    invalid: list[int] = []

    def fix(m: Marker, spaces: str) -> str:
        good = [n for n in m.numbers if n in valid]
        invalid.extend(n for n in m.numbers if n not in valid)
        cited.extend(n for n in good if n not in cited)
        return f"{spaces}[{', '.join(map(str, good))}]" if good else ""

    fixed = replace_markers(text, fix).strip()
    bare = re.sub(r"\s+", " ", strip_markers(fixed)).strip().strip("\"'").lower()
    abstained = bare.startswith(ABSTAIN.lower().rstrip(".")) and not cited
    if abstained:
        fixed = ABSTAIN
    return Checked(fixed, cited, invalid, abstained, ungrounded=not abstained and not cited)
