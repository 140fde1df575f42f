"""Helpers shared by the gallery and the plate map docks.

Finding the detector's results store behind napari's plugin proxies, moving
the viewer to an image, weak listeners that die with their widget, and a
small background queue (napari ``GeneratorWorker``) that runs only while it has
work and hands results back to the GUI thread.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Callable

from napari.qt.threading import GeneratorWorker
from qtpy.QtCore import QObject, QTimer

from ..core.gallery import well_position, well_table
from ..core.results import ImageResult, images_table
from ..core.store import ResultsStore
from ._widget import NucleiCounterWidget

if TYPE_CHECKING:
    import napari

__all__ = [
    "BackgroundQueue",
    "TableRefresher",
    "blocked_signals",
    "current_image",
    "find_store",
    "show_image",
    "store_snapshot",
    "store_tables",
    "teardown",
    "unwrap_proxy",
    "weak_method",
    "well_key",
]

log = logging.getLogger(__name__)

PLUGIN = "napari-nuclei-counter"
DETECTOR = "Nuclei detector"
#: shortest time between two refreshes of a view while results stream in (ms)
REFRESH_MS = 300
_IDLE_S = 0.02  # a background thread without work for this long ends


# --------------------------------------------------------------------- shared helpers


def unwrap_proxy(obj):
    """The object behind napari's ``PublicOnlyProxy`` (plugins get proxies)."""
    return getattr(obj, "__wrapped__", obj)


def find_store(viewer: napari.viewer.Viewer) -> ResultsStore:
    """Return the results store of the viewer's "Nuclei detector" dock.

    Docks the detector first if the viewer has none.

    Parameters
    ----------
    viewer : napari.viewer.Viewer

    Returns
    -------
    ResultsStore
        The store the detector fills with its runs' results.
    """
    for widget in list(viewer.window.dock_widgets.values()):
        widget = unwrap_proxy(widget)
        if isinstance(widget, NucleiCounterWidget):
            return unwrap_proxy(widget.store)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, DETECTOR)
    return unwrap_proxy(unwrap_proxy(widget).store)


def show_image(viewer: napari.viewer.Viewer, store: ResultsStore, index: int) -> bool:
    """Move the viewer to image ``index`` of the store's run.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
    store : ResultsStore
        Its ``source`` is the image layer the run was on.
    index : int
        Image index in the run.

    Returns
    -------
    bool
        ``False`` when there is nothing to move (a 2-D image, or the layer is
        no longer in the viewer).
    """
    layer = store.source
    if layer is None or getattr(layer, "ndim", 0) < 3 or layer not in viewer.layers:
        return False
    axis = viewer.dims.ndim - layer.ndim  # leading world axes the layer lacks
    viewer.dims.set_current_step(axis, int(index))
    return True


def current_image(viewer: napari.viewer.Viewer, store: ResultsStore) -> int | None:
    """Index of the image of the store's run that the viewer shows, if any."""
    layer = store.source
    if layer is None or getattr(layer, "ndim", 0) < 3:
        return None
    axis = viewer.dims.ndim - layer.ndim
    step = viewer.dims.current_step
    return int(step[axis]) if 0 <= axis < len(step) else None


def weak_method(obj, name: str) -> Callable:
    """A plain function that calls ``obj.<name>(*args)`` while ``obj`` lives.

    It holds no strong reference to ``obj``: a store or a viewer event that
    keeps it does not keep a closed dock alive.
    """
    ref = weakref.ref(obj)

    def call(*args):
        target = ref()
        if target is not None:
            return getattr(target, name)(*args)
        return None

    call.__name__ = call.__qualname__ = f"weak_{name}"
    return call


def well_key(well: str) -> tuple:
    pos = well_position(well)
    return (0, *pos, "") if pos is not None else (1, 0, 0, str(well))


def teardown(*, closed: threading.Event, store: ResultsStore, listener: Callable,
             jobs: list[queue.Queue], disconnect: list[Callable] = ()) -> None:
    """Stop a closed view's threads and stop calling it.

    Run by a ``weakref.finalize`` of the view, called on its ``destroyed``
    signal (Qt deleted it) or when Python collects it (an undocked view): a
    plain function given everything it needs, never the view itself.
    """
    closed.set()
    store.unsubscribe(listener)
    for q in jobs:
        q.put(None)
    for fn in disconnect:
        try:
            fn()
        except Exception:  # already disconnected, or the viewer is gone
            log.debug("disconnect on close failed", exc_info=True)


def store_snapshot(store: ResultsStore, wells: bool) -> tuple:
    """Arguments of :func:`store_tables` for the store's results now (GUI thread)."""
    return store.ordered(), wells


def store_tables(results: list[ImageResult], wells: bool = False):
    """``ResultsStore.images_table()`` (and ``wells_table()``) of a snapshot of results.

    Runs in a background thread on a list copied on the GUI thread.

    Parameters
    ----------
    results : list of ImageResult
        In image order.
    wells : bool, optional
        Also sum up per well.

    Returns
    -------
    images : pandas.DataFrame
        With the ``index`` column first, like ``ResultsStore.images_table()``.
    wells : pandas.DataFrame or None
        Like ``ResultsStore.wells_table()``, when asked for.
    """
    images = images_table(results)
    images.insert(0, "index", [r.index for r in results])
    return images, (well_table(images) if wells else None)


# ------------------------------------------------------------------ background work


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


# ---------------------------------------------------------------------- thumbnails



class blocked_signals:
    """Block the signals of some Qt objects for a ``with`` block."""

    def __init__(self, *objects: QObject) -> None:
        self.objects = objects

    def __enter__(self) -> None:
        self.previous = [o.blockSignals(True) for o in self.objects]

    def __exit__(self, *exc) -> None:
        for o, p in zip(self.objects, self.previous):
            o.blockSignals(p)

