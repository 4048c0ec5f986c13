"""``python -m rag bench``: embedding throughput, index build, query latency, cold start, memory.

Everything is measured in one run on the same chunks of the same corpus.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rag.api import Rag
from rag.config import Settings
from rag.embed.base import embedding_text
from rag.embed.cpu import cpu_model_and_flags
from rag.ingest.corpus import read_corpus
from rag.text.chunk import chunk_documents
from rag.tools.metrics import percentile

DEFAULT_QUERIES = [
    "Who offered to mediate between Kabul and Islamabad?",
    "Where did the US envoy meet the Taliban?",
    "Which Taliban official led the delegation to Tehran?",
    "What did Trump decide about the peace talks?",
    "How many US troops were in Afghanistan?",
]


def machine_info(cpuinfo: str | None = None) -> dict:
    """Which machine a figure comes from: CPU model, cores, its bf16 support (AMX, AVX-512 BF16
    or none), the vector ISA that decides the int8 and SIMD kernels (AVX2, AVX-512, VNNI, AMX)
    and the GPU, if any (``nvidia-smi``). ``cpuinfo``: the text of /proc/cpuinfo."""
    model, flags = cpu_model_and_flags(cpuinfo)
    bf16 = "amx" if "amx_bf16" in flags else "avx512_bf16" if "avx512_bf16" in flags else "none"
    gpu = ""
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                                 text=True, timeout=10)
            gpu = ", ".join(line.strip() for line in out.stdout.splitlines() if line.strip())
        except (OSError, subprocess.SubprocessError):
            gpu = ""
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16") if f in flags]
    return {"cpu": model or platform.processor() or platform.machine(), "cores": os.cpu_count() or 0,
            "cpu_bf16": bf16, "isa": " ".join(isa) or "none", "gpu": gpu or "none"}


def status_mb() -> dict:
    """Memory figures of this process from /proc/self/status, in MB: VmHWM (peak resident set),
    RssAnon (its own memory) and RssFile (pages of the index files mapped in: shared with the
    page cache, dropped first under memory pressure). Empty where /proc is missing."""
    out = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmHWM", "RssAnon", "RssFile"):
                out[key] = round(int(value.split()[0]) / 1024)
    except OSError:
        pass
    return out


def peak_rss_mb() -> float:
    """Peak resident set of this process. VmHWM, not getrusage: Linux carries ``ru_maxrss``
    over fork and exec, so a child would report its parent's peak (the build's)."""
    return status_mb().get("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_bench(settings: Settings, queries: list[str] | None = None, max_chunks: int = 2000,
              query_repeats: int = 200, log=print) -> dict:
    """Measure the pipeline on ``settings.corpus``; returns the figures as a dict."""
    from rag.embed.choose import choose_backend, get_embedder
    from rag.embed.torch_model import SentenceTransformerEmbedder

    queries = queries or DEFAULT_QUERIES
    docs = read_corpus(settings.corpus_paths).documents
    chunks = chunk_documents(docs, settings.chunk_tokens, settings.chunk_overlap)
    texts = [embedding_text(c, settings.title_in_embedding) for c in chunks][:max_chunks]
    tokens = sum(c.n_tokens for c in chunks[: len(texts)])
    out: dict = {"machine": machine_info(), "corpus": [str(p) for p in settings.corpus_paths], "documents": len(docs),
                 "chunks": len(chunks), "bench_chunks": len(texts), "chunk_tokens": settings.chunk_tokens}

    log(f"Embedding {len(texts)} chunks with the project pipeline and a float32 baseline...")
    ours = get_embedder(settings.model, settings.dtype, choose_backend(settings.embed, None, model=settings.model), settings.device)
    ours.encode(texts[:32])
    t0 = time.perf_counter()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    ours.encode([texts[i] for i in order], batch_size=settings.batch_size)
    t_ours = time.perf_counter() - t0
    base = SentenceTransformerEmbedder(settings.model, "float32")
    base.model.encode(texts[:32])
    t0 = time.perf_counter()
    base.model.encode(texts, batch_size=32, normalize_embeddings=True)
    t_base = time.perf_counter() - t0
    out["embedding"] = {
        "pipeline_dtype": ours.dtype,
        "pipeline_backend": getattr(ours, "path_name", ours.dtype),
        "pipeline_chunks_per_s": round(len(texts) / t_ours, 1),
        "pipeline_tokens_per_s": round(tokens / t_ours),
        "baseline_chunks_per_s": round(len(texts) / t_base, 1),
        "baseline_tokens_per_s": round(tokens / t_base),
        "speedup": round(t_base / t_ours, 2),
    }

    with tempfile.TemporaryDirectory() as tmp:
        log("Building a fresh index...")
        rag = Rag(settings.with_(index_dir=str(Path(tmp) / "idx")))
        rag._embedder = ours
        t0 = time.perf_counter()
        report = rag.index()
        out["index"] = {"seconds": round(time.perf_counter() - t0, 2), "chunks": report.chunks,
                        "chunks_per_s": round(report.chunks / max(report.seconds, 1e-9), 1),
                        "search": "ivf-pq" if report.ann else "exact"}
        log("Timing warm queries...")
        rag.warm()
        lat_search, lat_ask = [], []
        for i in range(query_repeats):
            q = queries[i % len(queries)]
            t0 = time.perf_counter()
            rag.search(q)
            lat_search.append((time.perf_counter() - t0) * 1000)
        for i in range(max(20, query_repeats // 10)):
            t0 = time.perf_counter()
            rag.ask(queries[i % len(queries)])
            lat_ask.append((time.perf_counter() - t0) * 1000)
        out["query_ms"] = {"search_p50": round(statistics.median(lat_search), 2),
                           "search_p95": round(percentile(lat_search, 95), 2),
                           "ask_p50": round(statistics.median(lat_ask), 2),
                           "ask_p95": round(percentile(lat_ask, 95), 2)}
        log("Timing a cold ask in a new process...")
        cold = []
        env = {**os.environ, "RAG_INDEX_DIR": str(Path(tmp) / "idx"),
               "RAG_CORPUS": os.pathsep.join(str(p) for p in settings.corpus_paths)}
        for _ in range(3):
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "rag", "ask", queries[0], "--json"],
                                  capture_output=True, text=True, env=env)
            cold.append(time.perf_counter() - t0)
            if proc.returncode != 0:
                raise RuntimeError(f"cold ask failed: {proc.stderr.strip()}")
        out["cold_ask_s"] = round(statistics.median(cold), 2)
    out["peak_rss_mb"] = round(peak_rss_mb())
    return out


def format_table(r: dict) -> str:
    e, q = r["embedding"], r["query_ms"]
    m = r["machine"]
    rows = [
        ("machine", f"{m['cpu']} ({m.get('isa', '?')}), {m['cores']} cores, bf16: {m['cpu_bf16']}, GPU: {m['gpu']}"),
        ("corpus", f"{r['documents']} documents, {r['chunks']} chunks of <= {r['chunk_tokens']} tokens"),
        (f"embedding, pipeline ({e.get('pipeline_backend', e['pipeline_dtype'])})", f"{e['pipeline_chunks_per_s']} chunks/s, {e['pipeline_tokens_per_s']} tokens/s"),
        ("embedding, float32 encode baseline", f"{e['baseline_chunks_per_s']} chunks/s, {e['baseline_tokens_per_s']} tokens/s"),
        ("embedding speed-up", f"{e['speedup']}x"),
        ("index build (in process)", f"{r['index']['seconds']} s, {r['index']['chunks_per_s']} chunks/s, {r['index']['search']} search"),
        ("warm search p50 / p95", f"{q['search_p50']} / {q['search_p95']} ms"),
        ("warm ask p50 / p95", f"{q['ask_p50']} / {q['ask_p95']} ms"),
        ("cold ask (new process)", f"{r['cold_ask_s']} s"),
        ("peak memory (RSS)", f"{r['peak_rss_mb']} MB"),
    ]
    return "\n".join(["| measure | value |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows])


def main_bench(settings: Settings, as_json: bool, log) -> int:
    result = run_bench(settings, log=log)
    print(json.dumps(result, indent=2) if as_json else format_table(result) + "\n\n" + json.dumps(result))
    return 0
