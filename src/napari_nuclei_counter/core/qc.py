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
    f32, lap = _buffers(image.shape)
    np.copyto(f32, image, casting="unsafe")
    mean = float(cv2.mean(f32)[0])
    cv2.Laplacian(f32, cv2.CV_32F, dst=lap, ksize=1)
    # variance as E[l^2] - E[l]^2, both summed in float64 by OpenCV (faster
    # than meanStdDev; the Laplacian's mean is ~0, so nothing cancels)
    n = lap.size
    lap_mean = cv2.sumElems(lap)[0] / n
    lap_var = max(cv2.norm(lap, cv2.NORM_L2SQR) / n - lap_mean * lap_mean, 0.0)
    return {
        "saturated_fraction": _saturated_fraction(image),
        "sharpness": lap_var / (mean * mean + _EPS),
        "mean_intensity": mean,
    }


_local = threading.local()


def _buffers(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Two float32 image buffers per thread, reused: fresh 5 MB arrays for
    every image would cost more in page faults than the arithmetic."""
    bufs = getattr(_local, "bufs", None)
    if bufs is None or bufs[0].shape != shape:
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

    ok = _successful(images)
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
    flags = [";".join(name for name, on in zip(FLAGS, row) if on)
             for row in zip(*(checks[name] for name in FLAGS))]
    return pd.Series(flags, index=images.index, name="qc", dtype=object)


def _successful(images: pd.DataFrame) -> np.ndarray:
    """Rows processed without error and with a count."""
    if "error" not in images:
        return images["n_nuclei"].notna().to_numpy()
    error = images["error"].fillna("").astype(str).str.strip()
    return ((error == "") & images["n_nuclei"].notna()).to_numpy()


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
