"""Embedders: the registry, the fake used by unit tests, and the real model's precision paths."""

from __future__ import annotations

import numpy as np
import pytest

import rag.embed.choose
import rag.embed.torch_model
from rag import Rag, UnknownModelError
from rag.config import DEFAULT_CORPUS
from rag.embed.base import resolve_model_path
from rag.embed.choose import get_embedder
from rag.embed.numpy_bert import NumpyBertEncoder
from rag.embed.torch_model import SentenceTransformerEmbedder
from rag.ingest.corpus import read_corpus

REAL_MODEL = "all-MiniLM-L6-v2"


def corpus_sentences() -> list[str]:
    """A few sentences of the shipped articles, of different lengths (so batches are padded)."""
    doc = next(d for d in read_corpus([DEFAULT_CORPUS]).documents if d.doc_id == "004_f1ed5df54c6c908a")
    paragraphs = [p.strip() for p in doc.text.split("\n\n") if len(p.strip()) > 40]
    return [*paragraphs[:4], "Who offered to mediate between Kabul and Islamabad?", "Ishaq Dar"]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


# ---------------------------------------------------------------- registry and fake


def test_registered_prefix_resolves_to_the_fake_and_is_cached():
    e = get_embedder("fake-64")
    assert e is get_embedder("fake-64")
    assert (e.name, e.dim, e.dtype) == ("fake-64", 64, "float32")


def test_fake_embedder_is_unit_length_deterministic_and_word_sensitive():
    e = get_embedder("fake-64")
    texts = ["Iran offered to mediate", "Iran offered mediation talks", "harbour ferry storm", ""]
    v = e.encode(texts)
    assert v.shape == (4, 64) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-6)
    assert np.array_equal(v, type(e)().encode(texts))  # another instance, same vectors
    assert np.allclose(e.encode_query(texts[0]), v[0]) and np.allclose(e.encode_short(texts[:2]), v[:2])
    assert v[0] @ v[1] > v[0] @ v[2]
    assert e.encode([]).shape == (0, 64)


def test_unknown_model_is_a_clear_error_and_is_never_downloaded(tmp_path):
    with pytest.raises(UnknownModelError, match="never downloaded"):
        get_embedder("sentence-transformers/some-model-not-here")
    with pytest.raises(UnknownModelError):
        Rag(corpus=(str(DEFAULT_CORPUS),), index_dir=str(tmp_path / "idx"), model=str(tmp_path / "nope")).index()
    assert not (tmp_path / "idx" / "CURRENT").exists()


def test_bundled_model_resolves_to_a_local_folder():
    path = resolve_model_path(REAL_MODEL)
    assert (path / "config.json").is_file() and (path / "modules.json").is_file()
    assert resolve_model_path("sentence-transformers/all-MiniLM-L6-v2") == path


@pytest.mark.parametrize("flags,expected", [
    ("fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni", True),  # AMD EPYC (Zen 4)
    ("fpu sse2 avx512f amx_bf16 amx_tile amx_int8", True),  # Intel Sapphire Rapids
    ("fpu sse2 avx2 avx512f avx512_vnni", False),
    ("fpu sse2 avx2 xavx512_bf16x", False),  # a flag that only contains the name
])
def test_bf16_support_is_read_from_the_cpu_flags(flags, expected):
    cpuinfo = f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n"
    assert rag.embed.torch_model.bf16_supported(cpuinfo) is expected
    assert rag.embed.torch_model.bf16_supported("") is False


# ---------------------------------------------------------------- real model


@pytest.fixture(scope="module")
def st_float32() -> SentenceTransformerEmbedder:
    e = SentenceTransformerEmbedder(REAL_MODEL, "float32")
    e.warm()
    return e


