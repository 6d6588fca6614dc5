"""A progress line for one training run: step / total, last recorded loss, elapsed, ETA.

On a terminal the line is redrawn in place a few times a second; otherwise (a log file, CI) one
line per record point. Only `mlp-train` turns it on (`enable()`): sweep jobs run in Ray workers
and report through the driver's own line (mlp/sweep/progress.py).
"""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO

_stream: TextIO | None = None  # where single runs report; None: silent


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def enable(stream: TextIO | None = None) -> None:
    """Report the training runs of this process on stream (default stderr)."""
    global _stream
    _stream = stream or sys.stderr


def disable() -> None:
    global _stream
    _stream = None


class RunProgress:
    """train() calls step(t) once t reaches next_step (a plain int compare per SGD step),
    record(t, loss) at each record point and close() at the end; silent when not enabled."""

    def __init__(self, total: int, stream: TextIO | None, interval_s: float = 0.25):
        self.total, self.stream, self.interval_s = total, stream, interval_s
        self.tty = bool(stream is not None and stream.isatty())
        self.start = time.perf_counter()
        self.loss: float | None = None
        self.next_step: float = 1 if self.tty else math.inf  # off a terminal: record points only
        self._drawn = False

    def line(self, t: int) -> str:
        elapsed = time.perf_counter() - self.start
        eta = _clock(elapsed / t * (self.total - t)) if t else "?"
        loss = "?" if self.loss is None else f"{self.loss:.4f}"
        width = len(str(self.total))
        return (
            f"[train] step {t:>{width}}/{self.total} ({100 * t / max(self.total, 1):3.0f}%)  "
            f"loss {loss}  elapsed {_clock(elapsed)}  ETA {eta}"
        )

    def step(self, t: int) -> None:
        """Redraw in place; the next redraw is due after about interval_s of steps at this rate."""
        if self.stream is None:
            return
        self.stream.write("\r" + self.line(t) + "\x1b[K")
        self.stream.flush()
        self._drawn = True
        elapsed = time.perf_counter() - self.start
        rate = t / elapsed if elapsed > 0 else 1.0
        self.next_step = t + max(1, int(rate * self.interval_s))

    def record(self, t: int, loss: float) -> None:
        self.loss = loss
        if self.stream is None:
            return
        if self.tty:
            self.step(t)
        else:
            print(self.line(t), file=self.stream, flush=True)

    def close(self) -> None:
        if self.stream is not None and self._drawn:
            self.stream.write("\n")
            self.stream.flush()


def start(total: int) -> RunProgress:
    return RunProgress(total, _stream)
