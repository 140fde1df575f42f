"""One scheduler for every backend: task sizes, tasks in flight, retries, cancel.

A backend (serial, process pool, Dask; see :class:`Backend`) only starts
workers, runs a task and says when a task's workers died. Everything a run
decides about tasks is written here once:

- **task sizes**: the first tasks hold one image each (the first results come
  at once); later ones about ``TASK_SECONDS`` of worker time, from the time
  images took so far, at most the backend's ``max_chunk`` (or ``chunksize``);
  towards the end a task holds at most a quarter of the remaining images per
  worker (guided scheduling), so no worker idles through a long last task;
- **suspect retry**: when workers die, nobody can say which image was to
  blame. The images of the tasks lost become suspects and run again one at a
  time (alone on the backend), so an image that kills its worker again is
  identified and reported as failed, and the others succeed;
- **stuck workers** (:mod:`.watchdog`): when no task came back for the stall
  timeout, the backend kills the workers of the tasks in flight
  (``Backend.kill``), whose images become suspects; an image stuck again
  when it runs alone fails;
- **a lost backend**: a backend that lost its workers for good (a Dask
  scheduler gone, no worker left) raises :class:`~.errors.BackendLost`,
  which ends the generator (the run keeps what was done);
- **cancel**: a set ``cancel`` event or a closed generator drops the pending
  work; the backend stops its workers at once.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Protocol

from ..results.tables import ImageResult
from .errors import BackendLost
from .watchdog import STUCK, Watchdog

__all__ = ["Backend", "BackendLost", "Chunker", "TASK_SECONDS", "WorkerDied", "schedule"]

log = logging.getLogger(__name__)

#: worker time an automatic task should take, s
TASK_SECONDS = 0.5
#: the longest the scheduler waits before it looks at ``cancel`` again, s
POLL_SECONDS = 0.1
#: new workers refused this many times in a row: the remaining images fail
MAX_REFUSED = 3
#: the error of an image whose worker died again when it ran alone
LOST = ("the worker process died every time it processed this image (out of memory, "
        "or killed)")


class WorkerDied(Exception):
    """The workers running a task died (killed, out of memory, a crash in C code)."""


class Backend(Protocol):
    """Where tasks run. Implementations: :mod:`.backends` and the Dask adapter.

    Attributes
    ----------
    name : str
        For ``run.json`` (``'serial'``, ``'process'``, ``'dask'``).
    max_chunk : int
        Most images in an automatic task.
    in_process : bool
        Tasks run in this process (their function need not be picklable).
    shares_memory : bool
        Workers can map this machine's shared memory (in-memory images).
    stall_timeout : float or None
        Optional: seconds without a result before the watchdog acts (set by
        the run; ``None`` automatic, ``0`` off).

    A backend that can stop stuck workers has ``kill(handles)``: kill the
    workers running these tasks (their results are then never asked for).
    Without it the watchdog only warns. ``wait`` raises
    :class:`~.errors.BackendLost` when the workers are gone for good.
    """

    name: str
    max_chunk: int
    in_process: bool
    shares_memory: bool

    def start(self, n_items: int) -> None:
        """Start (or connect to) the workers for a batch of ``n_items`` images."""

    def threads(self) -> int:
        """Worker threads now (tasks run at once); may change during a batch."""

    def capacity(self) -> int:
        """Tasks to keep in flight."""

    def submit(self, fn: Callable, chunk: list, args: tuple):
        """Start ``fn(chunk, *args)``; return a handle. Raises :class:`WorkerDied`."""

    def wait(self, handles: list, timeout: float) -> list:
        """The handles (of ``handles``) that finished within ``timeout`` seconds."""

    def result(self, handle) -> list[ImageResult]:
        """The results of a finished task. Raises :class:`WorkerDied` or the task's error."""

    def recover(self) -> None:
        """Called after :class:`WorkerDied` once no task is in flight (e.g. a new pool)."""

    def close(self) -> None:
        """Cancel what is in flight and stop or release the workers (never raises)."""


class Chunker:
    """Carve tasks out of the images still to do (see the module's docstring).

    Parameters
    ----------
    items : list of tuple
        ``(index, label, ...)`` per image, in input order.
    chunksize : int, optional
        Most images per task; default: automatic, by time, up to ``max_chunk``.
    max_chunk : int, optional
    """

    def __init__(self, items: list, chunksize: int | None = None, max_chunk: int = 8):
        self._items = deque(items)
        self._suspects: deque = deque()
        self._fixed = int(chunksize) if chunksize else None
        self._max = max(1, int(max_chunk))
        self._seconds = 0.0
        self._timed = 0

    def __bool__(self) -> bool:
        return bool(self._items or self._suspects)

    @property
    def suspects(self) -> int:
        """Suspects waiting to be retried (they run one at a time)."""
        return len(self._suspects)

    def drain(self) -> Iterator[tuple]:
        """Take every item still to do (suspects first)."""
        while self._suspects:
            yield from self._suspects.popleft()
        while self._items:
            yield self._items.popleft()

    def suspect(self, chunk: list) -> None:
        """Run these images again, one per task, alone."""
        self._suspects.extend([item] for item in chunk)

    def give_back(self, chunk: list, suspect: bool) -> None:
        """A task that could not be submitted goes first again."""
        (self._suspects if suspect else self._items).extendleft(
            [chunk] if suspect else reversed(chunk))

    def observe(self, result: ImageResult) -> None:
        """Learn from the worker time of one processed image."""
        if result.ok:
            self._seconds += result.seconds
            self._timed += 1

    def next_chunk(self, threads: int) -> tuple[list, bool]:
        """Return the next task's items and whether it is a suspect's retry."""
        if self._suspects:
            return self._suspects.popleft(), True
        size = min(self.size(threads), len(self._items))
        return [self._items.popleft() for _ in range(size)], False

    def size(self, threads: int) -> int:
        """Images in the next ordinary task."""
        guided = len(self._items) // (4 * max(threads, 1))
        if self._fixed:
            return max(1, min(self._fixed, guided))
        if not self._timed:
            return 1
        per_image = max(self._seconds / self._timed, 1e-4)
        return int(max(1, min(self._max, TASK_SECONDS / per_image, guided)))


