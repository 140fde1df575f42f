"""What the scoring panel computes off the GUI thread (plain functions, no Qt, no napari).

The panel reads its layers on the GUI thread into plain values (a
:class:`TruthSource` for the Labels or Points layer, polygons for the region,
the image's transform) and hands them to :func:`score_job`,
:func:`tune_job` or :func:`estimate_job`, which run in a napari worker
thread: the image planes and truth planes are read there, never on the GUI
thread. Everything is expressed in the image's pixels: a truth layer's
transform is made relative to the image's, so the core's scoring and search
see one frame.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ...core.detect.detection import as_grayscale_2d, detect
from ...core.params import DetectionParams
from ...core.scoring.estimate import estimate_diameter, estimate_params
from ...core.scoring.evaluate import Score, classify, score
from ...core.scoring.truth import Truth
from ...core.scoring.tune import tune

__all__ = ["COLOURS", "KINDS", "ScoreOutcome", "TruthSource", "estimate_job", "region_mask",
           "score_job", "shape_polygons", "tune_job"]

log = logging.getLogger(__name__)

#: the kinds of marker in the ``score`` layer, in the order of its categories
KINDS = ("matched", "false", "missed")
#: face colour of each kind (RGBA): green matched, magenta false, cyan missed
COLOURS = {"matched": (0.15, 0.85, 0.25, 0.85), "false": (1.0, 0.1, 0.75, 0.9),
           "missed": (0.1, 0.8, 1.0, 0.9)}
#: symbol of each kind, so the marks differ without colour too
SYMBOLS = {"matched": "disc", "false": "x", "missed": "square"}


@dataclass(frozen=True)
class TruthSource:
    """A Labels or Points layer's data and transform, relative to an image's pixels.

    Attributes
    ----------
    kind : {'labels', 'points'}
    data : array_like
        The layer's data: a label image ``(H, W)`` or a stack ``(N, H, W)``;
        points ``(M, 2)`` or ``(M, 3)`` with the image index first.
    scale, translate : tuple of float
        Of the layer's last two axes, relative to the image's pixels.
    plane_scale, plane_translate : float
        Of the layer's first axis relative to the image's (stacks only).
    name : str
        The layer's name, for messages.
    """

    kind: str
    data: object
    scale: tuple = (1.0, 1.0)
    translate: tuple = (0.0, 0.0)
    plane_scale: float = 1.0
    plane_translate: float = 0.0
    name: str = ""

    @property
    def stacked(self) -> bool:
        """Whether the layer holds one annotation per image of a stack."""
        return (np.ndim(self.data) == 3 if self.kind == "labels"
                else np.shape(self.data)[-1] == 3)

    def _plane_index(self, k: np.ndarray) -> np.ndarray:
        return np.round(np.asarray(k, float) * self.plane_scale + self.plane_translate)

    def truth(self, index: int) -> Truth | None:
        """The truth of image ``index`` (``None`` when that image has no annotation)."""
        if self.kind == "labels":
            data = self.data
            if self.stacked:
                n = int(np.shape(data)[0])
                k = int(round((index - self.plane_translate) / self.plane_scale))
                if not 0 <= k < n:
                    return None
                data = data[k]
            lab = np.asarray(data)
            if not lab.any():
                return None
            return Truth(labels=lab, scale=self.scale, translate=self.translate,
                         source=f"layer '{self.name}'")
        pts = np.asarray(self.data, float).reshape(-1, np.shape(self.data)[-1] or 2)
        if self.stacked:
            pts = pts[self._plane_index(pts[:, 0]) == index]
        if not len(pts):
            return None
        return Truth(points=pts[:, -2:], scale=self.scale, translate=self.translate,
                     source=f"layer '{self.name}'")

    def annotated(self, n_images: int) -> list[int]:
        """Indices of the stack's images ``0..n_images-1`` that have annotations."""
        if not self.stacked:
            return []
        if self.kind == "points":
            pts = np.asarray(self.data, float).reshape(-1, 3)
            k = np.unique(self._plane_index(pts[:, 0])).astype(int)
            return [int(i) for i in k if 0 <= i < n_images]
        return [i for i in range(n_images) if self.truth(i) is not None]


