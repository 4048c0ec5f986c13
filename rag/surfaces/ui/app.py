"""The browser chat's page: ``python -m rag ui``.

This module lays out the page and wires its events to ``ui.handlers``, where the logic
lives; both use only the public ``rag`` API.
"""

from __future__ import annotations

from rag import MAX_UPLOAD_BYTES, UPLOAD_SUFFIXES, MissingExtraError, Rag, Settings
from rag.surfaces.ui import handlers
from rag.surfaces.ui.handlers import LLM_CHOICES

try:
    import gradio as gr
except ImportError:  # pragma: no cover - depends on the install
    raise MissingExtraError("gradio", "ui") from None

CONCURRENCY = 4

CSS = """
.src details { border: 1px solid var(--border-color-primary); border-radius: 6px; padding: 4px 8px; margin: 4px 0; }
.src summary { cursor: pointer; font-weight: 600; }
.src summary .part { font-weight: 400; color: var(--body-text-color-subdued); }
.src .order { color: var(--body-text-color-subdued); font-size: 0.9em; margin: 0 0 4px 0; }
.src .meta { color: var(--body-text-color-subdued); font-size: 0.9em; margin: 4px 0; }
.src .article { white-space: pre-wrap; font-size: 0.92em; line-height: 1.45; }
.src mark { background: #ffe08a; color: #000; padding: 0 1px; }
.src strong.answer { background: #ffc933; color: #000; }
.src u.short { text-decoration: underline 2px; text-underline-offset: 2px; }
.tl .tl-header { font-weight: 600; font-size: 1.05em; margin: 0 0 4px 0; }
.tl .tl-events { list-style: none; padding: 0; margin: 8px 0 0 0; }
.tl .tl-event { border-left: 3px solid var(--color-accent); padding: 2px 0 6px 12px; margin: 0 0 10px 4px; }
.tl .tl-date { font-weight: 700; }
.tl .tl-how { color: var(--body-text-color-subdued); font-size: 0.9em; }
.tl .tl-text { margin: 4px 0; }
.tl .tl-label { font-weight: 400; color: var(--body-text-color-subdued); }
"""

# What the page does in the browser:
# - a click on [n] in an answer opens source n in the sources panel rather than following the link;
# - "Copy message" / "Copy conversation" copy the text as shown: the messages hold escaped Markdown
#   (``&#46;`` for a full stop), which is what Gradio's own buttons would copy;
# - an upload the browser refuses (over the size limit) leaves no "Error" badge on the upload box:
#   the notice that says why is enough, and the box stays ready for the next file.
HEAD = """<script>
document.addEventListener("click", (e) => {
  const a = e.target.closest && e.target.closest('a[href*="#src-"]');
  if (!a) return;
  e.preventDefault(); e.stopPropagation();
  const d = document.getElementById(a.getAttribute("href").split("#")[1]);
  if (d) { d.open = true; d.scrollIntoView({behavior: "smooth", block: "center"}); }
}, true);
document.addEventListener("click", (e) => {
  const b = e.target.closest && e.target.closest("#chat button");
  const what = b && (b.getAttribute("title") || b.getAttribute("aria-label") || "");
  if (!navigator.clipboard || !["Copy message", "Copy conversation"].includes(what)) return;
  let texts = [];
  if (what === "Copy message") {
    let row = b.closest(".message-buttons");
    while (row && !row.classList.contains("message-row")) row = row.previousElementSibling;
    const content = row && row.querySelector(".message-content");
    if (content) texts = [content.innerText.trim()];
  } else {
    texts = [...document.querySelectorAll("#chat .message-row .message-content")].map((c) => c.innerText.trim());
  }
  if (!texts.length) return;
  e.preventDefault(); e.stopPropagation();
  navigator.clipboard.writeText(texts.join("\\n\\n"));
}, true);
new MutationObserver(() => {
  for (const t of document.querySelectorAll('#upload [data-testid="status-tracker"]')) {
    const clear = t.querySelector(".error") && t.querySelector(".clear-status button");
    if (clear) clear.click();
  }
}).observe(document.documentElement, {subtree: true, childList: true});
</script>"""