@pytest.mark.slow
def test_bfloat16_embeddings_match_float32(st_float32, real_rag):
    if not rag.embed.torch_model.bf16_supported():
        pytest.skip("this CPU has no native bfloat16 (AMX or AVX-512 BF16)")
    # real_rag indexed with dtype "auto", which is bfloat16 on this CPU: reuse its model.
    bf16 = (
        real_rag.embedder
        if real_rag.embedder.dtype == "bfloat16"
        else SentenceTransformerEmbedder(REAL_MODEL, "bfloat16")
    )
    assert bf16.dtype == "bfloat16"
    texts = corpus_sentences()
    a, b = bf16.encode(texts), st_float32.encode(texts)
    assert a.dtype == np.float32 and np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert cosines(a, b).min() >= 0.99


@pytest.mark.slow
def test_auto_dtype_follows_the_cpu():
    e = SentenceTransformerEmbedder(REAL_MODEL, "auto")
    assert e.dtype == ("bfloat16" if rag.embed.torch_model.bf16_supported() else "float32")
    assert e.dim == 384


@pytest.mark.slow
def test_numpy_bert_encoder_matches_sentence_transformers(st_float32):
    encoder = NumpyBertEncoder.load(resolve_model_path(REAL_MODEL))
    assert encoder is not None
    texts = corpus_sentences()
    expected = st_float32.encode(texts)
    batched = encoder.encode(texts)  # one padded batch
    single = np.stack([encoder.encode([t])[0] for t in texts])
    assert batched.dtype == np.float32 and batched.shape == expected.shape == (len(texts), 384)
    assert cosines(batched, expected).min() > 0.999
    assert cosines(single, expected).min() > 0.999


@pytest.mark.slow
def test_queries_are_embedded_without_loading_torch(st_float32):
    e = SentenceTransformerEmbedder(REAL_MODEL, "float32")
    q = "Who offered to mediate between Kabul and Islamabad?"
    v = e.encode_query(q)
    assert e._model is None  # the fast numpy path, no torch model
    assert float(v @ st_float32.encode([q])[0]) > 0.999


@pytest.mark.slow
def test_a_warm_model_embeds_queries_and_sentences_like_encode(st_float32):
    texts = corpus_sentences()  # of different lengths: one padded batch
    short = st_float32.encode_short(texts)
    assert short.dtype == np.float32 and short.shape == (len(texts), 384)
    assert np.allclose(np.linalg.norm(short, axis=1), 1.0, atol=1e-5)
    assert cosines(short, st_float32.encode(texts)).min() > 0.9999
    assert float(st_float32.encode_query(texts[-2]) @ st_float32.encode([texts[-2]])[0]) > 0.9999


# ---------------------------------------------------------------- backends and devices


def test_backend_choice_follows_the_setting_then_the_index_then_the_machine():
    from rag.embed.choose import CPU_BACKEND, choose_backend

    assert choose_backend("onnx-int8", {"embedding_backend": "torch"}) == "onnx-int8"  # explicit wins
    assert choose_backend("auto", {"embedding_backend": "onnx-int8"}) == "onnx-int8"  # the index's own kind
    assert choose_backend("auto", {"format": 3}, cuda=False) == CPU_BACKEND  # an older index, to be rebuilt
    assert choose_backend("auto", None, cuda=True) == "torch"
    assert choose_backend("auto", None, cuda=False) == CPU_BACKEND


def test_precision_and_batch_size_are_chosen_for_the_device():
    from rag.embed.torch_model import device_batch_size, pick_dtype

    assert pick_dtype("auto", "cuda") == "float16"
    assert pick_dtype("auto", "cpu", "flags\t: fpu avx512f avx512_bf16") == "bfloat16"
    assert pick_dtype("auto", "cpu", "flags\t: fpu amx_bf16") == "bfloat16"
    assert pick_dtype("auto", "cpu", "flags\t: fpu avx2") == "float32"
    assert pick_dtype("float32", "cuda") == "float32"
    assert device_batch_size("cpu", 80 * 2**30) is None  # the settings' batch size on a CPU
    assert device_batch_size("cuda", 141 * 2**30) == 1024 and device_batch_size("cuda", 6 * 2**30) == 128


