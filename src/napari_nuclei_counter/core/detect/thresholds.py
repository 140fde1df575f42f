"""Automatic per-image thresholds, computed on the smoothed image the detection uses.

Also the check of a threshold that found nothing (:func:`check_threshold`):
is it above every smoothed value of the image (1000, a threshold for 16-bit
images, on an 8-bit one), and which threshold would the image itself suggest.
"""

from __future__ import annotations

import math
from decimal import ROUND_FLOOR, Decimal
from typing import NamedTuple

import numpy as np

__all__ = ["AUTO_THRESHOLDS", "ThresholdCheck", "auto_threshold", "check_threshold",
           "resolve_threshold", "round_down", "threshold_above"]

#: automatic threshold methods (scikit-image's ``threshold_<name>``), by name
AUTO_THRESHOLDS = ("otsu", "li", "triangle")


def auto_threshold(smooth: np.ndarray, method: str) -> float:
    """An automatic threshold of an already smoothed image.

    Parameters
    ----------
    smooth : ndarray, shape (H, W)
        The smoothed image (the reference's Gaussian, see :func:`._fast.exact_smooth`).
    method : {'otsu', 'li', 'triangle'}

    Returns
    -------
    float
        In the image's units; the image's value for a constant image.

    Raises
    ------
    ValueError
        For an unknown method (the message lists the known ones).
    """
    from skimage import filters

    name = str(method).lower()
    if name not in AUTO_THRESHOLDS:
        raise ValueError(f"threshold method must be one of {', '.join(AUTO_THRESHOLDS)}, "
                         f"got {method!r}")
    g = np.asarray(smooth, dtype=np.float64)
    lo, hi = float(g.min()), float(g.max())
    if hi <= lo:
        return lo
    fn = {"otsu": filters.threshold_otsu, "li": filters.threshold_li,
          "triangle": filters.threshold_triangle}[name]
    return float(fn(g))


def resolve_threshold(image: np.ndarray, params):
    """``params`` with its automatic threshold computed for ``image`` (unchanged when fixed).

    The threshold is computed on the image smoothed exactly as the reference
    detection smooths it (float64 Gaussian of ``params.sigma``).

    Parameters
    ----------
    image : ndarray, shape (H, W)
        A validated 2-D image.
    params : DetectionParams

    Returns
    -------
    DetectionParams
        With ``threshold_abs`` set and ``threshold_method`` ``None``.
    """
    if params.threshold_method is None:
        return params
    from dataclasses import replace

    from ._fast import exact_smooth

    t = auto_threshold(exact_smooth(image, params.sigma), params.threshold_method)
    return replace(params, threshold_abs=t, threshold_method=None)


class ThresholdCheck(NamedTuple):
    """A threshold compared with an image's smoothed values.

    Attributes
    ----------
    threshold : float
        The threshold checked, in image units.
    brightest : float
        The largest value of the smoothed image (the reference's float64 Gaussian).
    suggestion : float or None
        A threshold from the image itself: Otsu's threshold of the smoothed
        image (what ``threshold_method='otsu'`` would use), rounded down by
        :func:`round_down`; ``None`` for a constant image, where no threshold
        finds anything.
    """

    threshold: float
    brightest: float
    suggestion: float | None

    @property
    def above(self) -> bool:
        """Whether the threshold is at or above every smoothed value: nothing can be found.

        A centre must be strictly brighter than the threshold, so a threshold
        equal to the brightest smoothed value finds nothing either.
        """
        return self.threshold >= self.brightest

    def at(self, threshold: float) -> ThresholdCheck:
        """The same image's check for another threshold (nothing is computed again)."""
        return self._replace(threshold=float(threshold))


def round_down(value: float) -> float:
    """``value`` rounded down to two significant digits, or to a whole number from 10 up.

    A suggested threshold reads as a number a person would type, and rounding
    down never lifts it above the value it was computed as.

    Examples
    --------
    >>> round_down(37.8), round_down(1234.5), round_down(3.78), round_down(0.0378)
    (37.0, 1234.0, 3.7, 0.037)
    """
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        return float(f"{value:.2g}") if math.isfinite(value) else value
    digits = max(0, 1 - math.floor(math.log10(value)))
    # in decimal, so that 0.29 stays 0.29 (0.29 * 100 is 28.999... in binary)
    step = Decimal(1).scaleb(-digits)
    return float(Decimal(repr(value)).quantize(step, rounding=ROUND_FLOOR))


def threshold_above(image: np.ndarray, params) -> bool:
    """Whether the fixed threshold of ``params`` is at or above every smoothed value of ``image``.

    Then nothing can be found in the image, whatever it holds. Cheap enough
    for every image in which the detection found nothing: a threshold above
    the image's largest pixel (1000 on an 8-bit image, 70000 on a 16-bit
    one) is above every smoothed value, which lie between the smallest and
    the largest pixel; otherwise the smoothed maximum is computed exactly at
    the fast engine's cost (:func:`._fast.smooth_max`).

    Parameters
    ----------
    image : ndarray, shape (H, W)
        A validated 2-D image.
    params : DetectionParams
        Its ``threshold_abs`` is compared (resolve an automatic one first).

    Returns
    -------
    bool
        The same answer as ``check_threshold(image, params).above`` for a fixed threshold.
    """
    from ._fast import smooth_max

    t, top = float(params.threshold_abs), float(image.max())
    if t - top > 1e-9 * max(1.0, abs(top)):  # beyond any rounding of the smoothing
        return True
    return t >= smooth_max(image, params.sigma)


def check_threshold(image: np.ndarray, params) -> ThresholdCheck:
    """Compare the threshold of ``params`` with the smoothed values of ``image``.

    Costs one exact smoothing of the image (as :func:`resolve_threshold`) and
    one Otsu threshold: meant for images in which the detection found
    nothing, to tell a threshold that cannot find anything in this image from
    an image without nuclei.

    Parameters
    ----------
    image : ndarray, shape (H, W)
        A validated 2-D image.
    params : DetectionParams
        An automatic threshold method is computed for this image first.

    Returns
    -------
    ThresholdCheck
    """
    from ._fast import exact_smooth

    g = exact_smooth(image, params.sigma)
    lo, hi = float(g.min()), float(g.max())
    t = (auto_threshold(g, params.threshold_method) if params.threshold_method is not None
         else float(params.threshold_abs))
    suggestion = round_down(auto_threshold(g, "otsu")) if hi > lo else None
    return ThresholdCheck(t, hi, suggestion)
