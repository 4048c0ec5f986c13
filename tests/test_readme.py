"""The README's examples are what the commands print (``python -m rag.tools.examples`` regenerates
them); a change that alters an output fails here until the README is regenerated."""

from __future__ import annotations

import pytest
from conftest import clean_env

from rag.tools.examples import _BLOCK, README, Example, check, comparable


def test_examples_are_marked_and_parsed():
    specs = [m.group("spec") for m in _BLOCK.finditer(README.read_text(encoding="utf-8"))]
    assert len(specs) >= 4
    first = Example.parse(specs[0])
    assert first.args[0] == "ask" and first.lines > 0
    assert any(Example.parse(s).json for s in specs)


def test_scores_are_compared_to_two_decimals_and_nothing_else_is_loosened():
    assert comparable("chars 0-410 score 0.7895") == comparable("chars 0-410 score 0.7901")
    assert comparable('"score": 0.789636,') == comparable('"score": 0.789507,')
    assert comparable("chars 0-410 score 0.7895") != comparable("chars 0-411 score 0.7895")
    assert comparable("score 0.7895") != comparable("score 0.7795")


@pytest.mark.slow
def test_the_readme_examples_are_what_the_commands_print(tmp_path):
    readme = README.read_text(encoding="utf-8")
    diff = check(readme, tmp_path, clean_env())
    assert not diff, "the README's examples differ from the commands' output; run " \
                     "'python -m rag.tools.examples' and commit README.md:\n" + "\n".join(diff)
    # and the check can fail: an example edited by hand differs from what its command prints
    edited = readme.replace("Answer: Abbas Araghchi [1]", "Answer: Ishaq Dar [1]", 1)
    assert edited != readme and check(edited, tmp_path, clean_env())