def filter_boxes(rag: Rag, since_label: str, until_label: str, info: str, prefix: str = ""):
    """The since, until and source inputs of a search, in the current row."""
    since = gr.Textbox(label=since_label, placeholder="any date", info=info, elem_id=f"{prefix}since")
    until = gr.Textbox(label=until_label, placeholder="any date", info=info, elem_id=f"{prefix}until")
    source = gr.Dropdown(handlers.source_choices(rag), value="", label="Source", allow_custom_value=True,
                         elem_id=f"{prefix}source")
    return since, until, source


def build_app(rag: Rag) -> gr.Blocks:
    """The chat page for ``rag`` (which should already have a usable index)."""

    def respond(message, history, conversation, k, since, until, source, llm, reference_day):
        for r in handlers.respond(rag, message, history, conversation, k, since, until, source, llm, reference_day):
            yield r.history, r.conversation, gr.update() if r.sources is None else r.sources, r.question

    def new_conversation():
        return [], None, handlers.sources_html(rag, None), ""

    def sources_dropdown():
        return gr.update(choices=handlers.source_choices(rag))

    def example_button():
        examples = handlers.example_questions(rag)
        return gr.update(value=examples[0] if examples else "", visible=bool(examples))

    def upload(files, history, progress=gr.Progress()):
        def on_progress(done: int, total: int, stage: str = "Indexing") -> None:
            try:
                progress((done, max(total, 1)), desc=stage)
            except Exception:  # noqa: BLE001 - progress display is best effort
                pass

        history = handlers.upload(rag, files, history, on_progress)
        return history, None, sources_dropdown(), sources_dropdown()

    def timeline(query, since, until, source, all_events, progress=gr.Progress()):
        def on_progress(done: int, total: int, stage: str = "Reading") -> None:
            try:
                progress((done, max(total, 1)), desc=stage)
            except Exception:  # noqa: BLE001 - progress display is best effort
                pass

        return handlers.show_timeline(rag, query, since, until, source, on_progress, all_events=bool(all_events))

    with gr.Blocks(title="Ask the news articles") as demo:
        gr.Markdown("## Ask the news articles\nAnswers are sentences from the articles, each cited as [n]; "
                    "click a citation to read it in its article. The Timeline tab lists the dated events "
                    "about a person, organisation, place or topic.")
        conversation = gr.State(None)
        with gr.Tabs(elem_id="tabs"):
            with gr.Tab("Chat", id="chat-tab", elem_id="chat-tab"):
                with gr.Row():
                    with gr.Column(scale=3):
                        chatbot = gr.Chatbot(label="Chat", height=480, elem_id="chat", latex_delimiters=[],
                                             allow_tags=False, sanitize_html=True)
                        with gr.Row():
                            box = gr.Textbox(placeholder="Ask a question about the articles…", show_label=False,
                                             scale=5, elem_id="question", autofocus=True)
                            send = gr.Button("Ask", variant="primary", scale=1, elem_id="ask")
                        with gr.Row():
                            examples = handlers.example_questions(rag)  # from this index's own articles
                            example = gr.Button(examples[0] if examples else "", size="sm", elem_id="example",
                                                visible=bool(examples))
                            new = gr.Button("New conversation", size="sm", elem_id="new")
                    with gr.Column(scale=2):
                        gr.Markdown("### Sources")
                        panel = gr.HTML(handlers.sources_html(rag, None), elem_id="sources")
                with gr.Accordion("Search settings", open=False):
                    with gr.Row():
                        k = gr.Slider(1, 20, value=min(max(rag.settings.k, 1), 20), step=1, label="Passages")
                        since, until, source = filter_boxes(rag, "Since (YYYY-MM-DD)", "Until (YYYY-MM-DD)",
                                                            "or YYYY-MM, YYYY")
                        llm = gr.Dropdown(list(LLM_CHOICES), value=handlers.llm_label(rag.settings.llm),
                                          label="Answer backend", elem_id="llm")
                        reference_day = gr.Textbox(label="Reference day (YYYY-MM-DD)", placeholder="newest article",
                                                   info="the day that 'this week' or 'recently' means",
                                                   elem_id="reference-day")
                with gr.Accordion("Add articles", open=False):
                    files = gr.File(label=f"Articles ({', '.join(UPLOAD_SUFFIXES)}; up to {MAX_UPLOAD_BYTES // 2**20} MB each)",
                                    file_count="multiple", elem_id="upload")
            with gr.Tab("Timeline", id="timeline-tab", elem_id="timeline-tab"):
                gr.Markdown("Dated events about a subject, oldest first, each with the articles that report it.")
                with gr.Row():
                    tl_query = gr.Textbox(label="Person, organisation, place or topic",
                                          placeholder=f"for example: {handlers.TIMELINE_EXAMPLE}", scale=5,
                                          elem_id="tl-query")
                    tl_show = gr.Button("Show timeline", variant="primary", scale=1, elem_id="tl-show")
                with gr.Row():
                    # Labelled by article date: the filters choose articles, not event dates.
                    tl_since, tl_until, tl_source = filter_boxes(rag, "Articles since", "Articles until",
                                                                 "YYYY-MM-DD, YYYY-MM or YYYY", prefix="tl-")
                    tl_all = gr.Checkbox(label="Every event (not only those reported by 3+ articles)", value=False,
                                         elem_id="tl-all")
                tl_panel = gr.HTML(handlers.timeline_html(rag, None), elem_id="timeline")

        ask_inputs = [box, chatbot, conversation, k, since, until, source, llm, reference_day]
        ask_outputs = [chatbot, conversation, panel, box]
        box.submit(respond, ask_inputs, ask_outputs, api_name="ask")
        send.click(respond, ask_inputs, ask_outputs)
        example.click(lambda question: question, example, box).then(respond, ask_inputs, ask_outputs)
        new.click(new_conversation, None, [chatbot, conversation, panel, box])
        files.upload(upload, [files, chatbot], [chatbot, files, source, tl_source], show_progress_on=[files])
        tl_inputs = [tl_query, tl_since, tl_until, tl_source, tl_all]
        tl_query.submit(timeline, tl_inputs, tl_panel, api_name="timeline")
        tl_show.click(timeline, tl_inputs, tl_panel)
        # an index updated since the page was built
        demo.load(lambda: (sources_dropdown(), sources_dropdown(), example_button()), None,
                  [source, tl_source, example])
    return demo


