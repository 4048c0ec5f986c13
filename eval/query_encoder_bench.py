"""Query encoder: the shipped numpy BERT against onnxruntime and sentence-transformers (torch).

Usage: python eval/query_encoder_bench.py [--reps 5] [--threads 2] [--out runs/query_encoder.json]

Queries are embedded by ``rag.embed.numpy_bert.NumpyBertEncoder`` so that a cold CLI start never imports
torch. This measures whether onnxruntime would serve better. It needs ``onnxruntime`` (the
candidate) and ``onnx`` (for ``torch.onnx.export``) in the environment; neither is a project
dependency. The bundled all-MiniLM-L6-v2 is exported to ONNX (opset 17, dynamic batch and
sequence axes) into a temporary folder, and its last hidden state is mean-pooled and
L2-normalised in numpy exactly as ``NumpyBertEncoder`` does.

Every timing runs in a fresh subprocess (so import costs count), ``--reps`` times, encoders
interleaved, and the median is reported:

* cold start: process start -> first query vector (import + load + first encode), the
  resident memory (RSS) after that first query, and then the first answer-step batch (what a
  cold ``rag ask`` embeds next);
* warm latency: one ~12-word query (median over ``--queries`` queries) and one batch of a
  question + 24 sentences of ~30 words (the answer step), the model already loaded;
* agreement: max abs difference and cosine of the vectors on 50 texts, against
  sentence-transformers float32;
* one-time ONNX export cost, ONNX file size, and the installed size of onnxruntime.

Texts are word windows of the shipped corpus articles, so the run is deterministic.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = "all-MiniLM-L6-v2"
QUERY_WORDS, SENTENCE_WORDS, LONG_WORDS = 12, 30, 300
BATCH = 25  # the answer step embeds the question + 24 candidate sentences
ENCODERS = ("numpy", "onnxruntime", "st-float32", "st-bfloat16")
COLD = ("baseline", *ENCODERS)
LABELS = {
    "baseline": "baseline: python + `import rag.embed.choose`, no model",
    "numpy": "NumpyBertEncoder (numpy, shipped)",
    "onnxruntime": "onnxruntime",
    "st-float32": "sentence-transformers torch float32",
    "st-bfloat16": "sentence-transformers torch bfloat16 (app default on BF16 CPUs)",
}
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
CHILD = (
    "import sys; sys.path.insert(0, {here!r}); "
    "from query_encoder_bench import {fn}; {fn}(*sys.argv[1:])"
)


# ---------------------------------------------------------------- texts


def make_texts(n_queries: int = 200, n_batches: int = 20) -> dict[str, list]:
    """Word windows of the shipped articles: queries, answer-step batches and agreement texts."""
    import random

    words = " ".join(p.read_text() for p in sorted((ROOT / "corpus").glob("*.txt"))).split()
    rng = random.Random(0)

    def window(n: int) -> str:
        start = rng.randrange(0, len(words) - n)
        return " ".join(words[start : start + n])

    queries = [window(QUERY_WORDS).rstrip(".,;:") + "?" for _ in range(n_queries)]
    batches = [[queries[i % n_queries]] + [window(SENTENCE_WORDS) for _ in range(BATCH - 1)] for i in range(n_batches)]
    agree = queries[:20] + [window(SENTENCE_WORDS) for _ in range(20)] + [window(LONG_WORDS) for _ in range(10)]
    return {"queries": queries, "batches": batches, "agree": agree}


# ---------------------------------------------------------------- encoders (run in the children)


class OrtEncoder:
    """The exported BERT in onnxruntime, then mean pooling + L2 normalisation as NumpyBertEncoder."""

    def __init__(self, onnx_path: Path, model_dir: Path, threads: int) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        cfg = model_dir / "sentence_bert_config.json"
        max_len = json.loads(cfg.read_text()).get("max_seq_length", 256) if cfg.exists() else 256
        self.tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tok.no_padding()
        self.tok.enable_truncation(max_length=max_len)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])

    def encode(self, texts: list[str]):
        import numpy as np

        from rag.embed.base import mean_pool, pad_encodings

        ids, mask, types = pad_encodings(self.tok.encode_batch(texts))
        feed = {"input_ids": ids, "attention_mask": mask.astype(np.int64), "token_type_ids": types}
        (hidden,) = self.session.run(["last_hidden_state"], feed)
        pooled = mean_pool(hidden, mask)
        return (pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def import_encoder(kind: str) -> None:
    """Import what ``kind`` needs (the part of a cold start before any file is read)."""
    import numpy  # noqa: F401

    import rag.embed.choose  # noqa: F401

    if kind == "numpy":
        import safetensors.numpy  # noqa: F401
        import tokenizers  # noqa: F401
    elif kind == "onnxruntime":
        import onnxruntime  # noqa: F401
        import tokenizers  # noqa: F401
    elif kind.startswith("st-"):
        import sentence_transformers  # noqa: F401
        import torch  # noqa: F401


def load_encoder(kind: str, onnx_path: str, threads: int):
    """A function embedding a list of texts, as the app would call it for a query."""
    from rag.embed.base import resolve_model_path
    from rag.embed.numpy_bert import NumpyBertEncoder
    from rag.embed.torch_model import SentenceTransformerEmbedder

    if kind == "numpy":
        enc = NumpyBertEncoder.load(resolve_model_path(MODEL))
        if enc is None:
            raise SystemExit("NumpyBertEncoder does not support the bundled model")
        return enc.encode
    if kind == "onnxruntime":
        return OrtEncoder(Path(onnx_path), resolve_model_path(MODEL), threads).encode
    if kind.startswith("st-"):
        import torch

        torch.set_num_threads(threads)
        emb = SentenceTransformerEmbedder(MODEL, kind.removeprefix("st-"))
        emb.warm()
        return emb.encode_short  # with the model loaded: one forward pass, no encode() set-up
    raise SystemExit(f"unknown encoder {kind!r}")


def _memory_mb() -> dict[str, float]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return {"rss_mb": out.get("VmRSS", 0.0), "peak_rss_mb": out.get("VmHWM", 0.0)}


def cold_child(kind: str, onnx_path: str, threads: str) -> None:
    """Import, load, embed one query (the cold start), then the first answer-step batch."""
    t0 = time.perf_counter()
    import_encoder(kind)
    t1 = time.perf_counter()
    if kind == "baseline":
        ready = time.time()
        print(json.dumps({"ready": ready, "import_ms": (t1 - t0) * 1000, "load_ms": 0.0, "encode_ms": 0.0,
                          "batch1_ms": 0.0, **_memory_mb()}))
        return
    encode = load_encoder(kind, onnx_path, int(threads))
    t2 = time.perf_counter()
    texts = make_texts(1, 1)
    vec = encode(texts["queries"])
    t3 = time.perf_counter()
    ready = time.time()
    memory = _memory_mb()
    assert vec.shape == (1, 384)
    encode(texts["batches"][0])
    batch1_ms = (time.perf_counter() - t3) * 1000
    print(json.dumps({"ready": ready, "import_ms": (t1 - t0) * 1000, "load_ms": (t2 - t1) * 1000,
                      "encode_ms": (t3 - t2) * 1000, "batch1_ms": batch1_ms, **memory}))


def warm_child(kind: str, onnx_path: str, threads: str) -> None:
    import numpy as np

    texts = make_texts()
    encode = load_encoder(kind, onnx_path, int(threads))
    for q in texts["queries"][:10]:
        encode([q])
    for b in texts["batches"][:3]:
        encode(b)
    q_ms, b_ms = [], []
    for q in texts["queries"]:
        t = time.perf_counter()
        encode([q])
        q_ms.append((time.perf_counter() - t) * 1000)
    for b in texts["batches"]:
        t = time.perf_counter()
        encode(b)
        b_ms.append((time.perf_counter() - t) * 1000)
    print(json.dumps({
        "query_ms": float(np.median(q_ms)), "query_p90_ms": float(np.percentile(q_ms, 90)),
        "batch_ms": float(np.median(b_ms)), "batch_p90_ms": float(np.percentile(b_ms, 90)), **_memory_mb(),
    }))


def agree_child(onnx_path: str, threads: str) -> None:
    import numpy as np

    texts = make_texts()["agree"]
    vecs = {}
    for kind in ENCODERS:
        encode = load_encoder(kind, onnx_path, int(threads))
        vecs[kind] = np.vstack([encode(texts[i : i + BATCH]) for i in range(0, len(texts), BATCH)])
    pairs = [("numpy", "st-float32"), ("onnxruntime", "st-float32"), ("numpy", "onnxruntime"),
             ("st-bfloat16", "st-float32")]
    out = {}
    for a, b in pairs:
        va, vb = vecs[a].astype(np.float64), vecs[b].astype(np.float64)
        cos = (va * vb).sum(1) / (np.linalg.norm(va, axis=1) * np.linalg.norm(vb, axis=1))
        out[f"{a} vs {b}"] = {"max_abs_diff": float(np.abs(va - vb).max()), "min_cosine": float(cos.min()),
                              "mean_cosine": float(cos.mean()), "texts": len(texts)}
    print(json.dumps(out))


def export_child(onnx_path: str) -> None:
    """Export the bundled model's BertModel to ONNX: last hidden state, dynamic batch and sequence."""
    import warnings

    t0 = time.perf_counter()
    import torch
    from transformers import BertModel

    from rag.embed.base import resolve_model_path

    t1 = time.perf_counter()

    class LastHidden(torch.nn.Module):
        def __init__(self, bert: torch.nn.Module) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    model = LastHidden(BertModel.from_pretrained(str(resolve_model_path(MODEL))).eval())
    ids = torch.ones(2, 8, dtype=torch.long)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (ids, torch.ones_like(ids), torch.zeros_like(ids)), onnx_path,
            input_names=names, output_names=["last_hidden_state"],
            dynamic_axes={n: {0: "batch", 1: "sequence"} for n in [*names, "last_hidden_state"]},
            opset_version=17, dynamo=False,
        )
    t2 = time.perf_counter()
    print(json.dumps({"import_ms": (t1 - t0) * 1000, "export_ms": (t2 - t1) * 1000}))


