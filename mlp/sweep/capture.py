"""Capture a task's own stdout and stderr at the file-descriptor level (prints, logging, C
libraries alike), so the output travels back to the driver with the result (`<job>/job.log`)
instead of staying in a Ray worker log on the node that ran it.

The captured bytes are also written on to the worker's original descriptors afterwards, so
Ray's worker logs (and `sweep.ray.log_to_driver=true`) still see them, at the job's end.
A task that runs several jobs (a bundle) captures one log for all of them.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

MAX_LOG_BYTES = 1 << 20  # a job's log is kept up to its last MiB (the end holds any error)


class Captured:
    text: str | None = None  # set when the block ends; None: nothing could be captured


@contextmanager
def captured_output() -> Iterator[Captured]:
    """Redirect fds 1 and 2 into one temporary file for the block; Captured.text after it."""
    box = Captured()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = (os.dup(1), os.dup(2))
    except (OSError, ValueError, AttributeError):  # no usable descriptors: run uncaptured
        yield box
        return
    sink = tempfile.TemporaryFile()  # noqa: SIM115  (closed in the finally below)
    try:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        yield box
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        size = sink.seek(0, os.SEEK_END)
        sink.seek(max(0, size - MAX_LOG_BYTES))
        data = sink.read()
        sink.close()
        view = memoryview(data)
        while view:
            view = view[os.write(saved[0], view) :]
        for fd in saved:
            os.close(fd)
        cut = (
            f"[... first {size - len(data)} bytes of the log dropped ...]\n"
            if size > len(data)
            else ""
        )
        box.text = cut + data.decode(errors="replace")
