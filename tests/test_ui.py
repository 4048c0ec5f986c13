"""The browser chat: its handlers without a browser (fake model), and the page in headless Chromium
(real model, a copy of the corpus).

Set UI_SCREENSHOT=docs/screenshot.png to save the page answering the Kabul question, and
UI_CONFLICT_SCREENSHOT=docs/conflicts.png for the troop count that changed over time.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import rag.answer.timeline
import rag.llm
from rag import Answer, Citation, Evidence, FilterError, Rag, Timeline, TimelineEntry
from rag.config import DEFAULT_CORPUS
from rag.surfaces import render

REPO = Path(__file__).resolve().parent.parent

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

pytest.importorskip("gradio", reason="gradio is not installed (pip install -e '.[ui]')")

from rag.surfaces.ui import handlers  # noqa: E402
from rag.surfaces.ui.handlers import (  # noqa: E402
    EMPTY_HINT,
    answer_markdown,
    escape_text,
    parse_filters,
    passage_in_context,
    prepare_index,
    respond,
    show_timeline,
    source_choices,
    sources_html,
    timeline_html,
    upload,
)

try:
    from playwright import sync_api
    from playwright.sync_api import expect
except ImportError:
    sync_api = None



def browser_test(test):
    """Drives the page in Chromium with the real model: marked ``browser`` and ``slow``."""
    return pytest.mark.slow(pytest.mark.browser(test))


KABUL = "Who offered to mediate between Kabul and Islamabad?"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def article(folder: Path, name: str, source: str, title: str, body: str, date: str = "2025-12-01") -> Path:
    path = folder / name
    path.write_text(f"---\nsource: {source}\ndate: {date}\n---\n{title}\n\n{body}\n", encoding="utf-8")
    return path


class RequestRecorder:
    """An HTTP server on 127.0.0.1 that records the path of every request it gets."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                recorder.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/gif")
                self.send_header("Access-Control-Allow-Origin", "*")
                self.end_headers()
                self.wfile.write(b"GIF89a")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def hostile_sentence(port: int) -> str:
    """An answer sentence full of markup that would make a browser fetch from ``port``."""
    return (f'The harbour master Ilse Dornan opened the Brekka canal <img src="http://127.0.0.1:{port}/html-img"> '
            f'with ![x](http://127.0.0.1:{port}/md-img) and <script>new Image().src="http://127.0.0.1:{port}/js"'
            "</script> **bold** on Tuesday.")


# ---------------------------------------------------------------- 1. the public API only


