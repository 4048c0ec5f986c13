"""The browser chat, driven in headless Chromium against the real model and a copy of the corpus.

Set UI_SCREENSHOT=docs/screenshot.png to save the page answering the Kabul question.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from rag.config import DEFAULT_CORPUS

REPO = Path(__file__).resolve().parent.parent

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

pytest.importorskip("gradio", reason="gradio is not installed (pip install -e '.[ui]')")

if str(REPO) not in sys.path:  # ui/ is not an installed package: import it from the checkout
    sys.path.insert(0, str(REPO))
from ui.app import _emphasise, parse_filters, safe_name, save_uploads, sources_html  # noqa: E402

try:
    from playwright import sync_api
    from playwright.sync_api import expect
except ImportError:
    sync_api = None

browser_test = pytest.mark.slow(pytest.mark.browser)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory, _isolated_environment):
    """``python -m rag ui`` on a free port over a writable copy of the shipped corpus."""
    root = tmp_path_factory.mktemp("ui")
    corpus = root / "corpus"
    shutil.copytree(DEFAULT_CORPUS, corpus)
    for p in corpus.iterdir():
        p.chmod(0o644)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "RAG_UI_AUTH"}
    log = open(root / "server.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "rag", "ui", "--corpus", str(corpus), "--index-dir", str(root / "idx"),
         "--port", str(port)],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the UI exited with {proc.returncode}:\n{(root / 'server.log').read_text()}")
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"the UI did not start:\n{(root / 'server.log').read_text()}")
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def browser():
    if sync_api is None:
        pytest.skip("playwright is not installed (pip install -e '.[ui]')")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser, app_url):  # browser first: no server is started when the browser is missing
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.goto(app_url)
    expect(pg.locator("#question textarea")).to_be_visible(timeout=30_000)
    yield pg
    context.close()


def ask(page, question: str) -> None:
    page.locator("#question textarea").fill(question)
    page.locator("#ask").click()


def last_bot_message(page):
    return page.locator("#chat .message-row.bot-row").last


@browser_test
def test_kabul_question_answers_iran_and_citation_opens_highlighted_span(page):
    page.locator("#example").click()  # the example question offered on first load
    answer = last_bot_message(page)
    expect(answer).to_contain_text("click [n] to open its source", timeout=60_000)
    expect(answer).to_contain_text("Iran")
    expect(answer).to_contain_text("[1]")

    answer.locator('a[href*="#src-1"]').first.click()  # [1] in the answer opens source 1
    mark = page.locator("#src-1 mark")
    expect(mark).to_be_visible()
    expect(mark).to_contain_text(re.compile("Araghchi|mediate"))
    expect(page.locator("#src-1 summary")).to_contain_text("Iran Offers to Mediate")
    expect(page.locator("#src-1 .meta")).to_contain_text("2025-11-09")
    expect(page.locator("#sources")).to_contain_text("score")

    shot = os.environ.get("UI_SCREENSHOT")
    if shot:
        page.screenshot(path=str(REPO / shot), full_page=True)


@browser_test
def test_uploaded_article_can_be_asked_about_at_once(page, tmp_path):
    article = tmp_path / "zorbia news!.txt"  # a name to sanitise
    article.write_text("---\nsource: Zorbia Herald\ndate: 2025-12-01\n---\nZorbia signs grain deal\n\n"
                       "The Zorbian ambassador Pelle Varga announced a grain deal in "
                       "Tallinn. The agreement covers wheat exports for three years.\n", encoding="utf-8")
    page.get_by_text("Add articles").click()
    page.locator("#upload input[type=file]").set_input_files(str(article))
    expect(last_bot_message(page)).to_contain_text("Added 1 file", timeout=120_000)

    page.get_by_text("Search settings").click()  # the new article's source is offered as a filter
    page.locator("#source input").click()
    expect(page.get_by_role("option", name="Zorbia Herald")).to_be_visible(timeout=10_000)
    page.keyboard.press("Escape")

    ask(page, "Who announced a grain deal in Tallinn?")
    answer = last_bot_message(page)
    expect(answer).to_contain_text("click [n] to open its source", timeout=60_000)
    expect(answer).to_contain_text("Pelle Varga")


@browser_test
def test_empty_question_gets_a_message_and_the_page_stays_up(page):
    page.locator("#ask").click()
    expect(last_bot_message(page)).to_contain_text("Please type a question", timeout=30_000)
    ask(page, "Who offered to mediate between Kabul and Islamabad?")
    expect(last_bot_message(page)).to_contain_text("Iran", timeout=60_000)


@browser_test
def test_bad_date_is_reported_in_the_chat(page):
    page.get_by_text("Search settings").click()
    page.get_by_label("Since (YYYY-MM-DD)").fill("2019-13-45")
    ask(page, "Who offered to mediate between Kabul and Islamabad?")
    expect(last_bot_message(page)).to_contain_text("is not a date", timeout=30_000)


@browser_test
def test_as_of_day_is_used_for_a_question_about_recent_events(page):
    page.get_by_text("Search settings").click()
    page.get_by_label("As of (YYYY-MM-DD)").fill("2018-12-05")
    ask(page, "What did Iran recently discuss with the Taliban?")
    answer = last_bot_message(page)
    expect(answer).to_contain_text("click [n] to open its source", timeout=60_000)
    expect(answer).to_contain_text("articles dated near 2018-12-05 come first")
    page.get_by_label("As of (YYYY-MM-DD)").fill("last week")
    ask(page, "What did Iran recently discuss with the Taliban?")
    expect(last_bot_message(page)).to_contain_text("is not a date for “as of”", timeout=30_000)


# ---------------------------------------------------------------- without a browser


def test_safe_name_keeps_uploads_inside_the_folder():
    assert safe_name("../../etc/passwd") == "passwd"
    assert safe_name("..\\..\\evil.txt") == "evil.txt"
    assert safe_name(".hidden.txt") == "hidden.txt"
    assert safe_name("zorbia news!.txt") == "zorbia_news_.txt"
    assert safe_name("") == "upload"


def test_parse_filters():
    f = parse_filters(" 2019-01-01 ", "", "Anadolu")
    assert (f.since, f.until, f.sources) == ("2019-01-01", "", ("Anadolu",))
    with pytest.raises(ValueError, match="not a date"):
        parse_filters("yesterday", "", "")


def test_save_uploads_sanitises_rejects_and_never_overwrites(fake_rag, tmp_path):
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / "a b.txt").write_text("first")
    (incoming / "evil.exe").write_text("x")
    saved, notes = save_uploads(fake_rag, [str(incoming / "a b.txt"), str(incoming / "evil.exe")])
    assert [p.name for p in saved] == ["a_b.txt"]
    assert saved[0].parent == fake_rag.settings.corpus_paths[0] / "uploads"
    assert any("evil.exe: not accepted" in n for n in notes)
    _, notes = save_uploads(fake_rag, [str(incoming / "a b.txt")])  # same bytes again: nothing new
    assert notes == ["a_b.txt: already in the corpus"]
    (incoming / "a b.txt").write_text("second")
    saved, _ = save_uploads(fake_rag, [str(incoming / "a b.txt")])  # different bytes: a new name
    assert saved[0].name == "a_b-1.txt" and (saved[0].parent / "a_b.txt").read_text() == "first"


def test_sources_escape_article_text_and_mark_the_span(fake_rag):
    answer = fake_rag.ask("Who offered to mediate between Kabul and Islamabad?")
    c = answer.citations[0]
    c.title = "<script>alert(1)</script>"
    out = sources_html(fake_rag, answer)
    assert "<script>" not in out and "&lt;script&gt;" in out
    assert out.count("<mark>") == len(answer.citations)
    assert f'id="src-{c.n}"' in out


def test_sources_put_the_answer_sentences_in_bold_inside_their_passage(fake_rag):
    answer = fake_rag.ask("Who offered to mediate between Kabul and Islamabad?")
    assert not answer.abstained and answer.evidence
    out = sources_html(fake_rag, answer)
    bold = re.findall(r'<strong class="answer">(.*?)</strong>', out, re.S)
    assert len(bold) == len(answer.evidence)
    doc = fake_rag.document(answer.evidence[0][0])["text"]
    start = answer.evidence[0][1]
    assert html.unescape(bold[0]) == doc[start : start + len(html.unescape(bold[0]))]
    assert html.unescape(bold[0]) in answer.answer  # the sentence the answer quotes
    for m in re.finditer(r'<strong class="answer">', out):  # each inside its passage's <mark>
        assert out.rfind("<mark>", 0, m.start()) > out.rfind("</mark>", 0, m.start())


def test_emphasis_escapes_text_and_ignores_spans_outside_the_passage():
    passage = "A <b> x. Second sentence & more."
    out = _emphasise(passage, 100, [(109, 132), (0, 5), (500, 600)])
    assert out == 'A &lt;b&gt; x. <strong class="answer">Second sentence &amp; more.</strong>'
