"""The browser chat's example question comes from the user's own index: the shipped one only over the
sample articles it asks about, else one about the newest indexed article, none for an empty index."""

from __future__ import annotations

import html
from pathlib import Path

import pytest

from rag import CorpusError, Rag, Settings

pytest.importorskip("gradio", reason="gradio is not installed (pip install -e '.[ui]')")

from rag.surfaces.ui import handlers  # noqa: E402
from rag.surfaces.ui.app import build_app  # noqa: E402
from rag.surfaces.ui.handlers import EMPTY_HINT, EXAMPLE, empty_hint, example_questions, respond  # noqa: E402

ARTICLES = [  # (file, date, title, body)
    ("harvest.txt", "2024-03-02", "Farmers report a record wheat harvest in Punjab",
     "Farmers in Punjab brought in a record wheat harvest this spring, officials said."),
    ("port.txt", "2024-05-20", "New container port opens <b>near</b> Gwadar",
     "A new container port opened near Gwadar on Monday, the shipping ministry said."),
    ("bridge.txt", "2023-11-11", "City council approves the river bridge",
     "The city council approved the river bridge after a long debate about its cost."),
]
NEWEST = "What does “New container port opens <b>near</b> Gwadar” report?"


def write_corpus(folder: Path, articles=ARTICLES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, date, title, body in articles:
        (folder / name).write_text(f"---\ntitle: {title}\ndate: {date}\nsource: Local Wire\n---\n{body}\n",
                                   encoding="utf-8")
    return folder


@pytest.fixture
def own_rag(tmp_path: Path) -> Rag:
    corpus = write_corpus(tmp_path / "my-articles")
    r = Rag(Settings.from_env(corpus=(str(corpus),), index_dir=str(tmp_path / "idx"), model="fake-64"))
    r.index()
    return r


def _example_button(demo) -> object:
    (button,) = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "example"]
    return button


def test_the_examples_ask_about_the_newest_articles_of_the_user_s_index(own_rag):
    assert example_questions(own_rag) == [NEWEST]
    assert example_questions(own_rag, 3) == [
        NEWEST,
        "What does “Farmers report a record wheat harvest in Punjab” report?",
        "What does “City council approves the river bridge” report?",
    ]
    assert not any("Kabul" in q for q in example_questions(own_rag, 3))


def test_the_example_is_answered_from_the_article_it_names(own_rag):
    (reply,) = list(respond(own_rag, NEWEST, [], None))
    text = html.unescape(reply.history[-1]["content"])
    assert "container port opened near Gwadar" in text and "[1]" in text
    assert "New container port opens" in html.unescape(reply.sources)  # source [1] is that article


def test_the_page_offers_the_index_s_own_example(own_rag):
    button = _example_button(build_app(own_rag))
    assert button.value == NEWEST and button.visible


def test_the_hint_for_an_empty_question_uses_it_escaped(own_rag):
    hint = empty_hint(own_rag)
    assert "Kabul" not in hint and "<b>" not in hint  # article text is never live markup
    assert html.unescape(hint) == f"{handlers.ASK_HINT}, for example: {NEWEST}"
    (reply,) = list(respond(own_rag, "  ", [], None))
    assert reply.history == [{"role": "assistant", "content": hint}]


def test_a_removed_article_is_no_longer_offered(own_rag):
    (Path(own_rag.settings.corpus[0]) / "port.txt").unlink()
    own_rag.index()
    assert example_questions(own_rag) == ["What does “Farmers report a record wheat harvest in Punjab” report?"]


def test_the_shipped_articles_keep_the_shipped_example(fake_rag):
    # fake_rag indexes a copy of corpus/: the article the example asks about is there
    assert example_questions(fake_rag) == [EXAMPLE] and empty_hint(fake_rag) == EMPTY_HINT
    assert _example_button(build_app(fake_rag)).value == EXAMPLE


def test_no_article_indexed_offers_no_example(tmp_path):
    corpus = tmp_path / "empty"
    corpus.mkdir()
    (corpus / "blank.txt").write_text("", encoding="utf-8")  # skipped: no article at all
    r = Rag(Settings.from_env(corpus=(str(corpus),), index_dir=str(tmp_path / "idx"), model="fake-64"))
    with pytest.raises(CorpusError, match="no readable articles"):
        r.index()
    assert example_questions(r) == []
    assert empty_hint(r) == "Please type a question about the articles."
    assert not _example_button(build_app(r)).visible