def test_the_ui_is_started_by_the_launcher_and_imports_no_other_surface():
    probe = ("import sys, rag.surfaces.ui.app, rag.surfaces.ui.handlers; "
             "print(sorted(m for m in sys.modules if m in ('rag.surfaces.cli', 'rag.surfaces.http', 'rag.surfaces.mcp')))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO / "tests")
    assert out.stdout.strip() == "[]", out.stderr
    out = subprocess.run([sys.executable, "-m", "rag", "ui", "--help"], capture_output=True, text=True,
                         cwd=REPO / "tests", timeout=120)
    assert out.returncode == 0, out.stderr
    assert "--port" in out.stdout and "--corpus" in out.stdout and "--index-dir" in out.stdout


# ---------------------------------------------------------------- 2. the handlers need no page


def test_the_handlers_work_without_gradio():
    code = "import sys, rag.surfaces.ui.handlers; print('gradio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO / "tests")
    assert out.stdout.strip() == "False", out.stderr


# ---------------------------------------------------------------- 3. filters from the library


def test_filters_are_the_library_s_with_its_messages():
    assert handlers.Filters is rag.Filters  # the library's, not a copy
    f = parse_filters(" 2019-01 ", "2019", " Anadolu ")
    assert (f.since, f.until, f.sources) == ("2019-01-01", "2019-12-31", ("Anadolu",))
    assert parse_filters("", "", "") == handlers.Filters()
    with pytest.raises(FilterError, match=r"since: not a date: 'yesterday' \(use YYYY-MM-DD, YYYY-MM or YYYY\)"):
        parse_filters("yesterday", "", "")


def test_a_bad_date_is_answered_with_the_filter_error_and_the_question_kept(fake_rag):
    (reply,) = list(respond(fake_rag, KABUL, [], None, 5, "", "2019-13-45", "", "none", ""))
    assert "until: not a date" in html.unescape(reply.history[-1]["content"])
    assert reply.question == KABUL  # to fix the date and ask again


def test_filters_that_match_nothing_say_so(fake_rag):
    (reply,) = list(respond(fake_rag, KABUL, [], None, 5, "", "", "No Such Paper", "none", ""))
    assert "No article matches the filters" in html.unescape(reply.history[-1]["content"])


def test_the_source_dropdown_offers_every_source_and_follows_uploads(fake_settings, tmp_corpus, tmp_path):
    for i in range(12):  # more than the ten most common
        article(tmp_corpus, f"s{i}.txt", f"Paper {i:02d}", f"Story {i}", f"Paper number {i} reports on the harvest.")
    r = Rag(fake_settings)
    r.index()
    names = [value for _, value in source_choices(r)]
    assert names[0] == "" and {f"Paper {i:02d}" for i in range(12)} <= set(names)
    assert ("Paper 03 (1 article)", "Paper 03") in source_choices(r)
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    upload(r, [str(article(incoming, "new.txt", "Zorbia Herald", "Grain", "A grain deal was signed."))], [])
    assert "Zorbia Herald" in [value for _, value in source_choices(r)]


# ---------------------------------------------------------------- 4. shown when ready, streamed for real


def test_an_extractive_answer_is_shown_at_once(fake_rag, monkeypatch):
    monkeypatch.setattr(time, "sleep", lambda s: pytest.fail("no artificial delay"))
    replies = list(respond(fake_rag, KABUL, [], None, 5, "", "", "", "none (extractive)", ""))
    assert len(replies) == 1  # one update: the whole answer
    (reply,) = replies
    answer = reply.conversation.turns[-1].answer  # the conversation remembers the turn
    text = html.unescape(reply.history[-1]["content"])
    assert "click [n] to open its source" in text and "[[1]](#src-1)" in text
    assert answer.answer.split(" [")[0] in text
    assert reply.sources and 'id="src-1"' in reply.sources and reply.question == ""


class GatedLLM:
    """A backend that streams its reply a token at a time, waiting for the test between tokens."""

    name, context = "gated", 2048

    def __init__(self) -> None:
        self.tokens = ["Iran ", "offered ", "to mediate ", "[1]."]
        self.go = [threading.Event() for _ in self.tokens]

    def stream(self, messages, max_tokens, timeout):
        for tok, go in zip(self.tokens, self.go):
            assert go.wait(30), "the test did not release the token"
            yield tok


def test_an_llm_answer_streams_each_token_as_it_is_generated(fake_rag, monkeypatch):
    llm = GatedLLM()
    monkeypatch.setattr(rag.llm, "_REGISTRY", {**rag.llm._REGISTRY, "gated": lambda settings: llm})
    replies = respond(fake_rag, KABUL, [], None, 5, "", "", "", "gated", "")
    assert next(replies).history[-1]["content"] == "…"  # the question at once, the answer to come
    shown = []
    for go in llm.go:
        go.set()  # one more token generated: it is shown before the next one exists
        shown.append(html.unescape(next(replies).history[-1]["content"]))
    assert shown[0] == "Iran  …" and shown[2] == "Iran offered to mediate  …"
    final = list(replies)[-1]
    assert "[[1]](#src-1)" in final.history[-1]["content"] and final.sources


# ---------------------------------------------------------------- 5. article text is inert


def test_escaped_text_has_no_markup_left():
    hostile = '<img src="http://x/a"> ![x](http://x/b) [l](http://x/c) **b** _i_ # h `c` &amp; \\ | ~'
    out = escape_text(hostile)
    assert not re.search(r"[<>\[\]()!*_#`&\\|~\"']", out.replace("&#", "").replace(";", ""))
    assert html.unescape(out) == hostile  # the reader sees the characters as written


def test_the_answer_keeps_only_our_citation_links():
    out = answer_markdown("Evil ![x](http://x/i) <b>bold</b> [2] and [9] [1]", n_citations=2)
    assert out.count("](#src-") == 2 and "[[2]](#src-2)" in out and "[[1]](#src-1)" in out
    assert "<b>" not in out and "![" not in out and "[9]" not in out
    assert html.unescape(out.replace("[[2]](#src-2)", "[2]").replace("[[1]](#src-1)", "[1]")) == (
        "Evil ![x](http://x/i) <b>bold</b> [2] and [9] [1]")


def test_article_markup_in_an_answer_is_escaped_in_the_bubble_and_the_panel(fake_settings, tmp_corpus):
    article(tmp_corpus, "brekka.txt", "Quarvish Post", "Brekka canal opens", hostile_sentence(9))
    r = Rag(fake_settings)
    r.index()
    (reply,) = list(respond(r, "Who opened the Brekka canal on Tuesday?", [], None, 5, "", "", "", "none", ""))
    bubble = reply.history[-1]["content"]
    assert "Ilse Dornan" in bubble
    for live in ("<img", "<script", "![", "](http", "**bold"):  # the bubble renders Markdown and HTML
        assert live not in bubble, live
    for live in ("<img", "<script"):  # the panel renders HTML only
        assert live not in reply.sources, live
    assert "&#60;img" in bubble and "&lt;img src=&quot;http://127.0.0.1:9/html-img&quot;&gt;" in reply.sources
    assert reply.history[0]["content"] == escape_text("Who opened the Brekka canal on Tuesday?")


def test_sources_escape_titles_and_mark_the_span(fake_rag):
    answer = fake_rag.ask(KABUL)
    c = answer.citations[0]
    c.title = "<script>alert(1)</script>"
    out = sources_html(fake_rag, answer)
    assert "<script>" not in out and "&lt;script&gt;" in out
    assert out.count("<mark>") == len(answer.citations)
    assert f'id="src-{c.n}"' in out


def test_sources_put_the_answer_sentences_in_bold_from_the_evidence(fake_rag):
    answer = fake_rag.ask(KABUL)
    assert not answer.abstained and answer.evidence
    out = sources_html(fake_rag, answer)
    bold = [html.unescape(re.sub(r"</?u[^>]*>", "", b))  # the short answer is underlined inside its sentence
            for b in re.findall(r'<strong class="answer">(.*?)</strong>', out, re.S)]
    for e in answer.evidence:
        sentence = fake_rag.document(e.doc_id)["text"][e.start:e.end]
        assert sentence in bold and sentence in answer.answer  # the sentence the answer quotes
    for m in re.finditer(r'<strong class="answer">', out):  # each inside its passage's <mark>
        assert out.rfind("<mark>", 0, m.start()) > out.rfind("</mark>", 0, m.start())


def test_passage_in_context_escapes_and_bolds_only_inside_the_window():
    article_text = "Intro words here. A <b> x. Second sentence & more. Outro."
    start = article_text.index("A <b>")
    end = article_text.index(" Outro")
    out = passage_in_context(article_text, start, end, article_text[start:end],
                             [(article_text.index("Second"), end), (500, 600)])
    assert out == ('Intro words here. <mark>A &lt;b&gt; x. <strong class="answer">Second sentence &amp; more.'
                   "</strong></mark> Outro.")
    stale = passage_in_context("changed", 3, 8, "a<b>c", [])  # the article changed: the passage alone
    assert stale == "<mark>a&lt;b&gt;c</mark>"


# ---------------------------------------------------------------- 6. what a new user found


def test_an_empty_question_adds_no_empty_bubble(fake_rag):
    before = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    (reply,) = list(respond(fake_rag, "   ", before, None))
    assert reply.history == before + [{"role": "assistant", "content": EMPTY_HINT}]
    (again,) = list(respond(fake_rag, "", reply.history, None))
    assert again.history == reply.history  # the hint once, and never an empty user bubble
    as_sent_back = before + [{"role": "assistant", "content": [{"type": "text", "text": EMPTY_HINT}]}]
    (again,) = list(respond(fake_rag, "", as_sent_back, None))  # Gradio 6 returns content as parts
    assert again.history == as_sent_back
    assert not [m for m in again.history if m["role"] == "user" and not m["content"].strip()]


def test_an_upload_is_its_own_message_naming_each_file(fake_rag, tmp_path):
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    good = article(incoming, "report.txt", "Zorbia Herald", "Grain deal",
                   "The Zorbian ambassador Pelle Varga announced a grain deal in Tallinn.")
    (incoming / "notes.exe").write_bytes(b"MZ")
    (incoming / "blank.txt").write_text("   \n")
    (incoming / "many.jsonl").write_text('{"id": "m1", "text": "First Zorbian story about barley."}\n'
                                         '{"id": "m2", "text": "Second Zorbian story about oats."}\nnot json\n')
    previous = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "the previous answer"}]
    history = upload(fake_rag, [str(good), str(incoming / "notes.exe"), str(incoming / "blank.txt"),
                                str(incoming / "many.jsonl")], previous)
    assert history[:2] == previous and len(history) == 3  # the answer untouched; one new message
    text = html.unescape(history[-1]["content"])
    assert "Added report.txt (saved as uploads/report.txt): 1 document indexed" in text
    assert "Added many.jsonl (saved as uploads/many.jsonl): 2 documents indexed" in text
    assert re.search(r"line 3: skipped: .*json", text, re.I)
    assert "notes.exe: not accepted" in text
    assert "blank.txt: empty file" in text and "uploads/blank.txt" not in text  # not saved at all
    assert "you can ask about them" in text
    again = upload(fake_rag, [str(good)], history)  # the same bytes again
    assert "report.txt: already in the corpus" in html.unescape(again[-1]["content"])
    assert upload(fake_rag, [], again) == again and upload(fake_rag, None, again) == again


