"""Settings: defaults, RAG_* variables, explicit overrides, validation, default index folder."""

from __future__ import annotations

import os

import pytest

from rag import RagError, Settings
from rag.config import DEFAULT_CORPUS, DEFAULT_MODEL


def test_defaults():
    s = Settings.from_env()
    assert s.model == DEFAULT_MODEL and s.k == 5 and s.chunk_tokens == 96 and s.chunk_overlap == 16
    assert s.corpus_paths == [DEFAULT_CORPUS]


def test_environment_variables_then_explicit_overrides(monkeypatch):
    monkeypatch.setenv("RAG_K", "3")
    monkeypatch.setenv("RAG_CHUNK_TOKENS", "64")
    monkeypatch.setenv("RAG_TITLE_IN_EMBEDDING", "no")
    monkeypatch.setenv("RAG_ABSTAIN_THRESHOLD", "0.5")
    monkeypatch.setenv("RAG_CORPUS", os.pathsep.join(["a", "b"]))
    monkeypatch.setenv("RAG_MODEL", "")  # empty means unset
    s = Settings.from_env(k=7, chunk_overlap=None)
    assert (s.k, s.chunk_tokens, s.title_in_embedding, s.abstain_threshold) == (7, 64, False, 0.5)
    assert s.corpus == ("a", "b") and s.model == DEFAULT_MODEL and s.chunk_overlap == 16


@pytest.mark.parametrize(
    ("env", "value", "message"),
    [
        ("RAG_K", "abc", "not a valid int"),
        ("RAG_K", "0", "k must be at least 1"),
        ("RAG_DTYPE", "fp16", "dtype must be"),
        ("RAG_CHUNK_TOKENS", "8", "at least 16"),
        ("RAG_CHUNK_OVERLAP", "100", "chunk_overlap"),
    ],
)
def test_invalid_settings_are_errors_that_name_the_problem(monkeypatch, env, value, message):
    monkeypatch.setenv(env, value)
    with pytest.raises(RagError, match=message):
        Settings.from_env()


def test_corpus_may_be_a_single_path():
    assert Settings.from_env(corpus="some/folder").corpus == ("some/folder",)


def test_default_index_folder_is_under_the_cache_and_named_after_the_corpus(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    a = Settings.from_env(corpus=(str(tmp_path / "news"),)).index_path
    b = Settings.from_env(corpus=(str(tmp_path / "other" / "news"),)).index_path
    assert a.parent == tmp_path / "rag" / "indexes" and a.name.startswith("news-")
    assert a != b  # same folder name, other place: another index
    assert Settings.from_env(index_dir=str(tmp_path / "x")).index_path == tmp_path / "x"


def test_index_signature_holds_what_changes_the_vectors():
    s = Settings.from_env()
    assert s.index_signature() == {
        "model": s.model,
        "chunk_tokens": s.chunk_tokens,
        "chunk_overlap": s.chunk_overlap,
        "title_in_embedding": s.title_in_embedding,
    }
    assert s.with_(k=9).index_signature() == s.index_signature()
