"""The embedding model run by ONNX Runtime, in float32 or with int8 weights.

On a CPU without AMX, int8 matrix products run the encoder faster than torch, and a process that
finds the exported model cached never imports torch (seconds of a short indexing run). The model
is exported from the sentence-transformers folder the first time it is used (torch and
transformers do that, once) and kept under the user cache, keyed by the weights it came from.

int8 is ONNX Runtime's dynamic quantisation, per output channel (per tensor, the vectors drift to
cosine 0.85-0.95 of float32; per channel they stay at 0.99), with 7-bit weights
(``reduce_range``). Full 8-bit weights give vectors that depend on the CPU: without AVX-512 VNNI
(AVX2 only, e.g. AMD Zen 3) ONNX Runtime sums pairs of uint8 x int8 products into int16
(``vpmaddubsw``), which saturates, while VNNI sums into int32 exactly. With weights in
[-64, 64] a pair is at most 2 * 255 * 64 < 32,767, so every ISA computes the same integers
(``int8_kernels_exact`` checks it on the running CPU). At first use the int8 model is also
compared with the float one on fixed sentences; where they disagree, float32 is used instead,
with one warning (``int8_agrees``). Measured in docs/experiments.md, "int8 on every CPU".
Only BERT models with mean pooling and normalisation are exported (all-MiniLM-L6-v2, BGE, E5).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np

from rag.embed.base import (
    INT8_VECTORS,
    load_tokenizer,
    mean_pool,
    mean_pooled_bert,
    pad_encodings,
    quiet_offline_transformers,
    resolve_model_path,
    unit_rows,
)
from rag.embed.cpu import cpu_model_and_flags
from rag.errors import RagError

INT8_FILE = "model-int8-r7.onnx"  # 7-bit weights: the same integers on every CPU (module docstring)
# The least cosine between int8 and float32 vectors of CHECK_SENTENCES that still counts as
# agreeing: measured 0.975 as the floor over 1,000 news passages (AVX2, 7-bit weights), 0.98-0.99 on
# these sentences; a kernel that saturates or miscomputes falls far below.
AGREEMENT_FLOOR = 0.97
CHECK_SENTENCES = (
    "Iran's foreign minister offered to mediate between Kabul and Islamabad after the talks collapsed.",
    "The central bank raised interest rates by half a percentage point on Wednesday.",
    "At least 37 people were killed and 120 injured when the storm hit the coast.",
    "Shares of the company fell 12% after it reported a loss of $1.2 billion.",
    "The prime minister resigned, and the party will choose a new leader next month.",
    "Scientists said the drought was the worst in five hundred years.",
    "The museum reopened to the public on Saturday after a three-year renovation.",
    "Voter turnout reached 61 percent, the highest since 1998, officials said.",
    "The team won the championship for the third time in four seasons.",
    "Negotiators agreed on a ceasefire that takes effect at midnight.",
    "Wildfires forced thousands of residents to leave their homes in California.",
    "Who is the new chief executive of the airline?",
)


def models_cache() -> Path:
    """Where exported models are kept: ``$XDG_CACHE_HOME/rag/models`` (~/.cache/rag/models)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rag" / "models"


def _check_exportable(path: Path) -> dict:
    """The model's config when it is a BERT mean-pooling model; a clear error otherwise."""
    config, why = mean_pooled_bert(path)
    if config is None:
        raise RagError(f"the ONNX backend runs BERT models with mean pooling: {why} (use --embed torch)")
    return config


def exported_model(model_path: Path, quantized: bool) -> Path:
    """The ONNX file of the model at ``model_path`` (int8 weights when ``quantized``), exported
    on first use into the models cache; a half-written export is never used."""
    _check_exportable(model_path)
    weights = model_path / "model.safetensors"
    st = weights.stat()
    key = hashlib.sha1(f"{model_path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:12]
    folder = models_cache() / f"{'-'.join(model_path.parts[-2:])}-{key}"
    target = folder / (INT8_FILE if quantized else "model.onnx")
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    print(f"Exporting the embedding model to ONNX{' with int8 weights' if quantized else ''} (once, into {folder})...",
          file=sys.stderr, flush=True)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        _export_and_quantize(model_path, folder, target, quantized)
    finally:  # the exporter's and quantiser's logging.warning calls install a root handler
        root.handlers[:] = handlers
        root.setLevel(level)
    return target


def _export_and_quantize(model_path: Path, folder: Path, target: Path, quantized: bool) -> None:
    with tempfile.TemporaryDirectory(dir=folder, prefix=".tmp-") as tmp:
        fp32 = folder / "model.onnx"
        if not fp32.is_file():
            _export(model_path, Path(tmp) / "model.onnx")
            os.replace(Path(tmp) / "model.onnx", fp32)
        if quantized:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            out = Path(tmp) / "model-int8.onnx"
            logging.getLogger().setLevel(logging.ERROR)  # its advice to pre-process is for image models
            quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True)
            os.replace(out, target)


def _export(model_path: Path, out: Path) -> None:
    """The transformer of a sentence-transformers folder as ONNX: token ids, attention mask and
    token types in, last hidden states out; batch and length dynamic."""
    quiet_offline_transformers()
    try:
        import torch
        from transformers import AutoModel
    except ImportError as e:
        raise RagError(f"exporting the model to ONNX needs torch and transformers ({e})") from None
    bert = AutoModel.from_pretrained(str(model_path)).eval()

    class Hidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    names = ["input_ids", "attention_mask", "token_type_ids"]
    dummy = tuple(torch.ones((2, 8), dtype=torch.long) if n != "token_type_ids" else torch.zeros((2, 8), dtype=torch.long)
                  for n in names)
    with warnings.catch_warnings():  # the tracer's notes on Python control flow in the model
        warnings.simplefilter("ignore")
        torch.onnx.export(Hidden().eval(), dummy, str(out), input_names=names,
                          output_names=["last_hidden_state"],
                          dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]},
                          opset_version=17, dynamo=False)


