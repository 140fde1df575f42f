"""Live-preview support: detection on one image, re-used across parameter changes."""

from __future__ import annotations

import threading
from collections.abc import Hashable
from dataclasses import replace

import numpy as np

from ..params import DetectionParams
from ._fast import Candidates, prepare
from .detection import Detections, as_grayscale_2d
from .thresholds import ThresholdCheck, check_threshold

__all__ = ["PreviewCache"]


class PreviewCache:
    """Detections for the image on screen, cheap to update while tuning.

    A change of ``sigma`` or ``min_distance`` (or of the image) recomputes the
    blur and every peak candidate; a change of the threshold only selects a
    prefix of the cached, sorted candidates (exact: the reference keeps the
    candidates above the threshold, in the same order, and spacing is decided
    greedily in that order). The check of a threshold that finds nothing
    (:meth:`threshold_check`) is kept per image and ``sigma``. Thread-safe.

    Examples
    --------
    >>> cache = PreviewCache()
    >>> d = cache.detect(image, DetectionParams(4, 6, 1000), key=("layer", 0))  # doctest: +SKIP
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._cands: Candidates | None = None
        self.recomputed = 0  #: how many times the blur was computed (for tests)
        self._check_key: tuple | None = None
        self._check: ThresholdCheck | None = None

    def detect(self, image, params: DetectionParams, key: Hashable = None) -> Detections:
        """Return the detections of ``image`` for ``params``.

        Parameters
        ----------
        image : array_like, shape (H, W)
        params : DetectionParams
        key : hashable, optional
            Identifies the image (e.g. ``(layer id, slice index)``); the same
            key with the same shape is assumed to be the same pixels. Default:
            the array's identity.
        """
        img = as_grayscale_2d(image)
        if params.threshold_method is not None:  # the image's own threshold (a full exact blur)
            from .thresholds import resolve_threshold

            params = resolve_threshold(img, params)
        k = (id(image) if key is None else key, img.shape, params.sigma, params.min_distance)
        with self._lock:
            if k != self._key or self._cands is None:
                self._cands = prepare(img, params.sigma, params.min_distance, floor=-np.inf)
                self._key = k
                self.recomputed += 1
            coords, values = self._cands.select(params.threshold_abs)
        return Detections(np.ascontiguousarray(coords, np.intp), np.asarray(values, np.float64))

    def threshold_check(self, image, params: DetectionParams, key: Hashable = None, *,
                        compute: bool = True) -> ThresholdCheck | None:
        """Compare the fixed threshold of ``params`` with the smoothed values of ``image``.

        The image's brightest smoothed value and its suggested threshold
        (:func:`.thresholds.check_threshold`: one exact blur and an Otsu
        threshold) are computed once per image and ``sigma``; any threshold
        is then compared at once.

        Parameters
        ----------
        image : array_like, shape (H, W)
        params : DetectionParams
            Its ``threshold_abs`` is compared (an automatic method is not used).
        key : hashable, optional
            Identifies the image, as for :meth:`detect`.
        compute : bool, optional
            ``False``: return ``None`` instead of computing what is not cached
            (for a caller that must not wait, e.g. a window's thread).

        Returns
        -------
        ThresholdCheck or None
        """
        img = as_grayscale_2d(image)
        k = (id(image) if key is None else key, img.shape, params.sigma)
        with self._lock:
            check = self._check if self._check_key == k else None
        if check is None:
            if not compute:
                return None
            check = check_threshold(img, replace(params, threshold_method=None))
            with self._lock:
                self._check_key, self._check = k, check
        return check.at(params.threshold_abs)

    def clear(self) -> None:
        """Forget the cached image (e.g. when its layer is removed)."""
        with self._lock:
            self._key = None
            self._cands = None
            self._check_key = None
            self._check = None