def test_asking_for_cuda_without_a_gpu_is_a_clear_error(monkeypatch):
    from rag import RagError
    from rag.embed.torch_model import pick_device

    monkeypatch.setattr(rag.embed.torch_model, "cuda_available", lambda: False)
    assert pick_device("auto") == "cpu"
    with pytest.raises(RagError, match="no CUDA GPU"):
        pick_device("cuda")


def test_an_index_of_one_kind_of_vectors_is_rebuilt_not_mixed_when_another_kind_is_asked_for(fake_settings):
    from rag.index.layout import read_manifest, signature_mismatch

    r = Rag(fake_settings)
    r.index()
    manifest = read_manifest(fake_settings.index_path)
    assert manifest["vectors"] == "float" and manifest["embedding_backend"] == "torch"
    assert signature_mismatch(manifest, fake_settings) == ""
    assert signature_mismatch(manifest, fake_settings.with_(embed="onnx")) == ""  # float vectors too
    assert "int8" in signature_mismatch(manifest, fake_settings.with_(embed="onnx-int8"))
    # the kind the embedder would write decides too: an index of the former 8-bit int8 vectors
    # (CPU-dependent) is rebuilt by an embedder that writes 7-bit ones
    assert "int8-r7" in signature_mismatch(dict(manifest, vectors="int8"), fake_settings, "int8-r7")
    assert signature_mismatch(dict(manifest, vectors="int8-r7"), fake_settings, "int8-r7") == ""
    del manifest["vectors"]  # an index written before the kind was recorded holds float vectors
    assert signature_mismatch(manifest, fake_settings.with_(embed="torch")) == ""


@pytest.mark.slow
@pytest.mark.parametrize("quantized, floor", [(False, 0.9999), (True, 0.98)])
def test_onnx_backend_gives_the_vectors_of_sentence_transformers(quantized, floor):
    from rag.embed.onnx_model import OnnxEmbedder, exported_model

    texts = corpus_sentences()
    ref = SentenceTransformerEmbedder(REAL_MODEL, "float32").encode(texts)
    e = OnnxEmbedder(REAL_MODEL, quantized=quantized)
    vecs = e.encode(texts, batch_size=2)  # batches of different lengths, padded
    assert vecs.shape == ref.shape and np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert cosines(vecs, ref).min() >= floor
    assert np.allclose(e.encode_short(texts[:1]), e.encode(texts[:1]), atol=1e-6)
    path = exported_model(resolve_model_path(REAL_MODEL), quantized)
    assert path.is_file() and not list(path.parent.glob(".tmp-*"))  # exported once, nothing half-written
    assert e.vectors == ("int8-r7" if quantized else "float") and e.backend == ("onnx-int8" if quantized else "onnx")


@pytest.mark.slow
def test_a_cached_onnx_model_embeds_without_importing_torch(tmp_path):
    import subprocess
    import sys

    from rag.embed.onnx_model import exported_model

    exported_model(resolve_model_path(REAL_MODEL), True)
    code = ("import sys; from rag.embed.choose import get_embedder; e = get_embedder('all-MiniLM-L6-v2', backend='onnx-int8'); "
            "v = e.encode(['Kabul and Islamabad']); print(v.shape, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == "False" and "(1, 384)" in out.stdout


def test_onnx_backend_refuses_a_model_it_cannot_export(tmp_path):
    from rag import RagError
    from rag.embed.onnx_model import OnnxEmbedder

    (tmp_path / "config.json").write_text('{"model_type": "t5", "hidden_size": 8}')
    (tmp_path / "modules.json").write_text("[]")
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}')
    with pytest.raises(RagError, match="BERT models with mean pooling"):
        OnnxEmbedder(str(tmp_path))


@pytest.mark.slow
def test_float16_as_a_gpu_runs_it_gives_the_float32_vectors():
    """The GPU path's precision (float16 weights, vectors renormalised in float32), run on the CPU."""
    texts = corpus_sentences()
    ref = SentenceTransformerEmbedder(REAL_MODEL, "float32", device="cpu").encode(texts)
    half = SentenceTransformerEmbedder(REAL_MODEL, "float16", device="cpu")
    assert half.path_name == "torch cpu float16" and half.batch_size is None
    vecs = half.encode(texts, batch_size=4)
    assert vecs.dtype == np.float32 and cosines(vecs, ref).min() >= 0.99
    assert cosines(half.encode_short(texts[-2:]), ref[-2:]).min() >= 0.99  # the query path moves inputs to the model


