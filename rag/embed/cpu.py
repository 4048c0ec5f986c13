"""The CPU a process runs on, as /proc/cpuinfo names it: its model and its feature flags (which
decide the bf16, int8 and SIMD kernels that run, and so speed and, for int8, the vectors)."""

from __future__ import annotations

from pathlib import Path


def cpu_model_and_flags(cpuinfo: str | None = None) -> tuple[str, set[str]]:
    """(model name, feature flags) from ``cpuinfo``, the text of /proc/cpuinfo (read when not
    given; ("", set()) where there is none)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    lines = cpuinfo.splitlines()
    model = next((line.partition(":")[2].strip() for line in lines if line.startswith("model name")), "")
    flags = {f for line in lines if line.startswith("flags") for f in line.partition(":")[2].split()}
    return model, flags
