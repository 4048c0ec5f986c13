"""How far each way of quantising the embedding model moves its vectors, and how fast it runs,
on the CPU this script runs on (the ISA is printed with the figures).

    python eval/quant_portability.py [--corpus ../shared/datasets/realtimeqa-2023/corpus.jsonl.gz]
                                     [--texts 2000] [--out runs/quant.json]

Variants, all from the same float32 ONNX export of the bundled all-MiniLM-L6-v2:

- ``float32``: no quantisation (the reference: torch float32 agrees with it to cosine 0.99999).
- ``s8-per-channel``: ONNX Runtime dynamic quantisation, int8 weights per output channel (the
  default before this study). On CPUs without AVX-512 VNNI the u8 x s8 products are summed in
  pairs into int16 (``vpmaddubsw``), which saturates: the vectors depend on the CPU.
- ``s8-per-channel-r7``: the same with ``reduce_range`` (7-bit weights): a pair of products is
  at most 2 * 255 * 63 < 32,767, so no sum saturates and every ISA computes the same integers.
- ``u8-per-channel``: uint8 weights (the u8 x u8 kernels widen to 16 bits before multiplying).
- ``s8-per-tensor-r7``: one scale per weight matrix, 7-bit.
- ``fused-...``: the same after ONNX Runtime's BERT graph optimiser (fused attention, layer norm, GELU).

For each: cosine of every text's vector with float32's (min, 1st percentile, mean), texts per
second (batches of 32, this process's threads), and whether the top-10 neighbours of 200 query
texts among the others are the same as float32's (overlap@10).
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.embed.onnx_model import OnnxEmbedder, exported_model  # noqa: E402


def cpu_flags() -> str:
    """The model name and the vector ISA flags that matter for int8 kernels."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor()
    name = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("Model name")), "?")
    flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("Flags")), [])
    keep = [f for f in flags if f in {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16"}]
    return f"{name} ({' '.join(keep)})"


def texts_from(corpus: Path, n: int) -> list[str]:
    """``n`` passages of about 60-90 words from the corpus's articles, as the index embeds them."""
    out: list[str] = []
    opener = gzip.open if corpus.name.endswith(".gz") else open
    with opener(corpus, "rt", encoding="utf-8") as f:
        for line in f:
            words = json.loads(line).get("text", "").split()
            for start in range(0, min(len(words), 400), 80):
                if len(words) - start > 20:
                    out.append(" ".join(words[start:start + 80]))
            if len(out) >= n:
                return out[:n]
    return out


def quantize(fp32: Path, out: Path, variant: str) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if variant.startswith("fused-"):  # attention, layer norms and GELU fused by ORT's BERT optimiser first
        from onnxruntime.transformers.optimizer import optimize_model

        fused = out.with_name(f"fused-{out.name}")
        optimize_model(str(fp32), model_type="bert", num_heads=12, hidden_size=384).save_model_to_file(str(fused))
        fp32, variant = fused, variant.removeprefix("fused-")
    if variant == "float32":
        return fp32
    weight = QuantType.QUInt8 if variant.startswith("u8") else QuantType.QInt8
    import onnx

    quantize_dynamic(str(fp32), str(out), weight_type=weight, per_channel="per-channel" in variant,
                     reduce_range=variant.endswith("-r7"),
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})  # fused ops have no shapes
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=Path, default=ROOT.parent / "shared/datasets/realtimeqa-2023/corpus.jsonl.gz")
    ap.add_argument("--texts", type=int, default=2000)
    ap.add_argument("--variants", default="float32,s8-per-channel,s8-per-channel-r7,u8-per-channel,s8-per-tensor-r7")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    texts = texts_from(args.corpus, args.texts)
    base = OnnxEmbedder("all-MiniLM-L6-v2", quantized=False)
    fp32 = exported_model(base.path, quantized=False)
    rows, ref = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for variant in args.variants.split(","):
            model = quantize(fp32, Path(tmp) / f"{variant}.onnx", variant)
            emb = OnnxEmbedder("all-MiniLM-L6-v2", quantized=False)
            emb.warm()
            import onnxruntime as ort

            emb._session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
            emb.encode(texts[:64])
            t0 = time.perf_counter()
            vecs = emb.encode(texts, batch_size=32)
            secs = time.perf_counter() - t0
            if ref is None:
                ref = vecs
            cos = (vecs * ref).sum(1)
            q = np.arange(0, len(texts), max(1, len(texts) // 200))[:200]
            top_ref = np.argsort(-(ref[q] @ ref.T), axis=1)[:, 1:11]
            top = np.argsort(-(vecs[q] @ vecs.T), axis=1)[:, 1:11]
            overlap = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top_ref, top)]))
            rows.append({"variant": variant, "cos_min": float(cos.min()), "cos_p1": float(np.percentile(cos, 1)),
                         "cos_mean": float(cos.mean()), "texts_per_s": len(texts) / secs, "overlap_at_10": overlap})
            print(f"{variant:20s} cos min {cos.min():.4f} p1 {np.percentile(cos, 1):.4f} mean {cos.mean():.5f}"
                  f"  {len(texts) / secs:6.1f} texts/s  top-10 overlap {overlap:.3f}", flush=True)
    cpu = cpu_flags()
    print(f"CPU: {cpu}; {len(texts)} passages of {args.corpus.name}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"cpu": cpu, "texts": len(texts), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