@dataclass
class ScoreOutcome:
    """One image scored, and the markers that show it.

    Attributes
    ----------
    score : Score
    match_radius : float or None
        The radius used (points truth), in image pixels.
    markers : ndarray of float, shape (K, 2)
        Image pixels ``(row, col)``: the detections, then the missed nuclei.
    kinds : list of str
        One of :data:`KINDS` per marker.
    """

    score: Score
    match_radius: float | None
    markers: np.ndarray
    kinds: list = field(default_factory=list)


def _inside(pts: np.ndarray, region) -> np.ndarray:
    if region is None:
        return np.ones(len(pts), bool)
    idx = np.round(pts).astype(np.intp).reshape(-1, 2)
    ok = ((idx >= 0) & (idx < region.shape)).all(axis=1)
    out = np.zeros(len(idx), bool)
    out[ok] = region[idx[ok, 0], idx[ok, 1]]
    return out


def score_job(image, source: TruthSource, index: int, params: DetectionParams, *,
              coords=None, match_radius: float | None = None,
              polygons: list | None = None) -> ScoreOutcome:
    """Detect (unless ``coords`` are given), score against the truth, classify for markers.

    Parameters
    ----------
    image : array_like, shape (H, W)
        The image's plane (read here).
    source : TruthSource
    index : int
        The image's index in its stack (0 for a single image).
    params : DetectionParams
        Used when ``coords`` is ``None``.
    coords : array_like, shape (N, 2), optional
        Detections to score instead (a run's result, hand corrections included).
    match_radius : float, optional
        Points truth; default half the image's estimated nucleus diameter.
    polygons : list, optional
        The region (:func:`shape_polygons`); markers outside it are left out.

    Returns
    -------
    ScoreOutcome

    Raises
    ------
    ValueError
        When the image has no annotation, or the truth does not fit the image.
    """
    img = as_grayscale_2d(np.asarray(image))
    truth = source.truth(index)
    if truth is None:
        raise ValueError(f"layer '{source.name}' has no nuclei on image {index}")
    if coords is None:
        coords = detect(img, params).coords
    coords = np.asarray(coords, float).reshape(-1, 2)
    if truth.kind == "points" and match_radius is None:
        match_radius = estimate_diameter(img) / 2
    region = region_mask(polygons, index, img.shape)
    s = score(coords, truth, shape=img.shape, match_radius=match_radius, region=region)
    matched, missed = classify(coords, truth, match_radius=match_radius)
    keep_det, keep_missed = _inside(coords, region), _inside(missed, region)
    markers = np.concatenate([coords[keep_det], np.asarray(missed, float)[keep_missed]])
    kinds = (np.where(matched[keep_det], "matched", "false").tolist()
             + ["missed"] * int(keep_missed.sum()))
    log.debug("scored image %d: %s", index, s)
    return ScoreOutcome(s, match_radius if truth.kind == "points" else None,
                        markers.reshape(-1, 2), kinds)


