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
import threading
import time
import uuid
from collections import deque
from contextlib import contextmanager
from typing import Iterator, Sequence

from .core.batch import _chunks, default_workers, process_chunk
from .core.discovery import parse_metadata
from .core.params import DetectionParams
from .core.results import ImageResult

__all__ = ["run_batch_dask"]

log = logging.getLogger(__name__)

#: tasks kept in flight per worker thread: enough to hide scheduling latency
TASKS_PER_THREAD = 4
#: the longest the generator waits before it looks at ``cancel`` again, s
POLL_SECONDS = 0.2
#: how often the number of worker threads is asked again (workers may join), s
REFRESH_SECONDS = 1.0

_single_threaded = False


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
        Images per task; default balances progress updates and overhead.
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
    cluster = _local_cluster(n_workers, threads_per_worker)
    with _closing(cluster):
        own = Client(cluster, set_as_default=False)
        with _closing(own):
            yield own


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
    from distributed import LocalCluster

    from .core.batch import _no_main_reimport

    n = n_workers or default_workers()
    t0 = time.perf_counter()
    with _no_main_reimport():  # a script without a __main__ guard must not run again
        cluster = LocalCluster(n_workers=n, threads_per_worker=threads_per_worker,
                               processes=True, dashboard_address=None,
                               silence_logs=logging.WARNING)
    log.info("local Dask cluster of %d workers started in %.1f s",
             n, time.perf_counter() - t0)
    return cluster


def _prepare_workers(client) -> None:
    """Make OpenCV single-threaded and warm up every worker present now.

    Workers that join later are set up by :func:`_process_chunk` itself.
    """
    from .core.batch import _init_worker

    try:
        client.run(_init_worker)
    except Exception as exc:  # e.g. a worker without this package: its tasks will say so
        log.warning("could not prepare the Dask workers: %s", exc)


def _total_threads(client) -> int:
    """Worker threads in the cluster now (0 while no worker has joined)."""
    return sum(client.nthreads().values())


class _Slots:
    """How many tasks to keep in flight; follows workers that join or leave."""

    def __init__(self, client):
        self._client = client
        self._checked = float("-inf")
        self._limit = TASKS_PER_THREAD

    def limit(self) -> int:
        """Tasks allowed in flight, asking the scheduler at most once per second."""
        now = time.monotonic()
        if now - self._checked >= REFRESH_SECONDS:
            self._checked = now
            try:
                self._limit = TASKS_PER_THREAD * max(1, _total_threads(self._client))
            except Exception as exc:  # keep the last known value
                log.debug("could not ask the scheduler for its workers: %s", exc)
        return self._limit


# ---------------------------------------------------------------------------
# Work on the workers
# ---------------------------------------------------------------------------

def _process_chunk(items, params, engine, regex) -> list[ImageResult]:
    """Task run by a Dask worker: the core's ``process_chunk``, OpenCV single-threaded.

    ``client.run`` reaches only the workers present when a batch starts;
    this covers workers that join later (adaptive clusters).
    """
    global _single_threaded
    if not _single_threaded:
        import cv2

        cv2.setNumThreads(1)
        _single_threaded = True
    return process_chunk(items, params, engine, regex)


def _default_chunksize(n_items: int, threads: int) -> int:
    """Images per task: about six tasks per worker thread, at most 8 images each."""
    return max(1, min(8, n_items // (max(threads, 1) * 6)))


# ---------------------------------------------------------------------------
# The streaming loop
# ---------------------------------------------------------------------------

def _stream(client, items, params, engine, regex, chunksize, cancel) -> Iterator[ImageResult]:
    """Submit chunks with a bounded number in flight; yield results as they arrive."""
    from distributed import as_completed

    _prepare_workers(client)
    if chunksize is None:
        chunksize = _default_chunksize(len(items), _total_threads(client))
    todo = deque(_chunks(items, int(chunksize)))
    running: dict = {}  # future -> chunk
    ready = as_completed(loop=client.loop)
    slots = _Slots(client)
    keys = _key_maker()
    try:
        while todo or running:
            _fill(client, todo, running, ready, slots.limit(), keys, (params, engine, regex))
            done = _wait_ready(ready, cancel)
            if done is None:
                return  # cancelled; the finally below drops what is in flight
            for fut in done:
                if cancel is not None and cancel.is_set():
                    return
                chunk = running.pop(fut)
                yield from _collect(fut, chunk, regex, todo)
    finally:
        _cancel(client, running)


def _key_maker():
    """Return a function giving unique, readable task keys for this batch."""
    token = uuid.uuid4().hex[:8]
    counter = itertools.count()
    return lambda chunk: f"nuclei-chunk-{token}-{next(counter)}-img{chunk[0][0]}"


def _fill(client, todo: deque, running: dict, ready, limit: int, keys, args: tuple) -> None:
    """Submit chunks from ``todo`` until ``limit`` tasks are in flight."""
    while todo and len(running) < limit:
        chunk = todo.popleft()
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


def _collect(fut, chunk: list, regex, todo: deque) -> Iterator[ImageResult]:
    """Yield a finished task's results, or failed results for its images.

    A chunk of several images whose workers died (``KilledWorker``) goes back
    to ``todo`` as one task per image, so that only the culprit fails.
    """
    try:
        results = fut.result()
    except (Exception, asyncio.CancelledError) as exc:
        if _workers_died(exc) and len(chunk) > 1:
            log.warning("Dask workers died running %d images; retrying them one at a time",
                        len(chunk))
            todo.extendleft([item] for item in reversed(chunk))
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
