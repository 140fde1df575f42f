"""Nuclei detection: the reference, the engines, and the public entry points."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from ..params import DetectionParams

__all__ = [
    "Detections",
    "ENGINES",
    "as_grayscale_2d",
    "detect",
    "detect_nuclei",
    "reference_detect",
]


class Detections(NamedTuple):
    """Detected nuclei centres of one image.

    Attributes
    ----------
    coords : ndarray of intp, shape (N, 2)
        ``(row, col)`` pixel coordinates, brightest first (the reference order).
    intensities : ndarray of float64, shape (N,)
        Smoothed intensity at each centre, in image units: the reference's
        float64 Gaussian-smoothed value at that pixel, whichever engine ran.
    """

    coords: np.ndarray
    intensities: np.ndarray

    @property
    def count(self) -> int:
        """Number of nuclei."""
        return len(self.coords)


def as_grayscale_2d(image) -> np.ndarray:
    """Validate an image for detection and return it as a 2-D array.

    Accepted: 2-D arrays of any integer, boolean or floating dtype. Documented
    conversion: singleton axes are dropped, so a ``(1, H, W)`` or ``(H, W, 1)``
    TIFF works. Boolean images are treated as 0/1.

    Parameters
    ----------
    image : array_like

    Returns
    -------
    ndarray, shape (H, W)
        A view when possible; never a silent change of values.

    Raises
    ------
    TypeError
        For complex, object or string data.
    ValueError
        For RGB(A) images, 3-D stacks, empty images, NaN or infinite values.
    """
    arr = np.asarray(image)
    if arr.dtype == bool:
        arr = arr.view(np.uint8)
    if arr.dtype.kind not in "uif":
        raise TypeError(f"image must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim > 2:
        squeezed = arr.squeeze()
        if squeezed.ndim == 2:
            arr = squeezed
        elif arr.ndim == 3 and arr.shape[-1] in (3, 4):
            raise ValueError(
                f"image looks like an RGB(A) colour image (shape {arr.shape}); "
                "give one grayscale channel, e.g. image[..., 2] for a blue DAPI channel"
            )
        else:
            raise ValueError(
                f"image must be 2-D, got shape {arr.shape}; detect on one plane at a time"
            )
    if arr.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"image is empty (shape {arr.shape})")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError("image contains NaN or infinite values")
    return arr


def reference_detect(image, params: DetectionParams) -> Detections:
    """The contract: scikit-image with every option spelled out.

    ``gaussian(img.astype(float64), sigma, mode='nearest', truncate=4.0)`` then
    ``peak_local_max(g, min_distance=d, threshold_abs=t, exclude_border=d,
    p_norm=inf)``. Slow; every other engine is tested against it.

    Parameters
    ----------
    image : array_like, shape (H, W)
    params : DetectionParams

    Returns
    -------
    Detections
    """
    from skimage.feature import peak_local_max
    from skimage.filters import gaussian

    img = as_grayscale_2d(image).astype(np.float64)
    g = gaussian(img, params.sigma, mode="nearest", truncate=4.0, preserve_range=True,
                 channel_axis=None)
    d = params.min_distance
    coords = peak_local_max(
        g, min_distance=d, threshold_abs=params.threshold_abs, threshold_rel=None,
        exclude_border=d, num_peaks=np.inf, footprint=None, labels=None, p_norm=np.inf,
    )
    coords = np.asarray(coords, dtype=np.intp).reshape(-1, 2)
    return Detections(coords, g[coords[:, 0], coords[:, 1]].astype(np.float64))


def _fast_detect(image, params: DetectionParams) -> Detections:
    from ._fast import prepare

    img = as_grayscale_2d(image)
    cands = prepare(img, params.sigma, params.min_distance, floor=params.threshold_abs)
    coords, values = cands.select(params.threshold_abs)
    return Detections(np.ascontiguousarray(coords, dtype=np.intp), np.asarray(values, np.float64))


#: Detection engines by name. Each takes ``(image, params)`` and returns
#: :class:`Detections` identical to :func:`reference_detect`. A GPU engine
#: (CuPy/cuCIM) would register here.
ENGINES: dict[str, Callable[[np.ndarray, DetectionParams], Detections]] = {
    "fast": _fast_detect,
    "reference": reference_detect,
}


def detect(image, params: DetectionParams | None = None, *, engine: str = "fast") -> Detections:
    """Detect nuclei and return centres with their smoothed intensities.

    Parameters
    ----------
    image : array_like, shape (H, W)
        Grayscale image of any integer or float dtype (see :func:`as_grayscale_2d`).
    params : DetectionParams, optional
        Defaults to ``DetectionParams()`` (sigma 4 px, min_distance 6 px,
        threshold 1000). With ``threshold_method`` set, the threshold is
        computed for this image first (:func:`.thresholds.resolve_threshold`).
    engine : {'fast', 'reference'}, optional
        ``'fast'`` (OpenCV, exact) or ``'reference'`` (scikit-image).

    Returns
    -------
    Detections
        ``coords`` of shape (N, 2) and ``intensities`` of shape (N,).

    Raises
    ------
    ValueError
        For an image that is not 2-D, or a ``sigma`` larger than the image's
        longer side.
    """
    if params is None:
        params = DetectionParams()
    try:
        fn = ENGINES[engine]
    except KeyError:
        raise ValueError(f"engine must be one of {sorted(ENGINES)}, got {engine!r}") from None
    image = as_grayscale_2d(image)
    if params.sigma > max(image.shape):  # a documented limit: beyond it, minutes of blurring
        raise ValueError(f"sigma must be at most the image's longer side ({max(image.shape)} "
                         f"pixels), got {params.sigma:g}")
    if params.threshold_method is not None:
        from .thresholds import resolve_threshold

        params = resolve_threshold(image, params)
    return fn(image, params)


def detect_nuclei(image, sigma: float = 4.0, min_distance: int = 6,
                  threshold_abs: float = 1000.0, *, engine: str = "fast") -> np.ndarray:
    """Detect nuclei centres in a 2-D image.

    Smooths with a Gaussian of ``sigma`` pixels and returns the local maxima of
    the smoothed image that are strictly brighter than ``threshold_abs``, at
    least ``min_distance`` pixels from the border and from each other
    (Chebyshev distance), brightest first. Identical to the reference (the
    contract of the README's Exactness section).

    Parameters
    ----------
    image : array_like, shape (H, W)
    sigma : float, optional
        Gaussian standard deviation in pixels (> 0).
    min_distance : int, optional
        Minimum spacing and border width in pixels (>= 1).
    threshold_abs : float, optional
        Intensity threshold in image units.
    engine : {'fast', 'reference'}, optional

    Returns
    -------
    ndarray of intp, shape (N, 2)
        ``(row, col)`` centres; ``np.empty((0, 2), intp)`` when none.

    Raises
    ------
    ValueError
        For an invalid parameter (named in the message) or image.
    TypeError
        For a non-numeric image or parameter.
    """
    params = DetectionParams(sigma=sigma, min_distance=min_distance, threshold_abs=threshold_abs)
    return detect(image, params, engine=engine).coords