QUEUE_POLL_S = 0.02  # how often Gradio's queue looks for a new event when it has none
PROGRESS_POLL_S = 0.1  # how often it looks for progress to send


def idle_quietly(demo: gr.Blocks) -> None:
    """Gradio's queue polls for work every millisecond, and for progress every 10 ms, even with
    no client connected: about 8% of a core while idle (2 cores, Intel Xeon). Polling every 20 ms
    and 100 ms keeps the idle server near 1% of a core; an answer starts at most 20 ms later,
    and progress bars update ten times a second. (Gradio 6 offers no setting for these: they are
    attributes of its queue.)"""
    queue = getattr(demo, "_queue", None)
    if queue is not None and hasattr(queue, "sleep_when_free"):
        queue.sleep_when_free = max(queue.sleep_when_free, QUEUE_POLL_S)
        queue.progress_update_sleep_when_free = max(queue.progress_update_sleep_when_free, PROGRESS_POLL_S)


def serve(settings: Settings, port: int = 7860, log=print, block: bool = True) -> gr.Blocks:
    """Serve the app on 127.0.0.1:``port``: build the index first only when there is no usable
    one; a stale index answers at once while it is updated in the background."""
    rag = Rag(settings)
    handlers.prepare_index(rag, log)  # and the models load in the background: the first answer comes quicker
    auth = handlers.auth_from_env()
    demo = build_app(rag)
    demo.queue(default_concurrency_limit=CONCURRENCY)
    idle_quietly(demo)
    log(f"Serving on http://127.0.0.1:{port}")
    demo.launch(server_name="127.0.0.1", server_port=port, share=False, auth=auth,
                max_file_size=MAX_UPLOAD_BYTES, css=CSS, head=HEAD, prevent_thread_lock=not block,
                show_error=False, quiet=True)
    return demo
