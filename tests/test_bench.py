"""The benchmark runs end to end on the shipped corpus and reports every figure."""

from __future__ import annotations

import pytest

import rag
from rag.bench import format_table, run_bench
from rag.config import DEFAULT_CORPUS


@pytest.mark.slow
def test_bench_reports_every_figure(tmp_path, real_rag):
    settings = rag.Settings.from_env(corpus=(str(DEFAULT_CORPUS),), index_dir=str(tmp_path / "unused"))
    result = run_bench(settings, max_chunks=40, query_repeats=10, log=lambda m: None)
    e = result["embedding"]
    assert result["documents"] == 5 and result["bench_chunks"] == min(40, result["chunks"])
    assert e["pipeline_chunks_per_s"] > 0 and e["baseline_chunks_per_s"] > 0 and e["speedup"] > 0
    assert result["index"]["chunks"] == result["chunks"] and result["index"]["search"] == "exact"
    q = result["query_ms"]
    assert 0 < q["search_p50"] <= q["search_p95"] and 0 < q["ask_p50"] <= q["ask_p95"]
    assert result["cold_ask_s"] > 0 and result["peak_rss_mb"] > 0
    table = format_table(result)
    assert "warm search p50 / p95" in table and "cold ask" in table
