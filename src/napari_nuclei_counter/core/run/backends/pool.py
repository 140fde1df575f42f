"""The process-pool backend: worker processes on this machine.

Workers are separate processes started with ``forkserver`` (``spawn`` where
that is missing), never ``fork``: the GUI runs batches from a thread of a Qt
process, and forking such a process is unsafe. They run the module-level task
functions of :mod:`..worker`.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager

from ..scheduler import WorkerDied
from ..worker import prepare_worker

__all__ = ["ProcessBackend", "default_workers", "no_main_reimport", "start_workers_early"]

log = logging.getLogger(__name__)

#: what the forkserver imports once, so that every worker starts with it
_PRELOAD = ["napari_nuclei_counter.core.run.worker", "scipy.ndimage"]  # scipy.spatial is rarely needed

#: tasks in flight per worker: enough that no worker waits for its next task
TASKS_PER_WORKER = 3


def default_workers() -> int:
    """Number of CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def _context():
    methods = mp.get_all_start_methods()
    if "forkserver" in methods:
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        return ctx
    return mp.get_context("spawn")


def start_workers_early() -> None:
    """Start the forkserver now, so that it imports while the caller does other work.

    Optional: the first batch starts it anyway. The command line calls this
    before it lists the input folder, which hides most of the workers'
    start-up time.
    """
    if _context().get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


@contextmanager
def no_main_reimport():
    """Keep new worker processes from re-running the caller's script.

    ``spawn`` and ``forkserver`` children re-execute the parent's ``__main__``
    file (as ``__mp_main__``) so that functions defined there can be unpickled.
    Our workers only run functions of this package, and a script without an
    ``if __name__ == "__main__":`` guard would otherwise open a second napari
    window per worker (napari#4244). While workers start, ``__main__`` does not
    advertise its file.
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or path is None or getattr(main, "__spec__", None) is not None:
        yield
        return
    del main.__file__
    try:
        yield
    finally:
        main.__file__ = path


class ProcessBackend:
    """Worker processes on this machine (``concurrent.futures.ProcessPoolExecutor``).

    Parameters
    ----------
    workers : int, optional
        Worker processes; default every core, never more than the images.
    """

    name = "process"
    max_chunk = 8
    in_process = False
    shares_memory = True

    def __init__(self, workers: int | None = None, *, nice: int = 0):
        """``nice``: added to the workers' scheduling niceness (see :func:`os.nice`).

        An interactive front end (the dock) passes a positive value, so that
        the window's own thread gets a core whenever it needs one while the
        workers keep every core busy otherwise.
        """
        self.nice = int(nice)
        cores = default_workers()
        self.workers = cores if workers is None else max(1, int(workers))
        if self.workers > cores:  # more processes than cores only cost memory and time
            log.warning("%d workers asked for, but this process may use %d cores: "
                        "using %d", self.workers, cores, cores)
            self.workers = cores
        self._n = self.workers
        self._pool: ProcessPoolExecutor | None = None

    def start(self, n_items: int) -> None:
        """Start the pool (its processes start with the first tasks)."""
        self._n = max(1, min(self.workers, n_items))
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self._n, mp_context=_context(), initializer=prepare_worker,
                                   initargs=(os.getpid(), self.nice))

    def threads(self) -> int:
        """The pool's worker processes."""
        return self._n

    def capacity(self) -> int:
        """``TASKS_PER_WORKER`` tasks per worker."""
        return self._n * TASKS_PER_WORKER

    def submit(self, fn: Callable, chunk: list, args: tuple) -> Future:
        """Send a task to the pool (this may start a worker process)."""
        try:
            with no_main_reimport():
                return self._pool.submit(fn, chunk, *args)
        except BrokenProcessPool as exc:
            raise WorkerDied(str(exc)) from exc

    def wait(self, handles: list, timeout: float) -> list:
        """The futures that finished within ``timeout``."""
        done, _ = wait(handles, timeout=timeout, return_when=FIRST_COMPLETED)
        return list(done)

    def result(self, handle: Future) -> list:
        """A finished task's results; a dead worker raises :class:`WorkerDied`."""
        try:
            return handle.result()
        except BrokenProcessPool as exc:
            raise WorkerDied(str(exc)) from exc

    def kill(self, handles: list) -> None:
        """Kill the pool's worker processes (stuck ones too: ``SIGKILL`` ends a stopped process).

        Which worker runs which task is not known, so every worker goes; the
        scheduler retries the images of every task in flight and calls
        :meth:`recover` for a new pool.
        """
        pool = self._pool
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            try:
                if proc.is_alive():
                    proc.kill()
            except (OSError, ValueError):  # already gone
                pass

    def recover(self) -> None:
        """Replace the broken pool by a fresh one."""
        self._stop()
        self._pool = self._new_pool()

    def close(self) -> None:
        """Cancel pending tasks and end the worker processes now."""
        self._stop()
        self._pool = None

    def _stop(self) -> None:
        pool = self._pool
        if pool is None:
            return
        # the pool's processes: no public API before Python 3.14
        procs = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        deadline = time.monotonic() + 2.0
        for proc in procs:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join(1.0)
