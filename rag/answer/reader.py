"""The span reader: a small transformer that points at the answer in the retrieved passages.

all-MiniLM-L6-v2 fine-tuned with a start/end head (``rag/tools/train_span.py``), run as int8
ONNX by onnxruntime: no torch, no spaCy on the query path. The question is read with each
passage (a long one in overlapping windows) in one batch; every span of up to
``MAX_ANSWER_TOKENS`` tokens is scored by its start and end logits, and the [CLS] token's pair
is the window's "no answer". The best span's probability is calibrated on the validation months
(a logistic fit of the span's margin over "no answer"; ``reader.json``).
"""

from __future__ import annotations

import atexit
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.errors import RagError
from rag.text.lexical import unspaced

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "models" / "span_reader"
MAX_ANSWER_TOKENS = 30
MAX_LEN = 192  # question + one 96-token chunk fits (cl100k tokens are longer than WordPiece's)
STRIDE = 48


@dataclass
class Span:
    """An answer span of passage ``passage`` (0-based), characters ``start:end`` of its text."""

    passage: int
    start: int
    end: int
    text: str
    score: float  # start + end logits
    margin: float  # score minus the window's "no answer" score
    probability: float = 0.0  # calibrated: the chance that this span is a right answer


VALUE_SLACK = 6  # tokens past a given value that its best span may end on (``score``)


class SpanReader:
    """Reads a question against passages; ``read`` returns the best spans, most probable first."""

    def __init__(self, folder: Path = DEFAULT_DIR) -> None:
        model = folder / "reader.int8.onnx"
        if not model.is_file():
            raise RagError(f"span reader not found: {model} (rebuild it with 'python -m rag.tools.train_span all')")
        import onnxruntime as ort
        from tokenizers import Tokenizer

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(os.environ.get("RAG_THREADS", "0") or 0)
        self.session = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_LEN, stride=STRIDE, strategy="only_second")
        self.tokenizer.no_padding()
        meta = json.loads((folder / "reader.json").read_text(encoding="utf-8")) if (folder / "reader.json").is_file() else {}
        self.calibration = meta.get("calibration", {"a": 1.0, "b": 0.0})
        self.threshold = float(meta.get("short_threshold", 0.5))  # a short answer is shown from this probability
        self.abstain = float(meta.get("abstain_threshold", 0.05))  # below it the answer abstains
        self.depth = int(meta.get("depth", 10))  # passages read (chosen on the validation months)
        self.rank_weight = float(meta.get("rank_weight", 0.0))  # margin lost per retrieval rank (the same)

    def _windows(self, question: str, passages: list[str]):
        """(passage index, encoding) for every window of every passage."""
        encs = self.tokenizer.encode_batch([(question, p) for p in passages])
        out = []
        for i, enc in enumerate(encs):
            out.append((i, enc))
            out.extend((i, o) for o in enc.overflowing)
        return out

    def logits(self, question: str, passages: list[str]):
        """(windows, start logits, end logits) for the question against each passage."""
        windows = self._windows(question, passages)
        n = max(len(w.ids) for _, w in windows)
        ids = np.zeros((len(windows), n), dtype=np.int64)
        mask = np.zeros_like(ids)
        types = np.zeros_like(ids)
        for r, (_, w) in enumerate(windows):
            ids[r, :len(w.ids)] = w.ids
            mask[r, :len(w.ids)] = 1
            types[r, :len(w.ids)] = w.type_ids
        start, end = self.session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
        return windows, start, end

    def read(self, question: str, passages: list[str], top: int = 5, coverage: list[float] | None = None) -> list[Span]:
        """The ``top`` best spans over all passages, widest margin first (one per passage and
        place); ``coverage``: each passage's share of the question's words (``lexical.coverage``)."""
        if not passages:
            return []
        windows, start, end = self.logits(question, passages)
        spans: dict[tuple[int, int, int], Span] = {}
        for r, (p, w) in enumerate(windows):
            seq = np.array([s if s is not None else -1 for s in w.sequence_ids])
            ctx = np.flatnonzero(seq == 1)
            if not len(ctx):
                continue
            s_log, e_log = start[r, ctx], end[r, ctx]
            null = float(start[r, 0] + end[r, 0])
            n = len(ctx)
            grid = s_log[:, None] + e_log[None, :]
            band = np.triu(np.ones((n, n), dtype=bool)) & ~np.triu(np.ones((n, n), dtype=bool), MAX_ANSWER_TOKENS)
            grid = np.where(band, grid, -np.inf)
            flat = np.argsort(grid, axis=None)[::-1][:top]
            text = passages[p]
            for k in flat:
                a, b = divmod(int(k), n)
                if not np.isfinite(grid[a, b]):
                    break
                cs, ce = _word_bounds(text, w.offsets[ctx[a]][0], w.offsets[ctx[b]][1])
                if ce <= cs or "\n" in text[cs:ce]:  # an answer does not run across a line break
                    continue
                key = (p, cs, ce)
                score = float(grid[a, b])
                if key not in spans or spans[key].score < score:
                    spans[key] = Span(p, cs, ce, text[cs:ce], score, score - null)
        ranked = sorted(spans.values(), key=lambda s: -s.margin)[:top]
        for s in ranked:
            s.probability = self.calibrate(s.margin, coverage[s.passage] if coverage else 1.0)
        return ranked

    def score(self, question: str, passages: list[str], targets: list[list[tuple[int, int]]],
              coverage: list[float] | None = None) -> list[list[float]]:
        """The probability of each given span (``targets[p]``: character spans of passage ``p``)
        as the answer: its start and end scores against the window's no-answer score, in the
        window that scores it best, calibrated as ``read``'s spans are. A span no window holds
        whole gets 0."""
        out = [[0.0] * len(t) for t in targets]
        todo = [p for p, t in enumerate(targets) if t]
        if not todo:
            return out
        windows, start, end = self.logits(question, [passages[p] for p in todo])
        best = [[-np.inf] * len(targets[p]) for p in todo]
        for r, (i, w) in enumerate(windows):
            offsets = w.offsets
            ctx = [j for j, sid in enumerate(w.sequence_ids) if sid == 1]
            if not ctx:
                continue
            null = float(start[r, 0] + end[r, 0])
            for t, (cs, ce) in enumerate(targets[todo[i]]):
                inside = [k for k, j in enumerate(ctx) if offsets[j][1] > cs and offsets[j][0] < ce]
                if not inside or offsets[ctx[0]][0] > cs or offsets[ctx[-1]][1] < ce:
                    continue
                # a span starting in the value and ending in it or a few tokens on ("Thursday,
                # September 29" for "Thursday"): the reader's own reading of where the value ends
                lo, hi = inside[0], min(len(ctx) - 1, inside[-1] + VALUE_SLACK)
                s_log = start[r, [ctx[k] for k in inside]]
                e_log = end[r, [ctx[k] for k in range(lo, hi + 1)]]
                grid = s_log[:, None] + e_log[None, :]
                grid = np.where(np.arange(lo, hi + 1)[None, :] >= np.array(inside)[:, None], grid, -np.inf)
                best[i][t] = max(best[i][t], float(grid.max()) - null)
        for i, p in enumerate(todo):
            cover = coverage[p] if coverage else 1.0
            out[p] = [self.calibrate(m, cover) if np.isfinite(m) else 0.0 for m in best[i]]
        return out

    def calibrate(self, margin: float, coverage: float = 1.0) -> float:
        """P(the span is right) from its margin and ``coverage``, the IDF-weighted share of the
        question's words its passage holds (a logistic fit on the validation months)."""
        c = self.calibration
        z = c["a"] * margin + c.get("c", 0.0) * coverage + c["b"]
        return float(1.0 / (1.0 + np.exp(-z)))


