"""A live progress line on the driver: done/failed/total, elapsed, ETA.

On a terminal the line is redrawn in place; otherwise (logs, CI) one line per finished job.
"""

from __future__ import annotations

import sys
import time


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    def __init__(self, total: int, enabled: bool = True, stream=None, label: str = "sweep"):
        self.total, self.enabled, self.label = total, enabled, label
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.start = time.perf_counter()
        self.done = self.failed = self.cached = self.running = 0
        self._last = ""

    def line(self) -> str:
        elapsed = time.perf_counter() - self.start
        finished = self.done + self.failed
        ran = finished - self.cached
        left = self.total - finished
        eta = "?" if ran == 0 else _clock(elapsed / ran * left)
        eta = eta if left else "0:00:00"
        return (
            f"[{self.label}] {finished}/{self.total} finished ({self.done} ok incl. {self.cached} cached, "
            f"{self.failed} failed), {self.running} running, elapsed {_clock(elapsed)}, ETA {eta}"
        )

    def show(self, force: bool = False) -> None:
        if not self.enabled:
            return
        text = self.line()
        if self.tty:
            self.stream.write("\r\x1b[2K" + text)
            self.stream.flush()
        elif force or text.split(", elapsed")[0] != self._last.split(", elapsed")[0]:
            self.stream.write(text + "\n")
            self.stream.flush()
        self._last = text

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()
