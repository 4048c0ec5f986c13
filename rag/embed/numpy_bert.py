"""BERT + mean pooling + L2 normalisation in numpy: a query embedded without importing torch
(seconds of a cold start), matching sentence-transformers to within float rounding (tested)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rag.embed.base import length_batches, load_tokenizer, mean_pool, mean_pooled_bert, pad_encodings, unit_rows


class NumpyBertEncoder:
    """BERT + mean pooling + L2 normalisation in numpy, for fast cold starts."""

    def __init__(self, tokenizer, weights: dict[str, np.ndarray], config: dict, max_len: int) -> None:
        self.tok = tokenizer
        self.w = weights
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.max_len = max_len
        self._wt: dict[str, np.ndarray] = {}
        self.prefix = next((p for p in ("", "bert.", "model.") if f"{p}embeddings.word_embeddings.weight" in weights), None)

    @classmethod
    def load(cls, path: Path) -> NumpyBertEncoder | None:
        """The encoder for a plain BERT mean-pooling model, or None for anything else."""
        config, _ = mean_pooled_bert(path)
        if config is None:
            return None
        try:
            from safetensors.numpy import load_file

            weights = load_file(str(path / "model.safetensors"))
            tokenizer = load_tokenizer(path)
            max_len = tokenizer.truncation["max_length"]
            enc = cls(tokenizer, weights, config, max_len)
            return enc if enc.prefix is not None else None
        except (OSError, ValueError, KeyError, ImportError, TypeError):
            return None

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length vectors for ``texts`` (each truncated to the model's maximum length).

        Texts of similar length share a padded batch; a long question is not run together
        with short sentences, which would pad each of them to its length.
        """
        encs = self.tok.encode_batch(texts)
        out = np.zeros((len(texts), self._p("embeddings.word_embeddings.weight").shape[1]), np.float32)
        for idx in length_batches([len(e.ids) for e in encs]):
            ids, mask, types = pad_encodings([encs[i] for i in idx])
            pooled = mean_pool(self.hidden(ids, mask, types), mask)
            out[idx] = unit_rows(pooled)
        return out

    def hidden(self, ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> np.ndarray:
        """The last layer's hidden states, (batch, tokens, dim), for padded token ids."""
        b, n = ids.shape
        x = (self._p("embeddings.word_embeddings.weight")[ids]
             + self._p("embeddings.position_embeddings.weight")[:n][None]
             + self._p("embeddings.token_type_embeddings.weight")[types])
        x = _layer_norm(x, self._p("embeddings.LayerNorm.weight"), self._p("embeddings.LayerNorm.bias"), self.eps)
        d = x.shape[-1]
        hd = d // self.heads
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            # Contiguous copies: numpy multiplies strided stacks of matrices without BLAS, which
            # made one 256-token question take seconds (a 25 x 256-token batch took 21 s).
            q, k, v = (
                np.ascontiguousarray(
                    self._lin(x, p + f"attention.self.{name}").reshape(b, n, self.heads, hd).transpose(0, 2, 1, 3))
                for name in ("query", "key", "value")
            )
            att = q @ np.ascontiguousarray(k.transpose(0, 1, 3, 2)) * np.float32(1.0 / np.sqrt(hd)) + bias
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            ctx = np.ascontiguousarray((att @ v).transpose(0, 2, 1, 3)).reshape(b, n, d)
            x = _layer_norm(x + self._lin(ctx, p + "attention.output.dense"),
                            self._p(p + "attention.output.LayerNorm.weight"),
                            self._p(p + "attention.output.LayerNorm.bias"), self.eps)
            h = _gelu(self._lin(x, p + "intermediate.dense"))
            x = _layer_norm(x + self._lin(h, p + "output.dense"),
                            self._p(p + "output.LayerNorm.weight"), self._p(p + "output.LayerNorm.bias"), self.eps)
        return x

    def _p(self, name: str) -> np.ndarray:
        return self.w[self.prefix + name]

    def _lin(self, x: np.ndarray, name: str) -> np.ndarray:
        wt = self._wt.get(name)
        if wt is None:  # transposed once, contiguous, so matmul runs as one BLAS gemm
            wt = self._wt[name] = np.ascontiguousarray(self._p(name + ".weight").T)
        return (x.reshape(-1, x.shape[-1]) @ wt + self._p(name + ".bias")).reshape(*x.shape[:-1], wt.shape[1])


def _layer_norm(x: np.ndarray, g: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def _gelu(x: np.ndarray) -> np.ndarray:
    # Exact (erf) GELU as in BERT; math.erf vectorised via numpy's frompyfunc is slow,
    # so use the Abramowitz-Stegun erf approximation (max error 1.5e-7).
    z = x * np.float32(1.0 / np.sqrt(2.0))
    s = np.sign(z)
    a = np.abs(z)
    t = 1.0 / (1.0 + 0.3275911 * a)
    y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * np.exp(-a * a)
    return 0.5 * x * (1.0 + s * y)
