"""``rag index --ray``: a real local Ray instance with two embedder workers and the real model.

The index it writes must be the single-process one: the same chunks in the same segments,
vectors at cosine >= 0.999, and the Kabul question answered from it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rag.index.build
import rag.index.merge
import rag.index.reader
import rag.index.segment
from rag import Rag, Settings
from rag.index.layout import read_manifest
from rag.index.reader import open_index

REAL_MODEL = "all-MiniLM-L6-v2"
QUESTION = "Who offered to mediate between Kabul and Islamabad?"


def _settings(corpus: Path, index_dir: Path) -> Settings:
    return Settings.from_env(corpus=(str(corpus),), index_dir=str(index_dir), model=REAL_MODEL, embed="torch")


def _everything(index_dir: Path):
    reader = open_index(index_dir)
    ids = np.flatnonzero(reader.alive) if getattr(reader, "alive", None) is not None else np.arange(reader.n_chunks)
    chunks = reader.chunks([int(i) for i in ids])
    return {(c.doc_id, c.start): (c, v) for c, v in zip((chunks[int(i)] for i in ids), reader.vectors_for(ids))}


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    yield
    ray.shutdown()


def test_the_embedder_pool_is_one_actor_per_gpu_else_per_cpu():
    from rag.index.cluster import pool_shape

    assert pool_shape({"CPU": 64.0, "GPU": 8.0}) == (8, 1.0, 1.0)
    assert pool_shape({"CPU": 64.0, "GPU": 8.0}, workers=2) == (2, 1.0, 1.0)
    assert pool_shape({"CPU": 16.0}) == (16, 1.0, 0.0)
    assert pool_shape({"CPU": 16.0}, workers=2) == (2, 1.0, 0.0)


@pytest.mark.slow
def test_ray_index_writes_the_single_process_index_and_answers(ray_local, tmp_corpus, tmp_path, monkeypatch):
    monkeypatch.setattr(rag.index.segment, "SEGMENT_TEXT_CHARS", 6_000)  # the five articles: several segments
    plain, on_ray = tmp_path / "plain", tmp_path / "ray"
    Rag(_settings(tmp_corpus, plain)).index()
    seen: list[tuple[int, int]] = []
    r = Rag(_settings(tmp_corpus, on_ray))
    report = r.index(ray="local", ray_workers=2, progress=lambda done, total, stage: seen.append((done, total)))
    assert report.documents == 5 and report.embedded == report.chunks > 0
    assert seen and seen[-1] == (5, 5)

    a, b = read_manifest(plain), read_manifest(on_ray)
    assert [(s["chunks"], s["documents"]) for s in a["segments"]] == [(s["chunks"], s["documents"]) for s in b["segments"]]
    assert len(b["segments"]) >= 2
    assert b["embedding_backend"] == "torch" and b["vectors"] == "float"
    assert all(s["embedded_by"].startswith("torch cpu") for s in b["segments"])
    ours, theirs = _everything(plain), _everything(on_ray)
    assert ours.keys() == theirs.keys()
    for key, (chunk, vec) in ours.items():
        assert theirs[key][0] == chunk
        assert float(vec @ theirs[key][1]) >= 0.999, key

    answer = r.ask(QUESTION)
    assert "Araghchi" in answer.answer
    assert answer.citations[0].doc_id == "004_f1ed5df54c6c908a"


@pytest.mark.slow
def test_ray_index_updates_incrementally_from_the_command_line(ray_local, tmp_corpus, tmp_path):
    index_dir = tmp_path / "idx"
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("RAG_")}
    cmd = [sys.executable, "-m", "rag", "index", "--corpus", str(tmp_corpus), "--index-dir", str(index_dir),
           "--ray", "--ray-workers", "2", "--json"]
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert first.returncode == 0, first.stderr
    assert "Ray: 2 CPUs" in first.stderr and "Traceback" not in first.stderr
    (tmp_corpus / "walrus.txt").write_text("The walrus parliament met in Tromso to discuss herring quotas on Tuesday.")
    second = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert second.returncode == 0, second.stderr
    report = json.loads(second.stdout)
    assert report["added"] == ["walrus"] and report["unchanged"] == 5
    manifest = read_manifest(index_dir)
    assert len(manifest["segments"]) == 2 and manifest["segments"][1]["documents"] == 1
    hits = Rag(Settings.from_env(corpus=(str(tmp_corpus),), index_dir=str(index_dir))).search("walrus herring Tromso", k=1)
    assert hits[0].chunk.doc_id == "walrus"


def test_an_unreachable_cluster_is_a_clear_error(ray_local, tmp_corpus, tmp_path):
    cmd = [sys.executable, "-m", "rag", "index", "--corpus", str(tmp_corpus), "--index-dir", str(tmp_path / "idx"),
           "--ray", "127.0.0.1:9"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    assert "Ray cluster at '127.0.0.1:9'" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "idx" / "CURRENT").exists()
