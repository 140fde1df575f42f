"""The live preview: detections of the displayed plane, redrawn as the sliders move.

A change starts a preview at once when none is computing; changes made
while one computes are merged into one that starts when it ends, and a
result that is no longer current is dropped (no fixed wait). A change of
the threshold alone, once the candidates of the plane are cached, is
answered on the GUI thread at once (selecting a prefix of sorted
candidates takes well under a millisecond).

A preview that finds nothing with a fixed threshold says why when the
threshold is at or above every smoothed value of the plane (1000 on an
8-bit image) and offers the plane's own threshold (``model.threshold_offer``,
the *Use …* button). That check blurs the plane exactly once per plane and
sigma, always off the GUI thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from magicgui.widgets import CheckBox, Label, PushButton
from napari.qt.threading import create_worker
from qtpy.QtCore import QObject, QTimer

from ..._reader import META_KEY
from ...core.detect.detection import as_grayscale_2d, detect
from ...core.detect.preview import PreviewCache
from ...core.detect.thresholds import resolve_threshold
from ...core.params import DetectionParams
from ..navigation import current_plane
from .layout import wrap_label
from .model import DetectorModel

__all__ = ["PREVIEW_LAYER", "PreviewPanel"]

PREVIEW_LAYER = "nuclei preview"
#: planes up to this size are detected on the GUI thread when already read (a few ms)
GUI_THREAD_PIXELS = 2_000_000


def format_ms(seconds: float) -> str:
    """``'24 ms'``, ``'0.3 ms'``, ``'<0.1 ms'``."""
    ms = seconds * 1000
    if ms >= 10:
        return f"{ms:.0f} ms"
    return f"{ms:.1f} ms" if ms >= 0.1 else "<0.1 ms"


def _preview_job(cache: PreviewCache, plane, params: DetectionParams, key, request: int,
                 superseded: Callable[[], bool]):
    """Generator run by the preview worker: the detections first, then the threshold cache.

    Yields ``(request, key, detections, seconds, image, threshold, check)`` as
    soon as the detection at the current threshold is done (a few milliseconds;
    ``check``, the :class:`~...core.detect.thresholds.ThresholdCheck` of a
    fixed threshold that found nothing, adds one blur),
    then fills the cache of every candidate (several times longer) so that
    later threshold-only moves are answered at once, unless a newer request
    is waiting (``superseded()``), which then starts without that wait.
    ``threshold`` is ``(method, value)`` of the threshold computed for this
    image by ``params``'s automatic method (``None`` for a fixed threshold). Returns ``(key,
    params, None)`` when the cache holds this plane's candidates, else ``None``.
    """
    image = np.asarray(plane)
    t0 = time.perf_counter()
    if params.threshold_method is None:
        det = detect(image, params)
        seconds = time.perf_counter() - t0
        check = cache.threshold_check(image, params, key=key) if det.count == 0 else None
        yield request, key, det, seconds, image, None, check
        if superseded():
            return None
        cache.detect(image, params, key=key)
    else:  # the image's own threshold, then a prefix of the cached candidates
        resolved = resolve_threshold(as_grayscale_2d(image), params)
        det = cache.detect(image, resolved, key=key)
        yield (request, key, det, time.perf_counter() - t0, image,
               (params.threshold_method, resolved.threshold_abs))
    return key, params, None


def _cache_job(cache: PreviewCache, image: np.ndarray, params: DetectionParams, key,
               superseded: Callable[[], bool], unchecked: tuple | None = None):
    """Gather a plane's candidates into the cache (``None`` when a newer request waits).

    ``unchecked`` is a preview drawn on the GUI thread that found nothing,
    ``(request, key, detections, seconds)``: its threshold is checked here,
    and it comes back with the check, ready to be drawn again. Returns
    ``(key, params, preview or None)``.
    """
    if superseded():
        return None
    cache.detect(image, params, key=key)
    checked = None
    if unchecked is not None:
        checked = (*unchecked, image, None, cache.threshold_check(image, params, key=key))
    return key, params, checked


class PreviewPanel(QObject):
    """The *Live preview* switch and line, and the preview of the displayed plane.

    The preview is computed in a worker thread, one at a time: requests made
    while one runs are merged into one that starts when it ends; a result
    that is no longer current is dropped. It follows ``model.params``,
    ``model.preview``, ``model.target`` (the layer under the preview) and the
    viewer's slider, and writes ``model.preview_text``.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
    model : DetectorModel
    """

    def __init__(self, viewer, model: DetectorModel, parent=None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.model = model
        self.check = CheckBox(text="Live preview", value=model.preview,
                              tooltip="Show the detections on the image on screen "
                                      "while you move the sliders")
        self.label = Label(value=model.preview_text)
        wrap_label(self.label.native)
        #: sets ``model.threshold_offer`` as the threshold; shown while there is an offer
        self.offer = PushButton(text="Use", visible=False)
        self.offer.changed.connect(self._on_offer_clicked)
        self.cache = PreviewCache()
        self.worker = None  #: the preview worker while one computes
        self.request = 0  #: number of the latest request
        self._pending = False
        self._ready = None  # (key, sigma, min distance) whose candidates the cache holds
        self._image = None  # the last plane read
        self._image_key = None  # its key
        self._drawn_for = None  # (key, params) of the rings drawn on this thread
        # (request, key, detections, seconds) of the preview on screen when it found
        # nothing with a fixed threshold not checked yet (see _cache_job)
        self._unchecked = None
        self.drawn = 0  #: previews drawn (for tests and benchmarks)
        self._rings_held = False  # the rings were hidden for the results: a new target keeps that
        self._top = QTimer(self)  # after napari has handled an insertion, the rings go on top
        self._top.setSingleShot(True)
        self._top.setInterval(0)
        self._top.timeout.connect(self.keep_rings_on_top)
        self.check.changed.connect(self._on_check)
        model.events.preview.connect(self._on_preview)
        model.events.preview_text.connect(self._on_text)
        model.events.threshold_offer.connect(self._on_threshold_offer)
        model.events.params.connect(self.schedule)
        # nothing cached is current before anyone reacts to a new image
        model.target_changed.connect(self._forget_target, priority=90)
        model.target_changed.connect(self._on_target, priority=-90)
        model.target_reloaded.connect(self._on_reloaded)
        viewer.dims.events.current_step.connect(self.schedule)
        viewer.layers.events.inserted.connect(self._on_layer_inserted)
        self._on_target(model.target)

    @property
    def widgets(self) -> list:
        """The switch, the line and the threshold it offers, for the dock's form."""
        return [self.check, self.label, self.offer]

    # ------------------------------------------------------------ the model
    def _on_check(self, on: bool) -> None:
        self.model.preview = bool(on)

    def _on_preview(self, on: bool) -> None:
        with self.check.changed.blocked():
            self.check.value = on
        if on:
            self.schedule()
        else:
            self.hide()

    def _on_text(self, text: str) -> None:
        self.label.value = text

    def _on_threshold_offer(self, value) -> None:
        if value is not None:
            self.offer.text = f"Use threshold {value:.10g}"
            self.offer.tooltip = (f"Set the threshold to {value:.10g}: this image's Otsu "
                                  "threshold after blurring, rounded down")
        self.offer.visible = value is not None

    def _on_offer_clicked(self, *_) -> None:
        self.model.use_threshold_offer()

    def _forget_target(self, layer) -> None:
        self.forget()
        if layer is not None and layer.data.ndim == 3 and META_KEY in layer.metadata \
                and tuple(layer.axis_labels[:1]) != ("image",):
            layer.axis_labels = ("image", *layer.axis_labels[1:])  # the slider's name

    def _on_layer_inserted(self, event=None) -> None:
        self._top.start()

    def keep_rings_on_top(self) -> None:
        """Move the ``nuclei preview`` rings above every other layer (an image would hide them)."""
        layers = self.viewer.layers
        if PREVIEW_LAYER not in layers:
            return
        index = layers.index(PREVIEW_LAYER)
        if index != len(layers) - 1:
            layers.move(index, len(layers))

    def _on_target(self, layer) -> None:
        # rings hidden because a run's results arrived stay hidden for the results' layer
        # until a slider moves; the preview line says so
        rings = self.viewer.layers[PREVIEW_LAYER] if PREVIEW_LAYER in self.viewer.layers else None
        self._rings_held = bool(rings is not None and not rings.visible and self.model.preview)
        if layer is None:
            self.model.preview_text = ("Choose a folder of images." if self.model.folder_run
                                       else "Open an image or a folder of images (File > Open).")
            self.model.threshold_offer = None
            self.set_points(np.empty((0, 2)))
            return
        self.start()  # at once: no slider is moving

    def _on_reloaded(self) -> None:
        self.forget()
        self.start()

    def _layer(self):
        return self.model.target

    def _show_text(self, text: str) -> None:
        self.model.preview_text = text

    @property
    def idle(self) -> bool:
        """No preview computing or waiting to start."""
        return self.worker is None and not self._pending

    def schedule(self, *_) -> None:
        """Ask for a preview of the current plane and parameters (starts at once if it can)."""
        self._rings_held = False  # a slider moved: the rings show what it does
        if self.model.preview and self._layer() is not None:
            self.start()

    def start(self) -> None:
        """Start computing the preview of the displayed plane now."""
        layer = self._layer()
        if layer is None or not self.model.preview or layer not in self.viewer.layers:
            return
        index, plane = current_plane(self.viewer, layer)
        if plane is None:
            self._show_text("Preview needs a 2-D image or a stack of 2-D images.")
            return
        key = (id(layer), index, getattr(layer.data, "shape", None))
        params = self.model.params
        if params.threshold_method is None and self._ready == (key, params.sigma,
                                                               params.min_distance):
            # only the threshold changed: a prefix of the cached candidates, right here
            self.request += 1
            t0 = time.perf_counter()
            det = self.cache.detect(self._image, params, key=key)
            check = (self.cache.threshold_check(self._image, params, key=key, compute=False)
                     if det.count == 0 else None)
            self.on_done((self.request, key, det, time.perf_counter() - t0, self._image, None,
                          check))
            if self._unchecked is not None and self._unchecked[0] == self.request:
                self._start_cache_job(key, self._image, params)  # a worker checks it: one blur
            return
        image = self._image if self._image_key == key else None
        if (image is not None and params.threshold_method is None
                and image.size <= GUI_THREAD_PIXELS):
            self._here(key, image, params)
            return
        if self.worker is not None:
            self._pending = True
            return
        self.request += 1
        if image is not None:
            plane = image  # the same plane, already read: no file read again
        request = self.request
        worker = create_worker(_preview_job, self.cache, plane, params, key, request,
                               lambda: self._pending or self.request != request)
        worker.yielded.connect(self.on_done)
        self._watch(worker)

    def _here(self, key, image: np.ndarray, params: DetectionParams) -> None:
        """Detect in a plane already in memory on this thread, then cache it in the background.

        One detection at the current threshold takes a few milliseconds for
        images up to :data:`GUI_THREAD_PIXELS` (less than a frame), so the
        rings follow the slider without a thread's start-up; the candidates
        for later threshold-only moves are gathered in a worker.
        """
        if self._drawn_for != (key, params):
            self.request += 1
            t0 = time.perf_counter()
            try:
                det = detect(image, params)
            except (ValueError, TypeError) as exc:  # e.g. sigma beyond the image's side
                self._on_error(exc)
                return
            check = (self.cache.threshold_check(image, params, key=key, compute=False)
                     if det.count == 0 else None)
            self.on_done((self.request, key, det, time.perf_counter() - t0, image, None, check))
            self._drawn_for = (key, params)
        self._start_cache_job(key, image, params)

    def _start_cache_job(self, key, image: np.ndarray, params: DetectionParams) -> None:
        """Gather the plane's candidates (and check a threshold that found nothing) in a worker."""
        if self.worker is not None:
            self._pending = True  # the cache once the running worker ends
            return
        request = self.request
        unchecked = self._unchecked if self._unchecked and self._unchecked[0] == request else None
        self._watch(create_worker(_cache_job, self.cache, image, params, key,
                                  lambda: self._pending or self.request != request, unchecked))

    def _watch(self, worker) -> None:
        worker.returned.connect(self._on_cached)
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        worker.start()

    def on_done(self, out) -> None:
        """Draw a finished preview, unless a newer request or another image replaced it."""
        request, key, det, seconds = out[:4]
        threshold = out[5] if len(out) > 5 else None
        check = out[6] if len(out) > 6 else None
        layer = self._layer()
        if len(out) > 4:  # the plane read for it: kept, not read again for the same key
            if key != self._image_key:
                self._ready = None
            self._image, self._image_key = out[4], key
        if request != self.request or layer is None:
            return  # stale: the image or the parameters changed meanwhile
        coords = det.coords.astype(float)
        if layer.data.ndim == 3:
            coords = np.column_stack([np.full(len(coords), key[1], float), coords])
        self.set_points(coords)
        where = f" in image {key[1]}" if layer.data.ndim == 3 else ""
        if threshold is not None:
            where += f", {threshold[0]} threshold {threshold[1]:g}"
        self.drawn += 1
        held = " · rings hidden: move a slider to show them" if self._rings_held else ""
        text = f"Preview: {det.count} nuclei{where} ({format_ms(seconds)}){held}"
        fixed = threshold is None  # an automatic threshold lies within the image
        self._unchecked = out[:4] if fixed and det.count == 0 and check is None else None
        offer = None
        if check is not None and det.count == 0 and check.above:
            relation = "above" if check.threshold > check.brightest else "at"
            text += (f". Threshold {check.threshold:.10g} is {relation} this image's brightest "
                     f"smoothed value ({check.brightest:.5g}): nothing can be found.")
            offer = check.suggestion
        self._show_text(text)
        self.model.threshold_offer = offer

    def _on_cached(self, out) -> None:
        """The cache holds a plane's candidates: threshold-only moves are answered at once.

        A preview that found nothing comes back with its threshold's check and
        is drawn again (unless a newer one replaced it).
        """
        if out is None:
            return
        if out[0] == self._image_key:
            key, params = out[:2]
            self._ready = (key, params.sigma, params.min_distance)
        if out[2] is not None:
            self.on_done(out[2])

    def forget(self) -> None:
        """The image changed: nothing cached is current."""
        self.cache.clear()
        self._ready = self._image = self._image_key = self._drawn_for = self._unchecked = None

    def _on_error(self, exc: Exception) -> None:
        self._show_text(f"Preview failed: {exc}")
        self.model.threshold_offer = None
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
        self.model.threshold_offer = None

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
                pts.visible = not self._rings_held
                return
        if not len(coords) and layer is None:
            return
        self.viewer.add_points(coords, ndim=coords.shape[1], name=PREVIEW_LAYER, size=11,
                               face_color="transparent", border_color="yellow",
                               border_width=0.15, symbol="ring", visible=not self._rings_held)
        if layer is not None and layer in self.viewer.layers:  # keep the image selected
            self.viewer.layers.selection.active = layer
