"""Run the batch engine on a Dask cluster (an adapter over the core; no Qt, no napari).

:func:`run_batch_dask` has the contract of
:func:`napari_nuclei_counter.core.batch.run_batch`: one
:class:`~napari_nuclei_counter.core.results.ImageResult` per image, yielded as
it completes, failures reported as results with ``error`` set, and a prompt,
clean stop when the generator is closed or ``cancel`` is set. The work itself
is the core's :func:`~napari_nuclei_counter.core.batch.process_chunk`, run by
Dask workers on chunks of ``(index, path)`` pairs: workers read the images
themselves, so **every worker must see the image paths** (a shared file system
mounted at the same place) and **have this package installed** (same version
as the client, in an environment with the same ``dask``/``distributed``).

Dask is an optional dependency (``pip install "dask[distributed]"``); this
module imports it only when a batch starts, so importing it is cheap.

Without a scheduler address, a ``distributed.LocalCluster`` of worker
processes is started on this machine for the batch and closed afterwards,
which is mostly useful to try the backend out: on one machine the core's
process pool (``--backend process``, the default) starts faster.

Running on an HPC cluster (Slurm, PBS, SGE, LSF)
------------------------------------------------
Start a Dask cluster whose workers are batch jobs with ``dask-jobqueue``
(``pip install dask-jobqueue``, on the login node, in the environment where
this package is installed), keep that Python session open, and point the
command line at its scheduler::

    from dask_jobqueue import SLURMCluster   # or PBSCluster, SGECluster, LSFCluster

    cluster = SLURMCluster(cores=8, processes=8, memory="16GB",
                           walltime="01:00:00")  # per job: 8 single-threaded workers
    cluster.scale(jobs=4)                        # 4 jobs = 32 workers
    print(cluster.scheduler_address)             # e.g. tcp://10.0.0.5:8786

then, in a shell (on any machine that can reach the scheduler)::

    nuclei-counter detect /shared/BBBC021/Week1_22123 --backend dask \\
        --scheduler tcp://10.0.0.5:8786 --out results

``processes=cores`` gives single-threaded workers, which suits this workload
(OpenCV is also limited to one thread per worker). Queue and account options
go to the cluster class (``queue=``, ``account=``, ``job_extra_directives=``);
``cluster.adapt(minimum_jobs=1, maximum_jobs=10)`` scales with the load, and
workers that join during a batch are used as they arrive.

Without dask-jobqueue, start the pieces by hand (or from a job script)::

    dask scheduler                                   # prints tcp://HOST:8786
    dask worker tcp://HOST:8786 --nthreads 1 --nworkers 8   # on each node

From Python, the same works with ``run_batch_dask(paths, params,
scheduler="tcp://HOST:8786")`` or with an existing ``distributed.Client``
(``client=``, which is left open).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import sys
import threading
import time
import uuid
from collections import deque
from contextlib import contextmanager
from typing import Iterator, Sequence

from .core.batch import default_workers, process_chunk
from .core.discovery import parse_metadata
from .core.params import DetectionParams
from .core.results import ImageResult

__all__ = ["run_batch_dask"]

log = logging.getLogger(__name__)

#: tasks kept in flight per worker thread: enough to hide scheduling latency
TASKS_PER_THREAD = 4
#: worker time a task should take when the chunk size is automatic, s
TASK_SECONDS = 0.5
#: most images in one automatic task
MAX_CHUNK = 256
#: the longest the generator waits before it looks at ``cancel`` again, s
POLL_SECONDS = 0.2
#: how often the number of worker threads is asked again (workers may join), s
REFRESH_SECONDS = 1.0

#: glibc ``mallopt`` parameters, and its largest dynamic ``mmap`` threshold on 64-bit
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 32 * 2**20

_worker_ready = False  # in a worker process: _setup_worker has run


def run_batch_dask(
    paths: Sequence[str | os.PathLike],
    params: DetectionParams | None = None,
    *,
    scheduler: str | None = None,
    n_workers: int | None = None,
    threads_per_worker: int = 1,
    engine: str = "fast",
    regex: str | None = None,
    chunksize: int | None = None,
    cancel: threading.Event | None = None,
    client=None,
) -> Iterator[ImageResult]:
    """Detect nuclei in many images on a Dask cluster, yielding results as they complete.

    Parameters
    ----------
    paths : sequence of path
        The images; every worker must be able to read them at these paths.
        ``ImageResult.index`` is the position in this sequence.
    params : DetectionParams, optional
    scheduler : str, optional
        Address of a running scheduler, e.g. ``'tcp://10.0.0.5:8786'``. The
        connection is closed at the end; the cluster keeps running.
    n_workers : int, optional
        Worker processes of the local cluster started when neither
        ``scheduler`` nor ``client`` is given; default: every core.
    threads_per_worker : int, optional
        Threads per worker process of that local cluster (default 1).
    engine : {'fast', 'reference'}, optional
    regex : str, optional
        Metadata regex for file names (see :func:`parse_metadata`).
    chunksize : int, optional
        Images per task. Default: automatic, one image for the first tasks,
        then about half a second of worker time per task (fewer near the end).
    cancel : threading.Event, optional
        Set it (from any thread) to stop: pending tasks are cancelled within
        a fraction of a second, the local cluster (if any) is closed, and the
        generator returns.
    client : distributed.Client, optional
        Use this client (synchronous); it is left open, only this batch's
        tasks are cancelled at the end.

    Yields
    ------
    ImageResult
        In completion order, one per image. A failed image yields a result
        with ``error`` set; a task that fails on the cluster (e.g. its workers
        died, ``KilledWorker``) yields failed results for its images, after
        its images were retried one per task to find the culprit.

    Raises
    ------
    ConnectionError
        When the scheduler at ``scheduler`` cannot be reached.

    Notes
    -----
    Closing the generator (``gen.close()``, or leaving a ``for`` loop early)
    cancels the pending tasks and closes the client and the local cluster.
    Nothing connects or starts before the first ``next()``.
    """
    params = params or DetectionParams()
    items = [(i, str(p)) for i, p in enumerate(paths)]
    if not items:
        return
    with _connect(scheduler, client, n_workers, threads_per_worker) as dclient:
        yield from _stream(dclient, items, params, engine, regex, chunksize, cancel)


# ---------------------------------------------------------------------------
# Connecting
# ---------------------------------------------------------------------------

@contextmanager
def _connect(scheduler, client, n_workers, threads_per_worker):
    """Yield a client: the caller's, one for ``scheduler``, or one of a new local cluster."""
    if client is not None:
        yield client
        return
    import distributed  # noqa: F401  (sets up its loggers, which _quiet_logs overrides)

    with _quiet_logs(), _own_client(scheduler, n_workers, threads_per_worker) as own:
        yield own


