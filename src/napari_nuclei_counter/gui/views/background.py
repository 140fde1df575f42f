"""Work for the views in a background thread, handed back to the GUI thread.

:class:`BackgroundQueue` runs functions one after the other in a napari
``GeneratorWorker`` that lives only while it has work;
:class:`TableRefresher` recomputes something from the results store through
one, throttled while results stream in. The gallery makes its thumbnails and
both views their tables this way: no file or table work on the GUI thread.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from napari.qt.threading import GeneratorWorker
from qtpy.QtCore import QObject, QTimer

__all__ = ["REFRESH_MS", "BackgroundQueue", "TableRefresher"]

log = logging.getLogger(__name__)

#: shortest time between two refreshes of a view while results stream in (ms)
REFRESH_MS = 300
_IDLE_S = 0.02  # a background thread without work for this long ends


def _serve(jobs: queue.Queue, closed: threading.Event, idle: float = _IDLE_S):
    """Generator run by a :class:`BackgroundQueue`'s worker thread.

    Takes ``(token, fn, args)`` jobs from ``jobs`` and yields
    ``(token, value, error, seconds)`` for each; ends on ``None``, when
    ``closed`` is set, or after ``idle`` seconds without work.
    """
    while not closed.is_set():
        try:
            job = jobs.get(timeout=idle)
        except queue.Empty:
            return
        if job is None:
            return
        token, fn, args = job
        t0 = time.perf_counter()
        try:
            value, error = fn(*args), None
        except Exception as exc:  # reported to the caller, never raised in the thread
            value, error = None, exc
        if closed.is_set():  # the view closed meanwhile: nobody to hand it to
            return
        yield token, value, error, time.perf_counter() - t0


class BackgroundQueue(QObject):
    """Run functions one after the other in a background thread; results come back here.

    One napari ``GeneratorWorker`` at a time, started when work arrives and
    ending as soon as there is no work (it does not hold a thread of Qt's
    global pool, which napari's other workers share, nor outlive the window)
    or when ``closed`` is set. It is not registered as a viewer task, so
    closing napari does not ask to wait for it; napari waits for it when the
    application quits, like for every worker.

    Parameters
    ----------
    closed : threading.Event
        Set when the owning view is destroyed: no more work, no callbacks.
    parent : QObject, optional
    """

    def __init__(self, closed: threading.Event, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.closed = closed
        self.jobs: queue.Queue = queue.Queue()
        self._callbacks: dict[int, Callable] = {}
        self._tokens = itertools.count()
        self._worker: GeneratorWorker | None = None

    @property
    def outstanding(self) -> int:
        """Jobs handed over and not answered yet."""
        return len(self._callbacks)

    def submit(self, fn: Callable, args: tuple, callback: Callable) -> None:
        """Run ``fn(*args)`` in the background thread.

        ``callback(value, error, seconds)`` is called on the GUI thread
        afterwards; ``error`` is the exception ``fn`` raised, or ``None``.
        """
        if self.closed.is_set():
            return
        token = next(self._tokens)
        self._callbacks[token] = callback
        self.jobs.put((token, fn, args))
        self._ensure_worker()

    def _ensure_worker(self) -> None:
        if self._worker is not None or self.closed.is_set():
            return
        worker = GeneratorWorker(_serve, self.jobs, self.closed)
        worker.yielded.connect(self._on_yielded)
        worker.errored.connect(self._on_errored)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        worker.start()

    def _on_yielded(self, item) -> None:
        if self.closed.is_set():
            return
        token, value, error, seconds = item
        callback = self._callbacks.pop(token, None)
        if callback is not None:
            callback(value, error, seconds)

    def _on_errored(self, exc: Exception) -> None:
        log.warning("background thread failed: %s", exc)

    def _on_finished(self) -> None:
        if self.closed.is_set():
            return
        self._worker = None
        if not self.jobs.empty():  # work arrived while the thread was ending
            self._ensure_worker()


class TableRefresher(QObject):
    """Recompute something from the store in the background, throttled.

    ``request()`` may be called on every store change: the computation runs
    at most once per ``interval_ms`` (longer when it is slow: twice its own
    duration), one at a time, on a snapshot taken on the GUI thread, and
    ``done(value)`` gets each result.

    Parameters
    ----------
    closed : threading.Event
    snapshot : callable
        ``snapshot() -> tuple`` of arguments for ``job`` (GUI thread).
    job : callable
        ``job(*args)`` (background thread).
    done : callable
        ``done(value)`` (GUI thread).
    interval_ms : int, optional
    parent : QObject, optional
    """

    def __init__(self, closed: threading.Event, snapshot: Callable[[], tuple],
                 job: Callable, done: Callable[[Any], None], *, interval_ms: int = REFRESH_MS,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._snapshot, self._job, self._done = snapshot, job, done
        self.queue = BackgroundQueue(closed, self)
        self.interval_ms = int(interval_ms)
        self.seconds = 0.0  #: duration of the last computation
        self._pending = False
        self._running = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._start)

    @property
    def busy(self) -> bool:
        """Whether a computation is asked for or running."""
        return self._pending or self._running or self._timer.isActive()

    def request(self, now: bool = False) -> None:
        """Ask for a computation (soon, or at once with ``now``)."""
        self._pending = True
        if self._running:
            return
        if now:
            self._timer.stop()
            self._start()
        elif not self._timer.isActive():
            self._timer.start(self._wait_ms())

    def _wait_ms(self) -> int:
        return max(self.interval_ms, int(2000 * self.seconds))

    def _start(self) -> None:
        if self._running or not self._pending:
            return
        self._pending = False
        self._running = True
        self.queue.submit(self._job, self._snapshot(), self._on_done)

    def _on_done(self, value, error, seconds) -> None:
        self._running = False
        self.seconds = seconds
        if error is not None:
            log.warning("recomputing a table failed: %s", error)
        else:
            self._done(value)
        if self._pending:
            self._timer.start(self._wait_ms())
