"""The browser chat: ``python -m rag ui`` or ``python ui/app.py``.

Everything goes through the public ``rag`` API: ``Rag.ask`` answers, ``Rag.index`` takes in
uploads, ``Rag.stats`` lists the sources. The page only renders what they return.
"""

from __future__ import annotations

import html
import importlib.util
import os
import queue
import re
import threading
import time
from datetime import date
from pathlib import Path

from rag import Answer, Conversation, Filters, MissingExtraError, Rag, RagError, Settings
from rag.chunk import sentence_spans

try:
    import gradio as gr
except ImportError:  # pragma: no cover - depends on the install
    raise MissingExtraError("gradio", "ui") from None

EXAMPLE = "Who offered to mediate between Kabul and Islamabad?"
LLM_CHOICES = {"none (extractive)": "none", "openai-compatible server (RAG_LLM_URL)": "openai"}
if importlib.util.find_spec("llama_cpp") is not None:  # the `llm` extra is installed
    LLM_CHOICES["llamacpp (local GGUF)"] = "llamacpp"
UPLOAD_SUFFIXES = (".txt", ".md", ".html", ".htm", ".jsonl")
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
UPLOAD_FOLDER = "uploads"
CONTEXT_CHARS = 600  # article text shown on each side of a cited passage
CONCURRENCY = 4

CSS = """
.src details { border: 1px solid var(--border-color-primary); border-radius: 6px; padding: 4px 8px; margin: 4px 0; }
.src summary { cursor: pointer; font-weight: 600; }
.src .meta { color: var(--body-text-color-subdued); font-size: 0.9em; margin: 4px 0; }
.src .article { white-space: pre-wrap; font-size: 0.92em; line-height: 1.45; }
.src mark { background: #ffe08a; color: #000; padding: 0 1px; }
.src mark strong.answer { background: #ffc933; }
"""

# A click on [n] in an answer opens source n in the sources panel rather than following the link.
HEAD = """<script>
document.addEventListener("click", (e) => {
  const a = e.target.closest && e.target.closest('a[href*="#src-"]');
  if (!a) return;
  e.preventDefault(); e.stopPropagation();
  const d = document.getElementById(a.getAttribute("href").split("#")[1]);
  if (d) { d.open = true; d.scrollIntoView({behavior: "smooth", block: "center"}); }
}, true);
</script>"""


# ---------------------------------------------------------------- rendering


def _citation_links(text: str) -> str:
    """``[2]`` -> a link that opens source 2 in the sources panel."""
    return re.sub(r"\[(\d+)\]", r"[[\1]](#src-\1)", text)


def _article_text(rag: Rag, doc_id: str) -> str:
    doc = rag.document(doc_id)
    return (doc or {}).get("text") or ""


def _in_context(article: str, start: int, end: int, passage: str, answer_spans: list[tuple[int, int]] = ()) -> str:
    """The passage in <mark>, with up to CONTEXT_CHARS of its article on either side, all escaped.

    ``answer_spans`` (article offsets inside the passage) are the answer's sentences: in bold.
    """
    marked = f"<mark>{_emphasise(passage, start, answer_spans)}</mark>"
    if not article or article[start:end] != passage:
        return marked
    lo, hi = max(0, start - CONTEXT_CHARS), min(len(article), end + CONTEXT_CHARS)
    if lo > 0:  # start and end on a word boundary
        lo = article.find(" ", lo, start) + 1 or lo
    if hi < len(article):
        cut = article.rfind(" ", end, hi)
        hi = cut if cut > 0 else hi
    before = ("…" if lo > 0 else "") + html.escape(article[lo:start])
    after = html.escape(article[end:hi]) + ("…" if hi < len(article) else "")
    return f"{before}{marked}{after}"


def _emphasise(passage: str, offset: int, spans: list[tuple[int, int]]) -> str:
    """``passage`` escaped, with the spans (article offsets; ``offset`` is the passage's) in <strong>."""
    out, pos = [], 0
    for s, e in sorted(spans):
        s, e = max(s - offset, pos), min(e - offset, len(passage))
        if s < e:
            out += [html.escape(passage[pos:s]), f'<strong class="answer">{html.escape(passage[s:e])}</strong>']
            pos = e
    return "".join(out) + html.escape(passage[pos:])