@contextmanager
def _own_client(scheduler, n_workers, threads_per_worker):
    """A client of ``scheduler``, or of a new local cluster; both closed on exit."""
    from distributed import Client

    if scheduler is not None:
        try:
            own = Client(scheduler, set_as_default=False)
        except (OSError, asyncio.TimeoutError) as exc:
            raise ConnectionError(
                f"cannot reach the Dask scheduler at {scheduler}: {exc}") from exc
        with _closing(own):
            yield own
        return
    with _environ_kept():
        cluster = _local_cluster(n_workers, threads_per_worker)
        with _closing(cluster):
            own = Client(cluster, set_as_default=False)
            with _closing(own):
                yield own


@contextmanager
def _environ_kept():
    """Restore the variables that nannies write into this process's environment.

    A nanny sets ``distributed.nanny.pre-spawn-environ`` (``OMP_NUM_THREADS=1``,
    ``MALLOC_TRIM_THRESHOLD_``, ...) in ``os.environ`` before it starts a
    worker; left there, they would reach every process started later, such
    as the core's process-pool workers.
    """
    import dask

    keys = set(dask.config.get("distributed.nanny.pre-spawn-environ", {})) | {"PYTHONHASHSEED"}
    saved = {key: os.environ.get(key) for key in keys}
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def _quiet_logs(level: int = logging.WARNING):
    """Keep ``distributed``'s INFO chatter (cluster start, connections) out of our logs.

    ``distributed`` sets its logger to INFO and lets records reach the root
    logger, so a command line that shows warnings would show every worker
    starting and stopping. The previous level is restored on exit.
    """
    logger = logging.getLogger("distributed")
    old = logger.level
    if logger.getEffectiveLevel() < level:
        logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(old)


@contextmanager
def _closing(thing):
    """Close a client or cluster on exit, logging (not raising) a failure to close."""
    try:
        yield thing
    finally:
        try:
            thing.close()
        except Exception as exc:  # a half-dead cluster must not hide the real error
            log.warning("could not close %s cleanly: %s", type(thing).__name__, exc)


