"""Citation markers are parsed one way, here, for every part that reads them."""

from __future__ import annotations

from rag import citation_markers
from rag.llm.check import check_answer
from rag.surfaces.ui.handlers import answer_markdown
from rag.text.markers import strip_markers


def test_markers_with_one_or_several_numbers():
    text = "Iran offered [1]. Qatar too [2, 3].[12] Not a marker: [a] [1-2] [ 4]"
    markers = citation_markers(text)
    assert [m.numbers for m in markers] == [(1,), (2, 3), (12,)]
    assert [text[m.start:m.end] for m in markers] == ["[1]", "[2, 3]", "[12]"]


def test_strip_removes_markers_and_the_spaces_before_them():
    assert strip_markers("Iran offered to mediate [1]. Qatar [2, 3] hosted.") == "Iran offered to mediate. Qatar hosted."


def test_every_reader_of_markers_agrees_on_a_multi_number_marker():
    """The LLM check, the browser's links and the parser read "[1, 2]" as two citations."""
    checked = check_answer("Iran offered [1, 9].", {1, 2})
    assert checked.text == "Iran offered [1]." and checked.invalid == [9] and checked.cited == [1]
    assert answer_markdown("Iran offered [1, 2].", 2) == "Iran offered [[1]](#src-1)[[2]](#src-2)&#46;"