def _citation(rag_: Rag, doc_id: str, n: int, start: int, end: int, page: int = 0) -> Citation:
    doc = rag_.document(doc_id)
    return Citation(n=n, doc_id=doc_id, title=doc["title"], date=doc["date"], source=doc["source"], start=start,
                    end=end, text=doc["text"][start:end], score=1.0 / n, page=page)


def test_sources_show_no_score_and_tell_passages_of_one_article_apart(fake_rag):
    first = fake_rag.ask(KABUL).citations[0].doc_id
    other = next(c.doc_id for c in fake_rag.ask("Taliban talks in Tehran").citations if c.doc_id != first)
    answer = Answer(question="q", answer="x [1] y [3]", abstained=False, citations=[
        _citation(fake_rag, first, 1, 400, 600), _citation(fake_rag, other, 2, 0, 100, page=3),
        _citation(fake_rag, first, 3, 0, 200)], evidence=[Evidence(1, first, 420, 480)])
    out = sources_html(fake_rag, answer)
    assert "score" not in out.lower() and "0.5" not in out
    summaries = re.findall(r"<summary>(.*?)</summary>", out)
    assert "passage 2 of 2 cited from this article" in summaries[0]  # [1] is the later part of the article
    assert "passage 1 of 2 cited from this article" in summaries[2]
    assert "cited from" not in summaries[1]
    metas = re.findall(r'<div class="meta">(.*?)</div>', out)
    assert "characters 400–600" in metas[0] and "page 3" in metas[1] and "characters 0–200" in metas[2]


