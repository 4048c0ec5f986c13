"""Compare chunk sizes at an equal budget of retrieved text, against LangChain-style baselines.

Usage: python eval/tune_chunking.py CORPUS.jsonl QUESTIONS.jsonl [--configs 128:32,192:32] [--out DIR]

For each chunk setting the corpus is indexed with the project's own pipeline and every
answerable question is searched with the hybrid, dense-only and BM25-only retrievers.
The baseline is the common LangChain setup: RecursiveCharacterTextSplitter with
1,000-character chunks (200 overlap), the same embedding model, dense-only and BM25-only.
BM25 is run twice: with this project's tokenizer (stemmed, stopwords removed: a stronger
baseline) and as LangChain's own ``BM25Retriever`` ships (whitespace tokens; needs
``langchain-community`` and ``rank_bm25``, skipped when they are not installed).
``--baselines-only`` skips the project's own configurations.
Scores are answer recall at 5 passages and within the first 512 / 1,024 tokens.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rag import Rag, Settings
from rag.text.chunk import count_tokens, truncate_tokens
from rag.tools.metrics import answer_recall_at_tokens, contains_answer

DEPTH = 40


def score(ranked: list[list[str]], questions: list[dict]) -> dict[str, float]:
    out = {"recall@5": 0.0, "recall@512tok": 0.0, "recall@1024tok": 0.0}
    for passages, q in zip(ranked, questions):
        out["recall@5"] += contains_answer("\n".join(passages[:5]), q["answers"])
        out["recall@512tok"] += answer_recall_at_tokens(passages, q["answers"], 512, count_tokens, truncate_tokens)
        out["recall@1024tok"] += answer_recall_at_tokens(passages, q["answers"], 1024, count_tokens, truncate_tokens)
    return {k: round(100 * v / len(questions), 1) for k, v in out.items()}


def langchain_baseline(corpus: Path, questions: list[dict], rag: Rag) -> dict[str, dict]:
    import faiss
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from rag.text.lexical import bm25_tokens

    splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
    texts = []
    for line in corpus.open():
        texts.extend(splitter.split_text(json.loads(line)["text"]))
    t0 = time.perf_counter()
    vecs = rag.embedder.encode(texts, batch_size=32)
    embed_s = time.perf_counter() - t0
    index = faiss.IndexFlatIP(vecs.shape[1])
    index.add(vecs)
    import bm25s

    bm25 = bm25s.BM25()
    bm25.index([bm25_tokens(t) or ["<empty>"] for t in texts], show_progress=False)
    dense, lexical = [], []
    for q in questions:
        _, ids = index.search(rag.embedder.encode_query(q["question"])[None], DEPTH)
        dense.append([texts[i] for i in ids[0] if i >= 0])
        toks = [t for t in bm25_tokens(q["question"]) if t in bm25.vocab_dict]
        docs, _ = bm25.retrieve([toks], k=DEPTH, show_progress=False) if toks else ([[]], None)
        lexical.append([texts[i] for i in docs[0]])
    info = {"chunks": len(texts), "embed_s": round(embed_s, 1)}
    out = {"langchain-1000c dense": {**score(dense, questions), **info},
           "langchain-1000c bm25": {**score(lexical, questions), **info}}
    try:
        from langchain_community.retrievers import BM25Retriever
    except ImportError:
        print("langchain-community / rank_bm25 not installed: LangChain's own BM25Retriever skipped", flush=True)
        return out
    retriever = BM25Retriever.from_texts(texts, k=DEPTH)
    shipped = [[d.page_content for d in retriever.invoke(q["question"])] for q in questions]
    out["langchain-1000c BM25Retriever"] = {**score(shipped, questions), **info}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus", type=Path)
    ap.add_argument("questions", type=Path)
    ap.add_argument("--configs", default="64:16,128:0,128:32,192:32")
    ap.add_argument("--out", type=Path, default=Path("/tmp/rag-tune"))
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--baselines-only", action="store_true")
    args = ap.parse_args()
    questions = [q for q in map(json.loads, args.questions.open()) if q.get("answerable", True) and q["answers"]]
    results: dict[str, dict] = {}
    rag = None
    for cfg in [] if args.baselines_only else args.configs.split(","):
        size, overlap = (int(x) for x in cfg.split(":"))
        settings = Settings.from_env(corpus=(str(args.corpus),), index_dir=str(args.out / f"idx-{size}-{overlap}"),
                                     chunk_tokens=size, chunk_overlap=overlap)
        rag = Rag(settings)
        report = rag.index()
        for kind in ("hybrid", "dense", "bm25"):
            if kind == "hybrid":  # the full ask path: hybrid retrieval, then the evidence re-ranking
                ranked = [[h.chunk.text for h in rag.ask(q["question"], retrieve_k=DEPTH).retrieved] for q in questions]
            else:
                ranked = [[h.chunk.text for h in rag.search(q["question"], DEPTH, retriever=kind)] for q in questions]
            results[f"{size}/{overlap} {kind}"] = {**score(ranked, questions), "chunks": report.chunks,
                                                   "embed_s": round(report.embed_seconds, 1)}
            print(f"{size}/{overlap} {kind}: {results[f'{size}/{overlap} {kind}']}", flush=True)
    if args.baselines_only:
        rag = Rag(Settings.from_env(corpus=(str(args.corpus),), index_dir=str(args.out / "unused")))
    if not args.no_baseline and rag is not None:
        for name, r in langchain_baseline(args.corpus, questions, rag).items():
            results[name] = r
            print(f"{name}: {r}", flush=True)
    print(f"\n{len(questions)} answerable questions, corpus {args.corpus}\n")
    print("| setting | retriever | chunks | recall@5 | recall@512tok | recall@1024tok |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        setting, kind = name.rsplit(" ", 1)
        print(f"| {setting} | {kind} | {r['chunks']} | {r['recall@5']} | {r['recall@512tok']} | {r['recall@1024tok']} |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tune_results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
