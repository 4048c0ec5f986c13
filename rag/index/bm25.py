"""BM25 over the segments of an index, as one index: MaxScore top-k reading only the query's posting lists."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rag.text.lexical import bm25_idf, make_idf
from rag.tuning import BM25_READ_LIMIT


class SegmentedBM25:
    """The BM25 indexes of several segments answering as one: ``vocab_dict`` (the words of all),
    ``get_scores(tokens)`` over every chunk, each word's score in a segment scaled from the
    segment's IDF to the whole index's, deleted chunks at 0; ``df(word)`` over all segments."""

    def __init__(self, parts: list, alive: np.ndarray | None) -> None:
        self.parts, self.alive = parts, alive
        self.sizes = [int(p.scores["num_docs"]) for p in parts]
        self.n = sum(self.sizes)
        if len(parts) == 1:
            self.vocab_dict = parts[0].vocab_dict
        else:
            self.vocab_dict = {}
            for p in parts:
                self.vocab_dict.update(dict.fromkeys(p.vocab_dict, 0))
        self._part_idf = [bm25_idf(p) for p in parts]
        self._max: dict[tuple[int, int], float] = {}

    def df(self, term: str) -> int:
        total = 0
        for p in self.parts:
            i = p.vocab_dict.get(term)
            if i is not None:
                total += int(p.scores["indptr"][i + 1] - p.scores["indptr"][i])
        return total

    def postings(self, tokens: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(sorted global chunk ids, scores) of the live chunks holding any of ``tokens``; only
        the words' columns are read, so a query costs its postings, not the index's size."""
        lists = [one for _, word in self._columns(tokens, bounds=False) for one in word]
        ids, vals = self._add(np.zeros(0, np.int64), np.zeros(0, np.float64), lists)
        if self.alive is not None:
            live = self.alive[ids]
            ids, vals = ids[live], vals[live]
        return ids, vals.astype(np.float32)

    def _columns(self, tokens: list[str], bounds: bool = True) -> list[tuple[float, list]]:
        """Per distinct word: an upper bound of its score in any chunk (0 without ``bounds``), and
        its posting lists (offset, segment size, sorted chunk ids, scores, weight) in each segment
        holding it; the weight scales a segment's IDF to the whole index's and counts a repeated word."""
        scaled = len(self.parts) > 1 or self.alive is not None
        idf = make_idf(max(1, self.n), self.df) if scaled else None
        out = []
        for t in dict.fromkeys(tokens):
            count, lists, bound, offset = tokens.count(t), [], 0.0, 0
            for p, size, part_idf in zip(self.parts, self.sizes, self._part_idf):
                i = p.vocab_dict.get(t)
                if i is not None:
                    w = count * (idf(t) / part_idf(t) if scaled else 1.0)
                    start, end = int(p.scores["indptr"][i]), int(p.scores["indptr"][i + 1])
                    lists.append((offset, size, p.scores["indices"][start:end], p.scores["data"][start:end], w))
                    if bounds:
                        bound = max(bound, self._term_max(p, i, start, end) * w)
                offset += size
            if lists:
                out.append((bound, lists))
        return out

    @staticmethod
    def _add(ids: np.ndarray, vals: np.ndarray, lists: list) -> tuple[np.ndarray, np.ndarray]:
        """Sorted ids and summed scores of candidates (``ids``, ``vals``) and posting ``lists`` read whole."""
        all_ids = np.concatenate([ids, *(np.asarray(idx, dtype=np.int64) + off for off, _, idx, _, _ in lists)])
        all_vals = np.concatenate([vals, *(np.asarray(val, dtype=np.float64) * w for _, _, _, val, w in lists)])
        ids, inverse = np.unique(all_ids, return_inverse=True)
        return ids, np.bincount(inverse, weights=all_vals, minlength=len(ids))

    def _term_max(self, part, i: int, start: int, end: int) -> float:
        """The highest score word ``i`` gives a chunk of a segment: read from its list once, then
        remembered (a few bytes a word)."""
        key = (id(part), i)
        best = self._max.get(key)
        if best is None:
            best = self._max[key] = float(np.max(part.scores["data"][start:end])) if end > start else 0.0
        return best

    @staticmethod
    def _lookup(lists: list, ids: np.ndarray) -> np.ndarray:
        """The scores one word gives the sorted global chunk ``ids``: a binary search in its
        posting lists (which are sorted), not a read of them."""
        out = np.zeros(len(ids), dtype=np.float64)
        for offset, size, idx, val, w in lists:
            lo, hi = np.searchsorted(ids, [offset, offset + size])
            if lo == hi or not len(idx):
                continue
            local = ids[lo:hi] - offset
            pos = np.minimum(np.searchsorted(idx, local), len(idx) - 1)
            hit = np.asarray(idx[pos]) == local
            out[lo:hi][hit] += np.asarray(val[pos[hit]], dtype=np.float64) * w
        return out

    def top(self, tokens: list[str], n: int, keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, Callable]:
        """The ``n`` best live chunks for ``tokens`` (among the sorted ids ``keep`` when given):
        (ids, exact scores), best first, and ``exact(ids)`` giving any sorted ids' exact scores.

        MaxScore: the words are taken by their best score, highest (rarest) first, each read
        whole and summed into the candidates; once the n-th best candidate scores at least what
        all the words left could give a chunk, no other chunk can enter the top n, and those
        words (the common ones, with the longest lists) are only looked up for the candidates.
        Exact, unless the words left hold more than ``BM25_READ_LIMIT`` postings with n
        candidates already found: then they are looked up too (a chunk holding none of the
        words read is missed). At 10^7 chunks a query's words hold millions of postings; an
        index up to ~10^6 chunks is always exact (``eval/bm25_recall.py`` measures both)."""
        cols = sorted(self._columns(tokens), key=lambda c: -c[0])

        def exact(ids: np.ndarray) -> np.ndarray:
            total = np.zeros(len(ids), dtype=np.float64)
            for _, lists in cols:
                total += self._lookup(lists, ids)
            return total.astype(np.float32)

        remaining = float(sum(bound for bound, _ in cols))
        unread = sum(len(idx) for _, lists in cols for _, _, idx, _, _ in lists)
        ids, vals = np.zeros(0, np.int64), np.zeros(0, np.float64)
        done = 0
        for bound, lists in cols:
            if unread > BM25_READ_LIMIT and done and self._live(ids, keep).sum() >= n:
                break  # the long lists left are looked up: approximate, only at millions of postings
            remaining -= bound
            unread -= sum(len(idx) for _, _, idx, _, _ in lists)
            done += 1
            ids, vals = self._add(ids, vals, lists)
            live = self._live(ids, keep)
            if done < len(cols) and live.sum() >= n and np.partition(vals[live], -n)[-n] >= remaining:
                break
        for _, lists in cols[done:]:
            vals += self._lookup(lists, ids)
        live = self._live(ids, keep)
        ids, vals = ids[live], vals[live].astype(np.float32)
        keep_top = vals > 0
        ids, vals = ids[keep_top], vals[keep_top]
        if n < len(vals):
            part = np.argpartition(-vals, n - 1)[:n]
            ids, vals = ids[part], vals[part]
        order = np.lexsort((ids, -vals))
        return ids[order], vals[order], exact

    def _live(self, ids: np.ndarray, keep: np.ndarray | None) -> np.ndarray:
        live = self.alive[ids] if self.alive is not None else np.ones(len(ids), dtype=bool)
        if keep is not None:
            live &= np.isin(ids, keep)
        return live

    def get_scores(self, tokens: list[str]) -> np.ndarray:
        scores = np.zeros(self.n, dtype=np.float32)
        ids, vals = self.postings(tokens)
        scores[ids] = vals
        return scores
