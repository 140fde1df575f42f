"""Image quality metrics and plate-wide QC flags.

:func:`image_metrics` is cheap (a few milliseconds on a 1024x1280 image) and
meant to run in the batch worker next to detection. :func:`qc_flags` turns the
metrics and counts of a whole images table into one plain-words flag string
per image, comparing each image with the other images of its plate.

No Qt, no napari: numpy, OpenCV and pandas only.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ..results.wells import successful

if TYPE_CHECKING:  # pandas is imported where tables are used: a faster start-up
    import pandas as pd

__all__ = [
    "FLAGS",
    "METRIC_COLUMNS",
    "image_metrics",
    "qc_flags",
]

#: Columns that :func:`image_metrics` adds to an images table.
METRIC_COLUMNS = ("saturated_fraction", "sharpness", "mean_intensity")

#: Every flag :func:`qc_flags` can raise, in the order they appear, with its meaning.
FLAGS = {
    "no_nuclei": "no nucleus was found in the image",
    "saturated": "too many pixels at the top of the intensity range",
    "out_of_focus": "much blurrier than the other images of its plate",
    "count_outlier": "nuclei count far from the other images of its plate",
}

_EPS = 1e-12
_MIN_FOCUS_IMAGES = 3
_MIN_OUTLIER_IMAGES = 5


def image_metrics(image: np.ndarray) -> dict[str, float]:
    """Measure saturation, sharpness and brightness of one grayscale image.

    Parameters
    ----------
    image : ndarray, shape (rows, cols)
        A 2-D image of any integer or floating-point dtype.

    Returns
    -------
    dict of str to float
        ``saturated_fraction``
            Fraction (0-1) of pixels at the top of the range. For integer
            images, pixels equal to the dtype's maximum (65535 for ``uint16``,
            255 for ``uint8``), whatever the image's own maximum. For
            floating-point images, which have no fixed maximum, pixels equal to
            the image's own maximum; a constant float image gives 0.
        ``sharpness``
            Variance of the Laplacian (3x3 kernel, OpenCV ``ksize=1``) of the
            image in float32, divided by the squared mean intensity (plus
            1e-12). Dividing by the squared mean makes it independent of
            exposure: the same scene twice as bright has the same sharpness.
            Blur lowers it; noise and fine texture raise it. It is only
            meaningful relative to similar images (same stain, same
            microscope), which is how :func:`qc_flags` uses it. A constant
            image gives 0.
        ``mean_intensity``
            Mean pixel value, in the image's units.

    Raises
    ------
    ValueError
        If ``image`` is not 2-D or is empty.
    """
    image = np.asarray(image)
    if image.ndim != 2 or image.size == 0:
        raise ValueError(f"image must be a non-empty 2-D array, got shape {image.shape}")
    if image.dtype == bool:
        image = image.view(np.uint8)
    image = np.ascontiguousarray(image)
    mean, lap_sq = _mean_and_laplacian_power(image)
    n = image.size
    # variance as E[l^2] - E[l]^2. The Laplacian's sum telescopes to edge
    # terms (exact, in float64); E[l]^2 is ~0 anyway, so nothing cancels.
    lap_mean = _laplacian_sum(image) / n
    lap_var = max(lap_sq / n - lap_mean * lap_mean, 0.0)
    return {
        "saturated_fraction": _saturated_fraction(image),
        "sharpness": lap_var / (mean * mean + _EPS),
        "mean_intensity": mean,
    }


#: rows per band: a band's float32 copy and Laplacian stay in the CPU cache
_BAND = 64


def _mean_and_laplacian_power(image: np.ndarray) -> tuple[float, float]:
    """Mean pixel value and the sum of squares of the 3x3 Laplacian.

    Computed in bands of :data:`_BAND` rows (with one row of context on each
    side), so that the float32 copy and the Laplacian of a band never leave
    the CPU cache: whole-image passes over a new image each time are bound
    by memory bandwidth. At the image's edges the band holds the edge row,
    so OpenCV's default border (reflect-101) is the same as for the whole
    image.
    """
    h, w = image.shape
    f32, lap = _buffers(w)
    total = 0.0
    power = 0.0
    for a in range(0, h, _BAND):
        b = min(h, a + _BAND)
        a0, b0 = max(0, a - 1), min(h, b + 1)
        src = f32[: b0 - a0]
        np.copyto(src, image[a0:b0], casting="unsafe")
        band = cv2.Laplacian(src, cv2.CV_32F, dst=lap[: b0 - a0], ksize=1)
        power += cv2.norm(band[a - a0 : b - a0], cv2.NORM_L2SQR)
        total += cv2.sumElems(src[a - a0 : b - a0])[0]
    return total / image.size, power


def _laplacian_sum(image: np.ndarray) -> float:
    """Sum of the 3x3 Laplacian over the image (reflect-101 border), exactly.

    Each pixel enters the sum as often as it is a neighbour minus four times;
    inside, that is zero, so only the first two and last two rows and columns
    remain: ``(row 1 - row 0) + (row h-2 - row h-1)`` and likewise for columns.
    """
    h, w = image.shape
    total = 0.0
    for axis, size in ((0, h), (1, w)):
        if size < 2:
            continue  # reflect-101 of a single row is the row itself: no change
        first = np.take(image, [0, 1], axis=axis).astype(np.float64)
        last = np.take(image, [size - 2, size - 1], axis=axis).astype(np.float64)
        total += (np.take(first, 1, axis=axis) - np.take(first, 0, axis=axis)).sum()
        total += (np.take(last, 0, axis=axis) - np.take(last, 1, axis=axis)).sum()
    return float(total)


_local = threading.local()


def _buffers(width: int) -> tuple[np.ndarray, np.ndarray]:
    """Two float32 band buffers per thread, reused from one image to the next."""
    bufs = getattr(_local, "bufs", None)
    if bufs is None or bufs[0].shape[1] != width:
        shape = (_BAND + 2, width)
        bufs = (np.empty(shape, np.float32), np.empty(shape, np.float32))
        _local.bufs = bufs
    return bufs


def _saturated_fraction(image: np.ndarray) -> float:
    if np.issubdtype(image.dtype, np.integer):
        top = np.iinfo(image.dtype).max
        if image.dtype.itemsize <= 2 and cv2.minMaxLoc(image)[1] < top:
            return 0.0  # the common case, answered by one fast pass
    else:
        top = np.nanmax(image)
        if not np.isfinite(top) or top <= np.nanmin(image):
            return 0.0
    return float(np.count_nonzero(image >= top)) / image.size


def qc_flags(
    images: pd.DataFrame,
    *,
    saturation_limit: float = 0.01,
    focus_ratio: float = 0.2,
    outlier_z: float = 3.5,
) -> pd.Series:
    """Flag the images of an images table that deserve a second look.

    Each image is compared with the *successful* images of its own plate
    (images without an error; all images with a blank plate form one group).
    The flags, in this order, ``;``-joined:

    ``no_nuclei``
        No nucleus was found (``n_nuclei == 0``).
    ``saturated``
        More than ``saturation_limit`` (default 1 %) of the pixels are at the
        top of the intensity range (``saturated_fraction``, see
        :func:`image_metrics`).
    ``out_of_focus``
        ``sharpness`` below ``focus_ratio`` (default 0.2, i.e. five times
        blurrier) times the median sharpness of the plate's images that have
        nuclei. Images without nuclei are neither checked nor part of the
        median (an empty field has nothing to be in focus; ``no_nuclei``
        already says it). Skipped on plates with fewer than 3 images with
        nuclei and a sharpness.
    ``count_outlier``
        The robust z-score of the count, ``0.6745 * (n - median) / MAD``
        (MAD: median absolute deviation from the median of the plate's
        counts), is beyond ``outlier_z`` (default 3.5) in either direction.
        Skipped on plates with fewer than 5 counted images, or when the MAD is
        0 (most counts identical).

    Failed images (a non-empty ``error``, or no count) get no flag: their
    ``error`` says what went wrong. A missing metric (NaN, or a missing
    column) skips the checks that need it.

    Parameters
    ----------
    images : pandas.DataFrame
        One row per image with the columns ``n_nuclei`` (nullable integer, NA
        for failed images), ``error`` (empty string when fine), and, when
        available, ``saturated_fraction``, ``sharpness`` and ``plate``.
    saturation_limit : float, optional
        Largest acceptable fraction of saturated pixels.
    focus_ratio : float, optional
        Smallest acceptable sharpness relative to the plate median.
    outlier_z : float, optional
        Largest acceptable robust z-score of the count.

    Returns
    -------
    pandas.Series of str
        Same index as ``images``, named ``qc``; ``""`` when nothing is wrong.
    """
    import pandas as pd

    ok = successful(images).to_numpy()
    count = _column(images, "n_nuclei")
    saturated = _column(images, "saturated_fraction")
    sharpness = _column(images, "sharpness")
    if "plate" in images:
        plates = images["plate"].fillna("").astype(str).to_numpy()
    else:
        plates = np.full(len(images), "", dtype=object)
    with np.errstate(invalid="ignore"):
        checks = {
            "no_nuclei": ok & (count == 0),
            "saturated": ok & (saturated > saturation_limit),
            "out_of_focus": np.zeros(len(images), bool),
            "count_outlier": np.zeros(len(images), bool),
        }
    for plate in dict.fromkeys(plates[ok]):
        rows = np.flatnonzero(ok & (plates == plate))
        checks["out_of_focus"][rows] = _out_of_focus(sharpness[rows], count[rows], focus_ratio)
        checks["count_outlier"][rows] = _count_outlier(count[rows], outlier_z)
    flags = [";".join(name for name, on in zip(FLAGS, row, strict=True) if on)
             for row in zip(*(checks[name] for name in FLAGS), strict=True)]
    return pd.Series(flags, index=images.index, name="qc", dtype=object)


def _column(images: pd.DataFrame, name: str) -> np.ndarray:
    """A numeric column as float64, NaN where missing or not a number."""
    import pandas as pd

    if name not in images:
        return np.full(len(images), np.nan)
    values = pd.to_numeric(images[name], errors="coerce")
    return values.astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)


def _out_of_focus(sharpness: np.ndarray, count: np.ndarray, ratio: float) -> np.ndarray:
    valid = np.isfinite(sharpness) & (count > 0)
    if valid.sum() < _MIN_FOCUS_IMAGES:
        return np.zeros(len(sharpness), bool)
    reference = float(np.median(sharpness[valid]))
    return valid & (np.where(valid, sharpness, np.inf) < ratio * reference)


def _count_outlier(count: np.ndarray, limit: float) -> np.ndarray:
    valid = np.isfinite(count)
    if valid.sum() < _MIN_OUTLIER_IMAGES:
        return np.zeros(len(count), bool)
    median = float(np.median(count[valid]))
    mad = float(np.median(np.abs(count[valid] - median)))
    if mad == 0:
        return np.zeros(len(count), bool)
    z = 0.6745 * (np.where(valid, count, median) - median) / mad
    return valid & (np.abs(z) > limit)