def _local_cluster(n_workers: int | None, threads_per_worker: int):
    """Start a quiet ``LocalCluster`` of worker processes on this machine."""
    import dask
    from distributed import LocalCluster

    from .core.batch import _no_main_reimport

    n = n_workers or default_workers()
    t0 = time.perf_counter()
    # the workers' statistical profiler samples every thread every 10 ms: a
    # dashboard feature that costs CPU per image here, and there is no dashboard
    with _no_main_reimport(), dask.config.set({"distributed.worker.profile.enabled": False}):
        cluster = LocalCluster(n_workers=n, threads_per_worker=threads_per_worker,
                               processes=True, dashboard_address=None,
                               silence_logs=logging.WARNING,
                               # no dashboard; its HTTP server (health checks) on a
                               # free local port, not 8787, which may be taken
                               scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
    log.info("local Dask cluster of %d workers started in %.1f s",
             n, time.perf_counter() - t0)
    return cluster


def _prepare_workers(client) -> None:
    """Set up and warm up every worker present now (see :func:`_warm_up_worker`).

    Workers that join later are set up by :func:`_process_chunk` itself.
    """
    try:
        client.run(_warm_up_worker)
    except Exception as exc:  # e.g. a worker without this package: its tasks will say so
        log.warning("could not prepare the Dask workers: %s", exc)


def _total_threads(client) -> int:
    """Worker threads in the cluster now (0 while no worker has joined)."""
    return sum(client.nthreads().values())


class _Workers:
    """The cluster's worker threads, asked again at most every ``REFRESH_SECONDS``.

    Workers may join (adaptive or job-queue clusters) or leave during a batch.
    """

    def __init__(self, client):
        self._client = client
        self._checked = float("-inf")
        self._threads = 0

    def threads(self) -> int:
        """Worker threads (the last known number if the scheduler does not answer)."""
        now = time.monotonic()
        if now - self._checked >= REFRESH_SECONDS:
            self._checked = now
            try:
                self._threads = _total_threads(self._client)
            except Exception as exc:
                log.debug("could not ask the scheduler for its workers: %s", exc)
        return self._threads


class _Chunker:
    """Carve tasks out of the images still to do.

    With a fixed ``chunksize`` every task has that many images. Otherwise the
    first tasks have one image each (the first results come at once) and
    later ones are sized to take about ``TASK_SECONDS`` of worker time, from
    the time images took so far: tiny images get big tasks, so the
    scheduler's cost per task (milliseconds) stays small, and big images
    small ones, so progress stays smooth. Near the end, tasks shrink so that
    every worker thread finishes at about the same time.
    """

    def __init__(self, items: list, chunksize: int | None):
        self._items = deque(items)
        self._retry: deque = deque()  # one-image tasks, run first
        self._fixed = int(chunksize) if chunksize else None
        self._seconds = 0.0
        self._timed = 0

    def __bool__(self) -> bool:
        return bool(self._items or self._retry)

    def retry_alone(self, chunk: list) -> None:
        """Run these images again, one per task."""
        self._retry.extend([item] for item in chunk)

    def observe(self, result: ImageResult) -> None:
        """Learn from the worker time of one processed image."""
        if result.ok:
            self._seconds += result.seconds
            self._timed += 1

    def next_chunk(self, threads: int) -> list:
        """Return the next task's ``(index, path)`` pairs (``self`` must be non-empty)."""
        if self._retry:
            return self._retry.popleft()
        size = min(self._size(threads), len(self._items))
        return [self._items.popleft() for _ in range(size)]

    def _size(self, threads: int) -> int:
        if self._fixed:
            return self._fixed
        if not self._timed:
            return 1
        per_image = max(self._seconds / self._timed, 1e-4)
        balanced = len(self._items) / (2 * max(threads, 1))
        return int(max(1, min(MAX_CHUNK, TASK_SECONDS / per_image, balanced)))


# ---------------------------------------------------------------------------
# Work on the workers
# ---------------------------------------------------------------------------

def _process_chunk(items, params, engine, regex) -> list[ImageResult]:
    """Task run by a Dask worker: the core's ``process_chunk``, on a set-up worker.

    ``client.run`` reaches only the workers present when a batch starts;
    this covers workers that join later (adaptive clusters).
    """
    if not _worker_ready:
        _setup_worker()
    return process_chunk(items, params, engine, regex)


def _setup_worker() -> None:
    """Once per worker process: OpenCV single-threaded, usual ``malloc`` thresholds."""
    global _worker_ready
    import cv2

    cv2.setNumThreads(1)  # one thread per task: the cluster already uses every core
    _relax_malloc()
    _worker_ready = True


def _warm_up_worker() -> None:
    """Set up a worker and pay its one-off costs (imports, OpenCV dispatch) now."""
    from .core.batch import _init_worker

    _setup_worker()
    _init_worker()


def _relax_malloc() -> None:
    """Give glibc back its usual thresholds where Dask's nanny froze them.

    Nannies start workers with ``MALLOC_TRIM_THRESHOLD_=65536`` so that freed
    memory returns to the system at once. That also pins glibc's ``mmap``
    threshold at 128 KiB: every image-sized array becomes a fresh ``mmap``
    whose pages are zero-filled on first touch, and detection runs about
    1.5x slower. This sets the limits glibc would grow to by itself
    (``mmap`` from 32 MiB, trim above 64 MiB); elsewhere it does nothing.
    """
    if not os.environ.get("MALLOC_TRIM_THRESHOLD_") or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        ok = (libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD) == 1
              and libc.mallopt(_M_TRIM_THRESHOLD, 2 * _MMAP_THRESHOLD) == 1)
    except (OSError, AttributeError) as exc:  # not glibc
        log.debug("mallopt unavailable: %s", exc)
        return
    if not ok:
        log.debug("mallopt refused the thresholds")


