"""Indexing speed, whole process, side by side with LangChain's FAISS pipeline in one run.

    python eval/index_speed.py [--corpus ../shared/datasets/realtimeqa-2023/corpus.jsonl.gz]
                               [--articles 150] [--repeats 3] [--backends auto,torch,onnx,onnx-int8]

Each command runs in a fresh process on the same first N articles, into an empty folder, the
runs of the different pipelines interleaved (so a slow spell of the machine hits all of them):

- ``python -m rag index --embed B`` for each backend B (an ONNX export is made once before the
  timed runs: it is cached, as LangChain's model is).
- LangChain as its FAISS tutorial goes: ``RecursiveCharacterTextSplitter`` (1,000 characters,
  200 overlap), ``HuggingFaceEmbeddings`` on the same bundled all-MiniLM-L6-v2,
  ``FAISS.from_documents`` and ``save_local``.

Prints a table (median and range of the wall times, and each pipeline's speed-up over
LangChain) and writes the figures as JSON with ``--out``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LANGCHAIN = r"""
import json, sys
from langchain_community.embeddings import HuggingFaceEmbeddings
from langchain_community.vectorstores import FAISS
from langchain_core.documents import Document
from langchain_text_splitters import RecursiveCharacterTextSplitter
docs = [Document(page_content=r["text"], metadata={"title": r.get("title", ""), "date": r.get("date", "")})
        for r in map(json.loads, open(sys.argv[1], encoding="utf-8"))]
chunks = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200).split_documents(docs)
store = FAISS.from_documents(chunks, HuggingFaceEmbeddings(model_name=sys.argv[2]))
store.save_local(sys.argv[3])
print(len(chunks))
"""


def first_articles(corpus: Path, n: int, out: Path) -> None:
    opener = gzip.open if corpus.name.endswith(".gz") else open
    with opener(corpus, "rt", encoding="utf-8") as src, out.open("w", encoding="utf-8") as dst:
        for i, line in enumerate(src):
            if i >= n:
                break
            dst.write(line)


def timed(cmd: list[str], env: dict) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return wall, proc.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, default=ROOT.parent / "shared/datasets/realtimeqa-2023/corpus.jsonl.gz")
    ap.add_argument("--articles", type=int, default=150)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--backends", default="auto,torch,onnx,onnx-int8")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    from rag.embed.base import resolve_model_path
    from rag.embed.onnx_model import exported_model
    from rag.index.layout import read_manifest
    from rag.tools.bench import machine_info

    model = resolve_model_path("all-MiniLM-L6-v2")
    backends = [b for b in args.backends.split(",") if b]
    for b in backends:
        if b.startswith("onnx"):
            exported_model(model, b == "onnx-int8")  # the one-off export, outside the timed runs
    if "auto" in backends:
        from rag.embed.onnx_model import int8_agreement

        int8_agreement("all-MiniLM-L6-v2")  # the one-off check against float32, kept for this CPU
    work = Path(tempfile.mkdtemp(prefix="rag-index-speed-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    try:
        articles = work / "articles.jsonl"
        first_articles(args.corpus, args.articles, articles)
        times: dict[str, list[float]] = {"langchain": []}
        info: dict[str, str] = {}
        for r in range(args.repeats):
            for name in ["langchain", *backends]:
                out = work / f"{name}-{r}"
                if name == "langchain":
                    wall, stdout = timed([sys.executable, "-c", LANGCHAIN, str(articles), str(model), str(out)], env)
                    info["langchain"] = f"{stdout.strip()} chunks of 1,000 characters"
                else:
                    wall, stdout = timed([sys.executable, "-m", "rag", "index", "--corpus", str(articles), "--index-dir",
                                          str(out), "--embed", name, "--json"], env)
                    report = json.loads(stdout)
                    info[name] = f"{report['chunks']} chunks, {(read_manifest(out) or {}).get('embedding_path', '')}"
                times.setdefault(name, []).append(wall)
                shutil.rmtree(out, ignore_errors=True)
                print(f"run {r + 1}: {name} {wall:.1f} s", file=sys.stderr, flush=True)
        base = statistics.median(times["langchain"])
        rows = {name: {"median_s": round(statistics.median(t), 2), "min_s": round(min(t), 2), "max_s": round(max(t), 2),
                       "speedup": round(base / statistics.median(t), 2), "what": info[name]} for name, t in times.items()}
        result = {"machine": machine_info(), "articles": args.articles, "repeats": args.repeats, "pipelines": rows}
        print(f"{args.articles} articles, whole process, median of {args.repeats} (range); "
              f"{result['machine']['cpu']}, {result['machine']['cores']} cores, bf16: {result['machine']['cpu_bf16']}")
        print("| pipeline | what | wall time | vs LangChain |\n|---|---|---|---|")
        for name, row in rows.items():
            print(f"| {name} | {row['what']} | {row['median_s']} s ({row['min_s']}-{row['max_s']}) | {row['speedup']}x |")
        if args.out:
            args.out.write_text(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