def cpu_signature() -> str:
    """The CPU model and the vector ISA flags that decide which int8 kernels run, and the ONNX
    Runtime version: an agreement check holds for this triple only."""
    import platform

    import onnxruntime

    model, flags = cpu_model_and_flags()
    isa = sorted(f for f in flags if f.startswith(("avx", "amx")) or "vnni" in f)
    return f"{model or platform.processor() or platform.machine()} | {' '.join(isa)} | onnxruntime {onnxruntime.__version__}"


def int8_agreement(name: str) -> float:
    """The least cosine between the int8 and float32 vectors of ``CHECK_SENTENCES`` on this CPU
    (both models exported on first use); kept beside the exports for this CPU and ONNX Runtime."""
    path = resolve_model_path(name)
    int8 = exported_model(path, quantized=True)
    record = int8.parent / "int8-agreement.json"
    cpu = cpu_signature()
    try:
        known = json.loads(record.read_text())
    except (OSError, ValueError):
        known = {}
    if cpu in known:
        return float(known[cpu])
    texts = list(CHECK_SENTENCES)
    cos = float((OnnxEmbedder(name, quantized=True).encode(texts) * OnnxEmbedder(name, quantized=False).encode(texts))
                .sum(1).min())
    known[cpu] = cos
    tmp = record.with_name(f".{record.name}.{os.getpid()}")
    tmp.write_text(json.dumps(known, indent=1))
    os.replace(tmp, record)
    return cos


def int8_agrees(name: str, warn=lambda msg: print(msg, file=sys.stderr, flush=True)) -> bool:
    """Whether int8 vectors are close enough to float32 ones on this CPU (``AGREEMENT_FLOOR``);
    when not, ``warn`` says so once per process and the caller embeds in float32."""
    cos = int8_agreement(name)
    if cos >= AGREEMENT_FLOOR:
        return True
    if name not in _WARNED:
        _WARNED.add(name)
        warn(f"warning: int8 vectors on this CPU differ from float32 ones (cosine {cos:.3f} < {AGREEMENT_FLOOR}); "
             "embedding in float32 instead (--embed onnx)")
    return False


_WARNED: set[str] = set()


def int8_kernels_exact(weights: np.ndarray, rows: int = 64) -> bool:
    """Whether this CPU's int8 matrix product (ONNX Runtime's ``MatMulInteger``, the kernel the
    quantised encoder runs) gives the exact integers for ``weights`` (int8, K x N) against the
    worst activations (uint8 0 and 255): then every CPU computes the same vectors."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    k, n = weights.shape
    rng = np.random.default_rng(0)
    acts = np.where(rng.random((rows, k)) < 0.5, 0, 255).astype(np.uint8)
    acts[0], acts[1] = 255, 0
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["A", "B"], ["Y"])], "check",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, [rows, k])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [rows, n])],
        [numpy_helper.from_array(np.ascontiguousarray(weights, dtype=np.int8), "B")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {"A": acts})[0]
    return bool(np.array_equal(got, acts.astype(np.int64) @ weights.astype(np.int64)))


class OnnxEmbedder:
    """Unit vectors from the ONNX export of a BERT mean-pooling model (float32 or int8 weights),
    texts batched by length; the same tokenizer and truncation as sentence-transformers."""

    def __init__(self, name: str, quantized: bool = True, threads: int = 0) -> None:
        self.name = name
        self.path = resolve_model_path(name)
        config = _check_exportable(self.path)
        self.dim = int(config["hidden_size"])
        self.quantized = quantized
        self.dtype = "int8" if quantized else "float32"
        self.vectors = INT8_VECTORS if quantized else "float"
        self.backend = "onnx-int8" if quantized else "onnx"
        self.path_name = f"onnx cpu {self.dtype}"
        self.batch_size: int | None = None  # the caller's
        self.threads = threads
        self._session = None
        self._tok = None
        self._lock = threading.Lock()

    def _load(self) -> None:
        import onnxruntime as ort
        onnx_file = exported_model(self.path, self.quantized)
        options = ort.SessionOptions()
        # OMP_NUM_THREADS as torch reads it: Ray sets it to an actor's CPUs, so two embedders
        # on a 2-core node do not run four threads
        threads = self.threads or int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
        if threads > 0:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
        self._tok = load_tokenizer(self.path)

    def warm(self) -> None:
        with self._lock:
            if self._session is None:
                self._load()

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self.warm()
        encs = self._tok.encode_batch(texts)
        out = np.zeros((len(texts), self.dim), np.float32)
        order = np.argsort([len(e.ids) for e in encs], kind="stable")  # little padding per batch
        for start in range(0, len(order), batch_size):
            part = order[start:start + batch_size]
            ids, mask, types = pad_encodings([encs[i] for i in part])
            hidden = self._session.run(None, {"input_ids": ids, "attention_mask": mask.astype(np.int64),
                                              "token_type_ids": types})[0]
            out[part] = unit_rows(mean_pool(hidden, mask))
        return out

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode([text])[0]

    def encode_short(self, texts: list[str]) -> np.ndarray:
        return self.encode(texts)

