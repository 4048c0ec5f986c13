"""Every tuned weight and threshold, in one place, with where it was measured.

Figures: docs/experiments.md (retrieval, hand-written scorer) and docs/reader.md (the
learned reader). Change one here and re-run ``python -m rag eval`` on a held-out set.
"""

from __future__ import annotations

# ---------------------------------------------------------------- retrieval
DENSE_WEIGHT = 0.5  # the fused pool is re-scored as w * cosine + (1 - w) * max-normalised BM25
FUSED_POOL_MIN = 60  # at least this many fused candidates are re-scored
DUPLICATE_JACCARD = 0.6  # a passage sharing this share of 4-word shingles with a better one is dropped
RECENCY_WEIGHT = 0.3  # added to a score in [0, 1] for an article dated on the reference day
RECENCY_DAYS = 14.0  # the bonus falls by e every 14 days before the reference day...
RECENCY_DAYS_AFTER = 7.0  # ...and every 7 days after it (reported later than asked about)

# ---------------------------------------------------------------- answer sentences
RERANK_DEPTH = 10  # passages whose sentences are scored; the best-evidenced come first
MAX_CANDIDATES = 24  # sentences the hand-written scorer embeds
READER_CANDIDATES = 24  # sentences the learned reader scores (docs/reader.md)
POOL_TOP_PASSAGE_BONUS = 0.3  # lexical pool: every sentence of the top passage is a candidate
POOL_RANK_PENALTY = 0.02  # lexical pool: per passage rank
# The hand-written scorer: a weighted sum of these features (docs/experiments.md).
DENSE_SENTENCE_WEIGHT = 0.55
LEXICAL_WEIGHT = 0.35
PHRASE_WEIGHT = 0.2  # the question's word pairs side by side
TYPE_WEIGHT = 0.10  # holds the kind of thing asked for (a name for "who", a number for "how many")
APPOSITIVE_WEIGHT = 0.15  # the "which X" phrase right beside a new name
APPOSITIVE_WINDOW = 4  # words either side of the name
RECENT_WEIGHT = 0.1  # most a sentence gains for coming from an article of the day asked about
RANK_PENALTY = 0.01  # per passage rank
RUNNER_UP_RATIO = 0.8  # a second sentence joins the answer when it scores this share of the best

# ---------------------------------------------------------------- short answers (rag/answer/short.py)
SHORT_SENTENCES = 12  # the best-scored sentences of the shown passages that spaCy reads for candidates

# ---------------------------------------------------------------- abstention
HAND_THRESHOLD = 0.42  # the hand-written scorer's (calibrated on seed + RealTime QA, docs/experiments.md)
READER_THRESHOLD = 0.5  # for a reader folder that carries no calibrated threshold

# ---------------------------------------------------------------- questions
MAX_QUESTION_CHARS = 2000  # longer questions are refused with a message (the encoder reads 256 tokens)

# ---------------------------------------------------------------- timelines
TIMELINE_MAX_PASSAGES = 400  # passages naming the subject that are read, best BM25 first
TIMELINE_SAME_EVENT_DAYS = 3  # reports of one event: dates at most this far apart...
TIMELINE_SAME_EVENT_COSINE = 0.5  # ...and sentences this similar (embedding cosine)...
TIMELINE_SAME_EVENT_OVERLAP = 0.6  # ...or sharing this share of their stems
TIMELINE_FOLLOW_UP_COSINE = 0.3  # a smaller event this close (mean cosine) within those days is follow-up coverage
TIMELINE_REPORTED_DAYS = 30  # a main event is reported at most this many days after it...
TIMELINE_AHEAD_DAYS = 90  # ...or at most this many before it ("will take office on January 1")
TIMELINE_MAIN_SOURCES = 3  # a main event is reported by at least this many articles (timeline default view)

# ---------------------------------------------------------------- sources that disagree
CONFLICT_MIN_SCORE_RATIO = 0.7  # a sentence's value counts when it scores this share of the best sentence
CONFLICT_NUMBER_WINDOW = 3  # the counted thing ("troops") within this many words after the number
CONFLICT_SAME_DAYS = 0  # values reported on the same day disagree; on different days, the later updates the earlier
# passages read for the values of a question asking how many / who holds / when (one value per article).
# 90 raised recall on the older half of eval/conflict_questions.jsonl (0.6 -> 0.8) but on the held-out
# newer half only added wrong flags (precision 0.50 -> 0.33, recall 0.40 both): kept at 30 (docs/timelines.md)
CONFLICT_DEPTH = 30
CONFLICT_ARTICLES = 10  # the span reader reads each of this many top articles for its own value
CONFLICT_PASSAGES = 2  # ... in at most this many of its passages (its headline read with the first)
CONFLICT_SPAN_PROBABILITY = 0.4  # an article's date counts from this reader probability (docs/timelines.md)
CONFLICT_RANKED_DEPTH = 30  # of them, those the short-answer ranker reads (spaCy: the slow part)
# A word after a number names what a question counts when its embedding has this cosine with the
# question's word (MiniLM: ballots~votes 0.77, soldiers~troops 0.88, injured~wounded 0.61; but
# wounded~killed 0.52, children~people 0.53, troops~people 0.46): chosen on those word pairs.
CONFLICT_SIMILAR_WORD = 0.58
CONFLICT_RANKED_PROBABILITY = 0.2  # an article's value read by the short-answer ranker counts from this probability
CONFLICT_RARE_TERMS = 2  # a value counts when its sentence or article title holds one of the question's rarest terms
CONFLICT_RARE_RATIO = 0.5  # ... each at least this share of the rarest one's IDF ("new" of "New Zealand" is no topic)

# Compressed dense index (rag/index/dense.py), above Settings.ann_threshold chunks; chosen with
# ``python eval/ivf_recall.py`` (docs/experiments.md, "A million articles")
IVF_PQ_BYTES = 48  # bytes per vector code (float32 vectors take 1,536)
IVF_TRAIN_PER_LIST = 40  # k-means training vectors per cell (FAISS asks for at least 39)
IVF_NPROBE_SHARE = 8  # a search visits 1/8 of the cells (at least 32): recall@10 0.977 at 118k real chunks
IVF_REFINE = 400  # candidates re-scored exactly from the stored vectors
IVF_EXACT_SUBSET = 20_000  # a filter leaving at most this many chunks is searched exactly over them

# BM25 top candidates (rag/index/build.py, SegmentedBM25.top): the words left unread are only looked
# up for the candidates once they hold more than this many postings (exact below; at 10^7
# chunks BM25 recall@200 against exact is in docs/experiments.md, "A million articles")
BM25_READ_LIMIT = 1_000_000