# ---------------------------------------------------------------- 7. a stale index does not hold up the page


def test_a_stale_index_answers_at_once_and_is_updated_in_the_background(fake_rag, tmp_corpus):
    article(tmp_corpus, "late.txt", "Zorbia Herald", "Late news", "Pelle Varga announced a grain deal in Tallinn.")
    r = Rag(fake_rag.settings)
    assert r.index_state().state == "stale"
    release, real_index = threading.Event(), r.index

    def slow_index(**kwargs):
        assert release.wait(30)
        return real_index(**kwargs)

    r.index = slow_index
    logged: list[str] = []
    thread = prepare_index(r, logged.append)
    assert thread is not None and thread.is_alive()  # returned while the update runs
    assert any("updated in the background" in m for m in logged)
    assert not r.ask(KABUL).abstained  # the live index answers meanwhile
    release.set()
    thread.join(60)
    assert r.index_state().state == "current" and any("1 added" in m for m in logged)
    logged.clear()
    thread = prepare_index(r, logged.append)  # current: nothing to index, only the models load
    thread.join(60)
    assert logged == []


def test_without_a_usable_index_it_is_built_before_serving(fake_settings):
    r = Rag(fake_settings)
    assert r.index_state().state == "missing"
    thread = prepare_index(r, lambda m: None)
    assert r.index_state().state == "current"  # built before it returned
    thread.join(60)


def test_serve_returns_at_once_over_a_stale_index(fake_rag, tmp_corpus):
    from rag.surfaces.ui.app import serve

    article(tmp_corpus, "late.txt", "Zorbia Herald", "Late news", "Pelle Varga announced a grain deal in Tallinn.")
    logged: list[str] = []
    port = _free_port()
    demo = serve(fake_rag.settings, port=port, log=logged.append, block=False)
    try:
        assert any("updated in the background" in m for m in logged)
        # idle is idle: Gradio's queue polled every 1 ms and 10 ms, 8% of a core with no client
        # connected (0.9% now; docs/architecture.md has the measurement)
        assert demo._queue.sleep_when_free >= 0.02 and demo._queue.progress_update_sleep_when_free >= 0.1
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).status == 200
        deadline = time.monotonic() + 60
        while Rag(fake_rag.settings).index_state().state != "current":
            assert time.monotonic() < deadline, logged
            time.sleep(0.2)
    finally:
        demo.close()


# ---------------------------------------------------------------- 8. a question too long


def test_a_question_over_the_limit_gets_the_library_message(fake_rag):
    question = "why" * 800
    (reply,) = list(respond(fake_rag, question, [], None))
    text = html.unescape(reply.history[-1]["content"])
    assert "the question is 2,400 characters long; the limit is 2,000" in text
    assert reply.question == question and len(reply.history) == 2


def test_the_reference_day_is_checked_by_the_library(fake_rag):
    (reply,) = list(respond(fake_rag, "What did Iran recently discuss with the Taliban?", [], None,
                            reference_day="last week"))
    assert "reference day: not a date: 'last week'" in html.unescape(reply.history[-1]["content"])
    (reply,) = list(respond(fake_rag, "What did Iran recently discuss with the Taliban?", [], None,
                            reference_day="2018-12-05"))
    assert "articles dated near 2018-12-05 come first" in reply.history[-1]["content"].replace("&#45;", "-")


