"""Parameter search: the sigma, min distance and threshold that best fit annotated images.

Sigma and min distance are tried on a grid around the typical nucleus size
(:func:`.estimate.estimate_diameter`), then on a finer grid around the best.
The threshold costs nothing extra: one detection at the lowest threshold
(:func:`._fast.prepare` with ``floor=-inf``, what the live preview uses) lists
every candidate brightest first, and the detection at any threshold is a
prefix of that list (the candidates above it, thinned greedily in that order).
So :func:`.evaluate.prefix_counts` scores all thresholds from one detection.
Thresholds are placed only where the candidates' error bounds make the prefix
certain, so each score is exactly that of a separate detection at that
threshold.

F1 is maximised over all images together (micro-averaged). The result holds
the best set, the runners-up and the score of every tried ``(sigma,
min_distance)`` at its best threshold; :func:`write_tuning` writes them as
``preset.json`` (the dock's preset format) and ``tuning.csv``.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ..detect._fast import prepare
from ..detect.detection import as_grayscale_2d
from ..params import DetectionParams
from ..results.columns import TUNING
from .evaluate import Score, Truth, f1_of, prefix_counts

__all__ = ["Sweep", "TuneResult", "threshold_sweep", "tune", "write_tuning"]

log = logging.getLogger(__name__)

#: coarse grid, as multiples of sigma = D/4 and min_distance = D/2
_SIGMA_FACTORS = (0.45, 0.65, 0.9, 1.25)
_DISTANCE_FACTORS = (0.4, 0.6, 0.85, 1.2)
#: columns of ``tuning.csv`` (see :mod:`~napari_nuclei_counter.core.results.columns`)
TUNING_COLUMNS = TUNING.names


@dataclass
class Sweep:
    """Scores of one ``(sigma, min_distance)`` at every certain threshold, all images together.

    Attributes
    ----------
    thresholds : ndarray of float, shape (T,)
        Descending; detection at ``thresholds[j]`` keeps, in each image, the
        candidates strictly above it.
    counts : ndarray of int64, shape (T, 3)
        ``(tp, fp, fn)`` summed over the images.
    per_image : list of ndarray of int64, shape (T, 3)
    """

    sigma: float
    min_distance: int
    thresholds: np.ndarray
    counts: np.ndarray
    per_image: list = field(default_factory=list)

    def best(self) -> tuple[float, Score]:
        """The threshold of the highest F1 (the middle one where several tie) and its score."""
        f1 = f1_of(self.counts)
        top = np.flatnonzero(f1 >= f1.max() - 1e-12)
        j = int(top[len(top) // 2])
        tp, fp, fn = self.counts[j].tolist()
        return float(self.thresholds[j]), Score(tp + fn, tp + fp, tp, fp, fn)


def _nice_between(lo: float, hi: float) -> float:
    """A short number strictly between ``lo`` and ``hi``: the midpoint, to the fewest digits."""
    mid = lo / 2 + hi / 2
    if not math.isfinite(mid):
        return mid
    for digits in range(1, 18):
        c = float(f"{mid:.{digits}g}")
        if lo < c < hi:
            return c
    return mid


def _certain_thresholds(values: list[np.ndarray], errs: list[np.ndarray]) -> np.ndarray:
    """Thresholds, descending, between every pair of merged candidate values it can surely split."""
    v = np.concatenate(values) if values else np.empty(0)
    e = np.concatenate(errs) if errs else np.empty(0)
    if len(v) == 0:
        return np.array([0.0])
    order = np.argsort(-v, kind="stable")
    v, e = v[order], e[order]
    low = np.minimum.accumulate(v - e)                    # lowest true value of entries 0..i
    high = np.maximum.accumulate((v + e)[::-1])[::-1]     # highest true value of entries i..
    gaps = np.flatnonzero(low[:-1] > high[1:])
    t = [_nice_between(float(high[0]), float(high[0]) + max(1.0, abs(high[0])))]  # none kept
    t += [_nice_between(float(high[i + 1]), float(low[i])) for i in gaps]
    bottom = float(low[-1])
    t.append(_nice_between(bottom - max(1.0, abs(bottom)), bottom))  # every candidate kept
    return np.asarray(t, dtype=np.float64)


def _detect_all(image: np.ndarray, sigma: float, d: int):
    c = prepare(image, sigma, d, floor=-np.inf)
    k = c.kept
    return c.coords[k], c.values[k], c.err[k]


def threshold_sweep(images: Sequence, truths: Sequence[Truth], sigma: float, min_distance: int,
                    *, match_radius: float | Sequence[float] | None = None,
                    regions: Sequence | None = None, _detections=None) -> Sweep:
    """Score every threshold for one ``(sigma, min_distance)`` from one detection per image.

    Parameters
    ----------
    images : sequence of ndarray, shape (H, W)
    truths : sequence of Truth
        One per image.
    sigma, min_distance :
        As in :class:`~.params.DetectionParams`.
    match_radius : float or sequence of float, optional
        For points truth (one value, or one per image); required for points.
    regions : sequence, optional
        One region per image (or ``None``), see :func:`.evaluate.prefix_counts`.

    Returns
    -------
    Sweep
    """
    n = len(images)
    radii = list(match_radius) if isinstance(match_radius, (list, tuple, np.ndarray)) \
        else [match_radius] * n
    regions = list(regions) if regions is not None else [None] * n
    dets = _detections or [_detect_all(as_grayscale_2d(im), sigma, min_distance) for im in images]
    thresholds = _certain_thresholds([d[1] for d in dets], [d[2] for d in dets])
    total = np.zeros((len(thresholds), 3), np.int64)
    per_image = []
    for im, truth, (coords, values, _), r, reg in zip(images, truths, dets, radii, regions, strict=True):
        rows = prefix_counts(coords, truth, shape=np.shape(im), match_radius=r, region=reg)
        # values descend: the prefix above t has length #(values > t)
        k = len(values) - np.searchsorted(values[::-1], thresholds, side="right")
        per_image.append(rows[k])
        total += rows[k]
    return Sweep(float(sigma), int(min_distance), thresholds, total, per_image)


@dataclass
class TuneResult:
    """What :func:`tune` found.

    Attributes
    ----------
    best : DetectionParams
    score : Score
        The best set's totals over all images.
    table : pandas.DataFrame
        Every tried ``(sigma, min_distance)`` at its best threshold, best
        first (the columns of ``tuning.csv``).
    cancelled : bool
        The search was stopped early; the result holds the sets tried so far.
    """

    best: DetectionParams
    score: Score
    table: object
    cancelled: bool = False

    @property
    def runners_up(self) -> list[tuple[DetectionParams, float]]:
        """The next best sets with their F1 (at most five)."""
        rows = self.table.iloc[1:6]
        return [(DetectionParams(float(r.sigma), int(r.min_distance), float(r.threshold_abs)),
                 float(r.f1)) for r in rows.itertuples()]


def _grid(diameter: float) -> tuple[list[float], list[int]]:
    sig = sorted({round(max(0.5, diameter / 4 * f), 2) for f in _SIGMA_FACTORS})
    dist = sorted({max(1, int(round(diameter / 2 * f))) for f in _DISTANCE_FACTORS})
    return sig, dist


def _refined(best: tuple[float, int]) -> list[tuple[float, int]]:
    s, d = best
    sig = [round(s / 1.15, 2), s, round(s * 1.15, 2)]
    return [(a, b) for a in sig for b in (d - 1, d, d + 1) if b >= 1 and a > 0]


def tune(images: Sequence, truths: Sequence[Truth], *,
         sigmas: Sequence[float] | None = None, min_distances: Sequence[int] | None = None,
         refine: bool = True, match_radius: float | Sequence[float] | None = None,
         regions: Sequence | None = None, workers: int | None = None,
         progress: Callable[[int, int], None] | None = None,
         cancel: Callable[[], bool] | None = None) -> TuneResult:
    """Search sigma, min distance and threshold for the best F1 over annotated images.

    Parameters
    ----------
    images : sequence of array_like, shape (H, W)
    truths : sequence of Truth
        One per image.
    sigmas, min_distances : sequence, optional
        The coarse grid; default around the median estimated nucleus diameter
        ``D`` (sigma about ``D/4``, min distance about ``D/2``).
    refine : bool, optional
        Then try a finer grid around the best (default ``True``).
    match_radius : float or sequence of float, optional
        For points truth; default half of each image's estimated diameter.
    regions : sequence, optional
        One region per image (see :func:`.evaluate.prefix_counts`).
    workers : int, optional
        Threads (default: the usable cores); the detections release the GIL.
    progress : callable, optional
        ``progress(done, total)`` after each ``(sigma, min_distance)``.
    cancel : callable, optional
        Returns ``True`` to stop; the result then holds what was tried
        (``cancelled=True``).

    Returns
    -------
    TuneResult

    Raises
    ------
    ValueError
        Without images, or with a different number of truths.
    InterruptedError
        When cancelled before any set was scored.
    """
    import pandas as pd

    from .estimate import estimate_diameter

    imgs = [as_grayscale_2d(im) for im in images]
    truths = list(truths)
    if not imgs or len(imgs) != len(truths):
        raise ValueError(f"need one truth per image, got {len(imgs)} images and "
                         f"{len(truths)} truths")
    diameters = [estimate_diameter(im) for im in imgs]
    if match_radius is None and any(t.kind == "points" for t in truths):
        match_radius = [dd / 2 for dd in diameters]
    base_s, base_d = _grid(float(np.median(diameters)))
    sigmas = list(sigmas) if sigmas is not None else base_s
    min_distances = list(min_distances) if min_distances is not None else base_d
    todo = [(float(s), int(d)) for s in sigmas for d in min_distances]
    if not workers:
        workers = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                   else os.cpu_count() or 1)
    rows: dict[tuple[float, int], dict] = {}
    planned = len(todo) + (9 if refine else 0)
    cancelled = False
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for stage in ("coarse", "fine"):
            if stage == "fine":
                if not refine or cancelled or not rows:
                    break
                best = max(rows.values(), key=lambda r: r["f1"])
                todo = [k for k in _refined((best["sigma"], best["min_distance"])) if k not in rows]
                planned = len(rows) + len(todo)  # the fine grid shares sets with the coarse one
            for key in todo:
                if cancel is not None and cancel():
                    cancelled = True
                    break
                dets = list(pool.map(lambda im, key=key: _detect_all(im, *key), imgs))
                sw = threshold_sweep(imgs, truths, key[0], key[1], match_radius=match_radius,
                                     regions=regions, _detections=dets)
                t, s = sw.best()
                rows[key] = {"sigma": key[0], "min_distance": key[1], "threshold_abs": t,
                             **s.as_dict()}
                if progress is not None:
                    progress(len(rows), planned)
    if not rows:
        raise InterruptedError("parameter search cancelled before any set was scored")
    table = pd.DataFrame(list(rows.values()))
    table = table.sort_values(["f1", "recall", "sigma"], ascending=[False, False, True],
                              kind="stable").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    table = table[TUNING_COLUMNS]
    top = table.iloc[0]
    best = DetectionParams(float(top.sigma), int(top.min_distance), float(top.threshold_abs))
    score = Score(int(top.n_true), int(top.n_detected), int(top.tp), int(top.fp), int(top.fn))
    log.info("best of %d sets: %s, F1 %.3f", len(table), best, score.f1)
    return TuneResult(best, score, table, cancelled)


def write_tuning(result: TuneResult, out) -> tuple[str, str]:
    """Write ``preset.json`` (the dock's *Load preset* format) and ``tuning.csv`` into ``out``.

    Returns
    -------
    (str, str)
        The two paths.
    """
    import json
    from pathlib import Path

    from ..io.images import atomic_write
    from ..results.csvsafe import write_csv

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    preset, csv = folder / "preset.json", folder / "tuning.csv"
    with atomic_write(preset, encoding="utf-8") as fh:
        fh.write(json.dumps(result.best.to_dict(), indent=2))
    write_csv(csv, result.table, text=TUNING.text, lineterminator=os.linesep)
    return str(preset), str(csv)
