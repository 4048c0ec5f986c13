"""Training data for the answer-sentence reader, mined from RealTime QA with our own retriever.

The shared RealTime QA files (``realtimeqa-2023/`` and ``realtimeqa-more/``) hold weekly
news-quiz questions and the articles collected for them, in weekly order. They are cut into
years (the corpus file order is the week order; a year starts at the first article dated in
it). For each question of a year, our BM25 retriever (the tokens, stemmer and chunking of the
index) ranks that year's 96-token chunks; the sentences of the top passages are the
candidates, exactly as ``answer.candidate_sentences`` cuts them at question time (positives
are also taken from the next 20 passages, for more answer sentences to learn from). A candidate
is positive when it holds an answer string and shares at least one content word with the
question (a sentence that names the answer by chance is dropped, neither positive nor
negative); every other candidate is a hard negative.
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.answer.extract import candidate_sentences
from rag.index.layout import bm25_text
from rag.text.chunk import chunk_documents
from rag.text.dates import parse_date
from rag.text.lexical import bm25_tokens
from rag.tools.metrics import contains_answer
from rag.types import Chunk, Document, Hit

PASSAGES = 10  # the answer step reads the sentences of the top 10 passages (api.RERANK_DEPTH)
POSITIVE_DEPTH = 30  # positives are also taken from deeper passages: more answer sentences to learn from


@dataclass
class YearData:
    year: str
    documents: list[Document]
    questions: list[dict]


def _year_starts(rows: list[dict]) -> dict[str, int]:
    """Line where each year's weeks begin: the first article whose date reaches that year."""
    starts, running = {}, ""
    for i, r in enumerate(rows):
        d = parse_date(str(r.get("date") or ""))[:4]
        if d > running:
            running = d
            starts.setdefault(d, i)
    return starts


def load_years(dataset_dirs: list[Path], years: set[str] | None = None) -> dict[str, YearData]:
    """Documents and questions of each year in the RealTime QA folders (questions by their date)."""
    out: dict[str, YearData] = {}
    for folder in dataset_dirs:
        with gzip.open(folder / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
            rows = [json.loads(line) for line in fh]
        questions = [json.loads(line) for line in (folder / "questions.jsonl").read_text(encoding="utf-8").splitlines()
                     if line.strip()]
        q_years = sorted({q["date"][:4] for q in questions})
        starts = _year_starts(rows)
        bounds = [starts.get(y, 0) if i else 0 for i, y in enumerate(q_years)] + [len(rows)]
        for i, y in enumerate(q_years):
            if years and y not in years:
                continue
            docs = [Document(doc_id=str(r["id"]), text=r["text"], title=r.get("title", ""),
                             date=parse_date(str(r.get("date") or "")), url=r.get("url", ""))
                    for r in rows[bounds[i]: bounds[i + 1]] if r.get("text", "").strip()]
            qs = [q for q in questions if q["date"][:4] == y]
            data = out.setdefault(y, YearData(y, [], []))
            data.documents.extend(docs)
            data.questions.extend(qs)
    return out


def write_year_files(data: YearData, folder: Path) -> tuple[Path, Path]:
    """The year's corpus and questions as JSONL files that ``rag index`` / ``rag eval`` read."""
    folder.mkdir(parents=True, exist_ok=True)
    corpus, questions = folder / f"corpus-{data.year}.jsonl", folder / f"questions-{data.year}.jsonl"
    with corpus.open("w", encoding="utf-8") as fh:
        for d in data.documents:
            fh.write(json.dumps({"id": d.doc_id, "title": d.title, "date": d.date, "url": d.url, "text": d.text},
                                ensure_ascii=False) + "\n")
    with questions.open("w", encoding="utf-8") as fh:
        for q in data.questions:
            fh.write(json.dumps(q, ensure_ascii=False) + "\n")
    return corpus, questions


def content_overlap(question: str, sentence: str, answers: list[str]) -> bool:
    """True when the sentence shares a content word with the question beyond the answer's own words."""
    answer_words = {t for a in answers for t in bm25_tokens(a)}
    return bool((set(bm25_tokens(question)) - answer_words) & set(bm25_tokens(sentence)))


class BM25Chunks:
    """Our BM25 over a list of chunks, in memory (the index's tokens and scoring)."""

    def __init__(self, chunks: list[Chunk]) -> None:
        import bm25s

        self.chunks = chunks
        self.bm25 = bm25s.BM25()
        self.bm25.index([bm25_tokens(bm25_text(c)) or ["<empty>"] for c in chunks], show_progress=False)

    def search(self, query: str, k: int) -> list[Hit]:
        tokens = [t for t in bm25_tokens(query) if t in self.bm25.vocab_dict]
        if not tokens:
            return []
        scores = self.bm25.get_scores(tokens)
        top = np.argsort(-scores)[:k]
        return [Hit(int(i), self.chunks[int(i)], float(scores[i])) for i in top if scores[i] > 0]


def mine_year(data: YearData, seed: int = 0, max_pos: int = 3, max_neg: int = 12,
              chunk_tokens: int = 96, chunk_overlap: int = 16) -> Iterator[dict]:
    """Labelled (question, sentence) groups for one year: one dict a question."""
    rng = random.Random(seed)
    index = BM25Chunks(chunk_documents(data.documents, chunk_tokens, chunk_overlap))
    for q in data.questions:
        answers = [a for a in q.get("answers") or [] if a.strip()]
        hits = index.search(q["question"], POSITIVE_DEPTH)
        pos, neg = [], []
        for s in candidate_sentences(hits):
            if q.get("answerable") and contains_answer(s.text, answers):
                if content_overlap(q["question"], s.text, answers):
                    pos.append(s.text)
            elif s.n <= PASSAGES:
                neg.append(s.text)
        rng.shuffle(pos)
        rng.shuffle(neg)
        if not q.get("answerable"):
            neg = neg[: max_neg // 2]
        elif not pos:
            neg = neg[: max_neg // 3]  # the retriever missed: still hard negatives, fewer of them
        yield {"id": q["id"], "question": q["question"], "date": q["date"], "answerable": bool(q.get("answerable")),
               "positives": pos[:max_pos], "negatives": neg[:max_neg]}
