"""Parameters suggested from an image alone, when nothing is annotated.

The typical nucleus diameter ``D`` is measured from the image, by one of

``'otsu'`` (default)
    Smooth lightly, threshold with Otsu's method, and take the median area of
    the bright connected components (those of at least 9 pixels, not touching
    the border): ``D = 2 sqrt(area / pi)``. Fast (tens of milliseconds).
``'log'``
    A Laplacian-of-Gaussian scale search (:func:`skimage.feature.blob_log`):
    the median scale of the blobs found, ``D = 2 sqrt(2) sigma``. Slower, and
    not fooled by touching nuclei merging in a threshold.

From ``D`` the three numbers are derived: ``sigma = D / 5``, ``min_distance =
round(D / 4)``, and a threshold of the smoothed image (Li's method by default:
it sits between the dim background and the nuclei). These factors were chosen
among (D/4, D/2), (D/4, D/3), (D/5, D/3), (D/5, D/4) on the masked real images
of ``../shared/data`` (the README's "Are my counts right?" has the figures). The result is a
*suggestion*: score it against a few annotated nuclei (:mod:`.evaluate`) when
you can.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..detect.detection import as_grayscale_2d
from ..detect.thresholds import AUTO_THRESHOLDS, auto_threshold
from ..params import DetectionParams

__all__ = ["AUTO_THRESHOLDS", "Estimate", "auto_threshold", "estimate_diameter",
           "estimate_params", "smoothed"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Estimate:
    """Parameters suggested from images alone.

    Attributes
    ----------
    params : DetectionParams
    diameter : float
        The typical nucleus diameter found, pixels.
    method : str
        How the diameter was found (``'otsu'`` or ``'log'``).
    threshold_method : str
        How the threshold was found (``'li'``, ``'otsu'``, ``'triangle'``).
    label : str
        Always ``'suggested'``: not scored against annotations.
    """

    params: DetectionParams
    diameter: float
    method: str
    threshold_method: str
    label: str = "suggested"


def smoothed(image, sigma: float) -> np.ndarray:
    """The image as the detection smooths it (float64, the reference's Gaussian)."""
    from ..detect._fast import exact_smooth

    return exact_smooth(as_grayscale_2d(image), sigma)


def _diameter_otsu(img: np.ndarray) -> float | None:
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu
    from skimage.segmentation import clear_border

    g = smoothed(img, 1.0)
    if g.max() <= g.min():
        return None
    fg = g > threshold_otsu(g)
    lab, n = ndi.label(fg)
    if n == 0:
        return None
    lab = clear_border(lab)
    areas = np.bincount(lab.ravel())[1:]
    areas = areas[areas >= 9]
    if len(areas) == 0:
        return None
    return float(2 * np.sqrt(np.median(areas) / np.pi))


def _diameter_log(img: np.ndarray) -> float | None:
    from skimage.feature import blob_log

    x = img.astype(np.float64)
    lo, hi = np.percentile(x, [1, 99.9])
    if hi <= lo:
        return None
    x = np.clip((x - lo) / (hi - lo), 0, 1)
    blobs = blob_log(x, min_sigma=1.0, max_sigma=max(2.0, min(img.shape) / 8), num_sigma=15,
                     threshold=0.05, overlap=0.5, exclude_border=True, log_scale=True)
    if len(blobs) == 0:
        return None
    return float(2 * np.sqrt(2) * np.median(blobs[:, 2]))


def estimate_diameter(image, method: str = "otsu") -> float:
    """The typical nucleus diameter of an image, in pixels.

    Parameters
    ----------
    image : array_like, shape (H, W)
    method : {'otsu', 'log'}, optional
        See the module's description.

    Returns
    -------
    float
        At least 3 pixels. For an image without visible nuclei (a constant
        image, nothing above Otsu's threshold) 12 pixels, with a log message.
    """
    img = as_grayscale_2d(image)
    fns = {"otsu": _diameter_otsu, "log": _diameter_log}
    if method not in fns:
        raise ValueError(f"method must be one of {', '.join(fns)}, got {method!r}")
    d = fns[method](img)
    if d is None:
        log.info("no nuclei visible for a size estimate; assuming a 12-pixel diameter")
        return 12.0
    return max(3.0, d)


def estimate_params(images, *, method: str = "otsu", threshold: str = "li",
                    progress: Callable[[int, int], None] | None = None,
                    cancel: Callable[[], bool] | None = None) -> Estimate:
    """Suggest detection parameters from one or several images alone.

    The diameter is the median of the images' diameters; the threshold the
    median of each smoothed image's automatic threshold.

    Parameters
    ----------
    images : array_like or sequence of array_like
        One 2-D image, or several.
    method : {'otsu', 'log'}, optional
        How to measure the diameter (:func:`estimate_diameter`).
    threshold : {'li', 'otsu', 'triangle'}, optional
        The automatic threshold of the smoothed images.
    progress : callable, optional
        Called as ``progress(done, total)`` after each image.
    cancel : callable, optional
        Returns ``True`` to stop; then ``InterruptedError`` is raised.

    Returns
    -------
    Estimate
    """
    if isinstance(images, np.ndarray) and images.ndim == 2:
        images = [images]
    images = list(images)
    if not images:
        raise ValueError("no images to estimate from")
    diameters = []
    for k, im in enumerate(images):
        if cancel is not None and cancel():
            raise InterruptedError("estimate cancelled")
        diameters.append(estimate_diameter(im, method))
        if progress is not None:
            progress(k + 1, 2 * len(images))
    d = float(np.median(diameters))
    sigma = round(max(0.5, d / 5), 2)
    thresholds = []
    for k, im in enumerate(images):
        if cancel is not None and cancel():
            raise InterruptedError("estimate cancelled")
        thresholds.append(auto_threshold(smoothed(im, sigma), threshold))
        if progress is not None:
            progress(len(images) + k + 1, 2 * len(images))
    thr = float(np.median(thresholds))
    thr = float(f"{thr:.4g}")
    params = DetectionParams(sigma=sigma, min_distance=max(1, int(round(d / 4))),
                             threshold_abs=thr)
    return Estimate(params, d, method, threshold)
