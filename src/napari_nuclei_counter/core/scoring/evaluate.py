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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .truth import TouchingNucleiWarning, Truth, labels_from_mask, read_truth

__all__ = [
    "Score",
    "classify",
    "TouchingNucleiWarning",
    "Truth",
    "labels_from_mask",
    "prefix_counts",
    "read_truth",
    "score",
    "total",
]

log = logging.getLogger(__name__)


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
    from .matching import point_prefix

    return point_prefix(det, pts, float(match_radius), inside)


def _label_prefix(det, truth, shape, inside, scale, translate) -> np.ndarray:
    lab = np.asarray(truth.labels)
    same = (np.allclose(truth.scale, np.ravel(scale)[-2:])
            and np.allclose(truth.translate, np.ravel(translate)[-2:]))
    if same and shape is not None and lab.shape != tuple(shape):
        name = f" {truth.source}" if truth.source else ""
        raise ValueError(f"truth{name} is {lab.shape[0]}x{lab.shape[1]} but the image is "
                         f"{shape[0]}x{shape[1]} (the wrong file, or give the truth's scale)")
    ids, centroids = truth.label_centroids()
    counted = inside(_to_frame(centroids, truth.scale, truth.translate, scale, translate))
    counted_ids = ids[counted]
    n_true = len(counted_ids)
    idx = np.round(_to_frame(det, scale, translate, truth.scale, truth.translate)).astype(np.intp)
    ok = ((idx >= 0) & (idx < lab.shape)).all(axis=1)
    hit = np.zeros(len(det), dtype=lab.dtype if lab.dtype.kind in "ui" else np.int64)
    hit[ok] = lab[idx[ok, 0], idx[ok, 1]]
    in_counted = (hit > 0) if len(counted_ids) == len(ids) else np.isin(hit, counted_ids)
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
    from ..detect.detection import as_grayscale_2d, detect

    img = as_grayscale_2d(image)
    coords = detect(img, params, engine=engine).coords
    if truth.kind == "points" and match_radius is None:
        from .estimate import estimate_diameter

        match_radius = estimate_diameter(img) / 2
    return score(coords, truth, shape=img.shape, match_radius=match_radius, region=region,
                 scale=scale, translate=translate), coords


def classify(coords, truth: Truth, *, match_radius: float | None = None,
             scale=(1.0, 1.0), translate=(0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """Which detections matched and which nuclei were missed (for marking them in a viewer).

    Parameters are those of :func:`score` (no region: everything is classified).

    Returns
    -------
    matched : ndarray of bool, shape (N,)
        ``True`` for a true positive, ``False`` for a false positive.
    missed : ndarray of float, shape (K, 2)
        Centres of the missed nuclei (label centroids, or the points), in image pixels.
    """
    det = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    if truth.kind == "labels":
        counts = _label_prefix(det, truth, None, lambda p: np.ones(len(p), bool), scale, translate)
        matched = np.diff(counts[:, 0]) > 0
        ids, cen = truth.label_centroids()
        lab = np.asarray(truth.labels)
        idx = np.round(_to_frame(det, scale, translate, truth.scale, truth.translate)).astype(np.intp)
        ok = ((idx >= 0) & (idx < lab.shape)).all(axis=1)
        hit = set(lab[idx[ok, 0], idx[ok, 1]].tolist())
        missed = cen[~np.isin(ids, list(hit))]
        return matched, _to_frame(missed, truth.scale, truth.translate, scale, translate)
    if match_radius is None or match_radius <= 0:
        raise ValueError(f"match_radius must be a distance in pixels > 0 for points truth, "
                         f"got {match_radius!r}")
    from .matching import match_points

    pts = _to_frame(truth.points, truth.scale, truth.translate, scale, translate)
    i_det, i_pts = match_points(det, pts, float(match_radius))
    matched = np.zeros(len(det), bool)
    matched[i_det] = True
    missed = np.ones(len(pts), bool)
    missed[i_pts] = False
    return matched, pts[missed]