def test_auth_from_env(monkeypatch):
    monkeypatch.delenv("RAG_UI_AUTH", raising=False)
    assert handlers.auth_from_env() is None
    monkeypatch.setenv("RAG_UI_AUTH", "ann:secret:x")
    assert handlers.auth_from_env() == ("ann", "secret:x")
    monkeypatch.setenv("RAG_UI_AUTH", "ann")
    with pytest.raises(handlers.RagError, match="user:password"):
        handlers.auth_from_env()


# ---------------------------------------------------------------- 9. the timeline


def test_the_timeline_lists_events_oldest_first_with_the_other_spelling(fake_rag):
    timeline = fake_rag.timeline("Araghchi")
    out = timeline_html(fake_rag, timeline)
    text = html.unescape(out)
    n, articles = len(timeline.entries), len({s.doc_id for e in timeline.entries for s in e.sources})
    assert f"Timeline of 'Araghchi': {n} events from {articles} articles (also spelled Araqchi)" in text
    dates = re.findall(r'<li class="tl-event" id="tl-\d+" data-date="([\d-]+)"', out)
    assert dates == [e.date for e in timeline.entries] == sorted(dates)  # one entry per event, oldest first
    assert dates[0].startswith("2018") and dates[-1].startswith("2025")
    assert "week of 2018-12-24 · “Last week” in an article of 2018-12-31" in re.sub(r"<[^>]+>", "", text)
    assert "article date" in text and "Abbas Araqchi" in text and "Abbas Araghchi" in text
    reports = re.findall(r'<details class="report">.*?</details>', out, re.S)
    assert len(reports) == sum(len(e.sources) for e in timeline.entries)
    for src, report in zip([s for e in timeline.entries for s in e.sources], reports):  # each in its article
        assert re.findall(r"<mark>(.*?)</mark>", report, re.S) == [html.escape(src.text)]
        assert html.escape(src.title) in report and src.date in report and html.escape(src.source) in report


def test_dates_are_shown_as_precisely_as_they_are_known():
    assert handlers.Timeline is Timeline  # the public types only
    source = rag.answer.timeline.Source("d", "T", "2019-01-05", "S", "", 0, 1, "x")
    entry = TimelineEntry("2018-11-01", "month", "stated", "last month", "x", source)
    assert (entry.when, render.how_dated(entry)) == ("2018-11", "“last month” in an article of 2019-01-05")
    entry.precision, entry.stated = "year", "last year"
    assert entry.when == "2018"
    entry.precision, entry.basis, entry.date = "day", "article", "2019-01-05"
    assert (entry.when, render.how_dated(entry)) == ("2019-01-05", "article date")
    entry.precision, entry.basis, entry.source.date = "week", "stated", ""
    assert (entry.when, render.how_dated(entry)) == ("week of 2019-01-05",
                                                                        "“last year” in an undated article")


def test_timeline_text_is_escaped_and_every_report_is_shown(fake_settings, tmp_corpus):
    hostile = '<img src="http://127.0.0.1:9/html-img"> <script>new Image()</script>'
    for name, source, title, text in [
        ("wire-a", "Wire A", "Ferry <b>launch</b>",
         f"The Dunmore ferry company launched its new vessel {hostile}, the Kelby Star, on Tuesday at the "
         "Port Ellen yard."),
        ("wire-b", "Wire B & Co", "<script>alert(1)</script>",
         "The Dunmore ferry company launched its new vessel, the Kelby Star, on Tuesday at the yard in "
         "Port Ellen, officials said."),
    ]:
        # .txt: read as it is (Markdown drops HTML tags, which would leave nothing to escape)
        (tmp_corpus / f"{name}.txt").write_text(
            f"---\ntitle: {title}\ndate: 2023-03-15\nsource: {source}\n---\n{text}\n")
    r = Rag(fake_settings)
    r.index()
    out = show_timeline(r, "Dunmore ferry company <i>")
    for live in ("<img", "<script", "<b>", "<i>"):
        assert live not in out, live
    assert "&lt;img src=&quot;http://127.0.0.1:9/html-img&quot;&gt;" in out and "&lt;script&gt;alert(1)" in out
    assert "Timeline of &#x27;Dunmore ferry company &lt;i&gt;&#x27;: 1 event from 2 articles" in out
    assert "Reported by" in out and "Also reported by" in out and "Wire B &amp; Co" in out
    assert out.count('<details class="report">') == 2 and out.count("<mark>") == 2