def tune_job(stack, current, source: TruthSource, index: int, *,
             match_radius: float | None = None, polygons: list | None = None,
             progress: Callable[[int, int], None] | None = None,
             cancel: Callable[[], bool] | None = None):
    """Search the parameters on the annotated images (the current one, or the stack's).

    Parameters
    ----------
    stack : array_like, shape (N, H, W), or None
        The image layer's data when it is a stack.
    current : array_like, shape (H, W)
        The displayed image.
    source : TruthSource
    index : int
        The displayed image's index (0 for a single image).
    match_radius, polygons :
        As in :func:`score_job`.
    progress, cancel : callable, optional
        Passed to :func:`~napari_nuclei_counter.core.scoring.tune.tune`.

    Returns
    -------
    result : TuneResult
    indices : list of int
        The images searched on.
    """
    if stack is not None and source.stacked:
        indices = source.annotated(int(np.shape(stack)[0]))
    else:
        indices = [index] if source.truth(index) is not None else []
    if not indices:
        raise ValueError(f"layer '{source.name}' has no nuclei on "
                         f"{'any image of the stack' if source.stacked else 'this image'}")
    images, truths, regions = [], [], []
    for k in indices:
        img = as_grayscale_2d(np.asarray(current if k == index or stack is None else stack[k]))
        images.append(img)
        truths.append(source.truth(k))
        regions.append(region_mask(polygons, k, img.shape))
    log.info("searching parameters on %d annotated image(s)", len(images))
    result = tune(images, truths, match_radius=match_radius,
                  regions=regions if polygons else None, progress=progress, cancel=cancel)
    return result, indices


def estimate_job(image, *, progress=None, cancel=None):
    """:func:`~napari_nuclei_counter.core.scoring.estimate.estimate_params` of one plane (read here)."""
    return estimate_params([as_grayscale_2d(np.asarray(image))], progress=progress,
                           cancel=cancel)


# -- regions -----------------------------------------------------------------------


def _ellipse(corners: np.ndarray, n: int = 64) -> np.ndarray:
    centre = corners.mean(axis=0)
    a, b = (corners[1] - corners[0]) / 2, (corners[3] - corners[0]) / 2
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)[:, None]
    return centre + a * np.cos(t) + b * np.sin(t)


def shape_polygons(data, shape_types, *, scale, translate, image_scale, image_translate,
                   stacked: bool) -> list[tuple[int | None, np.ndarray]]:
    """A Shapes layer's areas as polygons in an image's pixels.

    Parameters
    ----------
    data : list of ndarray, shape (K, D)
        The Shapes layer's vertices (``layer.data``), D = 2 or 3.
    shape_types : list of str
        ``layer.shape_type``; lines and paths have no area and are left out.
    scale, translate : sequence of float
        The Shapes layer's transform (``D`` values).
    image_scale, image_translate : sequence of float
        The image layer's transform (2 or 3 values).
    stacked : bool
        The image is a stack: a 3-D shape belongs to the image it was drawn on.

    Returns
    -------
    list of (int or None, ndarray of shape (K, 2))
        The image index of each polygon (``None``: every image) and its vertices.
    """
    out = []
    s, t = np.asarray(scale, float), np.asarray(translate, float)
    si, ti = np.asarray(image_scale, float), np.asarray(image_translate, float)
    for verts, kind in zip(data, shape_types, strict=True):
        if kind in ("line", "path"):
            continue
        v = np.asarray(verts, float)
        world = v * s[-v.shape[1]:] + t[-v.shape[1]:]
        yx = (world[:, -2:] - ti[-2:]) / si[-2:]
        if kind == "ellipse" and len(yx) == 4:
            yx = _ellipse(yx)
        plane = None
        if v.shape[1] >= 3:
            plane = int(round((world[0, -3] - ti[0]) / si[0])) if stacked and len(si) >= 3 \
                else int(round(v[0, -3]))
        out.append((plane, yx))
    return out


def region_mask(polygons: list | None, index: int, shape) -> np.ndarray | None:
    """The union of the polygons of image ``index`` as a boolean mask (``None``: no region).

    Raises
    ------
    ValueError
        When there is a region but none of its shapes lies on this image.
    """
    if not polygons:
        return None
    from skimage.draw import polygon2mask

    mine = [p for k, p in polygons if k is None or k == index]
    if not mine:
        raise ValueError(f"the region has no shape on image {index}")
    mask = np.zeros(tuple(shape), bool)
    for p in mine:
        mask |= polygon2mask(tuple(shape), p)
    return mask
