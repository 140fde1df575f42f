"""Run the batch engine on a Dask cluster (an adapter over the core; no Qt, no napari).

:class:`DaskBackend` is a backend of the core's run pipeline
(:class:`napari_nuclei_counter.core.run.pipeline.Run` and its scheduler, which decide
task sizes, retries and cancelling): it only connects to a cluster, sends
tasks and says when their workers died. The work itself is the core's
:func:`~napari_nuclei_counter.core.run.worker.process_chunk`, run by Dask workers
on chunks of ``(index, path)`` pairs: workers read the images
themselves, so **every worker must see the image paths** (a shared file system
mounted at the same place) and **have this package installed** (same version
as the client, in an environment with the same ``dask``/``distributed``).

Dask is an optional dependency (``pip install "dask[distributed]"``); this
module imports it only when a batch starts, so importing it is cheap.

Without a scheduler address, a ``distributed.LocalCluster`` of worker
processes is started on this machine for the batch and closed afterwards,
which is mostly useful to try the backend out: on one machine the core's
process pool (``--backend process``, the default) starts faster.

How to run on an HPC cluster (Slurm, PBS, SGE, LSF): ``docs/dask.md``.

From Python, the same works with ``Run(folder, params,
backend=DaskBackend(scheduler="tcp://HOST:8786"))``, ``run_batch_dask(paths,
params, scheduler=...)``, or with an existing ``distributed.Client``
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
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack

from ..core.params import DetectionParams
from ..core.results.tables import ImageResult
from ..core.run.errors import BackendLost, RunError
from ..core.run.scheduler import WorkerDied
from ..core.run.tasks import run_paths
from ..core.run.worker import prepare_worker
from .cluster import connect
from .health import LostCheck

__all__ = ["DaskBackend", "run_batch_dask"]

log = logging.getLogger(__name__)

#: tasks kept in flight per worker thread: enough to hide scheduling latency
TASKS_PER_THREAD = 4
#: most images in one automatic task
MAX_CHUNK = 256
#: how often the number of worker threads is asked again (workers may join), s
REFRESH_SECONDS = 1.0

#: glibc ``mallopt`` parameters, and its largest dynamic ``mmap`` threshold on 64-bit
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 32 * 2**20

_worker_ready = False  # in a worker process: _setup_worker has run


class DaskBackend:
    """Run a batch's tasks on a Dask cluster (see the module's docstring).

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler, e.g. ``'tcp://10.0.0.5:8786'``. The
        connection is closed at the end; the cluster keeps running.
    n_workers : int, optional
        Worker processes of the local cluster started when neither
        ``scheduler`` nor ``client`` is given; default: every core.
    threads_per_worker : int, optional
        Threads per worker process of that local cluster (default 1).
    client : distributed.Client, optional
        Use this client (synchronous); it is left open, only this batch's
        tasks are cancelled at the end.

    Raises
    ------
    RunError
        From :meth:`start`, when the scheduler cannot be reached (within 10 s).

    Notes
    -----
    Nothing connects or starts before :meth:`start`.
    """

    name = "dask"
    max_chunk = MAX_CHUNK
    in_process = False
    shares_memory = False

    def __init__(self, scheduler: str | None = None, *, n_workers: int | None = None,
                 threads_per_worker: int = 1, client=None):
        self.scheduler = scheduler
        self.n_workers = n_workers
        self.threads_per_worker = threads_per_worker
        self._given = client
        self._client = None
        self._stack: ExitStack | None = None
        self._workers: _Workers | None = None
        self._running: set = set()
        self._keys = None
        self._ready = None
        self._lost = LostCheck(self)

    def start(self, n_items: int) -> None:
        """Connect (or start a local cluster) and prepare the workers."""
        from distributed import as_completed

        self._stack = ExitStack()
        try:
            self._client = self._stack.enter_context(
                connect(self.scheduler, self._given, self.n_workers, self.threads_per_worker))
        except ConnectionError as exc:  # before any image ran: a setup error
            self._stack.close()
            raise RunError(str(exc)) from None
        except BaseException:
            self._stack.close()
            raise
        _prepare_workers(self._client)
        self._workers = _Workers(self._client)
        self._keys = _key_maker()
        self._ready = as_completed(loop=self._client.loop)

    def threads(self) -> int:
        """Worker threads in the cluster (asked at most every ``REFRESH_SECONDS``)."""
        return self._workers.threads()

    def capacity(self) -> int:
        """``TASKS_PER_THREAD`` tasks per worker thread."""
        return TASKS_PER_THREAD * max(1, self.threads())

    def submit(self, fn: Callable, chunk: list, args: tuple):
        """Send ``fn(chunk, *args)`` to the cluster."""
        try:
            fut = self._client.submit(_run_task, fn, chunk, *args, key=self._keys(chunk),
                                      pure=False)
        except Exception as exc:
            self._raise_if_lost(exc)
            raise
        self._running.add(fut)
        self._ready.add(fut)
        return fut

    def wait(self, handles: list, timeout: float) -> list:
        """The futures that finished within ``timeout``.

        Raises :class:`~napari_nuclei_counter.core.run.errors.BackendLost` when
        the scheduler is unreachable, or no worker is left while tasks wait,
        for ``LOST_SECONDS`` (or the stall timeout, when shorter).
        """
        ready = self._ready
        done = ready.next_batch(block=False)
        if done or ready.is_empty():
            self._lost.fine()
            return done
        self._lost.check()
        cond = getattr(ready, "thread_condition", None)  # notified on each completion
        if cond is None:  # pragma: no cover - a distributed without it: poll
            time.sleep(min(timeout, 0.02))
        else:
            with cond:
                if not ready.has_ready():
                    cond.wait(timeout=timeout)
        return ready.next_batch(block=False)

    def result(self, handle) -> list:
        """A finished task's results; ``KilledWorker`` raises :class:`WorkerDied`."""
        self._running.discard(handle)
        try:
            return handle.result()
        except (Exception, asyncio.CancelledError) as exc:
            if type(exc).__name__ == "KilledWorker":
                raise WorkerDied(str(exc)) from exc
            if isinstance(exc, asyncio.CancelledError) or "Cancelled" in type(exc).__name__:
                # not cancelled by us: the scheduler went away (or restarted)
                self._raise_if_lost(exc)
                raise WorkerDied(f"task cancelled by the cluster: {exc}") from exc
            raise
        finally:
            handle.release()

    def _raise_if_lost(self, exc: BaseException) -> None:
        """Raise ``BackendLost`` when the client has lost its scheduler."""
        status = getattr(self._client, "status", "running")
        if status != "running" or type(exc).__name__ == "ClosedClientError":
            raise BackendLost(f"lost the connection to the Dask scheduler ({status})") from None

    def kill(self, handles: list) -> None:
        """Stop stuck tasks: restart the workers processing them (their nannies start new ones).

        The tasks are cancelled and never asked for again.
        """
        keys = {h.key for h in handles}
        try:
            alive = _total_threads(self._client)
        except Exception as exc:  # the scheduler is gone
            raise BackendLost(f"lost the connection to the Dask scheduler "
                              f"({type(exc).__name__})") from None
        if not alive:  # not stuck: nobody is there to run them
            raise BackendLost("the Dask cluster has no worker left")
        try:
            processing = self._client.processing()
            stuck = [w for w, ks in processing.items() if keys & set(ks)]
            if stuck:
                self._client.restart_workers(stuck, timeout=30)
        except Exception as exc:  # no nanny, or the scheduler went away meanwhile
            log.warning("could not restart the stuck Dask workers: %s", exc)
        for h in handles:
            self._running.discard(h)
        try:
            self._client.cancel(list(handles), force=True)
        except Exception as exc:
            log.debug("could not cancel the stuck tasks: %s", exc)

    def recover(self) -> None:
        """Nothing to do: the scheduler replaces dead workers itself."""

    def close(self) -> None:
        """Cancel this batch's tasks in flight; close what :meth:`start` opened."""
        running, self._running = list(self._running), set()
        if running and self._client is not None:
            try:
                self._client.cancel(running, force=True)
            except Exception as exc:
                log.debug("could not cancel %d Dask tasks: %s", len(running), exc)
        stack, self._stack = self._stack, None
        self._client = None
        if stack is not None:
            stack.close()


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

    The contract of :func:`napari_nuclei_counter.core.run.batch.run_batch` on a
    :class:`DaskBackend` (its parameters are explained there); every worker
    must be able to read the images at these paths.

    Yields
    ------
    ImageResult
        In completion order, one per image.

    Raises
    ------
    RunError
        When the scheduler at ``scheduler`` cannot be reached (at the first ``next``).
    """
    params = params or DetectionParams()
    items = [(i, str(p)) for i, p in enumerate(paths)]
    backend = DaskBackend(scheduler, n_workers=n_workers,
                          threads_per_worker=threads_per_worker, client=client)
    yield from run_paths(items, params, backend, engine=engine, regex=regex,
                         chunksize=chunksize, cancel=cancel)


def _prepare_workers(client) -> None:
    """Set up and warm up every worker present now (see :func:`_warm_up_worker`).

    Workers that join later are set up by :func:`_run_task` itself.
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