def test_no_event_filters_and_bad_dates_are_explained(fake_rag):
    assert "No dated event about 'Zorbia' found." in html.unescape(show_timeline(fake_rag, "Zorbia"))
    out = html.unescape(show_timeline(fake_rag, "Araghchi", "2030", "", ""))
    assert "No dated event about 'Araghchi' found with the filters (since 2030-01-01)." in out
    out = html.unescape(show_timeline(fake_rag, "Araghchi", "", "2019-13-45", ""))
    assert "Please fix this and try again: until: not a date: '2019-13-45'" in out
    assert "for example: Araghchi" in show_timeline(fake_rag, "   ")
    assert "the limit is 2,000" in show_timeline(fake_rag, "why " * 600)
    out = html.unescape(show_timeline(fake_rag, "Araghchi", "", "2018", ""))  # the filters apply
    assert "Articles until 2018-12-31." in out and 'data-date="2025' not in out and 'data-date="2018' in out


# ---------------------------------------------------------------- in the browser


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


def upload_files(page, *paths: Path) -> None:
    accordion = page.get_by_text("Add articles")
    if not page.locator("#upload input[type=file]").count():
        accordion.click()
    page.locator("#upload input[type=file]").set_input_files([str(p) for p in paths])


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
    expect(page.locator("#src-1 strong.answer").first).to_be_visible()  # the answer's sentence
    expect(page.locator("#src-1 summary")).to_contain_text("Iran Offers to Mediate")
    expect(page.locator("#src-1 .meta")).to_contain_text("2025-11-09")
    expect(page.locator("#src-1 .meta")).to_contain_text("characters")
    expect(page.locator("#sources")).not_to_contain_text("score")

    shot = os.environ.get("UI_SCREENSHOT")
    if shot:
        page.screenshot(path=str(REPO / shot), full_page=True)


@browser_test
def test_a_follow_up_in_the_chat_is_read_with_the_turn_before(page):
    page.locator("#example").click()
    expect(last_bot_message(page)).to_contain_text("Araghchi", timeout=60_000)
    ask(page, "which Pakistani minister did he speak with by phone?")
    answer = last_bot_message(page)
    expect(answer).to_contain_text("Read as: which Pakistani minister did Abbas Araghchi speak with by phone?",
                                   timeout=60_000)
    expect(answer).to_contain_text("Ishaq Dar")


@browser_test
def test_article_markup_fetches_nothing_and_shows_as_text(page, tmp_path):
    recorder = RequestRecorder()
    try:
        probe = f"http://127.0.0.1:{recorder.port}/probe"  # the recorder hears what the page fetches
        page.evaluate("u => fetch(u, {mode: 'no-cors'})", probe)
        deadline = time.monotonic() + 10
        while "/probe" not in recorder.paths and time.monotonic() < deadline:
            time.sleep(0.1)
        assert recorder.paths == ["/probe"]
        recorder.paths.clear()

        doc = article(tmp_path, "brekka.txt", "Quarvish Post", "Brekka canal opens", hostile_sentence(recorder.port))
        upload_files(page, doc)
        expect(last_bot_message(page)).to_contain_text("Added brekka.txt", timeout=120_000)
        ask(page, "Who opened the Brekka canal on Tuesday?")
        answer = last_bot_message(page)
        expect(answer).to_contain_text("click [n] to open its source", timeout=60_000)
        expect(answer).to_contain_text("Ilse Dornan")
        expect(answer).to_contain_text(f'<img src="http://127.0.0.1:{recorder.port}/html-img">')
        expect(answer).to_contain_text(f"![x](http://127.0.0.1:{recorder.port}/md-img)")
        expect(answer).to_contain_text("<script>")
        expect(answer).to_contain_text("**bold**")
        number = answer.locator('a[href*="#src-"]').first
        number.click()
        n = number.get_attribute("href").split("#src-")[1]
        source = page.locator(f"#src-{n}")
        expect(source.locator("strong.answer")).to_contain_text("<img src=")
        expect(source).to_contain_text("![x](http://127.0.0.1:")
        expect(source).to_contain_text("<script>")
        time.sleep(1.5)  # anything the page was going to fetch, it has asked for by now
        assert page.locator(f'img[src*=":{recorder.port}/"]').count() == 0
        assert recorder.paths == []
    finally:
        recorder.close()


@browser_test
def test_uploaded_article_can_be_asked_about_at_once(page, tmp_path):
    doc = article(tmp_path, "zorbia news!.txt", "Zorbia Herald", "Zorbia signs grain deal",  # a name to sanitise
                  "The Zorbian ambassador Pelle Varga announced a grain deal in "
                  "Tallinn. The agreement covers wheat exports for three years.")
    before = page.locator("#chat .message-row").count()
    upload_files(page, doc)
    message = last_bot_message(page)
    expect(message).to_contain_text(  # the name as the browser sent it, and as saved
        re.compile(r"Added zorbia news!?\.txt \(saved as uploads/zorbia_news_?\.txt\): 1 document indexed"),
        timeout=120_000)
    assert page.locator("#chat .message-row").count() == before + 1  # its own message

    page.get_by_text("Search settings").click()  # the new article's source is offered as a filter
    page.locator("#source input").click()
    expect(page.get_by_role("option", name=re.compile("Zorbia Herald"))).to_be_visible(timeout=10_000)
    page.keyboard.press("Escape")

    ask(page, "Who announced a grain deal in Tallinn?")
    answer = last_bot_message(page)
    expect(answer).to_contain_text("click [n] to open its source", timeout=60_000)
    expect(answer).to_contain_text("Pelle Varga")


