"""Citation markers: the ``[n]`` and ``[n, m]`` an answer cites its passages with. Every part that
reads them (the LLM check, follow-ups, the browser's links, the HTTP annotations, MCP history)
parses them here, one way."""

from __future__ import annotations

import re
from dataclasses import dataclass

MARKER = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


@dataclass(frozen=True)
class Marker:
    """A marker at characters ``start``-``end`` of the text, citing passages ``numbers``."""

    start: int
    end: int
    numbers: tuple[int, ...]


def citation_markers(text: str) -> list[Marker]:
    """Every citation marker in ``text``, in order: "[1]" cites (1,), "[2, 3]" cites (2, 3)."""
    return [Marker(m.start(), m.end(), tuple(int(n) for n in re.findall(r"\d+", m.group(1))))
            for m in MARKER.finditer(text or "")]


def replace_markers(text: str, fix) -> str:
    """``text`` with each marker, and the spaces before it, replaced by ``fix(marker, spaces)``."""
    out, pos = [], 0
    for m in citation_markers(text):
        lead = len(text[pos:m.start]) - len(text[pos:m.start].rstrip())
        out.append(text[pos:m.start - lead])
        out.append(fix(m, text[m.start - lead:m.start]))
        pos = m.end
    out.append(text[pos:])
    return "".join(out)


def strip_markers(text: str) -> str:
    """``text`` without its citation markers (nor the spaces before them)."""
    return replace_markers(text, lambda m, spaces: "")