def _answer_spans(answer: Answer, doc_id: str, start: int, passage: str) -> list[tuple[int, int]]:
    """Article spans of the answer's sentences that lie in this passage."""
    starts = {s for d, s in answer.evidence if d == doc_id}
    return [(start + s, start + e) for s, e in sentence_spans(passage) if start + s in starts]


def sources_html(rag: Rag, answer: Answer | None) -> str:
    """Each cited passage as a <details>: title, date, source, score, and the passage in its article."""
    if answer is None or not answer.citations:
        return '<div class="src"><p>Sources appear here after a question.</p></div>'
    parts = ['<div class="src">']
    for c in answer.citations:
        meta = " · ".join(html.escape(x) for x in (c.date, c.source) if x)
        title = html.escape(c.title or c.doc_id)
        link = f' · <a href="{html.escape(c.url)}" target="_blank" rel="noopener">link</a>' if c.url.startswith(("http://", "https://")) else ""
        body = _in_context(_article_text(rag, c.doc_id), c.start, c.end, c.text,
                           _answer_spans(answer, c.doc_id, c.start, c.text))
        parts.append(
            f'<details id="src-{c.n}" class="citation"><summary>[{c.n}] {title} '
            f'<span class="score">(score {c.score:.4f})</span></summary>'
            f'<div class="meta">{meta or "no date or source"}{link} · {html.escape(c.doc_id)}, '
            f'characters {c.start}-{c.end}</div><div class="article">{body}</div></details>'
        )
    parts.append("</div>")
    return "".join(parts)


# ---------------------------------------------------------------- handlers' helpers


def parse_date(name: str, value: str) -> str:
    """An ISO date from a settings field ("" when empty); ValueError with a readable message."""
    value = (value or "").strip()
    if not value:
        return ""
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise ValueError(f"“{value}” is not a date for “{name}”; use YYYY-MM-DD, e.g. 2019-01-31.") from None


def parse_filters(since: str, until: str, source: str) -> Filters:
    """Filters from the settings panel; ValueError with a readable message for a bad date."""
    source = (source or "").strip()
    return Filters(since=parse_date("since", since), until=parse_date("until", until),
                   sources=(source,) if source else ())