@browser_test
def test_a_rejected_upload_is_explained_and_leaves_no_error_badge(page, tmp_path):
    bad = tmp_path / "tool.exe"
    bad.write_bytes(b"MZ not an article")
    upload_files(page, bad)
    expect(last_bot_message(page)).to_contain_text("tool.exe: not accepted", timeout=60_000)
    upload_box = page.locator("#upload")
    expect(upload_box).not_to_contain_text("Error", timeout=5_000)
    expect(upload_box).not_to_contain_text("tool.exe")  # cleared, ready for the next file
    expect(page.locator("#upload input[type=file]")).to_have_count(1)


@browser_test
def test_a_file_over_the_size_limit_is_refused_and_leaves_no_error_badge(page, tmp_path):
    big = tmp_path / "huge.txt"
    with big.open("wb") as f:
        f.truncate(rag.MAX_UPLOAD_BYTES + 1)
    upload_files(page, big)
    expect(page.get_by_text(re.compile("exceed the maximum allowed size"))).to_be_visible(timeout=30_000)
    expect(page.locator("#upload")).not_to_contain_text("Error", timeout=5_000)
    expect(page.locator("#upload input[type=file]")).to_have_count(1)


@browser_test
def test_copy_gives_the_text_as_shown(browser, app_url):
    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
    try:
        pg = context.new_page()
        pg.goto(app_url)
        ask(pg, KABUL)
        answer = last_bot_message(pg)
        expect(answer).to_contain_text("click [n] to open its source", timeout=60_000)
        answer.hover()
        pg.locator('#chat button[title="Copy message"]').last.click()
        copied = pg.evaluate("navigator.clipboard.readText()")
        assert "Iran" in copied and "&#" not in copied and "](#src-" not in copied
        assert copied == answer.locator(".message-content").inner_text().strip()
    finally:
        context.close()


@browser_test
def test_empty_question_gets_a_hint_without_an_empty_bubble_and_the_page_stays_up(page):
    page.locator("#ask").click()
    expect(last_bot_message(page)).to_contain_text("Please type a question", timeout=30_000)
    expect(page.locator("#chat .message-row.user-row")).to_have_count(0)
    page.locator("#question textarea").fill("   ")
    page.locator("#question textarea").press("Enter")
    page.locator("#ask").click()
    time.sleep(1)
    expect(page.locator("#chat .message-row")).to_have_count(1)  # the hint once, nothing else
    ask(page, KABUL)
    expect(last_bot_message(page)).to_contain_text("Iran", timeout=60_000)
    expect(page.locator("#chat .message-row.user-row")).to_have_count(1)


@browser_test
def test_new_conversation_clears_the_chat_and_the_sources(page):
    ask(page, KABUL)
    expect(last_bot_message(page)).to_contain_text("click [n] to open its source", timeout=60_000)
    expect(page.locator("#src-1")).to_have_count(1)
    page.locator("#new").click()
    expect(page.locator("#chat .message-row")).to_have_count(0, timeout=10_000)
    expect(page.locator("#sources")).to_contain_text("Sources appear here after a question")


@browser_test
def test_bad_date_is_reported_in_the_chat(page):
    page.get_by_text("Search settings").click()
    page.get_by_label("Since (YYYY-MM-DD)").fill("2019-13-45")
    ask(page, KABUL)
    expect(last_bot_message(page)).to_contain_text("since: not a date: '2019-13-45'", timeout=30_000)
    expect(page.locator("#question textarea")).to_have_value(KABUL)


@browser_test
def test_a_question_over_the_limit_is_refused_with_the_limit(page):
    ask(page, "why " * 600)
    expect(last_bot_message(page)).to_contain_text("the limit is 2,000", timeout=30_000)


@browser_test
def test_reference_day_is_used_for_a_question_about_recent_events(page):
    page.get_by_text("Search settings").click()
    expect(page.locator("#reference-day")).to_contain_text("the day that 'this week' or 'recently' means")
    page.get_by_label("Reference day (YYYY-MM-DD)").fill("2018-12-05")
    ask(page, "What did Iran recently discuss with the Taliban?")
    answer = last_bot_message(page)
    expect(answer).to_contain_text("click [n] to open its source", timeout=60_000)
    expect(answer).to_contain_text("articles dated near 2018-12-05 come first")
    page.get_by_label("Reference day (YYYY-MM-DD)").fill("last week")
    ask(page, "What did Iran recently discuss with the Taliban?")
    expect(last_bot_message(page)).to_contain_text("reference day: not a date: 'last week'", timeout=30_000)