def _key_maker():
    """Return a function giving unique, readable task keys for this batch."""
    token = uuid.uuid4().hex[:8]
    counter = itertools.count()
    return lambda chunk: f"nuclei-chunk-{token}-{next(counter)}-img{chunk[0][0]}"


# ---------------------------------------------------------------------------
# Work on the workers
# ---------------------------------------------------------------------------

def _run_task(fn, chunk, *args) -> list[ImageResult]:
    """Task run by a Dask worker: a core task function, on a set-up worker.

    ``client.run`` reaches only the workers present when a batch starts;
    this covers workers that join later (adaptive clusters).
    """
    if not _worker_ready:
        _setup_worker()
    return fn(chunk, *args)


def _setup_worker() -> None:
    """Once per worker process: OpenCV single-threaded, usual ``malloc`` thresholds."""
    global _worker_ready
    import cv2

    cv2.setNumThreads(1)  # one thread per task: the cluster already uses every core
    _relax_malloc()
    _worker_ready = True


def _warm_up_worker() -> None:
    """Set up a worker and pay its one-off costs (imports, OpenCV dispatch) now."""
    _setup_worker()
    prepare_worker()


def _relax_malloc() -> bool:
    """Give glibc back its usual thresholds where Dask's nanny froze them.

    Nannies start workers with ``MALLOC_TRIM_THRESHOLD_=65536`` so that freed
    memory returns to the system at once. That also pins glibc's ``mmap``
    threshold at 128 KiB: every image-sized array becomes a fresh ``mmap``
    whose pages are zero-filled on first touch, and detection runs about
    1.5x slower. This sets the limits glibc would grow to by itself
    (``mmap`` from 32 MiB, trim above 64 MiB); elsewhere it does nothing.

    Returns
    -------
    bool
        Whether glibc accepted the thresholds (``False`` when nothing was to do).
    """
    if not os.environ.get("MALLOC_TRIM_THRESHOLD_") or not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        ok = (libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD) == 1
              and libc.mallopt(_M_TRIM_THRESHOLD, 2 * _MMAP_THRESHOLD) == 1)
    except (OSError, AttributeError) as exc:  # not glibc
        log.debug("mallopt unavailable: %s", exc)
        return False
    if not ok:
        log.debug("mallopt refused the thresholds")
    return ok


