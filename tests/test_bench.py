"""The benchmark runs end to end on the shipped corpus and reports every figure."""

from __future__ import annotations

import pytest

import rag
from rag.config import DEFAULT_CORPUS
from rag.tools.bench import format_table, run_bench


@pytest.mark.slow
def test_bench_reports_every_figure(tmp_path, real_rag):
    settings = rag.Settings.from_env(corpus=(str(DEFAULT_CORPUS),), index_dir=str(tmp_path / "unused"))
    result = run_bench(settings, max_chunks=40, query_repeats=10, log=lambda m: None)
    e = result["embedding"]
    assert result["documents"] == 5 and result["bench_chunks"] == min(40, result["chunks"])
    assert result["machine"]["cores"] >= 1 and "machine" in format_table(result)
    assert e["pipeline_chunks_per_s"] > 0 and e["baseline_chunks_per_s"] > 0 and e["speedup"] > 0
    assert result["index"]["chunks"] == result["chunks"] and result["index"]["search"] == "exact"
    q = result["query_ms"]
    assert 0 < q["search_p50"] <= q["search_p95"] and 0 < q["ask_p50"] <= q["ask_p95"]
    assert result["cold_ask_s"] > 0 and result["peak_rss_mb"] > 0
    table = format_table(result)
    assert "warm search p50 / p95" in table and "cold ask" in table


def test_chunk_counts_are_read_as_people_write_them():
    import argparse

    from rag.surfaces.cli import _chunk_count

    assert _chunk_count("1e6") == 1_000_000 and _chunk_count("10_000") == 10_000 and _chunk_count("250") == 250
    for bad in ("0", "1.5", "many", "-3"):
        with pytest.raises(argparse.ArgumentTypeError):
            _chunk_count(bad)


@pytest.mark.slow
def test_scale_bench_builds_a_compressed_index_and_reports_every_figure(tmp_path, real_rag, monkeypatch):
    import rag.tools.scale
    from rag.tools.scale import format_scale, run_scale_bench

    monkeypatch.setattr(rag.tools.scale, "MERGE_MAX_CHUNKS", 1500)  # segments as rag index keeps them: 2 here
    settings = real_rag.settings.with_(ann_threshold=1000)  # 1,500-chunk segments: the compressed index
    result = run_scale_bench(settings, 3000, work=tmp_path, repeats=10, log=lambda m: None)
    assert result["chunks"] == 3000 and result["build_dense"] == "ivfpq" and result["base_chunks"] == real_rag.stats()["chunks"]
    assert result["build_segments"] == 2 and result["machine"]["cpu"]
    for key in ("build_s", "disk_bytes", "peak_rss_mb", "search_p50_ms", "search_p95_ms"):
        assert result[key] > 0, key
    assert result["search_p50_ms"] <= result["search_p95_ms"]
    assert result["dense_recall@10"] >= 0.9
    assert list(tmp_path.iterdir()) == []  # the scaled index is removed afterwards
    assert "dense recall@10 against exact" in format_scale(result)


@pytest.mark.parametrize("flags,expected", [("fpu avx512f avx512_bf16 amx_bf16 amx_tile", "amx"),
                                            ("fpu avx512f avx512_bf16", "avx512_bf16"), ("fpu sse2 avx2", "none")])
def test_figures_say_which_cpu_they_come_from(flags, expected):
    from rag.tools.bench import machine_info

    info = machine_info(f"processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: {flags}\n")
    assert info["cpu"] == "Test CPU 9000" and info["cpu_bf16"] == expected and info["cores"] >= 1 and info["gpu"]
    assert ("avx2" in info["isa"]) == ("avx2" in flags) and ("avx512f" in info["isa"]) == ("avx512f" in flags)
