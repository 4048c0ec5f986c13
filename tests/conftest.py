"""Shared fixtures: a deterministic fake embedder for fast unit tests, and one real index per session.

Unit tests run against ``FakeEmbedder`` (model name ``fake-64``), registered for every test
by an autouse fixture. Tests marked ``slow`` share ``real_rag``: the bundled
all-MiniLM-L6-v2 model and an index of the shipped corpus, built once per session.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rag
import rag.embed.choose
import rag.embed.torch_model
from rag.config import DEFAULT_CORPUS

REPO = Path(__file__).resolve().parent.parent
TESTS_DIR = Path(__file__).resolve().parent
REAL_MODEL = "all-MiniLM-L6-v2"
FAKE_MODEL = "fake-64"
_TOKEN = re.compile(r"\w+")


class FakeEmbedder:
    """Signed feature hashing of lower-cased words into 64 dims, L2-normalised.

    Deterministic across processes (sha1, not ``hash``), so texts that share words
    have a higher cosine than texts that do not. ``calls`` and ``encoded`` count work
    done, so tests can tell what an indexing run re-embedded.
    """

    vectors = "float"
    backend = "torch"  # what an index records of it; get_embedder resolves "fake..." names by prefix first
    batch_size = None

    def __init__(self, name: str = FAKE_MODEL, dtype: str = "float32", dim: int = 64) -> None:
        self.name = self.path_name = name
        self.dim = dim
        self.dtype = "float32"
        self.calls = 0
        self.encoded = 0

    def _vector(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        for word in _TOKEN.findall(text.lower()):
            h = int.from_bytes(hashlib.sha1(word.encode("utf-8")).digest()[:8], "little")
            v[h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
        norm = float(np.linalg.norm(v))
        if norm == 0.0:  # no words: any fixed unit vector keeps the "unit length" contract
            v[0] = 1.0
            return v
        return v / norm

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        self.calls += 1
        self.encoded += len(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._vector(t) for t in texts]).astype(np.float32)

    def encode_query(self, text: str) -> np.ndarray:
        return self._vector(text)

    def encode_short(self, texts: list[str]) -> np.ndarray:
        return np.stack([self._vector(t) for t in texts]).astype(np.float32)

    def warm(self) -> None:
        pass


def fake_factory(name: str, dtype: str) -> FakeEmbedder:
    return FakeEmbedder(name, dtype)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a ``python -m rag`` subprocess: no RAG_* settings, caches in tmp."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(extra)
    return env


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that uses the real model is slow, whether or not it says so: ``-m "not slow"`` skips it."""
    for item in items:
        if "real_rag" in getattr(item, "fixturenames", ()) and item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.slow)


# ---------------------------------------------------------------- session-wide isolation


@pytest.fixture(scope="session", autouse=True)
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory):
    """Keep every test off ~/.cache and independent of RAG_* variables in the caller's shell."""
    saved = dict(os.environ)
    cache = tmp_path_factory.mktemp("xdg-cache")
    for key in [k for k in os.environ if k.startswith("RAG_")]:
        del os.environ[key]
    os.environ["XDG_CACHE_HOME"] = str(cache)
    os.environ["HF_HOME"] = str(cache / "huggingface")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    yield cache
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(autouse=True)
def fake_embedder_registered(monkeypatch: pytest.MonkeyPatch):
    """Model names starting with "fake" resolve to FakeEmbedder; no embedder is cached across tests."""
    # A private copy of the registry, so that the registration is undone after the test.
    monkeypatch.setattr(rag.embed.choose, "_REGISTRY", dict(rag.embed.choose._REGISTRY))
    rag.embed.choose.clear_cache()
    rag.embed.choose.register_embedder("fake", fake_factory)
    yield
    rag.embed.choose.clear_cache()


# ---------------------------------------------------------------- fake-model fixtures


@pytest.fixture
def tmp_corpus(tmp_path: Path) -> Path:
    """A writable copy of the shipped corpus (articles and metadata.json)."""
    dest = tmp_path / "corpus"
    shutil.copytree(DEFAULT_CORPUS, dest)
    for p in dest.iterdir():  # the shipped files are read-only; tests edit the copies
        p.chmod(0o644)
    return dest


@pytest.fixture
def fake_settings(tmp_path: Path, tmp_corpus: Path) -> rag.Settings:
    return rag.Settings.from_env(corpus=(str(tmp_corpus),), index_dir=str(tmp_path / "idx"), model=FAKE_MODEL)


@pytest.fixture
def fake_rag(fake_settings: rag.Settings) -> rag.Rag:
    """A Rag over the copied corpus, indexed with the fake embedder."""
    r = rag.Rag(fake_settings)
    r.index()
    return r


# ---------------------------------------------------------------- real-model fixtures


@pytest.fixture(scope="session")
def real_index_dir(tmp_path_factory: pytest.TempPathFactory, _isolated_environment) -> Path:
    return tmp_path_factory.mktemp("real-index")


@pytest.fixture(scope="session")
def real_rag(real_index_dir: Path) -> rag.Rag:
    """The shipped corpus indexed once with the bundled all-MiniLM-L6-v2 (use with @pytest.mark.slow)."""
    settings = rag.Settings.from_env(corpus=(str(DEFAULT_CORPUS),), index_dir=str(real_index_dir), model=REAL_MODEL)
    r = rag.Rag(settings)
    report = r.index()  # loads the model once; the Rag instance keeps it for the session
    assert report.documents == 5 and report.chunks > 0
    assert r.needs_index() == ""
    return r


@pytest.fixture(scope="session")
def run_cli():
    """``run_cli(*args, stdin=None)`` runs ``python -m rag ARGS`` in a clean environment."""

    def run(*args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "rag", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO,
            env=clean_env(),
        )

    return run
