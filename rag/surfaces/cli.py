"""``python -m rag``: index, ask, chat, stats. Thin: every command calls the public API."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from contextlib import closing
from pathlib import Path

from rag import (
    DATE_FORMATS,
    Answer,
    Conversation,
    FilterError,
    Filters,
    Rag,
    RagError,
    Settings,
    SkippedInput,
    check_question,
    parse_date,
)
from rag.surfaces import render
from rag.surfaces.progress import ProgressPrinter

WIDTH = 100  # columns the text is wrapped to
DAY_SETTING = "--reference-day"  # how the CLI sets the day a question about "now" refers to


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corpus", action="append", metavar="PATH",
                   help="corpus folder or file (repeatable; default: the shipped corpus/ or RAG_CORPUS)")
    p.add_argument("--index-dir", metavar="DIR", help="where the index lives (default: a folder under ~/.cache/rag)")
    p.add_argument("--model", help="embedding model name or local folder (default all-MiniLM-L6-v2)")
    p.add_argument("--chunk-tokens", type=int, metavar="N", help="chunk size in tokens")
    p.add_argument("--chunk-overlap", type=int, metavar="N", help="overlap between chunks in tokens")
    p.add_argument("--embed", choices=["auto", "torch", "onnx", "onnx-int8"],
                   help="embedding backend (default auto: the index's own, else the machine's fastest)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where torch embeds (default auto: a GPU if present)")


def _query_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("-k", type=int, metavar="K", help="number of passages to retrieve (default 5)")
    p.add_argument("--since", metavar="DATE", help="only articles dated on or after DATE (YYYY-MM-DD, YYYY-MM or YYYY)")
    p.add_argument("--until", metavar="DATE", help="only articles dated on or before DATE (YYYY-MM-DD, YYYY-MM or YYYY)")
    p.add_argument("--source", action="append", metavar="NAME", help="only articles whose source contains NAME (repeatable)")
    p.add_argument("--reference-day", "--as-of", dest="reference_day", metavar="YYYY-MM-DD",
                   help="the day a question about 'this week' or 'recently' refers to (default: the newest article's date)")


def _llm_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--llm", metavar="NAME", help="answer backend: none (extractive, default), openai, llamacpp")
    p.add_argument("--llm-url", metavar="URL", help="openai: the server's base URL (default http://127.0.0.1:11434/v1)")
    p.add_argument("--llm-model", metavar="NAME", help="openai: model name; llamacpp: GGUF file (default: bundled SmolLM2)")
    p.add_argument("--llm-timeout", type=float, metavar="SECONDS", help="give up on a backend silent this long (default 30)")


def _reader_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rerank", choices=("span", "learned", "none"),
                   help="what reads the answer: span (the trained span reader, default), none (hand-written "
                        "sentence scorer) or learned (sentence cross-encoder)")
    p.add_argument("--reranker", metavar="DIR",
                   help="the reader's model folder: a span reader for span, a cross-encoder for learned (default: the shipped one)")
    p.add_argument("--abstain-threshold", type=float, metavar="X",
                   help="abstain when the best sentence scores below X (default: the scorer's calibrated value)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rag", description="Answer questions about news articles with cited evidence.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", help="index a corpus (incremental)")
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="folders or files to add to the index of the corpus (default: the corpus alone)")
    _common(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--verify", action="store_true",
                   help="read and hash every document even when no file changed size or time")
    p.add_argument("--optimize", action="store_true",
                   help="merge the index's segments into one, dropping deleted documents for good")
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="chunk and embed on a Ray cluster (ADDRESS, or 'auto'; alone: a local Ray instance)")
    p.add_argument("--ray-workers", type=int, default=0, metavar="N",
                   help="--ray: embedders in the pool (default: one per GPU, else one per CPU)")

    p = sub.add_parser("ask", help="answer one question")
    p.add_argument("question", help="the question, or - to read it from standard input")
    _common(p)
    _query_opts(p)
    _llm_opts(p)
    _reader_opts(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("timeline", help="the dated events about a person, organisation, place or topic, each cited")
    p.add_argument("query", help="who or what, e.g. \"Araghchi\" or \"Taliban talks\"")
    _common(p)
    p.add_argument("-k", dest="limit", type=int, default=0, metavar="N",
                   help="keep the N events reported by the most articles (default: no limit)")
    p.add_argument("--all", dest="all_events", action="store_true",
                   help="every event, not only the main ones (reported by 3 or more articles)")
    p.add_argument("--since", metavar="DATE", help="only articles dated on or after DATE")
    p.add_argument("--until", metavar="DATE", help="only articles dated on or before DATE")
    p.add_argument("--source", action="append", metavar="NAME", help="only articles whose source contains NAME (repeatable)")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("chat", help="ask questions interactively; follow-ups use the conversation")
    _common(p)
    _query_opts(p)
    _reader_opts(p)

    p = sub.add_parser("eval", help="batch-answer a question set and report metrics")
    p.add_argument("questions", type=Path, metavar="QUESTIONS.jsonl")
    _common(p)
    p.add_argument("-k", dest="ks", default="1,3,5,10", metavar="1,3,5,10", help="cut-offs for recall@k")
    p.add_argument("--ignore-dates", action="store_true",
                   help="do not take each question's \"date\" as the day it is asked (see ask --as-of)")
    _llm_opts(p)
    _reader_opts(p)
    p.add_argument("--out", type=Path, metavar="DIR", help="where results go (default: runs/<questions file name>)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")

    p = sub.add_parser("bench", help="measure embedding speed, index build, query latency and memory")
    _common(p)
    _reader_opts(p)
    p.add_argument("--json", action="store_true", help="print only JSON")
    p.add_argument("--scale", type=_chunk_count, metavar="N",
                   help="instead: build an index of N chunks (e.g. 1e6) drawn from the existing index and measure "
                        "build time, disk, memory, dense recall and search latency")
    p.add_argument("--work", type=Path, metavar="DIR", help="--scale: where to build (default: the system temp folder)")
    p.add_argument("--keep", action="store_true", help="--scale: keep the built index (its folder is printed)")

    p = sub.add_parser("ui", help="serve the browser chat on 127.0.0.1 (needs the 'ui' extra)")
    _common(p)
    p.add_argument("--port", type=int, default=7860, help="port to listen on (default 7860)")
    _reader_opts(p)

    p = sub.add_parser("serve", help="serve the HTTP API (OpenAI-compatible chat, search, ask, documents; 'serve' extra)")
    _common(p)
    _reader_opts(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; any other needs RAG_API_KEY)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")

    p = sub.add_parser("mcp", help="serve the archive to MCP clients: tools search, ask, get_document ('serve' extra)")
    _common(p)
    _reader_opts(p)
    p.add_argument("--transport", choices=("stdio", "http"), default="stdio",
                   help="stdio (default; the client starts this command) or streamable HTTP")
    p.add_argument("--host", default="127.0.0.1", help="http: address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8001, help="http: port to listen on (default 8001)")

    p = sub.add_parser("train", help="rebuild the span reader from the RealTime QA data (needs torch; about an hour "
                                     "on 2 cores)")
    p.add_argument("--data", type=Path, required=True, metavar="DIR",
                   help="folder holding the RealTime QA data, realtimeqa-2023/ and realtimeqa-more/")
    p.add_argument("--out", type=Path, metavar="DIR", help="where the model goes (default: the shipped rag/models/span_reader)")
    p.add_argument("--work", type=Path, default=Path("runs/span"), metavar="DIR",
                   help="where mined examples and checkpoints are kept (default runs/span; a run resumes from them)")
    p.add_argument("--epochs", type=float, default=2.0, help="passes over the training examples (default 2)")
    p.add_argument("--synthetic", type=int, default=3200, metavar="N", help="synthetic questions trained on (default 3200)")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("stats", help="show what is indexed")
    _common(p)
    p.add_argument("--json", action="store_true")
    return parser


def settings_from(args: argparse.Namespace, corpus: list[str] | None = None) -> Settings:
    return Settings.from_env(
        corpus=tuple(corpus or args.corpus or ()) or None,
        index_dir=args.index_dir, model=args.model,
        chunk_tokens=args.chunk_tokens, chunk_overlap=args.chunk_overlap,
        embed=getattr(args, "embed", None), device=getattr(args, "device", None),
        k=getattr(args, "k", None),
        llm=getattr(args, "llm", None), llm_url=getattr(args, "llm_url", None),
        llm_model=getattr(args, "llm_model", None), llm_timeout=getattr(args, "llm_timeout", None),
        rerank=getattr(args, "rerank", None), reranker=getattr(args, "reranker", None),
        abstain_threshold=getattr(args, "abstain_threshold", None),
    )


def date_option(args: argparse.Namespace, name: str) -> str:
    """The ``--name`` date option as ISO, "" when not given; a date that cannot be read is an error."""
    value = getattr(args, name, None)
    if not value:
        return ""
    day = parse_date(value)
    if not day:
        raise RagError(f"--{name.replace('_', '-')}: not a date: {value!r} (use {DATE_FORMATS})")
    return day


def filters_from(args: argparse.Namespace) -> Filters:
    try:
        return Filters(since=args.since or "", until=args.until or "", sources=tuple(args.source or ()))
    except FilterError as e:
        raise RagError(e.message(lambda option: f"--{option.rstrip('s')}")) from None


def warn(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def report_issue(item: SkippedInput, skipped: bool) -> None:
    """An input problem, printed as soon as indexing finds it."""
    warn(f"warning: {'skipped ' if skipped else ''}{item}")


def prepare(rag: Rag, update_stale: bool = False) -> None:
    """``Rag.start``: build the index when there is none (or it was built for other settings); a
    stale one keeps answering with a note, unless ``update_stale``."""
    progress = ProgressPrinter()
    try:
        rag.start("update" if update_stale else "wait", progress=progress, log=warn, on_issue=report_issue)
    finally:
        progress.close()


def cmd_index(args: argparse.Namespace) -> int:
    # PATHS are added to the index of the configured corpus (--corpus, RAG_CORPUS, else corpus/):
    # they never replace it, and the next `ask` with the same settings reads them.
    rag = Rag(settings_from(args))
    progress = ProgressPrinter()
    try:
        report = rag.index([Path(p) for p in args.paths] or None, progress=progress, log=warn, on_issue=report_issue,
                           verify=args.verify, optimize=args.optimize, ray=args.ray or "", ray_workers=args.ray_workers)
    finally:
        progress.close()
    if args.json:
        out = {k: v for k, v in report.__dict__.items() if k != "skipped"}
        out["skipped"] = [s.__dict__ for s in report.skipped]
        out["warnings"] = [s.__dict__ for s in report.warnings]
        print(json.dumps(out, indent=2))
    else:
        print(report.summary())
    return 0


def read_question(arg: str) -> str:
    return sys.stdin.read() if arg == "-" else arg


def cmd_ask(args: argparse.Namespace) -> int:
    question = check_question(read_question(args.question))
    rag = Rag(settings_from(args))
    filters, day = filters_from(args), date_option(args, "reference_day")
    prepare(rag)
    answer, streamed = _answer(rag, question, live=not args.json, k=args.k, filters=filters, reference_day=day)
    _warn_all(answer)
    if args.json:
        print(json.dumps(answer.to_dict(), ensure_ascii=False, indent=2))
    else:
        print(render.answer_text(answer, WIDTH, streamed=streamed, day_setting=DAY_SETTING))
    return 0


def _answer(rag: Rag, question: str, live: bool, **kwargs) -> tuple[Answer, bool]:
    """``rag.ask_stream``'s answer, and whether its LLM tokens were printed as they came: a terminal
    sees the model's answer as it is written; a pipe or a file gets only the checked answer
    (markers to no passage removed), once. Ctrl-C closes the stream, and the model stops."""
    live = live and rag.settings.llm != "none" and sys.stdout.isatty()
    streamed = False
    with closing(rag.ask_stream(question, **kwargs)) as events:
        for event in events:
            if event.kind == "token" and live:
                streamed = True
                sys.stdout.write(event.text)
                sys.stdout.flush()
    if streamed:
        print()
    return event.answer, streamed


def _warn_all(answer: Answer) -> None:
    for w in answer.warnings:
        warn(f"warning: {w}")


def cmd_chat(args: argparse.Namespace) -> int:
    rag = Rag(settings_from(args))
    filters, day = filters_from(args), date_option(args, "reference_day")
    prepare(rag)
    # Load torch in the background: the first questions use the numpy encoder meanwhile.
    threading.Thread(target=rag.embedder.warm, daemon=True).start()
    conversation = Conversation()
    interactive = sys.stdin.isatty()
    if interactive:
        print("Ask about the articles. Commands: /new starts a new conversation, /quit leaves.")
    while True:
        try:
            line = input("> " if interactive else "")
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        line = line.strip()
        if not line:
            continue
        if line in ("/quit", "/exit"):
            return 0
        if line == "/new":
            conversation = Conversation()
            print("(new conversation)")
            continue
        try:
            answer, streamed = _answer(rag, line, live=True, k=args.k, filters=filters, conversation=conversation,
                                       reference_day=day)
            _warn_all(answer)
            print(render.answer_text(answer, WIDTH, streamed=streamed, day_setting=DAY_SETTING))
        except RagError as e:
            print(f"Error: {e}", file=sys.stderr)
        except KeyboardInterrupt:  # stops this answer, not the chat
            print("\n(stopped)")
        print()


def cmd_timeline(args: argparse.Namespace) -> int:
    query = check_question(args.query)
    if args.limit < 0:
        raise RagError("-k must be 0 (all events) or more")
    rag = Rag(settings_from(args))
    filters = filters_from(args)
    prepare(rag)
    progress = ProgressPrinter()
    try:
        timeline = rag.timeline(query, filters=filters, limit=args.limit, all_events=args.all_events, progress=progress)
    finally:
        progress.close()
    if args.json:
        print(json.dumps(timeline.to_dict(), ensure_ascii=False, indent=2))
    else:
        print(render.timeline_text(timeline, filters, WIDTH))
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    rag = Rag(settings_from(args))
    stats = rag.stats()
    if args.json:
        print(json.dumps(stats, indent=2))
    elif not stats["indexed"]:
        try:
            rag.check()
        except RagError as e:  # advice that works: 'rag index' would fail the same way
            print(f"No index yet in {stats['index_dir']}, and {e}: point --corpus (or RAG_CORPUS) at your "
                  "articles, then run 'python -m rag index --corpus PATH'.")
            return 1
        print(f"No index yet in {stats['index_dir']}; run 'python -m rag index'.")
    else:
        for key, value in stats.items():
            if key == "top_sources":
                value = ", ".join(f"{s['source']} ({s['documents']})" for s in value)
            print(f"{key:>16}: {value}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from rag.tools.evaluate import evaluate, load_questions, plot_recall, summary_markdown

    try:
        ks = sorted({int(x) for x in args.ks.split(",") if x.strip()})
    except ValueError:
        raise RagError(f"-k {args.ks!r}: give comma-separated numbers such as 1,3,5,10") from None
    if not ks or ks[0] < 1:
        raise RagError("-k needs positive numbers such as 1,3,5,10")
    questions, skipped = load_questions(args.questions, use_dates=not args.ignore_dates)
    for s in skipped:
        warn(f"warning: skipped {s}")
    out = args.out or Path("runs") / args.questions.name.split(".")[0]
    rag = Rag(settings_from(args))
    llm = rag.settings.llm
    prepare(rag, update_stale=True)  # an LLM that cannot start fails here, once, not on every question
    rag.warm()  # a batch run amortises loading torch: faster sentence scoring per question
    progress = ProgressPrinter(desc="Answering", unit="question")
    try:
        summary, _ = evaluate(rag, questions, ks, out, progress=progress, llm=llm)
    finally:
        progress.close()
    if not plot_recall(summary, ks, out / "recall_at_k.png"):
        warn("warning: matplotlib is not installed, so no plot was drawn (pip install -e '.[eval]')")
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(summary_markdown(summary))
        print(f"Results in {out}/ (results.jsonl, summary.json, summary.md, recall_at_k.png)")
    return 0


def _chunk_count(text: str) -> int:
    """ "1000000", "1e6" or "1_000_000" as a whole number of chunks."""
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of chunks: {text!r}") from None
    if value < 1 or value != int(value):
        raise argparse.ArgumentTypeError(f"not a whole number of chunks (at least 1): {text!r}")
    return int(value)


def cmd_bench(args: argparse.Namespace) -> int:
    from rag.tools.bench import main_bench

    if args.scale is not None:
        from rag.tools.scale import main_scale

        return main_scale(settings_from(args), args.scale, args.json, args.work, log=warn, keep=args.keep)

    return main_bench(settings_from(args), args.json, log=warn)


def cmd_train(args: argparse.Namespace) -> int:
    from rag.tools.train_span import main as train_span

    out = ["--out", str(args.out)] if args.out else []  # default: the shipped reader's folder
    train_span(["all", "--data", str(args.data), "--run", str(args.work), *out,
                "--epochs", str(args.epochs), "--synthetic", str(args.synthetic), "--seed", str(args.seed)])
    return 0


COMMANDS = {"timeline": cmd_timeline, "train": cmd_train, "bench": cmd_bench, "index": cmd_index, "ask": cmd_ask,
            "chat": cmd_chat, "eval": cmd_eval, "stats": cmd_stats}
SERVER_COMMANDS = ("ui", "serve", "mcp")  # started by rag.launcher (``python -m rag``): a surface imports no other


def main(argv: list[str] | None = None, servers: dict | None = None) -> int:
    """Run one command; ``servers`` (``rag.launcher``) starts the browser chat, HTTP and MCP servers."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command in SERVER_COMMANDS:
            if not servers:
                raise RagError(f"start the {args.command} server with 'python -m rag {args.command}'")
            servers[args.command](settings_from(args), args, warn)
            return 0
        code = COMMANDS[args.command](args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit where it cannot be caught
        return code
    except RagError as e:
        if os.environ.get("RAG_DEBUG"):
            raise
        print(f"Error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, like other tools
        _quiet_stdout()
        return 0
    except Exception as e:  # noqa: BLE001 - a last resort: one line, not a traceback
        if os.environ.get("RAG_DEBUG"):
            raise
        print(f"Error: unexpected {type(e).__name__}: {e} (run with RAG_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


def _quiet_stdout() -> None:
    """Send what is left for standard output to /dev/null, so that the exit flush cannot fail."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except OSError:
        pass