_OPEN = " \t\n\"'“”‘’(,;:"
_CLOSE = " \t\n\"'“”‘’),;:."


def _in_number(text: str, i: int) -> bool:
    """True when ``text[i]`` is a digit group's separator inside a number ("7,000", "3.5")."""
    return 0 < i < len(text) - 1 and text[i] in ",." and text[i - 1].isdigit() and text[i + 1].isdigit()


def _word_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    """The span widened to whole words and stripped of the punctuation around it (an
    abbreviation keeps its stop: "U.S.", "Jr.")."""
    def wordish(i: int) -> bool:  # Chinese, Japanese and Korean write no spaces: each character stands alone
        return (text[i].isalnum() and not unspaced(text[i])) or _in_number(text, i)

    while 0 < start < len(text) and wordish(start - 1) and wordish(start):
        start -= 1
    while 0 < end < len(text) and wordish(end - 1) and wordish(end):
        end += 1
    while start < end and text[start] in _OPEN:
        start += 1
    stripped = end
    while stripped > start and text[stripped - 1] in _CLOSE:
        stripped -= 1
    last = text[start:stripped].split()[-1:] or [""]
    if stripped < len(text) and text[stripped] == "." and "." in last[0]:
        stripped += 1  # "U.S." keeps its last stop
    return start, stripped


_LOCK = threading.Lock()
_CACHE: dict[Path, SpanReader] = {}


def get_span_reader(folder: Path | str | None = None) -> SpanReader:
    """The span reader in ``folder`` (default: the shipped one), loaded once per process."""
    path = Path(folder) if folder else DEFAULT_DIR
    with _LOCK:
        if path not in _CACHE:
            _CACHE[path] = SpanReader(path)
        return _CACHE[path]


def preload(folder: Path | str | None = None) -> None:
    """Load the reader in a background thread (while the index and the embedding model load)."""

    def load() -> None:
        try:
            get_span_reader(folder)
        except RagError:
            pass  # the same error is raised, and shown, when a question needs the reader

    thread = threading.Thread(target=load, daemon=True, name="span-reader-load")
    thread.start()
    # onnxruntime aborts the process ("terminate called without an active exception") when the
    # interpreter exits while it is still creating the session: a command that never asks waits for it.
    atexit.register(thread.join, 30)