# ---------------------------------------------------------------- parent


def child_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TRANSFORMERS_VERBOSITY="error",
               HF_HUB_DISABLE_PROGRESS_BARS="1", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def run_child(fn: str, args: list[str], env: dict[str, str]) -> tuple[dict, float]:
    """Run ``fn(*args)`` in a fresh interpreter; its JSON line and the wall time it was started at."""
    import subprocess

    code = CHILD.format(here=str(Path(__file__).resolve().parent), fn=fn)
    start = time.time()
    proc = subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{fn}({', '.join(args)}) failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), start


def dist_size_mb(name: str) -> float:
    from importlib.metadata import distribution

    total = 0
    for f in distribution(name).files or []:
        p = Path(f.locate())
        if p.is_file():
            total += p.stat().st_size
    return total / 2**20


def install_sizes() -> dict:
    """Installed size of onnxruntime and of those of its requirements nothing else here needs."""
    import re
    from importlib.metadata import PackageNotFoundError, distributions, requires, version

    def req_names(dist_name: str) -> list[str]:
        names = []
        for r in requires(dist_name) or []:
            if "extra ==" not in r:
                names.append(re.split(r"[\s<>=!~;\[(]", r, maxsplit=1)[0].lower().replace("_", "-"))
        return names

    experiment = {"onnxruntime", "onnx"}
    needed_elsewhere: set[str] = set()
    for d in distributions():
        name = (d.metadata["Name"] or "").lower()
        if name not in experiment:
            needed_elsewhere.update(req_names(name))
    runtime = {"onnxruntime": dist_size_mb("onnxruntime")}
    for dep in req_names("onnxruntime"):
        if dep not in needed_elsewhere:
            runtime[dep] = dist_size_mb(dep)
    out = {"onnxruntime_version": version("onnxruntime"), "runtime_extra_mb": runtime,
           "runtime_extra_total_mb": sum(runtime.values())}
    export_only = {}
    for dep in ["onnx", *req_names("onnx")]:
        if dep not in needed_elsewhere and dep not in runtime and dep != "numpy":
            try:
                export_only[dep] = dist_size_mb(dep)
            except PackageNotFoundError:
                pass
    out["export_only_mb"] = export_only
    out["torch_mb_for_scale"] = dist_size_mb("torch")
    return out


