"""Chunked tasks, the driver's side: how many units (one job, or a bundle of jobs that differ only
in λ) go into the next Ray task, and the protocol that keeps many chunks in flight.

A chunk is one Ray streaming-generator task (mlp.sweep.chunk_task.mlp_sweep_chunk) that runs its
units one after another and yields each unit's results as the unit ends. Tiny jobs (~50 ms) cost
less in Ray's per-task overhead than one task each; larger ones stay one unit per task, because
ChunkSizer aims each task at sweep.chunk_target_s of work.

The protocol, as Ray 2.60 documents it and tests/test_sweep_chunk.py checks it on a real instance:

- `ray.wait` takes ObjectRefGenerators next to ObjectRefs: a generator is ready when `next(gen)`
  would return at once (a yielded unit, its error, or its end).
- `next(gen)` gives an ObjectRef per yielded unit; `ray.get` of it gives the unit's results, or
  raises a RayError when the task failed (WorkerCrashedError when its worker died; RayTaskError
  when something raised outside the per-job catch, e.g. the worker cannot import the project);
  after that error, or after the last unit, `next(gen)` raises StopIteration.
- Ray's own retry (max_retries) of a streaming generator re-runs the generator from its first
  unit (the caller only drops the duplicate yields): units already recorded would train again.
  So chunk tasks get max_retries=0 and the driver retries instead (ChunkFlight): the units already
  yielded are kept, the unit that was running counts one attempt per job against
  sweep.max_retries (as Ray counted them for one-job tasks), and it goes back to the queue, in
  front of the units that had not started.

Imports nothing numerical and no Ray at module level: the driver uses it before either is loaded.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from mlp.errors import UserError

MODES = ("auto", "off")
TAIL_SHARE = 2  # the not-yet-submitted units are cut into at least TAIL_SHARE chunks per slot


def check_settings(settings) -> None:
    """sweep.chunk, sweep.chunk_target_s, sweep.chunk_max: one line naming a bad value."""
    mode = settings.get("chunk", "off")
    target = settings.get("chunk_target_s", 1.0)
    k_max = settings.get("chunk_max", 1)
    if mode not in MODES:
        raise UserError(f"sweep.chunk={mode!r} is not allowed (allowed: {', '.join(MODES)})")
    if not isinstance(target, (int, float)) or isinstance(target, bool) or not target > 0:
        raise UserError(f"sweep.chunk_target_s={target!r} must be a number of seconds > 0")
    if not isinstance(k_max, int) or isinstance(k_max, bool) or k_max < 1:
        raise UserError(f"sweep.chunk_max={k_max!r} must be a whole number ≥ 1")


def unit_wall(results: list[dict]) -> float:
    """A unit's wall time in its worker: the sum of its jobs' task_wall_s (a bundle's jobs each
    carry their share of the bundle's wall)."""
    return sum(float(r.get("task_wall_s") or 0.0) for r in results)


class ChunkSizer:
    """How many units the next chunk task gets.

    - sweep.chunk=off: always 1 (one unit per task, as without chunks).
    - Until `warmup` units have come back (default: one per slot, so every worker's first,
      slower job is in): 1. Nothing is known yet about how long a unit takes.
    - Then target_s / (mean wall of the last `window` units), rounded down, at least 1 and at
      most max_units: a task of about target_s, long enough that Ray's per-task cost (a few ms)
      is small beside it, short enough that progress, failures and the tail stay fine-grained.
    - And never more than ceil(remaining / (TAIL_SHARE · slots)) when the driver knows (or bounds
      from above) how many units are still to be submitted: the sweep's tail is cut into at
      least two chunks per slot, so no slot waits idle while another works through a large last
      chunk. (Chunks already in flight are at most ~target_s each.)
    """

    def __init__(
        self,
        mode: str = "auto",
        target_s: float = 1.0,
        max_units: int = 32,
        slots: int = 1,
        warmup: int | None = None,
        window: int = 32,
    ):
        self.mode, self.target_s, self.max_units = mode, float(target_s), int(max_units)
        self.slots = max(1, int(slots))
        self.window = max(1, int(window))
        self.warmup = min(self.window, self.slots if warmup is None else max(0, int(warmup)))
        self.walls: deque[float] = deque(maxlen=self.window)
        self.observed = 0

    @classmethod
    def from_settings(cls, settings, slots: int) -> ChunkSizer:
        """The sizer sweep.chunk, sweep.chunk_target_s and sweep.chunk_max describe."""
        return cls(
            mode=settings.get("chunk", "off"),
            target_s=float(settings.get("chunk_target_s", 1.0)),
            max_units=int(settings.get("chunk_max", 1)),
            slots=slots,
        )

    def observe(self, wall_s: float) -> None:
        """One unit's wall time in its worker."""
        self.walls.append(max(0.0, float(wall_s)))
        self.observed += 1

    def observe_results(self, results: list[dict]) -> None:
        """One unit's results as they came back (their task_wall_s)."""
        if results:
            self.observe(unit_wall(results))

    @property
    def unit_wall_s(self) -> float | None:
        """The mean wall of a unit over the last `window` observed, or None before any."""
        return sum(self.walls) / len(self.walls) if self.walls else None

    def next_size(self, remaining: int | None = None) -> int:
        """Units for the next task; remaining: units not yet submitted (an upper bound is fine),
        None when not known."""
        if self.mode == "off" or self.observed < max(1, self.warmup):
            return 1
        wall = self.unit_wall_s or 0.0
        size = self.max_units if wall <= 0 else int(self.target_s / wall + 1e-9)
        size = max(1, min(size, self.max_units))
        if remaining is not None:
            size = min(size, max(1, math.ceil(remaining / (TAIL_SHARE * self.slots))))
        return size


class UnitQueue:
    """Units waiting for a task: first those to run again (a worker died under them), then new
    ones pulled from the stream (bundling.unit_stream), a chunk's worth at a time.

    key(unit): the units of one chunk must share it (they share the task's one data argument:
    key = the data config's data_ship.data_key); a unit with another key waits for the next chunk.
    total_jobs: how many jobs the stream holds at most, for remaining()."""

    def __init__(
        self,
        stream: Iterable[list],
        key: Callable[[list], Hashable] | None = None,
        total_jobs: int | None = None,
    ):
        self.stream: Iterator[list] = iter(stream)
        self.key = key or (lambda unit: None)
        self.total_jobs = total_jobs
        self.front: deque[list] = deque()  # retries, then a unit held back for its key
        self.pulled_jobs = 0
        self.exhausted = False
        self.error: BaseException | None = None  # the stream raised after a chunk's first unit

    def push_front(self, units: list[list]) -> None:
        """Units to run before any other, in this order."""
        self.front.extendleft(reversed(units))

    def remaining(self) -> int | None:
        """Units still to be taken, at most (None: the stream's size is not known)."""
        if self.total_jobs is None and not self.exhausted:
            return None
        rest = 0 if self.exhausted else max(0, (self.total_jobs or 0) - self.pulled_jobs)
        return len(self.front) + rest

    def _next(self) -> list | None:
        if self.front:
            return self.front.popleft()
        if self.exhausted:
            return None
        unit = next(self.stream, None)
        if unit is None:
            self.exhausted = True
            return None
        self.pulled_jobs += len(unit)
        return unit

    def take(self, n: int) -> list[list]:
        """Up to n units sharing one key; [] when none is left. An error the stream raises
        (e.g. a UserError composing a job) comes out at once when no unit was taken yet, else
        at the next call, so the units already taken still run."""
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        units: list[list] = []
        while len(units) < n:
            try:
                unit = self._next()
            except Exception as exc:
                if not units:
                    raise
                self.error = exc
                break
            if unit is None:
                break
            if units and self.key(unit) != self.key(units[0]):
                self.front.appendleft(unit)
                break
            units.append(unit)
        return units


@dataclass
class Chunk:
    """One chunk task in flight."""

    units: list[list]  # the task's units, in the order it runs them
    gen: Any  # its ray.ObjectRefGenerator
    received: int = 0  # units whose results came back


@dataclass
class Arrived:
    """What came back for one unit: its results (one dict per job), or the error that ends it for
    good (record each of its jobs failed, e.g. bundling.failed_result with the error's line)."""

    unit: list
    results: list[dict] | None = None
    error: BaseException | None = None


def worker_died(exc: BaseException) -> bool:
    """A failure Ray itself would retry a task for (max_retries): its worker or node died, or it
    was killed for memory, or a result was lost. Other errors (the task raised, cannot be
    scheduled, its runtime environment failed) would fail the same way again."""
    from ray.exceptions import (
        LocalRayletDiedError,
        NodeDiedError,
        ObjectLostError,
        OutOfMemoryError,
        WorkerCrashedError,
    )

    died = (WorkerCrashedError, NodeDiedError, LocalRayletDiedError, OutOfMemoryError)
    return isinstance(exc, (*died, ObjectLostError))


def chunk_remote(options: dict):
    """The chunk task as a Ray remote function: a streaming generator, the task's options (CPUs,
    sweep.ray.remote) kept, Ray's own retries off (ChunkFlight retries on the driver)."""
    import ray

    from mlp.sweep.chunk_task import mlp_sweep_chunk

    return ray.remote(mlp_sweep_chunk).options(
        **{**options, "num_returns": "streaming", "max_retries": 0}
    )


class ChunkFlight:
    """The chunk tasks in flight: waits on all their generators at once, hands back each unit's
    results as they arrive, and puts the units of a task whose worker died back into the queue.

    max_retries: how often one job may be running when its worker dies before it fails
    (sweep.max_retries); job_key(job): a job's identity for that count (the sweep: job.num;
    default: id(job), the flight then keeping the job alive so that id is not reused)."""

    def __init__(
        self,
        queue: UnitQueue,
        max_retries: int,
        job_key: Callable[[Any], Hashable] = id,
    ):
        self.queue, self.max_retries, self.job_key = queue, int(max_retries), job_key
        self.chunks: dict[Any, Chunk] = {}  # by generator
        self.deaths: dict[Hashable, int] = {}  # job key -> times its worker died under it
        self._died: list = []  # the jobs counted in deaths (an id() key stays theirs)
        self.resubmitted = 0  # units put back into the queue

    def __len__(self) -> int:
        return len(self.chunks)

    def add(self, units: list[list], gen) -> Chunk:
        """A chunk just submitted (gen: what the chunk task's .remote() returned)."""
        chunk = Chunk(list(units), gen)
        self.chunks[gen] = chunk
        return chunk

    def wait(self, timeout: float | None = 1.0) -> list[Arrived]:
        """Wait up to timeout for any chunk to yield; one item from each ready chunk."""
        import ray

        if not self.chunks:
            return []
        gens = list(self.chunks)
        ready, _ = ray.wait(gens, num_returns=1, timeout=timeout)
        if ready and len(gens) > 1:  # every generator that is ready now, not just the first
            ready, _ = ray.wait(gens, num_returns=len(gens), timeout=0)
        arrived: list[Arrived] = []
        for gen in ready:
            arrived += self._step(self.chunks[gen])
        return arrived

    def _step(self, chunk: Chunk) -> list[Arrived]:
        """One item of a ready generator: a unit's results, its end, or its failure."""
        import ray
        from ray.exceptions import RayError

        try:
            ref = next(chunk.gen)
        except StopIteration:
            del self.chunks[chunk.gen]
            if chunk.received < len(chunk.units):  # never expected: run the rest again
                self.queue.push_front(chunk.units[chunk.received :])
                self.resubmitted += len(chunk.units) - chunk.received
            return []
        try:
            results = ray.get(ref)
        except RayError as exc:
            del self.chunks[chunk.gen]
            return self._failed(chunk, exc)
        unit = chunk.units[chunk.received]
        chunk.received += 1
        return [Arrived(unit, results=results)]

    def _failed(self, chunk: Chunk, exc: BaseException) -> list[Arrived]:
        """The chunk ended with an error after `received` units. A dead worker: the running unit
        counts one attempt and runs again unless it is out of retries; the units that had not
        started run again. Any other error: every unit not received fails with it."""
        rest = chunk.units[chunk.received :]
        if not rest:
            return []
        if not worker_died(exc):
            return [Arrived(unit, error=exc) for unit in rest]
        running, waiting = rest[0], rest[1:]
        keys = [self.job_key(job) for job in running]
        for key in keys:
            self.deaths[key] = self.deaths.get(key, 0) + 1
        self._died += running
        out: list[Arrived] = []
        again = waiting
        if max(self.deaths[key] for key in keys) > self.max_retries:
            out.append(Arrived(running, error=exc))
        else:
            again = [running, *waiting]
        self.queue.push_front(again)
        self.resubmitted += len(again)
        return out


def run_chunks(
    units: Iterable[list],
    submit: Callable[[list[list]], Any],
    sizer: ChunkSizer,
    on_arrived: Callable[[Arrived], None],
    *,
    max_retries: int,
    limit: int,
    key: Callable[[list], Hashable] | None = None,
    total_jobs: int | None = None,
    job_key: Callable[[Any], Hashable] = id,
    timeout: float = 1.0,
) -> ChunkFlight:
    """The whole driver loop, for the tests and the benchmark, and the model of SweepRunner._run:
    keep up to `limit` chunk tasks in flight, each with sizer.next_size() units
    (submit(units) -> the task's ObjectRefGenerator), and hand each unit's outcome to on_arrived
    as it comes back. Returns the flight (its deaths and resubmitted counts)."""
    queue = UnitQueue(units, key=key, total_jobs=total_jobs)
    flight = ChunkFlight(queue, max_retries, job_key=job_key)
    while True:
        while len(flight) < limit:
            batch = queue.take(sizer.next_size(queue.remaining()))
            if not batch:
                break
            flight.add(batch, submit(batch))
        if not len(flight):
            return flight
        for arrived in flight.wait(timeout):
            if arrived.results is not None:
                sizer.observe_results(arrived.results)
            on_arrived(arrived)
