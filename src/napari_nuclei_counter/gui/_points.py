"""The run's detections in one ``nuclei`` Points layer, and hand corrections back to the store.

One Points layer for the whole stack, the image index as its first
coordinate (napari's convention for stacks). Results are appended in
batches: the coordinates and the feature columns of the new images are
built alone (numpy arrays, categorical text columns) and joined to what the
layer already holds, so a batch costs the arrays' copy, not a rebuild of
every image's table.

napari's Points layer itself does work in proportion to *all* its points
on every change (per-point symbols, colours and extents: about 1 s per
million points on this machine), so the dock spaces the updates by their
measured cost and, when one update would stall the window for longer than
:data:`LIVE_BUDGET_S`, leaves the layer to fill in once when the run ends
(the table, the gallery and the plate map still follow live).
"""

from __future__ import annotations

import logging
import time
from typing import Callable

import numpy as np
import pandas as pd
from qtpy.QtCore import QTimer

from .._reader import points_layer_data
from ..core.store import ResultsStore

__all__ = ["LIVE_BUDGET_S", "RESULTS_LAYER", "PointsSync"]

log = logging.getLogger(__name__)

RESULTS_LAYER = "nuclei"
_TEXT = ("path", "well", "site", "plate")
#: during a run, the layer is not updated when one update would take longer (s)
LIVE_BUDGET_S = 0.08
#: an update during a run waits at least this many times its own last duration
SPACING = 25.0


def _empty_features() -> pd.DataFrame:
    cols = {"image": pd.Series(dtype=int), "intensity": pd.Series(dtype=float)}
    cols.update({k: pd.Series(dtype=str) for k in _TEXT})
    return pd.DataFrame(cols)


class PointsSync:
    """Keep the ``nuclei`` Points layer and the :class:`ResultsStore` in step.

    Points added, moved or deleted by hand update the store, and through it
    the table, the gallery, the plate map and the saved tables. A point added
    by hand belongs to the image it was added on (its first coordinate) and
    has no measured intensity, whatever point was selected before.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
    store : ResultsStore
    run_layer : callable
        Returns the image layer the run was on (or ``None``).
    busy : callable
        Whether a run is going on (hand edits are ignored meanwhile).
    on_edited : callable
        Receives the indices of the images corrected by hand.
    """

    def __init__(self, viewer, store: ResultsStore, *, run_layer: Callable, busy: Callable,
                 on_edited: Callable[[list[int]], None]) -> None:
        self.viewer = viewer
        self.store = store
        self._run_layer, self._busy, self._on_edited = run_layer, busy, on_edited
        self._updating = False
        self.dirty = False  #: results arrived since the layer was last updated
        self.seconds = 0.0  #: duration of the last layer update
        self.deferred = False  #: the layer waits for the end of the run
        self._shown: set[int] = set()  # images whose points the layer holds
        self._next = 0.0  # monotonic time before which no live update starts
        self._touched: set[int] = set()  # images of points being removed or moved

    # ------------------------------------------------------------ building
    def _ndim(self) -> int:
        layer = self._run_layer()
        return 3 if layer is not None and layer.data.ndim == 3 else 2

    def _categories(self) -> dict[str, list[str]]:
        labels = self.store.labels
        meta = self.store.meta
        out = {"path": list(dict.fromkeys(labels))}
        for k in ("well", "site", "plate"):
            out[k] = sorted({getattr(m, k) for m in meta} | {""})
        return out

    def frame(self, indices=None) -> tuple[np.ndarray, pd.DataFrame]:
        """Coordinates and features of the detections of some images (default: all).

        Returns
        -------
        coords : ndarray, shape (M, 3) or (M, 2)
            ``(image, row, col)`` for a stack, ``(row, col)`` for one image.
        features : pandas.DataFrame
            ``image``, ``intensity``, ``path``, ``well``, ``site``, ``plate``;
            the text columns are categorical over the run's values.
        """
        ndim = self._ndim()
        results = self.store.results
        order = sorted(results) if indices is None else sorted(indices)
        rs = [results[i] for i in order if i in results and results[i].ok
              and len(results[i].coords)]
        if not rs:
            return np.empty((0, ndim)), _empty_features()
        counts = np.array([len(r.coords) for r in rs])
        image = np.repeat(np.array([r.index for r in rs]), counts)
        yx = np.concatenate([np.asarray(r.coords, float).reshape(-1, 2) for r in rs])
        coords = np.column_stack([image.astype(float), yx]) if ndim == 3 else yx
        cats = self._categories()
        cols = {"image": image,
                "intensity": np.concatenate([np.asarray(r.intensities, float).reshape(-1)
                                             for r in rs])}
        for k in _TEXT:
            values = [r.path if k == "path" else getattr(r.meta, k) for r in rs]
            categories = cats[k]
            pos = {v: j for j, v in enumerate(categories)}
            codes = np.array([pos.get(v, -1) for v in values])
            cols[k] = pd.Categorical.from_codes(np.repeat(codes, counts), categories=categories)
        return coords, pd.DataFrame(cols)

    # ------------------------------------------------------------- updates
    def reset(self) -> None:
        """Forget what the layer shows (a new run's first results are coming)."""
        self._shown = set()
        self._next = 0.0
        self.deferred = False
        self.dirty = True

    def flush(self, force: bool = False) -> None:
        """Append the images that arrived since the last update.

        During a run (``force`` false) the update waits for its turn (spaced
        by its cost) and is skipped altogether when it would take longer than
        :data:`LIVE_BUDGET_S`; ``force`` updates now (the end of a run).
        """
        if not (self.dirty or force) or self._run_layer() is None:
            return
        now = time.monotonic()
        if not force:
            if now < self._next:
                return
            pts = self.viewer.layers[RESULTS_LAYER] if RESULTS_LAYER in self.viewer.layers \
                else None
            if pts is not None and self.seconds and len(pts.data):
                per_point = self.seconds / max(len(pts.data), 1)
                if per_point * (len(pts.data) + 1) > LIVE_BUDGET_S:
                    self.deferred = True
                    return
        self.dirty = False
        t0 = time.perf_counter()
        self.show(colour=False)
        self.seconds = time.perf_counter() - t0
        self._next = time.monotonic() + SPACING * self.seconds
        if force:  # the colours by intensity in the next turn of the event loop: two
            QTimer.singleShot(0, self.colour)  # shorter stalls instead of one long one

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
        data, kwargs, _ = points_layer_data(coords, feats, name=RESULTS_LAYER)
        kwargs["ndim"] = self._ndim()
        pts = self.viewer.add_points(data, **kwargs)
        self._set_defaults(pts)
        pts.events.data.connect(self.on_edited)
        run_layer = self._run_layer()
        if run_layer is not None and run_layer in self.viewer.layers:
            self.viewer.layers.selection.active = run_layer

    def _set_defaults(self, pts) -> None:
        """A nucleus added by hand has no measured intensity."""
        defaults = pts.feature_defaults
        if "intensity" in defaults:
            defaults["intensity"] = np.nan
            pts.feature_defaults = defaults

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
        for row, image in zip(rows, images):
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
        if self._updating or self._busy() or RESULTS_LAYER not in self.viewer.layers:
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
            self._on_edited(changed)