def cpu_info() -> dict:
    import subprocess
    from importlib.metadata import version

    import numpy as np

    model = ""
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas = f"{blas.get('name')} {blas.get('version')}"
    except (TypeError, KeyError):
        blas = "unknown"
    versions = {p: version(p) for p in ("numpy", "onnxruntime", "torch", "sentence-transformers", "transformers")}
    return {"model_name": model, "cpus": os.cpu_count(), "flags": {f: f in flags for f in CPU_FLAGS},
            "numpy_blas": blas, "versions": versions}


def median_of(runs: list[dict]) -> dict[str, float]:
    from statistics import median

    return {k: median(r[k] for r in runs) for k in runs[0]}


def min_of(runs: list[dict]) -> dict[str, float]:
    """The best of the runs: on a shared machine, the closest to the cost without contention."""
    return {k: min(r[k] for r in runs) for k in runs[0]}


def markdown(report: dict) -> str:
    cold, warm, agree = report["cold_median"], report["warm_median"], report["agreement"]
    lines = [
        "Median of the runs (best run in brackets).",
        "",
        f"| encoder | cold start to 1st vector, ms | import / load / 1st encode, ms "
        f"| cold + 1st answer batch, ms | RSS after 1st query, MB "
        f"| warm: 1 query ({QUERY_WORDS} words), ms | warm: batch {BATCH} x ~{SENTENCE_WORDS} words, ms "
        "| max abs diff vs ST fp32 | min cosine vs ST fp32 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    cold_min, warm_min = report["cold_min"], report["warm_min"]

    def both(kind: str, key: str, spec: str, table: str = "warm") -> str:
        med, best = (warm, warm_min) if table == "warm" else (cold, cold_min)
        if kind not in med or (key == "ask_ms" and kind == "baseline"):
            return "-"
        return f"{format(med[kind][key], spec)} ({format(best[kind][key], spec)})"

    for kind in COLD:
        c = cold[kind]
        a = {"max_abs_diff": 0.0, "min_cosine": 1.0} if kind == "st-float32" else agree.get(f"{kind} vs st-float32")
        lines.append(
            f"| {LABELS[kind]} | {both(kind, 'cold_ms', '.0f', 'cold')} "
            f"| {c['import_ms']:.0f} / {c['load_ms']:.0f} / {c['encode_ms']:.0f} "
            f"| {both(kind, 'ask_ms', '.0f', 'cold')} "
            f"| {c['rss_mb']:.0f} | {both(kind, 'query_ms', '.2f')} | {both(kind, 'batch_ms', '.0f')} "
            f"| {'-' if a is None else format(a['max_abs_diff'], '.1e')} "
            f"| {'-' if a is None else format(a['min_cosine'], '.6f')} |"
        )
    lines += ["", "| pair (50 texts) | max abs diff | min cosine | mean cosine |", "|---|---|---|---|"]
    for pair, a in agree.items():
        lines.append(f"| {pair} | {a['max_abs_diff']:.2e} | {a['min_cosine']:.7f} | {a['mean_cosine']:.7f} |")
    ex, sz, cpu = report["onnx_export"], report["install"], report["cpu"]
    extra = ", ".join(f"{k} {v:.1f}" for k, v in sz["runtime_extra_mb"].items())
    export_only = ", ".join(f"{k} {v:.1f}" for k, v in sz["export_only_mb"].items()) or "none"
    flags = ", ".join(f"{f} {'yes' if v else 'no'}" for f, v in cpu["flags"].items())
    lines += [
        "",
        f"- ONNX export (one time, fresh process incl. torch import): {ex['wall_ms'] / 1000:.1f} s "
        f"(torch.onnx.export itself {ex['export_ms'] / 1000:.1f} s); ONNX file {ex['file_mb']:.1f} MB "
        f"(model.safetensors {ex['safetensors_mb']:.1f} MB)",
        f"- onnxruntime {sz['onnxruntime_version']} install: +{sz['runtime_extra_total_mb']:.0f} MB ({extra}); "
        f"export-only: {export_only} MB; torch for scale {sz['torch_mb_for_scale']:.0f} MB",
        f"- CPU: {cpu['model_name']} ({cpu['cpus']} CPUs); {flags}; numpy BLAS {cpu['numpy_blas']}",
        f"- {report['reps']} fresh processes per figure, median; {report['threads']} threads "
        f"(OMP/BLAS/torch/onnxruntime intra-op); load average {report['loadavg_before'][0]:.2f} before, "
        f"{report['loadavg_after'][0]:.2f} after",
    ]
    return "\n".join(lines)


def main() -> None:
    import argparse
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=5, help="fresh processes per figure (median reported)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "query_encoder.json")
    args = ap.parse_args()
    env = child_env(args.threads)
    report: dict = {"reps": args.reps, "threads": args.threads, "model": MODEL, "loadavg_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="query_encoder_") as tmp:
        onnx_path = str(Path(tmp) / "model.onnx")
        res, start = run_child("export_child", [onnx_path], env)
        from rag.embed.base import resolve_model_path

        report["onnx_export"] = {
            **res, "wall_ms": (time.time() - start) * 1000, "file_mb": Path(onnx_path).stat().st_size / 2**20,
            "safetensors_mb": (resolve_model_path(MODEL) / "model.safetensors").stat().st_size / 2**20,
        }
        print(f"exported ONNX in {report['onnx_export']['wall_ms'] / 1000:.1f} s", file=sys.stderr)
        cold: dict[str, list[dict]] = {k: [] for k in COLD}
        warm: dict[str, list[dict]] = {k: [] for k in ENCODERS}
        for rep in range(args.reps):  # encoders interleaved, so a burst of load hits all alike
            for kind in COLD:
                res, start = run_child("cold_child", [kind, onnx_path, str(args.threads)], env)
                cold_ms = (res.pop("ready") - start) * 1000
                cold[kind].append({"cold_ms": cold_ms, "ask_ms": cold_ms + res["batch1_ms"], **res})
            for kind in ENCODERS:
                warm[kind].append(run_child("warm_child", [kind, onnx_path, str(args.threads)], env)[0])
            print(f"rep {rep + 1}/{args.reps} done", file=sys.stderr)
        report["agreement"] = run_child("agree_child", [onnx_path, str(args.threads)], env)[0]
    report["cold_runs"], report["warm_runs"] = cold, warm
    report["cold_median"] = {k: median_of(v) for k, v in cold.items()}
    report["warm_median"] = {k: median_of(v) for k, v in warm.items()}
    report["cold_min"] = {k: min_of(v) for k, v in cold.items()}
    report["warm_min"] = {k: min_of(v) for k, v in warm.items()}
    report["install"] = install_sizes()
    report["cpu"] = cpu_info()
    report["loadavg_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(report))
    print(f"\nwrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