# ---------------------------------------------------------------------------
# The streaming loop
# ---------------------------------------------------------------------------

def _stream(client, items, params, engine, regex, chunksize, cancel) -> Iterator[ImageResult]:
    """Submit tasks with a bounded number in flight; yield results as they arrive."""
    from distributed import as_completed

    _prepare_workers(client)
    work = _Chunker(items, chunksize)
    workers = _Workers(client)
    running: dict = {}  # future -> chunk
    ready = as_completed(loop=client.loop)
    keys = _key_maker()
    try:
        while work or running:
            _fill(client, work, workers.threads(), running, ready, keys,
                  (params, engine, regex))
            done = _wait_ready(ready, cancel)
            if done is None:
                return  # cancelled; the finally below drops what is in flight
            for fut in done:
                if cancel is not None and cancel.is_set():
                    return
                for result in _collect(fut, running.pop(fut), regex, work):
                    work.observe(result)
                    yield result
    finally:
        _cancel(client, running)


def _key_maker():
    """Return a function giving unique, readable task keys for this batch."""
    token = uuid.uuid4().hex[:8]
    counter = itertools.count()
    return lambda chunk: f"nuclei-chunk-{token}-{next(counter)}-img{chunk[0][0]}"


def _fill(client, work: _Chunker, threads: int, running: dict, ready, keys,
          args: tuple) -> None:
    """Submit tasks until ``TASKS_PER_THREAD`` per worker thread are in flight."""
    limit = TASKS_PER_THREAD * max(1, threads)
    while work and len(running) < limit:
        chunk = work.next_chunk(threads)
        fut = client.submit(_process_chunk, chunk, *args, key=keys(chunk), pure=False)
        running[fut] = chunk
        ready.add(fut)


def _wait_ready(ready, cancel: threading.Event | None) -> list | None:
    """Wait for finished futures, looking at ``cancel`` every ``POLL_SECONDS``.

    Returns
    -------
    list of Future, or None
        The futures that finished (at least one), or ``None`` when cancelled.
    """
    while True:
        if cancel is not None and cancel.is_set():
            return None
        done = ready.next_batch(block=False)
        if done:
            return done
        if ready.is_empty():  # pragma: no cover - nothing in flight: a logic error
            return []
        _sleep_until_ready(ready)


def _sleep_until_ready(ready) -> None:
    """Block until a future finishes or ``POLL_SECONDS`` pass."""
    cond = getattr(ready, "thread_condition", None)  # notified on each completion
    if cond is None:  # pragma: no cover - a distributed without it: poll
        time.sleep(0.02)
        return
    with cond:
        if not ready.has_ready():
            cond.wait(timeout=POLL_SECONDS)


def _collect(fut, chunk: list, regex, work: _Chunker) -> Iterator[ImageResult]:
    """Yield a finished task's results, or failed results for its images.

    A chunk of several images whose workers died (``KilledWorker``) goes back
    to ``work`` as one task per image, so that only the culprit fails.
    """
    try:
        results = fut.result()
    except (Exception, asyncio.CancelledError) as exc:
        if _workers_died(exc) and len(chunk) > 1:
            log.warning("Dask workers died running %d images; retrying them one at a time",
                        len(chunk))
            work.retry_alone(chunk)
            return
        yield from _failed(chunk, exc, regex)
        return
    finally:
        fut.release()
    yield from results


def _workers_died(exc: BaseException) -> bool:
    return type(exc).__name__ == "KilledWorker"


def _failed(chunk: list, exc: BaseException, regex) -> Iterator[ImageResult]:
    """One failed result per image of a task that failed on the cluster."""
    reason = str(exc) or "no message"
    msg = f"dask worker failed: {type(exc).__name__}: {reason}"
    for index, path in chunk:
        yield ImageResult(index, path, parse_metadata(path, regex), error=msg)


def _cancel(client, running: dict) -> None:
    """Cancel this batch's tasks that are still in flight (never raises)."""
    if not running:
        return
    try:
        client.cancel(list(running), force=True)
    except Exception as exc:
        log.debug("could not cancel %d Dask tasks: %s", len(running), exc)
    running.clear()
