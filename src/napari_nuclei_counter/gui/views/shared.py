"""Helpers shared by the gallery and the plate map docks (Qt, no widgets of their own).

Weak listeners that die with their widget, the teardown of a closed view,
the tables a view recomputes in the background (:func:`store_tables`), and
blocking a widget's signals for a moment.
"""

from __future__ import annotations

import logging
import queue
import threading
import weakref
from collections.abc import Callable

from qtpy.QtCore import QEvent, QObject

from ...core.results.store import ResultsStore
from ...core.results.tables import ImageResult, images_table
from ...core.results.wells import well_table

__all__ = [
    "blocked_signals",
    "store_snapshot",
    "store_tables",
    "stop_on_close",
    "teardown",
    "weak_method",
]

log = logging.getLogger(__name__)


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


class _CloseWatcher(QObject):
    """Calls ``stop()`` once when its widget leaves its dock (napari's close button)."""

    def __init__(self, widget, stop: Callable) -> None:
        super().__init__(widget)
        self._stop = stop
        self._docked = widget.parent() is not None

    def eventFilter(self, obj, event) -> bool:
        if event.type() == QEvent.Type.ParentChange:
            if obj.parent() is not None:
                self._docked = True
            elif self._docked:  # napari took it out of its dock: closed
                self._stop()
        return False


def stop_on_close(widget, stop: Callable) -> None:
    """Call ``stop()`` when napari closes the dock holding ``widget``.

    napari's close button takes the widget out of its dock
    (``setParent(None)``) and leaves it to Python to collect, which may be
    much later; a view's background work must stop at once.
    ``stop`` is the view's :func:`teardown` finalizer (it runs once).
    """
    widget.installEventFilter(_CloseWatcher(widget, stop))


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


class blocked_signals:
    """Block the signals of some Qt objects for a ``with`` block."""

    def __init__(self, *objects: QObject) -> None:
        self.objects = objects

    def __enter__(self) -> None:
        self.previous = [o.blockSignals(True) for o in self.objects]

    def __exit__(self, *exc) -> None:
        for o, p in zip(self.objects, self.previous, strict=True):
            o.blockSignals(p)