# ---------------------------------------------------------------- the same vectors on every CPU


@pytest.mark.slow
def test_the_default_cpu_backend_gives_the_float_models_vectors_on_this_cpu():
    """Whatever CPU runs this (AVX2, AVX-512, VNNI, AMX): the default backend's vectors are
    within the agreement floor of float32 ones from sentence-transformers."""
    from rag.embed.choose import choose_backend
    from rag.embed.onnx_model import AGREEMENT_FLOOR

    texts = corpus_sentences()
    backend = choose_backend("auto", None, cuda=False, model=REAL_MODEL)
    vecs = get_embedder(REAL_MODEL, "auto", backend).encode(texts)
    ref = SentenceTransformerEmbedder(REAL_MODEL, "float32").encode(texts)
    assert cosines(vecs, ref).min() >= AGREEMENT_FLOOR


@pytest.mark.slow
def test_int8_weights_are_7_bit_so_every_cpu_computes_the_same_integers():
    """ONNX Runtime on AVX2 sums pairs of uint8 x int8 products in int16 and saturates with full
    8-bit weights; 7-bit ones never do. Each quantised weight matrix of the exported model is
    checked on this CPU against exact integer arithmetic, with the worst activations."""
    import onnx
    from onnx import numpy_helper

    from rag.embed.onnx_model import exported_model, int8_kernels_exact

    model = onnx.load(str(exported_model(resolve_model_path(REAL_MODEL), quantized=True)))
    consumers = {i for node in model.graph.node if node.op_type in ("MatMulInteger", "DynamicQuantizeMatMul")
                 for i in node.input}
    weights = [numpy_helper.to_array(t) for t in model.graph.initializer
               if t.name in consumers and t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 2]
    assert len(weights) >= 36  # 6 layers x (q, k, v, output, 2 feed-forward)
    assert all(w.min() >= -64 and w.max() <= 64 for w in weights)
    assert all(int8_kernels_exact(w) for w in weights[:6])


def test_int8_checked_against_float_falls_back_to_float_with_one_warning(monkeypatch, capsys):
    """When int8 vectors disagree with float32 ones on this CPU, "auto" embeds in float32 and
    says so once."""
    import rag.embed.onnx_model
    from rag.embed.choose import choose_backend

    monkeypatch.setattr(rag.embed.onnx_model, "int8_agreement", lambda name: 0.91)
    monkeypatch.setattr(rag.embed.onnx_model, "_WARNED", set())
    assert choose_backend("auto", None, cuda=False, model=REAL_MODEL) == "onnx"
    assert choose_backend("auto", None, cuda=False, model=REAL_MODEL) == "onnx"
    assert choose_backend("onnx-int8", None, cuda=False, model=REAL_MODEL) == "onnx-int8"  # asked for: kept
    warnings = [line for line in capsys.readouterr().err.splitlines() if "int8" in line]
    assert len(warnings) == 1 and "0.910" in warnings[0] and "float32" in warnings[0]
    monkeypatch.setattr(rag.embed.onnx_model, "int8_agreement", lambda name: 0.99)
    assert choose_backend("auto", None, cuda=False, model=REAL_MODEL) == "onnx-int8"


@pytest.mark.slow
def test_int8_agreement_is_measured_once_per_cpu_and_kept():
    from rag.embed.onnx_model import AGREEMENT_FLOOR, cpu_signature, exported_model, int8_agreement

    cos = int8_agreement(REAL_MODEL)
    assert AGREEMENT_FLOOR <= cos < 1.0  # int8 is close to float32, and not float32
    record = exported_model(resolve_model_path(REAL_MODEL), True).parent / "int8-agreement.json"
    import json

    assert json.loads(record.read_text())[cpu_signature()] == pytest.approx(cos)
