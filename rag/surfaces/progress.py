"""Progress for long work: a tqdm bar on a terminal, a plain line every few seconds in a pipe."""

from __future__ import annotations

import sys
import time

_UNITS = {"Embedding": "document", "Chunking": "document", "Reading": "passage"}  # what each stage counts


class ProgressPrinter:
    """A ``progress(done, total, stage)`` callback that shows how far a stage is, with the ETA
    (indexing counts documents read and embedded)."""

    def __init__(self, desc: str = "Embedding", unit: str = "document", stream=None, every_s: float = 5.0) -> None:
        self.desc, self.unit = desc, unit
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self._bar = None
        self._t0 = time.monotonic()
        self._last = 0.0
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def __call__(self, done: int, total: int, stage: str | None = None) -> None:
        if stage and stage != self.desc:  # a new stage of the work: a new bar
            self.close()
            self.desc, self._t0, self._last = stage, time.monotonic(), 0.0
            self.unit = _UNITS.get(stage, "item")
        if self.tty:
            if self._bar is None:
                from tqdm import tqdm

                self._bar = tqdm(total=total, desc=self.desc, unit=self.unit, file=self.stream, dynamic_ncols=True)
            self._bar.update(done - self._bar.n)
            if done >= total:
                self.close()
            return
        now = time.monotonic()
        if done >= total or now - self._last >= self.every_s:
            self._last = now
            elapsed = now - self._t0
            line = f"{self.desc}: {done}/{total} {self.unit}s ({100 * done / max(total, 1):.0f}%"
            if elapsed >= 1.0:  # a rate over a fraction of a second means nothing
                rate = done / elapsed
                shown = f"{rate:.1f}" if rate < 10 else f"{rate:.0f}"
                line += f", {shown} {self.unit}s/s, ETA {(total - done) / rate if rate else 0:.0f}s"
            print(line + ")", file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
