"""Automatic per-image thresholds, computed on the smoothed image the detection uses."""

from __future__ import annotations

import numpy as np

__all__ = ["AUTO_THRESHOLDS", "auto_threshold", "resolve_threshold"]

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