def safe_name(name: str) -> str:
    """A file name with no folders and only [A-Za-z0-9._-]; never hidden (the corpus reader skips those)."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = re.sub(r"[^A-Za-z0-9._-]", "_", base).lstrip(".-") or "upload"
    return base[-120:]


def _free_path(folder: Path, name: str, data: bytes) -> Path | None:
    """Where to save ``data`` as ``name`` in ``folder``; None when an identical file is already there."""
    stem, dot, suffix = name.partition(".")
    candidate, n = folder / name, 1
    while candidate.exists():
        if candidate.read_bytes() == data:
            return None
        candidate, n = folder / f"{stem}-{n}{dot}{suffix}", n + 1
    return candidate


def save_uploads(rag: Rag, files: list[str]) -> tuple[list[Path], list[str]]:
    """Copy uploaded files into the corpus; return the saved paths and a note per rejected file."""
    folder = rag.settings.corpus_paths[0]
    if not folder.is_dir():
        raise RagError(f"uploads need a corpus folder, but the corpus is the file {folder.name}; "
                       "start the app with --corpus FOLDER")
    folder = folder / UPLOAD_FOLDER
    folder.mkdir(exist_ok=True)
    saved, notes = [], []
    for f in files or []:
        src = Path(f)
        name = safe_name(src.name)
        if not name.lower().endswith(UPLOAD_SUFFIXES):
            notes.append(f"{name}: not accepted (use {', '.join(UPLOAD_SUFFIXES)})")
            continue
        size = src.stat().st_size
        if size > MAX_UPLOAD_BYTES:
            notes.append(f"{name}: too large ({size / 1e6:.1f} MB; the limit is {MAX_UPLOAD_BYTES // 2**20} MB)")
            continue
        data = src.read_bytes()
        dest = _free_path(folder, name, data)
        if dest is None:
            notes.append(f"{name}: already in the corpus")
            continue
        dest.write_bytes(data)
        saved.append(dest)
    return saved, notes


def _stream_answer(rag: Rag, question: str, **kwargs):
    """Yield the growing answer text, then the Answer.

    Tokens from an LLM backend are passed on as they come; an extractive answer, computed at
    once, is revealed a few words at a time so that both read the same way.
    """
    tokens: queue.Queue = queue.Queue()
    result: dict = {}

    def work() -> None:
        try:
            result["answer"] = rag.ask(question, on_token=tokens.put, **kwargs)
        except Exception as e:  # noqa: BLE001 - re-raised in the handler's thread
            result["error"] = e
        tokens.put(None)

    threading.Thread(target=work, daemon=True).start()
    text = ""
    while (tok := tokens.get()) is not None:
        text += tok
        yield text
    if "error" in result:
        raise result["error"]
    answer: Answer = result["answer"]
    if not text:
        words = answer.answer.split(" ")
        for i in range(3, len(words), 3):
            yield " ".join(words[:i])
            time.sleep(0.02)
    yield answer


# ---------------------------------------------------------------- the app


def build_app(rag: Rag) -> gr.Blocks:
    """The chat page for ``rag`` (which should already be indexed)."""

    def source_choices() -> list[tuple[str, str]]:
        try:
            names = [s["source"] for s in rag.stats().get("top_sources", []) if s["source"] != "(unknown)"]
        except RagError:
            names = []
        return [("All sources", "")] + [(name, name) for name in names]

    def respond(message, history, conversation, k, since, until, source, llm, as_of):
        history = list(history or []) + [{"role": "user", "content": message or ""}]
        conversation = conversation or Conversation()
        sources_out = gr.update()

        def say(text: str):
            return history + [{"role": "assistant", "content": text}], conversation, sources_out, ""

        if not (message or "").strip():
            yield say("Please type a question about the articles, for example: " + EXAMPLE)
            return
        try:
            filters = parse_filters(since, until, source)
            as_of = parse_date("as of", as_of)
            answer = None
            for part in _stream_answer(rag, message, k=int(k), filters=filters, conversation=conversation,
                                       llm=LLM_CHOICES.get(llm, "none"), as_of=as_of):
                if isinstance(part, str):
                    yield say(_citation_links(part) + " …")
                else:
                    answer = part
            sources_out = sources_html(rag, answer)
            text = _citation_links(answer.answer)
            if answer.ungrounded and answer.extractive_answer:
                text += "\n\n**Extractive answer (cited):** " + _citation_links(answer.extractive_answer)
            notes = list(answer.warnings)
            if answer.recent_to:
                notes.append(f"a question about recent events: articles dated near {answer.recent_to} come first "
                             "(“As of” in Search settings sets the day)")
            if notes:
                text += "\n\n" + "\n".join(f"*Note: {w}*" for w in notes)
            text += f"\n\n<sub>{answer.timings_ms.get('total', 0):.0f} ms · click [n] to open its source</sub>"
            yield say(text)
        except ValueError as e:
            yield say(str(e))
        except RagError as e:
            yield say(f"Sorry, that did not work: {e}")
        except Exception as e:  # noqa: BLE001 - the page must stay up whatever goes wrong
            yield say(f"Sorry, something went wrong ({type(e).__name__}: {e}). Please try again.")

    def new_conversation():
        return [], Conversation(), sources_html(rag, None), ""

    def upload(files, history, progress=gr.Progress()):
        history = list(history or [])

        def on_progress(done: int, total: int, stage: str = "Indexing") -> None:
            try:
                progress((done, max(total, 1)), desc=stage)
            except Exception:  # noqa: BLE001 - progress display is best effort
                pass

        try:
            saved, notes = save_uploads(rag, files)
            lines = []
            if saved:
                progress(0, desc="Indexing")
                report = rag.index(progress=on_progress)
                names = {str(p) for p in saved}
                bad = [s for s in report.skipped if s.path in names]
                ok = len(saved) - len({s.path for s in bad})
                lines.append(f"Added {ok} file(s) to the corpus; {report.documents} documents are indexed "
                             f"({report.seconds:.1f}s). You can ask about them now.")
                notes += [f"{Path(s.path).name}: could not be read ({s.reason})" for s in bad]
            lines += [f"- {n}" for n in notes]
            text = "\n".join(lines) or "No file was uploaded."
        except RagError as e:
            text = f"Upload failed: {e}"
        except Exception as e:  # noqa: BLE001
            text = f"Upload failed ({type(e).__name__}: {e})."
        return history + [{"role": "assistant", "content": text}], None, gr.update(choices=source_choices())

    with gr.Blocks(title="Ask the news articles") as demo:
        gr.Markdown("## Ask the news articles\nAnswers are sentences from the articles, each cited as [n]; "
                    "click a citation to read it in its article.")
        conversation = gr.State(None)
        with gr.Row():
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(label="Chat", height=480, elem_id="chat")
                with gr.Row():
                    box = gr.Textbox(placeholder="Ask a question about the articles…", show_label=False,
                                     scale=5, elem_id="question", autofocus=True)
                    send = gr.Button("Ask", variant="primary", scale=1, elem_id="ask")
                with gr.Row():
                    example = gr.Button(EXAMPLE, size="sm", elem_id="example")
                    new = gr.Button("New conversation", size="sm", elem_id="new")
            with gr.Column(scale=2):
                gr.Markdown("### Sources")
                panel = gr.HTML(sources_html(rag, None), elem_id="sources")
        with gr.Accordion("Search settings", open=False):
            with gr.Row():
                k = gr.Slider(1, 20, value=min(max(rag.settings.k, 1), 20), step=1, label="Passages")
                since = gr.Textbox(label="Since (YYYY-MM-DD)", placeholder="any date")
                until = gr.Textbox(label="Until (YYYY-MM-DD)", placeholder="any date")
                source = gr.Dropdown(source_choices(), value="", label="Source", allow_custom_value=True,
                                     elem_id="source")
                llm = gr.Dropdown(list(LLM_CHOICES), value=next(iter(LLM_CHOICES)), label="Answer backend")
                as_of = gr.Textbox(label="As of (YYYY-MM-DD)", placeholder="newest article",
                                   info="the day that “this week” or “recently” means")
        with gr.Accordion("Add articles", open=False):
            files = gr.File(label=f"Articles ({', '.join(UPLOAD_SUFFIXES)}; up to {MAX_UPLOAD_BYTES // 2**20} MB each)",
                            file_count="multiple", file_types=list(UPLOAD_SUFFIXES), elem_id="upload")

        ask_inputs = [box, chatbot, conversation, k, since, until, source, llm, as_of]
        ask_outputs = [chatbot, conversation, panel, box]
        box.submit(respond, ask_inputs, ask_outputs, api_name="ask")
        send.click(respond, ask_inputs, ask_outputs)
        example.click(lambda: EXAMPLE, None, box).then(respond, ask_inputs, ask_outputs)
        new.click(new_conversation, None, [chatbot, conversation, panel, box])
        files.upload(upload, [files, chatbot], [chatbot, files, source])
    return demo


def auth_from_env() -> tuple[str, str] | None:
    """``RAG_UI_AUTH=user:password`` turns on the login page."""
    raw = os.environ.get("RAG_UI_AUTH", "")
    if not raw:
        return None
    user, sep, password = raw.partition(":")
    if not (sep and user and password):
        raise RagError("RAG_UI_AUTH must look like user:password")
    return user, password


def serve(settings: Settings, port: int = 7860, log=print, block: bool = True) -> gr.Blocks:
    """Index if needed, then serve the app on 127.0.0.1:``port``."""
    rag = Rag(settings)
    report = rag.ensure_index(log=log)
    if report is not None:
        for s in report.skipped:
            log(f"warning: skipped {s}")
    threading.Thread(target=rag.warm, daemon=True).start()
    demo = build_app(rag)
    demo.queue(default_concurrency_limit=CONCURRENCY)
    log(f"Serving on http://127.0.0.1:{port}")
    demo.launch(server_name="127.0.0.1", server_port=port, share=False, auth=auth_from_env(),
                max_file_size=MAX_UPLOAD_BYTES, css=CSS, head=HEAD, prevent_thread_lock=not block,
                show_error=False, quiet=True)
    return demo


def main(argv: list[str] | None = None) -> int:
    """``python ui/app.py [--port N] [--corpus PATH] [--index-dir DIR]``: the same as ``python -m rag ui``."""
    import sys

    from rag.cli import main as cli_main

    return cli_main(["ui", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
