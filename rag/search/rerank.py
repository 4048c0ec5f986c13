"""The learned reader: a cross-encoder that scores (question, sentence) pairs, run in numpy.

Two kinds of model folder load here, both without torch:

- ours (``reader.json`` of type ``rag-reader``): the tensors fine-tuned from a base
  sentence-transformers model (the bundled all-MiniLM-L6-v2) over that model's own weights,
  mean pooling and one linear output. The shipped one lives in ``rag/models/reader/``
  (recipe: ``python -m rag train``; see its MODEL_CARD.md).
- a Hugging Face cross-encoder a user brings (``config.json`` of a
  ``BertForSequenceClassification`` with one label and ``model.safetensors``, such as a
  downloaded ``cross-encoder/ms-marco-MiniLM-L6-v2``): [CLS], pooler, classifier.

``score`` returns sigmoid probabilities: the chance that the sentence answers the question.
"""

from __future__ import annotations

import json
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

from rag.config import PACKAGE_DIR
from rag.embed.base import mean_pool, pad_encodings, resolve_model_path
from rag.embed.numpy_bert import NumpyBertEncoder
from rag.errors import UnknownModelError

SHIPPED_READER = PACKAGE_DIR / "models" / "reader"
BATCH = 16  # pairs per forward pass; candidates are sorted by length so a batch pads little


class CrossEncoderReader:
    """Score (question, sentence) pairs with a BERT cross-encoder in numpy."""

    def __init__(self, encoder: NumpyBertEncoder, head: str, weights: dict[str, np.ndarray],
                 name: str, threshold: float | None) -> None:
        self.encoder = encoder
        self.head = head  # "mean" (ours) or "cls" (BertForSequenceClassification)
        self.w = weights
        self.name = name
        self.threshold = threshold  # calibrated abstention threshold on ``score``, when known
        self.combiner: dict | None = None  # {"features", "weights", "bias"}: see answer.read_sentences
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: str | Path) -> CrossEncoderReader:
        """A reader from a model folder; raises UnknownModelError naming what is missing."""
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise UnknownModelError(f"reranker {str(path)!r} is not a folder holding a cross-encoder model")
        try:
            if (folder / "reader.json").is_file():
                return cls._load_ours(folder)
            return cls._load_hf(folder)
        except (OSError, ValueError, KeyError) as e:
            raise UnknownModelError(f"cannot load the reranker in {folder}: {e}") from None

    @classmethod
    def _load_ours(cls, folder: Path) -> CrossEncoderReader:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        cfg = json.loads((folder / "reader.json").read_text())
        if cfg.get("type") != "rag-reader":
            raise ValueError("reader.json is not of type rag-reader")
        base = resolve_model_path(cfg["base_model"])
        weights = load_file(str(base / "model.safetensors"))
        prefix = next(p for p in ("", "bert.", "model.") if f"{p}embeddings.word_embeddings.weight" in weights)
        weights = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
        for k, v in load_file(str(folder / cfg.get("weights", "reader.safetensors"))).items():
            weights[k] = v.astype(np.float32)
        config = json.loads((base / "config.json").read_text())
        config["num_hidden_layers"] = int(cfg.get("num_layers", config["num_hidden_layers"]))
        tok = Tokenizer.from_file(str(base / "tokenizer.json"))
        enc = _encoder(tok, weights, config, int(cfg.get("max_length", 128)))
        reader = cls(enc, "mean", weights, folder.name, cfg.get("abstain_threshold"))
        reader.combiner = cfg.get("combiner")
        return reader

    @classmethod
    def _load_hf(cls, folder: Path) -> CrossEncoderReader:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        config = json.loads((folder / "config.json").read_text())
        if config.get("model_type") != "bert" or config.get("num_labels", len(config.get("id2label", {0: 0}))) != 1:
            raise ValueError("only BERT cross-encoders with one output (BertForSequenceClassification) are supported")
        if not (folder / "model.safetensors").is_file():
            raise ValueError("model.safetensors is missing (convert pytorch_model.bin with safetensors first)")
        weights = {k.removeprefix("bert."): v.astype(np.float32) for k, v in load_file(str(folder / "model.safetensors")).items()}
        tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        max_len = int(json.loads((folder / "tokenizer_config.json").read_text()).get("model_max_length", 512)) \
            if (folder / "tokenizer_config.json").is_file() else 512
        enc = _encoder(tok, weights, config, min(max_len, 512))
        threshold = None
        if (folder / "rag.json").is_file():
            threshold = json.loads((folder / "rag.json").read_text()).get("abstain_threshold")
        return cls(enc, "cls", weights, folder.name, threshold)

    def logits(self, question: str, texts: list[str]) -> np.ndarray:
        """Raw scores, one per text, for the pairs (question, text)."""
        if not texts:
            return np.zeros(0, dtype=np.float32)
        with self._lock:  # the tokenizer's truncation settings are shared state
            encs = self.encoder.tok.encode_batch([(question, t) for t in texts])
        order = np.argsort([len(e.ids) for e in encs], kind="stable")
        out = np.zeros(len(texts), dtype=np.float32)
        for i in range(0, len(order), BATCH):
            sel = order[i: i + BATCH]
            ids, mask, types = pad_encodings([encs[j] for j in sel])
            x = self.encoder.hidden(ids, mask, types)
            if self.head == "mean":
                pooled = mean_pool(x, mask)
                out[sel] = (pooled @ self.w["head.weight"].T)[:, 0] + self.w["head.bias"][0]
            else:
                pooled = np.tanh(x[:, 0] @ self.w["pooler.dense.weight"].T + self.w["pooler.dense.bias"])
                out[sel] = (pooled @ self.w["classifier.weight"].T)[:, 0] + self.w["classifier.bias"][0]
        return out

    def score(self, question: str, texts: list[str]) -> np.ndarray:
        """The chance that each text answers ``question`` (sigmoid of the logits)."""
        return (1.0 / (1.0 + np.exp(-self.logits(question, texts)))).astype(np.float32)


def _encoder(tok, weights: dict[str, np.ndarray], config: dict, max_len: int) -> NumpyBertEncoder:
    if config.get("hidden_act", "gelu") != "gelu":
        raise ValueError(f"activation {config.get('hidden_act')!r} is not supported (gelu only)")
    tok.no_padding()
    tok.enable_truncation(max_length=max_len, strategy="longest_first")
    enc = NumpyBertEncoder(tok, weights, config, max_len)
    if enc.prefix is None:
        raise ValueError("no BERT embeddings found in the weights")
    return enc


@lru_cache(maxsize=4)
def get_reader(path: str = "") -> CrossEncoderReader:
    """The reader in ``path`` (default: the shipped one), loaded once per process."""
    return CrossEncoderReader.load(path or SHIPPED_READER)
