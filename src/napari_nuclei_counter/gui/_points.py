"""The run's detections in one ``nuclei`` Points layer, and hand corrections back to the store."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from .._reader import points_layer_data
from ..core.store import ResultsStore

__all__ = ["RESULTS_LAYER", "PointsSync"]

RESULTS_LAYER = "nuclei"
_FEATURES = {"image": int, "intensity": float, "path": str, "well": str, "site": str,
             "plate": str}


class PointsSync:
    """Keep the ``nuclei`` Points layer and the :class:`ResultsStore` in step.

    One Points layer for the whole stack, the image index as its first
    coordinate (napari's convention for stacks). Points added, moved or
    deleted by hand update the store, and through it the table, the gallery,
    the plate map and the saved tables.

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

    def frame(self) -> tuple[np.ndarray, pd.DataFrame]:
        """All detections of the run as Points coordinates and features."""
        layer = self._run_layer()
        stack = layer is not None and layer.data.ndim == 3
        coords, feats = [], []
        for r in self.store.ordered():
            i = r.index
            if not r.ok or not len(r.coords):
                continue
            c = r.coords.astype(float)
            coords.append(np.column_stack([np.full(len(c), i, float), c]) if stack else c)
            feats.append(pd.DataFrame({
                "image": i, "intensity": r.intensities, "path": r.path,
                "well": r.meta.well, "site": r.meta.site, "plate": r.meta.plate,
            }))
        ndim = 3 if stack else 2
        if not coords:
            return np.empty((0, ndim)), pd.DataFrame(
                {k: pd.Series(dtype=t) for k, t in _FEATURES.items()})
        return np.concatenate(coords), pd.concat(feats, ignore_index=True)

    def flush(self, force: bool = False) -> None:
        """Update the layer if results arrived (or always, with ``force``)."""
        if not (self.dirty or force) or self._run_layer() is None:
            return
        self.dirty = False
        self.show()

    def show(self) -> None:
        """Put the run's detections into the single ``nuclei`` Points layer."""
        coords, feats = self.frame()
        self._updating = True
        try:
            if RESULTS_LAYER in self.viewer.layers:
                pts = self.viewer.layers[RESULTS_LAYER]
                if pts.ndim == coords.shape[1]:
                    pts.data = coords
                    pts.features = feats
                    if len(feats):
                        pts.face_color = "intensity"
                        pts.refresh_colors(update_color_mapping=True)
                    return
                self.viewer.layers.remove(pts)
            data, kwargs, _ = points_layer_data(coords, feats, name=RESULTS_LAYER)
            pts = self.viewer.add_points(data, **kwargs)
            defaults = pts.feature_defaults
            if "intensity" in defaults:  # a nucleus added by hand has no measured intensity
                defaults["intensity"] = np.nan
                pts.feature_defaults = defaults
            pts.events.data.connect(self.on_edited)
            run_layer = self._run_layer()
            if run_layer is not None and run_layer in self.viewer.layers:
                self.viewer.layers.selection.active = run_layer
        finally:
            self._updating = False

    def on_edited(self, event=None) -> None:
        """Hand corrections in the ``nuclei`` layer update the store."""
        if self._updating or self._busy():
            return
        if getattr(event, "action", "added") not in ("added", "removed", "changed"):
            return
        if RESULTS_LAYER not in self.viewer.layers:
            return
        pts = self.viewer.layers[RESULTS_LAYER]
        data = np.asarray(pts.data, float)
        stack = data.shape[1] == 3
        index = np.rint(data[:, 0]).astype(int) if stack else np.zeros(len(data), int)
        feats = pts.features
        inten = (feats["intensity"].to_numpy(float) if "intensity" in feats
                 else np.full(len(data), np.nan))
        changed = []
        for i in list(self.store.results):
            sel = index == i
            if self.store.set_points(i, np.rint(data[sel][:, -2:]), inten[sel]):
                changed.append(i)
        if changed:
            self._on_edited(changed)
