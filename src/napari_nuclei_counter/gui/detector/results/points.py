"""The run's detections in one ``nuclei`` Points layer, and hand corrections back to the store.

One Points layer for the whole stack, the image index as its first
coordinate (napari's convention for stacks). Results are appended in
batches: the coordinates and the feature columns of the new images are
built alone (numpy arrays, categorical text columns) and joined to what the
layer already holds, so a batch costs the arrays' copy, not a rebuild of
every image's table.

napari's Points layer itself does Python work for *every* point on each
change (per-point symbols, colours and extents), so the updates are spaced
by their measured cost and, when one update would stall the window for
longer than :data:`LIVE_BUDGET_S`, the layer is not updated during the run
(the table, the gallery and the plate map still follow live). When the run
ends, such a layer is built whole in a worker thread and put in the old
one's place.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from napari.qt.threading import create_worker
from qtpy.QtCore import QTimer

from ....core.results.store import ResultsStore
from ..model import DetectorModel
from . import points_build as _points_build
from .points_build import build_frame, look_of, points_layer, set_defaults

__all__ = ["LIVE_BUDGET_S", "MIN_POINTS", "RESULTS_LAYER", "PointsSync"]

log = logging.getLogger(__name__)

RESULTS_LAYER = "nuclei"
#: during a run, the layer is not updated when one update would take longer (s)
LIVE_BUDGET_S = 0.03
#: an update during a run waits at least this many times its own last duration
SPACING = 25.0
#: a layer with fewer points is always updated in place
MIN_POINTS = 5_000
#: the cost of a point in one update in place, until it is measured (s)
PER_POINT_S = 2.5e-6
#: at the end of a run, a layer whose update in place would take longer than
#: this is built whole off the window's thread instead (putting a new layer in
#: the old one's place costs napari three stalls of its own, whatever its size)
SWAP_S = 0.3


class PointsSync:
    """Keep the ``nuclei`` Points layer and the :class:`ResultsStore` in step.

    Points added, moved or deleted by hand update the store, and through it
    the table, the gallery, the plate map and the saved tables. A point added
    by hand belongs to the image it was added on (its first coordinate) and
    has no measured intensity, whatever point was selected before.

    The layer follows the store: a new run (the store's reset) starts it
    afresh, each result marks it out of date (:meth:`flush` brings it up to
    date), and *Clear* (a reset to no images) removes it. While the model
    says a run is going on, hand edits are ignored; a hand correction sets
    ``model.edited`` and says so on ``model.status``. :attr:`building` and
    :attr:`deferred` are ``model.layer_building`` and ``model.layer_deferred``.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
    store : ResultsStore
        Its ``source`` is the image layer of the run shown.
    model : DetectorModel
    """

    def __init__(self, viewer, store: ResultsStore, model: DetectorModel) -> None:
        self.viewer = viewer
        self.store = store
        self.model = model
        self._updating = False
        self.dirty = False  #: results arrived since the layer was last updated
        self.seconds = 0.0  #: duration of the last layer update
        #: seconds a point costs an update in place (measured)
        self.per_point = PER_POINT_S
        self._built_visible = True  # whether the layer being built is to be shown
        self.ready: list[Callable[[], None]] = []  #: called when a built layer is in place
        self._gen = 0  # bumped by reset(): a build for an older run is dropped
        self._shown: set[int] = set()  # images whose points the layer holds
        self._next = 0.0  # monotonic time before which no live update starts
        self._touched: set[int] = set()  # images of points being removed or moved
        self.new_run = False  #: the store holds a run's results the layer was not finished for

    @property
    def deferred(self) -> bool:
        """The layer waits for the end of the run."""
        return self.model.layer_deferred

    @deferred.setter
    def deferred(self, value: bool) -> None:
        self.model.layer_deferred = value

    @property
    def building(self) -> bool:
        """The whole layer is being built off the window's thread."""
        return self.model.layer_building

    @building.setter
    def building(self, value: bool) -> None:
        self.model.layer_building = value

    def on_store_event(self, event: str, indices) -> None:
        """Follow the store: a new run, a result (see the class)."""
        if event == "reset":
            self.reset()
            self.new_run = bool(self.store.labels)
            if not self.store.labels and RESULTS_LAYER in self.viewer.layers:
                self.viewer.layers.remove(RESULTS_LAYER)  # cleared
        elif event == "result":
            self.dirty = True

    def finish(self) -> None:
        """The run ended: bring the layer up to date now (if the store holds its results)."""
        if self.new_run:
            self.new_run = False
            self.flush(force=True)

    # ------------------------------------------------------------ building
    def _run_layer(self):
        return self.store.source

    def _ndim(self) -> int:
        layer = self._run_layer()
        return 3 if layer is not None and layer.data.ndim == 3 else 2

    def frame(self, indices=None) -> tuple[np.ndarray, pd.DataFrame]:
        """Coordinates and features of the detections of some images (default: all).

        See :func:`~napari_nuclei_counter.gui.detector.results.points_build.build_frame`.
        """
        return build_frame(self.store.results, self.store.labels, self.store.meta,
                           self._ndim(), indices)

    def _layer(self):
        return self.viewer.layers[RESULTS_LAYER] if RESULTS_LAYER in self.viewer.layers \
            else None

    def _too_big(self, n_points: int) -> bool:
        """Whether one update of a layer of ``n_points`` would stall the window too long."""
        return n_points >= MIN_POINTS and self.per_point * n_points > LIVE_BUDGET_S

    # ------------------------------------------------------------- updates
    def reset(self) -> None:
        """Forget what the layer shows (a new run's first results are coming)."""
        self._shown = set()
        self._next = 0.0
        self.deferred = False
        if self.building:  # the build in flight is dropped: the layer is the user's again
            self.building = False
            self._editable_again()
        self._gen += 1
        self.dirty = True

    def flush(self, force: bool = False) -> None:
        """Append the images that arrived since the last update.

        During a run (``force`` false) the update waits for its turn (spaced
        by its cost) and is skipped altogether when it would take longer than
        :data:`LIVE_BUDGET_S`; ``force`` updates now (the end of a run): in
        place when that is quick, else by building the whole layer off the
        window's thread and putting it in the old one's place.
        """
        if not (self.dirty or force) or self._run_layer() is None or self.building:
            return
        if not force and time.monotonic() < self._next:
            return
        pts = self._layer()
        total = sum(len(r.coords) for r in self.store.results.values() if r.ok)
        if not force:
            if self._too_big(total):
                self.deferred = True
                return
        elif total >= MIN_POINTS and self.per_point * total > SWAP_S:
            self.dirty = False  # cheaper to build a new layer than to grow this one
            self.build()
            return
        self.dirty = False
        added = pts is None
        t0 = time.perf_counter()
        self.show(colour=False)
        seconds = time.perf_counter() - t0
        self.seconds = seconds
        if not added and len(pts.data) >= 1000:  # adding a layer costs napari as much
            self.per_point = seconds / len(pts.data)  # for 10 points as for 10,000
        self._next = time.monotonic() + SPACING * seconds
        if force:  # the colours by intensity in the next turn of the event loop: two
            QTimer.singleShot(0, self.colour)  # shorter stalls instead of one long one

    def build(self) -> None:
        """Build the whole ``nuclei`` layer off the window's thread, then put it in place.

        napari's Points layer does Python work for every point on each change
        (about 2 us a point here), so a run of a few hundred thousand points
        would stall the window for a second or more if the layer grew in place.
        Hand edits wait until the new layer is in place (:attr:`building`).
        """
        gen = self._gen
        results = dict(self.store.results)
        labels, meta, ndim = list(self.store.labels), list(self.store.meta), self._ndim()
        old = self._layer()  # the user's choices of look carry over to the new layer
        look = look_of(old) if old is not None else {}
        self._built_visible = look.pop("visible", True)
        look["visible"] = False  # shown a turn after it is in the viewer
        if old is not None:  # an edit now would be lost with the old layer
            old.editable = False
        self.building = True
        worker = create_worker(_points_build.build_layer, results, labels, meta, ndim, look)
        worker.returned.connect(lambda out: self._on_built(out, gen, set(results)))
        worker.start()

    def cancel_build(self) -> None:
        """Drop a build in flight (its owner is closing); no callbacks after this."""
        self._gen += 1
        self.building = False
        self.ready.clear()

    def _editable_again(self) -> None:
        layer = self._layer()
        if layer is not None:
            layer.editable = self.viewer.dims.ndisplay == 2

    def _on_built(self, out, gen: int, shown: set[int]) -> None:
        if gen != self._gen:  # a new run began meanwhile, or the dock closed
            return
        if isinstance(out, Exception):
            log.warning("building the nuclei layer off the window's thread failed (%s); "
                        "filling it in place", out)
            self.building = False
            self.deferred = False
            self._editable_again()
            self.show()
            self._announce()
            return
        self._put_in_place(out, shown)

    def _put_in_place(self, layer, shown: set[int]) -> None:
        """Put a layer built by :meth:`build` where the ``nuclei`` layer is.

        In three turns of the event loop, each a stall of the window of its
        own (napari frees or builds OpenGL programs and controls for each):
        the old layer goes, the new one comes in hidden, then it is shown.
        """
        gen = self._gen
        old = self._layer()
        index = len(self.viewer.layers)
        if old is not None:
            index = self.viewer.layers.index(old)
            old.events.data.disconnect(self.on_edited)
            self._updating = True
            try:
                self.viewer.layers.remove(old)
            finally:
                self._updating = False
        QTimer.singleShot(0, lambda: self._insert_built(layer, index, shown, gen))

    def _insert_built(self, layer, index: int, shown: set[int], gen: int) -> None:
        if gen != self._gen:  # a new run began meanwhile: it fills a layer of its own
            return
        self._updating = True
        try:
            self.viewer.layers.insert(min(index, len(self.viewer.layers)), layer)
            layer.events.data.connect(self.on_edited)
        finally:
            self._updating = False
        QTimer.singleShot(0, lambda: self._show_built(layer, shown, gen))

    def _show_built(self, layer, shown: set[int], gen: int) -> None:
        layer.visible = self._built_visible
        if gen != self._gen:
            return
        self._shown = shown
        self.building = False
        self.deferred = False
        run_layer = self._run_layer()
        if run_layer is not None and run_layer in self.viewer.layers:
            self.viewer.layers.selection.active = run_layer
        self._announce()

    def _announce(self) -> None:
        for callback in list(self.ready):
            callback()

    def colour(self) -> None:
        """Colour the ``nuclei`` layer's points by intensity (a pass over every point)."""
        if RESULTS_LAYER not in self.viewer.layers:
            return
        pts = self.viewer.layers[RESULTS_LAYER]
        if len(pts.features) and "intensity" in pts.features:
            self._updating = True
            try:
                pts.face_color = "intensity"
                pts.refresh_colors(update_color_mapping=True)
            finally:
                self._updating = False

    def show(self, colour: bool = True) -> None:
        """Put the run's detections into the single ``nuclei`` Points layer.

        ``colour``: colour the points by intensity (a pass over every point;
        live updates during a run leave it to the last one).
        """
        ndim = self._ndim()
        pts = self.viewer.layers[RESULTS_LAYER] if RESULTS_LAYER in self.viewer.layers else None
        if pts is not None and pts.ndim != ndim:
            self.viewer.layers.remove(pts)
            pts = None
        self._updating = True
        try:
            if pts is None:
                coords, feats = self.frame()
                self._add_layer(coords, feats)
                self._shown = set(self.store.results)
                return
            if not self._shown and pts.face_color_mode == "colormap":
                pts.face_color = "gold"  # plain while the run goes on: no pass over all
            new = set(self.store.results) - self._shown
            expected = sum(len(self.store.results[i].coords) for i in self._shown
                           if i in self.store.results and self.store.results[i].ok)
            if len(pts.data) == expected and self._shown <= set(self.store.results):
                coords, feats = self.frame(new)  # append the new images only
                if len(coords):
                    old = pts.features
                    pts.data = np.concatenate([np.asarray(pts.data), coords])
                    pts.features = pd.concat([old, feats], ignore_index=True) if len(old) \
                        else feats
            else:  # a new run, or hand edits: rebuild once
                coords, feats = self.frame()
                pts.data = coords
                pts.features = feats
            self._shown = set(self.store.results)
            if len(pts.features) and colour:
                pts.face_color = "intensity"
                pts.refresh_colors(update_color_mapping=True)
            self._set_defaults(pts)
        finally:
            self._updating = False

    def _add_layer(self, coords, feats) -> None:
        pts = self.viewer.add_layer(points_layer(coords, feats, self._ndim(), RESULTS_LAYER))
        self._set_defaults(pts)
        pts.events.data.connect(self.on_edited)
        run_layer = self._run_layer()
        if run_layer is not None and run_layer in self.viewer.layers:
            self.viewer.layers.selection.active = run_layer

    def _set_defaults(self, pts) -> None:
        set_defaults(pts)

    # ---------------------------------------------------------- hand edits
    def _image_of_rows(self, pts, rows) -> set[int]:
        data = np.asarray(pts.data)
        if not len(data) or data.shape[1] != 3:
            return {0}
        rows = np.asarray([r % len(data) for r in rows if -len(data) <= r < len(data)], int)
        return set(np.rint(data[rows, 0]).astype(int).tolist()) if len(rows) else set()

    def _fix_added(self, pts, rows) -> set[int]:
        """Give points added by hand the features of the image they lie on."""
        data = np.asarray(pts.data)
        n = len(data)
        rows = sorted({r % n for r in rows if -n <= r < n})
        if not rows:
            return set()
        feats = pts.features
        images = np.rint(data[rows, 0]).astype(int) if data.shape[1] == 3 \
            else np.zeros(len(rows), int)
        results = self.store.results
        for row, image in zip(rows, images, strict=True):
            r = results.get(int(image))
            values = {"image": int(image), "intensity": np.nan}
            if r is not None:
                values.update(path=r.path, well=r.meta.well, site=r.meta.site,
                              plate=r.meta.plate)
            for col, value in values.items():
                if col not in feats:
                    continue
                series = feats[col]
                if isinstance(series.dtype, pd.CategoricalDtype) \
                        and value not in series.cat.categories:
                    feats[col] = series.cat.add_categories([value])
                feats.iloc[row, feats.columns.get_loc(col)] = value
        return set(int(i) for i in images)

    def on_edited(self, event=None) -> None:
        """Hand corrections in the ``nuclei`` layer update the store."""
        if self._updating or self.model.running or self.building \
                or RESULTS_LAYER not in self.viewer.layers:
            return
        pts = self.viewer.layers[RESULTS_LAYER]
        action = str(getattr(event, "action", "added"))
        rows = list(getattr(event, "data_indices", ()) or ())
        if action in ("removing", "changing"):  # remember the images they leave
            self._touched |= self._image_of_rows(pts, rows)
            return
        if action not in ("added", "removed", "changed"):
            return
        if action == "added":
            images = self._fix_added(pts, rows)
        else:
            images = self._image_of_rows(pts, rows) if action == "changed" else set()
        images |= self._touched
        self._touched = set()
        self._apply(pts, images)

    def _apply(self, pts, images) -> None:
        data = np.asarray(pts.data, float)
        stack = data.shape[1] == 3
        index = np.rint(data[:, 0]).astype(int) if stack else np.zeros(len(data), int)
        feats = pts.features
        inten = (feats["intensity"].to_numpy(float) if "intensity" in feats
                 else np.full(len(data), np.nan))
        changed = []
        for i in sorted(images):
            sel = index == i
            if self.store.set_points(i, np.rint(data[sel][:, -2:]), inten[sel]):
                changed.append(i)
        self._shown = set(self.store.results)
        if changed:
            self.model.edited = True
            self.model.status = (f"Edited by hand: image(s) {', '.join(str(i) for i in changed)}"
                                 "; counts and tables follow")

