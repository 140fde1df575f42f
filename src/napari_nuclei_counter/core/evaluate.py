"""Scoring detections against annotated nuclei (ground truth).

The rule
--------
Ground truth is either a *label image* (0 background, one integer per nucleus;
colour-coded and binary masks are turned into one) or *points* (one clicked
centre per nucleus). A detection inside an annotated nucleus matches it; a
nucleus hit twice gives one true positive and one false positive. Points are
matched one to one, within a radius, by optimal assignment
(:func:`scipy.optimize.linear_sum_assignment`: the most matches, then the
smallest total distance). Per image::

    tp, fp = matched and unmatched detections, fn = unmatched nuclei
    precision = tp / (tp + fp), recall = tp / (tp + fn), f1 = 2 tp / (2 tp + fp + fn)

with 1.0 for a ratio whose both counts are zero when nothing is missing
(nothing to find and nothing found: f1 = 1.0) and 0.0 otherwise. Totals over
images are micro-averaged (counts summed first).

A *region* limits the score to the part that was annotated: a nucleus counts
when its centre (a label's centroid, or the clicked point) is inside; a
detection matched to a nucleus that does not count is ignored, and an
unmatched detection counts (as a false positive) when it is inside.

Coordinates: the detections are image pixels ``(row, col)``; an image and its
truth may each carry a napari-style ``scale`` and ``translate`` (world =
data * scale + translate), so a Points or Labels layer drawn over a scaled
image scores correctly.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

__all__ = [
    "Score",
    "TouchingNucleiWarning",
    "Truth",
    "labels_from_mask",
    "prefix_counts",
    "read_truth",
    "score",
    "total",
]

log = logging.getLogger(__name__)


class TouchingNucleiWarning(UserWarning):
    """A binary mask was split into nuclei by connected components (touching ones merge)."""


@dataclass(frozen=True)
class Score:
    """Counts of one image (or of many, summed) and the ratios made from them."""

    n_true: int
    n_detected: int
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        """``tp / (tp + fp)``; 1.0 when nothing was detected and nothing missed."""
        return _ratio(self.tp, self.tp + self.fp, self.fn == 0)

    @property
    def recall(self) -> float:
        """``tp / (tp + fn)``; 1.0 when there was nothing to find and nothing was found."""
        return _ratio(self.tp, self.tp + self.fn, self.fp == 0)

    @property
    def f1(self) -> float:
        """``2 tp / (2 tp + fp + fn)``; 1.0 when nothing to find and nothing found."""
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn, True)

    @property
    def count_error(self) -> int:
        """``n_detected - n_true``."""
        return self.n_detected - self.n_true

    def as_dict(self) -> dict:
        """The columns of ``evaluation.csv`` (without the image's own ones)."""
        return {"n_true": self.n_true, "n_detected": self.n_detected, "tp": self.tp,
                "fp": self.fp, "fn": self.fn, "precision": self.precision,
                "recall": self.recall, "f1": self.f1, "count_error": self.count_error}


def _ratio(num: int, den: int, perfect: bool) -> float:
    if den:
        return num / den
    return 1.0 if perfect else 0.0


def total(scores: Iterable[Score]) -> Score:
    """Micro-averaged totals: the counts of every image summed."""
    s = list(scores)
    return Score(*(int(sum(getattr(x, f) for x in s)) for f in
                   ("n_true", "n_detected", "tp", "fp", "fn")))


@dataclass(frozen=True)
class Truth:
    """Annotated nuclei of one image: a label image or points, in their own frame.

    Attributes
    ----------
    labels : ndarray of int, shape (H, W), or None
        0 background, one positive integer per nucleus.
    points : ndarray of float, shape (M, 2), or None
        ``(row, col)`` centres.
    scale, translate : tuple of float
        The truth's napari-style transform (world = data * scale + translate).
    source : str
        Where it came from (for messages).
    """

    labels: np.ndarray | None = None
    points: np.ndarray | None = None
    scale: tuple[float, float] = (1.0, 1.0)
    translate: tuple[float, float] = (0.0, 0.0)
    source: str = ""

    def __post_init__(self) -> None:
        if (self.labels is None) == (self.points is None):
            raise ValueError("truth needs either labels or points (exactly one)")
        where = f" in {self.source}" if self.source else ""
        if self.labels is not None:
            lab = np.asarray(self.labels)
            if lab.ndim != 2 or lab.dtype.kind not in "uib":
                raise ValueError(f"truth labels must be a 2-D integer image{where}, got "
                                 f"shape {lab.shape} dtype {lab.dtype}")
            if not lab.any():
                raise ValueError(f"no nuclei in the truth{where}: the label image is all 0")
        else:
            pts = np.asarray(self.points, dtype=np.float64)
            if pts.ndim != 2 or pts.shape[1] != 2 or not np.isfinite(pts).all():
                raise ValueError(f"truth points must be finite (row, col) pairs{where}, got "
                                 f"shape {pts.shape}")
            if len(pts) == 0:
                raise ValueError(f"no nuclei in the truth{where}: no points")
            object.__setattr__(self, "points", pts)
        for name in ("scale", "translate"):
            v = tuple(float(x) for x in np.ravel(getattr(self, name))[-2:])
            object.__setattr__(self, name, v)

    @property
    def kind(self) -> str:
        """``'labels'`` or ``'points'``."""
        return "labels" if self.labels is not None else "points"


# -- reading truth ---------------------------------------------------------------


def labels_from_mask(mask, *, source: str = "") -> np.ndarray:
    """Turn an annotation mask into a label image (0 background, 1..N nuclei).

    Parameters
    ----------
    mask : array_like
        A label image (kept as it is), a colour-coded RGB(A) mask (shape
        (H, W, 3|4): one colour per nucleus, black or fully transparent pixels
        are background) or a binary mask (0 and one other value, or bool),
        which is split into nuclei by connected components (8-connectivity),
        with a :class:`TouchingNucleiWarning`.
    source : str, optional
        Named in messages.

    Returns
    -------
    ndarray of int, shape (H, W)

    Raises
    ------
    ValueError
        For a mask that is not 2-D (or colour), not made of whole numbers.
    """
    from scipy import ndimage as ndi

    arr = np.asarray(mask)
    where = f" ({source})" if source else ""
    if arr.ndim == 3 and arr.shape[-1] in (3, 4) and arr.shape[0] > 4:
        colour = arr[..., :3]
        background = ~colour.any(axis=-1)
        if arr.shape[-1] == 4:
            background |= arr[..., 3] == 0
        flat = colour.reshape(-1, 3)
        _, inverse = np.unique(flat, axis=0, return_inverse=True)
        lab = inverse.reshape(arr.shape[:2]).astype(np.int64) + 1
        lab[background] = 0
        from skimage.segmentation import relabel_sequential

        return relabel_sequential(lab)[0]
    arr = arr.squeeze() if arr.ndim > 2 else arr
    if arr.ndim != 2:
        raise ValueError(f"a truth mask must be 2-D or colour (H, W, 3|4), got shape "
                         f"{np.asarray(mask).shape}{where}")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or (arr != np.round(arr)).any() or (arr < 0).any():
            raise ValueError(f"a truth mask must hold whole numbers >= 0{where}")
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "ui":
        raise ValueError(f"a truth mask must hold integers, got dtype {arr.dtype}{where}")
    values = np.unique(arr)
    if len(values) == 2 and values[0] == 0:
        lab, n = ndi.label(arr > 0, structure=np.ones((3, 3), int))
        warnings.warn(f"binary mask{where}: split into {n} nuclei by connected components; "
                      "touching nuclei count as one", TouchingNucleiWarning, stacklevel=2)
        return lab
    return arr


def _read_raw(path: Path) -> np.ndarray:
    """Decode a mask file with the core's own decoders, keeping colour channels."""
    from .readers import read_plane

    if not path.exists():
        raise FileNotFoundError(f"truth file not found: {path}")
    if path.is_file() and path.stat().st_size == 0:
        raise ValueError("empty file (0 bytes)")
    return np.asarray(read_plane(path))


def _read_points(path: Path) -> np.ndarray:
    import pandas as pd

    try:
        df = pd.read_csv(path)
    except Exception as exc:  # an empty or malformed CSV
        raise ValueError(f"cannot read truth points {path.name}: {exc}") from None
    cols = {str(c).strip().lower(): c for c in df.columns}
    axes = sorted((c for c in cols if c.startswith("axis-")), key=lambda c: int(c[5:] or 0))
    if "y" in cols and "x" in cols:
        yx = [cols["y"], cols["x"]]
    elif len(axes) == 2:
        yx = [cols[axes[0]], cols[axes[1]]]
    else:
        raise ValueError(f"truth points {path.name}: need columns y,x (or napari's "
                         f"axis-0,axis-1), found {', '.join(map(str, df.columns)) or 'none'}")
    try:
        return df[yx].to_numpy(dtype=np.float64)
    except ValueError as exc:
        raise ValueError(f"truth points {path.name}: non-numeric coordinates ({exc})") from None


def read_truth(path, *, scale=(1.0, 1.0), translate=(0.0, 0.0)) -> Truth:
    """Read a truth file: a label/colour/binary mask image, or a CSV of points.

    Parameters
    ----------
    path : str or PathLike
        ``.csv``: points with columns ``y,x`` or ``axis-0,axis-1`` (napari's
        Points export); anything else: a mask image (TIFF, PNG, JPEG).
    scale, translate : sequence of float, optional
        The truth's transform (see :class:`Truth`).

    Raises
    ------
    FileNotFoundError
        For a missing file.
    ValueError
        For an unreadable file or a truth with no nuclei; the message names the file.
    """
    p = Path(path)
    if p.suffix.lower() == ".csv":
        if not p.exists():
            raise FileNotFoundError(f"truth file not found: {p}")
        return Truth(points=_read_points(p), scale=scale, translate=translate, source=p.name)
    try:
        raw = _read_raw(p)
    except ValueError as exc:
        raise ValueError(f"cannot read truth {p.name}: {exc}") from None
    return Truth(labels=labels_from_mask(raw, source=p.name), scale=scale, translate=translate,
                 source=p.name)


# -- scoring -------------------------------------------------------------------


def _region_test(region, shape):
    """A function ``inside(points) -> bool array`` for a rectangle or a mask in image pixels."""
    if region is None:
        return lambda pts: np.ones(len(pts), bool)
    if isinstance(region, np.ndarray) and region.ndim == 2:
        mask = region.astype(bool)
        if shape is not None and mask.shape != tuple(shape):
            raise ValueError(f"region mask is {mask.shape[0]}x{mask.shape[1]} but the image is "
                             f"{shape[0]}x{shape[1]}")

        def inside(pts):
            idx = np.round(np.asarray(pts, float)).astype(np.intp).reshape(-1, 2)
            ok = ((idx >= 0) & (idx < mask.shape)).all(axis=1)
            out = np.zeros(len(idx), bool)
            out[ok] = mask[idx[ok, 0], idx[ok, 1]]
            return out
        return inside
    y0, y1, x0, x1 = (float(v) for v in region)
    if not (y1 > y0 and x1 > x0):
        raise ValueError(f"region must be (y0, y1, x0, x1) with y1 > y0 and x1 > x0, got {region}")

    def inside(pts):
        p = np.asarray(pts, float).reshape(-1, 2)
        return (p[:, 0] >= y0) & (p[:, 0] < y1) & (p[:, 1] >= x0) & (p[:, 1] < x1)
    return inside


def _to_frame(pts, src_scale, src_translate, dst_scale, dst_translate) -> np.ndarray:
    world = np.asarray(pts, float) * np.asarray(src_scale) + np.asarray(src_translate)
    return (world - np.asarray(dst_translate)) / np.asarray(dst_scale)


def prefix_counts(coords, truth: Truth, *, shape=None, match_radius: float | None = None,
                  region=None, scale=(1.0, 1.0), translate=(0.0, 0.0)) -> np.ndarray:
    """Counts ``(tp, fp, fn)`` of every prefix of a ranked list of detections.

    Row ``k`` scores the first ``k`` detections (row 0: none). Detections come
    brightest first, so every threshold keeps a prefix: one detection at the
    lowest threshold scores all thresholds (see :mod:`.tune`).

    Parameters
    ----------
    coords : array_like, shape (N, 2)
        Detections, image pixels ``(row, col)``, in rank order.
    truth : Truth
    shape : tuple of int, optional
        The image's shape; with identical transforms a label truth must have it.
    match_radius : float, optional
        Points truth: the largest distance of a match, in image pixels (required).
    region : (y0, y1, x0, x1) or ndarray of bool, optional
        In image pixels (half-open rectangle, or a mask of the image's shape).
    scale, translate : sequence of float, optional
        The image's transform.

    Returns
    -------
    ndarray of int64, shape (N + 1, 3)
    """
    det = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    inside = _region_test(region, shape)
    if truth.kind == "labels":
        return _label_prefix(det, truth, shape, inside, scale, translate)
    if match_radius is None or not np.isfinite(match_radius) or match_radius <= 0:
        raise ValueError(f"match_radius must be a distance in pixels > 0 for points truth, "
                         f"got {match_radius!r}")
    pts = _to_frame(truth.points, truth.scale, truth.translate, scale, translate)
    from ._matching import point_prefix

    return point_prefix(det, pts, float(match_radius), inside)


def _label_prefix(det, truth, shape, inside, scale, translate) -> np.ndarray:
    from scipy import ndimage as ndi

    lab = np.asarray(truth.labels)
    same = (np.allclose(truth.scale, np.ravel(scale)[-2:])
            and np.allclose(truth.translate, np.ravel(translate)[-2:]))
    if same and shape is not None and lab.shape != tuple(shape):
        name = f" {truth.source}" if truth.source else ""
        raise ValueError(f"truth{name} is {lab.shape[0]}x{lab.shape[1]} but the image is "
                         f"{shape[0]}x{shape[1]} (the wrong file, or give the truth's scale)")
    ids = np.unique(lab)
    ids = ids[ids > 0]
    centroids = np.asarray(ndi.center_of_mass(np.ones(lab.shape), lab, ids)).reshape(-1, 2)
    counted = inside(_to_frame(centroids, truth.scale, truth.translate, scale, translate))
    counted_ids = ids[counted]
    n_true = len(counted_ids)
    idx = np.round(_to_frame(det, scale, translate, truth.scale, truth.translate)).astype(np.intp)
    ok = ((idx >= 0) & (idx < lab.shape)).all(axis=1)
    hit = np.zeros(len(det), dtype=lab.dtype if lab.dtype.kind in "ui" else np.int64)
    hit[ok] = lab[idx[ok, 0], idx[ok, 1]]
    in_counted = np.isin(hit, counted_ids) & (hit > 0)
    first = np.zeros(len(det), bool)
    if in_counted.any():
        pos = np.flatnonzero(in_counted)
        _, first_idx = np.unique(hit[pos], return_index=True)
        first[pos[first_idx]] = True
    background_in = (hit == 0) & inside(det)
    tp_step = first
    fp_step = (in_counted & ~first) | background_in
    out = np.zeros((len(det) + 1, 3), np.int64)
    out[1:, 0] = np.cumsum(tp_step)
    out[1:, 1] = np.cumsum(fp_step)
    out[:, 2] = n_true - out[:, 0]
    return out


def score(coords, truth: Truth, *, shape=None, match_radius: float | None = None,
          region=None, scale=(1.0, 1.0), translate=(0.0, 0.0)) -> Score:
    """Score one image's detections against its truth.

    Parameters are those of :func:`prefix_counts`; all detections count.

    Returns
    -------
    Score

    Raises
    ------
    ValueError
        For a label truth of the wrong size, a missing or invalid radius for points.

    Examples
    --------
    >>> lab = np.zeros((20, 20), int); lab[2:6, 2:6] = 1; lab[10:15, 10:15] = 2
    >>> s = score([[3, 3], [4, 4], [18, 1]], Truth(labels=lab), shape=(20, 20))
    >>> (s.tp, s.fp, s.fn)
    (1, 2, 1)
    """
    tp, fp, fn = prefix_counts(coords, truth, shape=shape, match_radius=match_radius,
                               region=region, scale=scale, translate=translate)[-1].tolist()
    return Score(tp + fn, tp + fp, tp, fp, fn)


def as_scores(counts: np.ndarray) -> list[Score]:
    """Rows of :func:`prefix_counts` as :class:`Score` objects."""
    return [Score(tp + fn, tp + fp, tp, fp, fn) for tp, fp, fn in np.asarray(counts).tolist()]


def f1_of(counts: np.ndarray) -> np.ndarray:
    """F1 of rows ``(tp, fp, fn)`` (1.0 where all three are 0)."""
    c = np.asarray(counts, dtype=np.float64)
    den = 2 * c[..., 0] + c[..., 1] + c[..., 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, 2 * c[..., 0] / np.where(den > 0, den, 1), 1.0)


def evaluate_image(image, truth: Truth, params, *, engine: str = "fast",
                   match_radius: float | None = None, region=None,
                   scale: Sequence[float] = (1.0, 1.0),
                   translate: Sequence[float] = (0.0, 0.0)) -> tuple[Score, np.ndarray]:
    """Detect nuclei in ``image`` with ``params`` and score them.

    The matching radius for points truth defaults to half the typical nucleus
    diameter estimated from the image (:func:`.estimate.estimate_diameter`).

    Returns
    -------
    score : Score
    coords : ndarray of intp, shape (N, 2)
        The detections that were scored.
    """
    from .detection import as_grayscale_2d, detect

    img = as_grayscale_2d(image)
    coords = detect(img, params, engine=engine).coords
    if truth.kind == "points" and match_radius is None:
        from .estimate import estimate_diameter

        match_radius = estimate_diameter(img) / 2
    return score(coords, truth, shape=img.shape, match_radius=match_radius, region=region,
                 scale=scale, translate=translate), coords