def schedule(items: list, fn: Callable, args: tuple, backend: Backend, *,
             failed: Callable[[tuple, str], ImageResult],
             chunksize: int | None = None,
             cancel: threading.Event | None = None,
             before_submit: Callable[[list], None] | None = None) -> Iterator[ImageResult]:
    """Run ``fn(chunk, *args)`` over ``items`` on ``backend``; yield results as they finish.

    Parameters
    ----------
    items : list of tuple
        ``(index, label, ...)`` per image.
    fn : callable
        Module-level task function returning one :class:`ImageResult` per item.
    args : tuple
        Its other arguments.
    backend : Backend
        Started here and closed when the generator ends (or is closed).
    failed : callable
        ``failed(item, message)`` makes the failed result of an image whose task failed.
    chunksize : int, optional
        Most images per task (default automatic).
    cancel : threading.Event, optional
        Set it (from any thread) to stop within ``POLL_SECONDS``.
    before_submit : callable, optional
        Runs in this process right before a task is sent (e.g. to copy its
        images into shared memory).

    Yields
    ------
    ImageResult
        In completion order, one per item.
    """
    if not items:
        return
    work = Chunker(items, chunksize, backend.max_chunk)
    running: dict = {}  # handle -> (chunk, suspect)
    broken = False
    refused = 0  # submissions refused in a row: workers that cannot start at all
    succeeded = False  # some task returned: the workers can start
    suspect_deaths = 0
    watchdog = Watchdog(getattr(backend, "stall_timeout", None))
    warned = False
    backend.start(len(items))
    try:
        while work or running:
            if broken and not running:
                if refused >= MAX_REFUSED or (not succeeded and suspect_deaths >= MAX_REFUSED):
                    for item in work.drain():
                        yield failed(item, "the worker processes could not be started "
                                           "(or died at once, before any image was done)")
                    return
                log.warning("a worker process died; retrying %d image(s) one at a time", work.suspects)
                backend.recover()
                broken = False
                watchdog.progress()
            # suspects run alone, until the last of them has come back
            alone = work.suspects or any(suspect for _, suspect in running.values())
            limit = 1 if alone else backend.capacity()
            while work and not broken and len(running) < limit:
                chunk, suspect = work.next_chunk(backend.threads())
                if before_submit is not None:
                    before_submit(chunk)
                try:
                    handle = backend.submit(fn, chunk, args)
                except WorkerDied:
                    work.give_back(chunk, suspect)
                    broken = True
                    refused += 1
                    break
                refused = 0
                running[handle] = (chunk, suspect)
            if not running:
                continue
            if cancel is not None and cancel.is_set():
                return
            ready = backend.wait(list(running), POLL_SECONDS)
            if ready:
                watchdog.progress()
            elif watchdog.stalled(max(len(chunk) for chunk, _ in running.values())):
                kill = getattr(backend, "kill", None)
                limit = watchdog.limit(max(len(chunk) for chunk, _ in running.values()))
                if kill is None:
                    if not warned:
                        log.warning("no result for %.0f s; this backend cannot stop its "
                                    "workers, waiting on", limit)
                        warned = True
                    continue
                stuck = list(running.items())
                log.warning("no result for %.0f s: the workers of %d task(s) seem stuck; "
                            "stopping them and retrying their images one at a time",
                            limit, len(stuck))
                kill([handle for handle, _ in stuck])
                running.clear()
                for _handle, (chunk, suspect) in stuck:
                    if suspect:
                        yield failed(chunk[0], STUCK.format(limit))
                    else:
                        work.suspect(chunk)
                broken = True
                watchdog.progress()
                continue
            for handle in ready:
                if handle not in running:
                    continue  # a task given up on (killed by the watchdog)
                chunk, suspect = running.pop(handle)
                try:
                    results = backend.result(handle)
                except WorkerDied as exc:
                    broken = True
                    if suspect:
                        suspect_deaths += 1
                        yield failed(chunk[0], LOST)
                    else:
                        log.debug("task of %d image(s) lost: %s", len(chunk), exc)
                        work.suspect(chunk)
                    continue
                except BackendLost:
                    raise  # the run ends; these images were not tried
                except Exception as exc:  # e.g. a result that cannot be pickled
                    for item in chunk:
                        yield failed(item, f"worker failed: {type(exc).__name__}: {exc}")
                    continue
                succeeded = True
                for result in results:
                    work.observe(result)
                    if result.ok:
                        watchdog.observe(result.seconds)
                    yield result
                if cancel is not None and cancel.is_set():
                    return
    finally:
        backend.close()
