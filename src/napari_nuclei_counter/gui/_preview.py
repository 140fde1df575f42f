"""The live preview: detections of the displayed plane, redrawn as the sliders move.

A change starts a preview at once when none is computing; changes made
while one computes are merged into one that starts when it ends, and a
result that is no longer current is dropped (no fixed wait). A change of
the threshold alone, once the candidates of the plane are cached, is
answered on the GUI thread at once (selecting a prefix of sorted
candidates takes well under a millisecond).
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
from napari.qt.threading import create_worker
from qtpy.QtCore import QObject

from ..core.params import DetectionParams
from ..core.preview import PreviewCache

__all__ = ["PREVIEW_LAYER", "PreviewController"]

PREVIEW_LAYER = "nuclei preview"


def format_ms(seconds: float) -> str:
    """``'24 ms'``, ``'0.3 ms'``, ``'<0.1 ms'``."""
    ms = seconds * 1000
    if ms >= 10:
        return f"{ms:.0f} ms"
    return f"{ms:.1f} ms" if ms >= 0.1 else "<0.1 ms"


def _preview_job(cache: PreviewCache, plane, params: DetectionParams, key, request: int):
    """Function run by the preview ``thread_worker`` (reads the plane, detects)."""
    image = np.asarray(plane)
    t0 = time.perf_counter()
    det = cache.detect(image, params, key=key)
    return request, key, det, time.perf_counter() - t0, params, image


class PreviewController(QObject):
    """Compute the preview of the displayed plane in a worker thread, one at a time.

    Requests made while one runs are merged into one that starts when it
    ends; a result that is no longer current is dropped.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
    layer : callable
        Returns the image layer to preview (or ``None``).
    plane : callable
        ``plane(layer)``: the displayed 2-D plane of that layer, ``(index, plane)``.
    params : callable
        Returns the current :class:`DetectionParams`.
    enabled : callable
        Whether the live preview is switched on.
    show_text : callable
        Receives the sentence that describes the last preview.
    """

    def __init__(self, viewer, *, layer: Callable, plane: Callable, params: Callable,
                 enabled: Callable, show_text: Callable, parent=None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self._layer, self._plane, self._params = layer, plane, params
        self._enabled, self._show_text = enabled, show_text
        self.cache = PreviewCache()
        self.worker = None  #: the preview worker while one computes
        self.request = 0  #: number of the latest request
        self._pending = False
        self._ready = None  # (key, sigma, min distance) whose candidates the cache holds
        self._image = None  # the plane they were found in
        self.drawn = 0  #: previews drawn (for tests and benchmarks)

    @property
    def idle(self) -> bool:
        """No preview computing or waiting to start."""
        return self.worker is None and not self._pending

    def schedule(self, *_) -> None:
        """Ask for a preview of the current plane and parameters (starts at once if it can)."""
        if self._enabled() and self._layer() is not None:
            self.start()

    def start(self) -> None:
        """Start computing the preview of the displayed plane now."""
        layer = self._layer()
        if layer is None or not self._enabled() or layer not in self.viewer.layers:
            return
        if self.worker is not None:
            self._pending = True
            return
        index, plane = self._plane(layer)
        if plane is None:
            self._show_text("Preview needs a 2-D image or a stack of 2-D images.")
            return
        self.request += 1
        key = (id(layer), index, getattr(layer.data, "shape", None))
        params = self._params()
        if self._ready == (key, params.sigma, params.min_distance):
            # only the threshold changed: a prefix of the cached candidates, right here
            t0 = time.perf_counter()
            det = self.cache.detect(self._image, params, key=key)
            self.on_done((self.request, key, det, time.perf_counter() - t0, params))
            return
        if self._ready is not None and self._ready[0] == key and self._image is not None:
            plane = self._image  # the same plane, already read: no file read again
        worker = create_worker(_preview_job, self.cache, plane, params, key, self.request)
        worker.returned.connect(self.on_done)
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        worker.start()

    def on_done(self, out) -> None:
        """Draw a finished preview, unless a newer request or another image replaced it."""
        request, key, det, seconds = out[:4]
        layer = self._layer()
        if len(out) > 5:  # the cache now holds this plane's candidates
            self._ready = (key, out[4].sigma, out[4].min_distance)
            self._image = out[5]
        if request != self.request or layer is None:
            return  # stale: the image or the parameters changed meanwhile
        coords = det.coords.astype(float)
        if layer.data.ndim == 3:
            coords = np.column_stack([np.full(len(coords), key[1], float), coords])
        self.set_points(coords)
        where = f" in image {key[1]}" if layer.data.ndim == 3 else ""
        self.drawn += 1
        self._show_text(f"Preview: {det.count} nuclei{where} ({format_ms(seconds)})")

    def forget(self) -> None:
        """The image changed: nothing cached is current."""
        self.cache.clear()
        self._ready = self._image = None

    def _on_error(self, exc: Exception) -> None:
        self._show_text(f"Preview failed: {exc}")
        self.set_points(np.empty((0, 2)))

    def _on_finished(self) -> None:
        self.worker = None
        if self._pending:
            self._pending = False
            self.start()

    def hide(self) -> None:
        """Hide the preview layer (the preview was switched off)."""
        if PREVIEW_LAYER in self.viewer.layers:
            self.viewer.layers[PREVIEW_LAYER].visible = False
        self._show_text("")

    def set_points(self, coords: np.ndarray) -> None:
        """Show ``coords`` in the preview layer (made on first use)."""
        layer = self._layer()
        ndim = 3 if layer is not None and layer.data.ndim == 3 else 2
        coords = np.asarray(coords, float).reshape(-1, coords.shape[1] if coords.size else ndim)
        if PREVIEW_LAYER in self.viewer.layers:
            pts = self.viewer.layers[PREVIEW_LAYER]
            if pts.ndim != coords.shape[1]:
                self.viewer.layers.remove(pts)
            else:
                pts.data = coords
                pts.visible = True
                return
        if not len(coords) and layer is None:
            return
        self.viewer.add_points(coords, ndim=coords.shape[1], name=PREVIEW_LAYER, size=11,
                               face_color="transparent", border_color="yellow",
                               border_width=0.15, symbol="ring")
        if layer is not None and layer in self.viewer.layers:  # keep the image selected
            self.viewer.layers.selection.active = layer
