"""The results of one run, shared by every view of them (no Qt, no napari).

The detector dock fills a :class:`ResultsStore` as results arrive; the
gallery and the plate map listen to it; hand corrections made in the Points
layer go back into it; the tables are written from it. Listeners are plain
callables, so the store is testable without a GUI.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ..io.discovery import ImageMeta
from ..params import DetectionParams
from .tables import ImageResult, images_table
from .wells import well_table

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ResultsStore"]

log = logging.getLogger(__name__)

#: ``listener(event, indices)``; ``event`` is one of ``"resetting"`` (a new run is
#: about to replace everything; Qt models begin their reset here), ``"reset"``,
#: ``"result"``, ``"edited"``, ``"select_well"``; ``indices`` are the images
#: concerned (or ``None``).
Listener = Callable[[str, "set[int] | None"], None]


class ResultsStore:
    """Per-image results of one run and the image each belongs to.

    Attributes
    ----------
    labels : list of str
        One per image of the run: its path, or a label for in-memory images.
    meta : list of ImageMeta
    results : dict of int to ImageResult
        The results received so far, by image index.
    params : DetectionParams or None
    source : object
        What the run was on (e.g. the napari image layer); opaque here.
    selected_well : str or None
        The well picked on the plate map, if any.
    """

    def __init__(self) -> None:
        self.labels: list[str] = []
        self.meta: list[ImageMeta] = []
        self.results: dict[int, ImageResult] = {}
        self.params: DetectionParams | None = None
        self.source = None
        self.plane = None  #: the run's channel and z choice (PlaneChoice), to read its files again
        self.selected_well: str | None = None
        self._listeners: list[Listener] = []

    # -- listeners -------------------------------------------------------
    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(event, indices)`` after every change."""
        if listener not in self._listeners:
            self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        """Stop calling ``listener``."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _emit(self, event: str, indices: set[int] | None) -> None:
        for fn in list(self._listeners):
            try:
                fn(event, indices)
            except Exception:  # one broken view must not stop the others
                log.exception("results listener failed")

    # -- changes ---------------------------------------------------------
    def reset(self, labels: list[str], meta: list[ImageMeta] | None = None,
              params: DetectionParams | None = None, source=None, plane=None) -> None:
        """Start a new run over ``labels``."""
        self._emit("resetting", None)
        self.labels = list(labels)
        self.meta = list(meta) if meta is not None else [ImageMeta() for _ in labels]
        self.results = {}
        self.params = params
        self.source = source
        self.plane = plane
        self.selected_well = None
        self._emit("reset", None)

    def add(self, result: ImageResult) -> None:
        """Record the result of one image."""
        if result.meta == ImageMeta() and result.index < len(self.meta):
            result.meta = self.meta[result.index]
        self.results[result.index] = result
        self._emit("result", {result.index})

    def set_points(self, index: int, coords: np.ndarray,
                   intensities: np.ndarray | None = None) -> bool:
        """Replace the nuclei of one image after a hand correction.

        Returns
        -------
        bool
            ``True`` if the nuclei changed (the image is then marked edited).
        """
        r = self.results.get(index)
        if r is None or not r.ok:
            return False
        coords = np.asarray(coords, dtype=np.intp).reshape(-1, 2)
        if intensities is None:
            intensities = np.full(len(coords), np.nan)
        if len(coords) == len(r.coords) and np.array_equal(coords, r.coords):
            return False
        r.coords = coords
        r.intensities = np.asarray(intensities, dtype=np.float64).reshape(-1)
        r.edited = True
        self._emit("edited", {index})
        return True

    def select_well(self, well: str | None) -> None:
        """Pick a well (``None``: all wells) for the views to focus on."""
        self.selected_well = well
        self._emit("select_well", None)

    # -- reading ---------------------------------------------------------
    def ordered(self) -> list[ImageResult]:
        """The results in image order."""
        return [self.results[i] for i in sorted(self.results)]

    def images_table(self) -> pd.DataFrame:
        """``images.csv`` of what is known so far (QC flags included)."""
        df = images_table(self.ordered())
        df.insert(0, "index", sorted(self.results))
        return df

    def wells_table(self) -> pd.DataFrame:
        """``wells.csv`` of what is known so far."""
        return well_table(self.images_table())

    def indices_of_well(self, well: str) -> list[int]:
        """Image indices of one well, in image order."""
        return [i for i, m in enumerate(self.meta) if m.well == well]