def show_timeline_of(page, subject: str) -> None:
    page.get_by_role("tab", name="Timeline").click()
    page.get_by_label("Person, organisation, place or topic").fill(subject)
    page.get_by_role("button", name="Show timeline").click()


@browser_test
def test_the_timeline_tab_shows_araghchi_s_events_in_order(page):
    show_timeline_of(page, "Araghchi")
    panel = page.locator("#timeline")
    expect(panel.locator(".tl-header")).to_contain_text(re.compile(
        r"Timeline of 'Araghchi': \d+ events from \d+ articles \(also spelled Araqchi\)"), timeout=60_000)
    dates = panel.locator(".tl-event .tl-date").all_inner_texts()
    assert dates[0] == "week of 2018-12-24" and dates[-1] == "2025-11-09" and "2018-12-31" in dates
    first = panel.locator(".tl-event").first
    expect(first.locator(".tl-how")).to_contain_text("“Last week” in an article of 2018-12-31")
    expect(first.locator(".tl-text")).to_contain_text("Araqchi")
    first.locator("details.report summary").first.click()  # the sentence in its article
    expect(first.locator("details.report mark")).to_be_visible()
    expect(first.locator("details.report .article")).to_contain_text("Bahram Qassemi")
    page.get_by_role("tab", name="Chat").click()  # the chat is as it was
    ask(page, KABUL)
    expect(last_bot_message(page)).to_contain_text("Iran", timeout=60_000)


@browser_test
def test_the_timeline_says_when_nothing_matches(page):  # a subject no test uploads an article about
    show_timeline_of(page, "Quokkaville")
    expect(page.locator("#timeline")).to_contain_text("No dated event about 'Quokkaville' found.", timeout=60_000)
    page.get_by_label("Articles since").fill("2030")
    page.get_by_role("button", name="Show timeline").click()
    expect(page.locator("#timeline")).to_contain_text(
        "No dated event about 'Quokkaville' found with the filters (since 2030-01-01).", timeout=60_000)
    page.get_by_label("Articles since").fill("2019-13-45")
    page.get_by_role("button", name="Show timeline").click()
    expect(page.locator("#timeline")).to_contain_text("since: not a date: '2019-13-45'", timeout=60_000)


@browser_test
def test_a_troop_count_that_changed_is_shown_with_each_value_cited(page):
    ask(page, "How many US troops were in Afghanistan?")
    answer = last_bot_message(page)
    expect(answer).to_contain_text("The sources give the number of US troops differently over time (newest first):",
                                   timeout=60_000)
    text = answer.inner_text()
    assert text.index("5,000 as of 2019-09-17") < text.index("14,000 as of 2019-01-23") < text.index("7,000 as of 2018-12-31")
    line = re.search(r"7,000 as of 2018-12-31 \[(\d+)\]", text)
    assert line, text
    n = line.group(1)
    answer.locator(f'a[href*="#src-{n}"]').last.click()  # the value's citation opens its source
    expect(page.locator(f"#src-{n} .meta")).to_contain_text("2018-12-31")
    expect(page.locator(f"#src-{n}")).to_contain_text("7,000")
    shot = os.environ.get("UI_CONFLICT_SCREENSHOT")
    if shot:
        page.screenshot(path=str(REPO / shot), full_page=True)


def test_sources_that_differ_are_shown_side_by_side_in_the_answer():
    from rag.answer.conflicts import Conflict, ConflictValue

    cites = [Citation(n, f"d{n}", f"T{n}", d, "S", 0, 10, "x", 0.5) for n, d in ((1, "2019-01-23"), (2, "2018-12-31"))]
    answer = Answer("How many US troops?", "About 14,000 US troops <b>x</b> [1]", False, citations=cites,
                    conflicts=[Conflict("the number of US troops", "update",
                                        [ConflictValue("14,000", [1], ["2019-01-23"], ["d1"], "2019-01-23"),
                                         ConflictValue("7,000", [2], ["2018-12-31"], ["d2"], "2018-12-31")])])
    text = html.unescape(handlers.answer_message(answer))
    assert "The sources give the number of US troops differently over time (newest first):" in text
    assert text.index("14,000 as of 2019-01-23") < text.index("7,000 as of 2018-12-31")
    assert "(#src-2)" in text  # [2] links to its source
    assert "<b>" not in handlers.answer_message(answer)  # still escaped
