"""Thumbnails of images as plain uint8 RGB arrays, with their nuclei as dots.

A thumbnail is contrast-stretched between two percentiles, shrunk (or
enlarged) to a given longest side with the aspect kept, and has a filled dot
at each detected nucleus. numpy and OpenCV only: the GUI turns the arrays
into Qt images, :mod:`.pictures` puts them in a captioned mosaic
(:mod:`.gallery` says which images and makes their tiles).
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["as_rgb", "blank_tile", "thumbnail"]

#: Grey of the square standing in for an image that cannot be read.
UNREADABLE_GREY = 90


def thumbnail(
    image: np.ndarray,
    coords=None,
    *,
    size: int = 160,
    percentiles: tuple[float, float] = (1.0, 99.5),
    dot_rgb: tuple[int, int, int] = (255, 64, 64),
    dot_radius: int = 2,
) -> np.ndarray:
    """Make a small contrast-stretched RGB picture of an image with its nuclei marked.

    Parameters
    ----------
    image : ndarray, shape (rows, cols)
        A grayscale image of any numeric dtype.
    coords : array_like, shape (N, 2), optional
        ``(row, col)`` nucleus centres in ``image`` pixels; a filled dot is
        drawn at each, scaled into the thumbnail.
    size : int, optional
        Length of the thumbnail's longest side, in pixels; the aspect ratio is
        kept.
    percentiles : tuple of float, optional
        Intensity percentiles of ``image`` mapped to black and white.
    dot_rgb : tuple of int, optional
        Dot colour.
    dot_radius : int, optional
        Dot radius in thumbnail pixels (0: one pixel).

    Returns
    -------
    ndarray of uint8, shape (h, w, 3)
        ``max(h, w) == size``. A constant image gives a black thumbnail.

    Raises
    ------
    ValueError
        If ``image`` is not 2-D or empty, or ``size`` is less than 1.
    """
    image = np.asarray(image)
    if image.ndim != 2 or image.size == 0:
        raise ValueError(f"image must be a non-empty 2-D array, got shape {image.shape}")
    if int(size) < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    h, w = image.shape
    th, tw = _fit(h, w, int(size))
    f32 = np.ascontiguousarray(image, dtype=np.float32)
    lo, hi = _stretch_limits(f32, percentiles)
    small = cv2.resize(f32, (tw, th), interpolation=cv2.INTER_AREA) if (th, tw) != (h, w) else f32
    gray = np.nan_to_num((small - lo) * (255.0 / (hi - lo)), nan=0.0).clip(0, 255)
    rgb = np.repeat(np.rint(gray).astype(np.uint8)[:, :, None], 3, axis=2)
    _draw_dots(rgb, coords, (th / h, tw / w), dot_rgb, int(dot_radius))
    return rgb


def _fit(h: int, w: int, size: int) -> tuple[int, int]:
    """Thumbnail shape with the longest side ``size`` and the aspect kept."""
    if h >= w:
        return size, max(1, round(w * size / h))
    return max(1, round(h * size / w)), size


def _stretch_limits(image: np.ndarray, percentiles: tuple[float, float]) -> tuple[float, float]:
    finite = image[np.isfinite(image)] if not np.isfinite(image).all() else image
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(finite, percentiles))
    if not hi > lo:
        hi = lo + 1.0
    return lo, hi


def _draw_dots(rgb: np.ndarray, coords, scale: tuple[float, float], colour, radius: int) -> None:
    if coords is None:
        return
    pts = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    if len(pts) == 0:
        return
    # pixel centres map to pixel centres: (i + 0.5) * scale - 0.5
    rows = np.rint((pts[:, 0] + 0.5) * scale[0] - 0.5).astype(int)
    cols = np.rint((pts[:, 1] + 0.5) * scale[1] - 0.5).astype(int)
    colour = tuple(int(c) for c in colour)
    for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
        cv2.circle(rgb, (c, r), max(radius, 0), colour, thickness=-1, lineType=cv2.LINE_8)


def blank_tile(size: int) -> np.ndarray:
    """A grey ``(size, size, 3)`` square for an image that cannot be read."""
    return np.full((int(size), int(size), 3), UNREADABLE_GREY, np.uint8)


def as_rgb(picture: np.ndarray) -> np.ndarray:
    """A uint8 RGB ``(h, w, 3)`` view of a uint8 RGB or grayscale ``(h, w)`` picture.

    Raises
    ------
    ValueError
        If ``picture`` is not uint8, or neither ``(h, w)`` nor ``(h, w, 3)``.
    """
    picture = np.asarray(picture)
    if picture.dtype != np.uint8:
        raise ValueError(f"thumbnails must be uint8, got {picture.dtype}")
    if picture.ndim == 2:
        return np.repeat(picture[:, :, None], 3, axis=2)
    if picture.ndim != 3 or picture.shape[2] != 3:
        raise ValueError(f"thumbnails must be (h, w, 3) RGB, got shape {picture.shape}")
    return picture
