"""The fast exact engine: OpenCV float32 filters, every close decision re-checked.

How exactness is guaranteed
---------------------------
The reference smooths in float64 (scipy ``correlate1d``, axis 0 then axis 1)
and then decides three things from the smoothed image ``g``: is a pixel equal
to the maximum of its ``(2d+1)^2`` window, is it strictly above the threshold,
and in which order do the candidates come (descending ``g``, raster order on
ties). A decision is only as good as the values it compares, so each value
carries an error bound and is made more accurate only when a decision needs it:

1. **float32, whole image** (OpenCV SIMD/IPP). Any direct float32 summation
   of ``n`` products, in any order and with or without fused multiply-adds,
   errs by at most ``n * 2**-24 * sum(w * |x|)`` (to first order); over two
   passes, with rounded weights and input, ``|g32 - g| <= c32 * (|g| + A)``
   with ``c32 = 2 * (2n + 4) * 2**-24`` and ``A`` zero for non-negative
   images (for others a global bound is used). The factor 2 covers the
   second-order terms many times over; the errors observed on real and
   generated images stay below half the unscaled bound (tested).
2. **exact at a few points** (:meth:`_Tiers.reference_values`): the
   reference's own operations, in its order, on the rows and columns around
   the points, so the values are bit-identical to the reference's. Near-ties
   that float32 cannot decide (plateaus, equal values, values near the
   threshold) reach this tier, at a cost that grows with the points and their
   neighbourhoods, not the image.

3. **relative to a plateau** (:class:`_Plateau`), between the two, for images
   with large flat regions (a background of one grey level at threshold 0,
   saturated blobs): a pixel whose whole input footprint holds one value has
   that plateau's exact value, computed once, and its neighbours compare with
   it through the float32 smoothing of ``x - c``, whose bound grows with
   ``|x - c|`` rather than with ``x``.

A decision is taken at the first tier whose bound makes it certain. When very
many are still uncertain (more than four plateau levels, float images, or a
window wider than the footprint), the whole image is smoothed by the reference
instead. The intensities returned are always the reference's values,
recomputed at the kept centres, so they do not depend on the tier that decided
a peak, nor on the processor's float32 arithmetic. Tests check
the bounds empirically (observed float32 error is hundreds of times below
``c32``) and compare with the reference image by image.
"""

from __future__ import annotations

import bisect
import logging
import threading
from dataclasses import dataclass, field

import cv2
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["Candidates", "prepare", "gaussian_kernel", "exact_smooth", "greedy_keep", "error_bound",
           "smooth_max"]

log = logging.getLogger(__name__)

_TRUNCATE = 4.0
_SAFETY = 2.0
#: cost of an exact value by patch, per tap, and by row segment, per value, in taps of a
#: whole-image exact pass (measured: gathers cost more than scipy's inner loop)
_PATCH_COST = 5.0
_SEGMENT_COST = 20.0
#: above this many pixels asked for, duplicates are found by marking, not sorting
_SORT_LIMIT = 50_000
#: above this many gathered window pixels the candidate check goes exact
_MAX_GATHER = 16_000_000
#: above this many pixels passing the 3x3 pre-filter, the full window is used
_MAX_PREFILTERED = 20_000
#: rows per band of the near-maximum search (a band's buffers fit the CPU cache)
_BAND = 64
#: OpenCV switches filter2D to a DFT for kernels of this many taps (float32)
_DFT_TAPS = 130
#: tied candidates in a run this long (a plateau) are spaced row by row
_TIED_RUN = 256


def kernel_radius(sigma: float) -> int:
    """Return the kernel radius the reference uses: ``int(4.0 * sigma + 0.5)``."""
    return int(_TRUNCATE * float(sigma) + 0.5)


def gaussian_kernel(sigma: float) -> np.ndarray:
    """Return the reference's normalised 1-D Gaussian weights, shape ``(2r+1,)``."""
    radius = kernel_radius(sigma)
    if radius == 0:  # scipy's answer for any sigma below 0.125 (and it skips <= 1e-15)
        return np.ones(1)
    x = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / (sigma * sigma) * x**2)
    return phi / phi.sum()


def error_bound(sigma: float) -> float:
    """Relative error bound ``c32`` of the float32 tier."""
    n = 2 * kernel_radius(sigma) + 1
    return _SAFETY * (2 * n + 4) * 2.0**-24


def exact_smooth(image: np.ndarray, sigma: float) -> np.ndarray:
    """Smooth exactly as the reference does (float64, ``mode='nearest'``).

    Parameters
    ----------
    image : ndarray, shape (H, W)
        Any real dtype; converted to float64.
    sigma : float
        Gaussian standard deviation in pixels.

    Returns
    -------
    ndarray of float64, shape (H, W)
    """
    from scipy import ndimage as ndi

    return ndi.gaussian_filter(
        np.asarray(image, dtype=np.float64), sigma, mode="nearest", truncate=_TRUNCATE
    )


def greedy_keep(coords: np.ndarray, min_distance: int, values: np.ndarray | None = None
                ) -> np.ndarray:
    """Greedy spacing in priority order (the reference's ``ensure_spacing``).

    Parameters
    ----------
    coords : ndarray of int, shape (N, 2)
        Candidates in priority order (brightest first).
    min_distance : int
        Two kept points must be at Chebyshev distance >= ``min_distance``.
    values : ndarray, shape (N,), optional
        The candidates' priorities (non-increasing). A run of at least
        :data:`_TIED_RUN` equal values in raster order (a plateau, as a stable
        sort leaves it) is spaced row by row, at a cost that grows with its
        rows and kept points rather than with its close pairs.

    Returns
    -------
    ndarray of bool, shape (N,)
        ``True`` for kept candidates. A prefix of ``coords`` keeps exactly the
        flags of that prefix, which is what makes threshold changes cheap.
    """
    n = len(coords)
    if n < 2 or min_distance <= 1:
        return np.ones(n, dtype=bool)
    runs = [] if values is None else _raster_runs(coords, values)
    if not runs:
        return _greedy_pairs(coords, min_distance)
    d = int(min_distance)
    kept = np.zeros(n, dtype=bool)
    # blocked[y + d, x + d]: within d - 1 of a point kept so far (the padding
    # keeps every square inside the array)
    shape = (int(coords[:, 0].max()) + 2 * d + 1, int(coords[:, 1].max()) + 2 * d + 1)
    blocked = np.zeros(shape, np.uint8)
    square = np.ones((2 * d - 1, 2 * d - 1), np.uint8)
    pos = 0
    for a, b in [*runs, (n, n)]:
        for lo, hi, spacer in ((pos, a, _greedy_pairs), (a, b, _raster_greedy)):
            if hi == lo:
                continue
            part = coords[lo:hi]
            seg = np.flatnonzero(blocked[part[:, 0] + d, part[:, 1] + d] == 0)
            if len(seg) == 0:
                continue
            seg = lo + seg[spacer(np.take(part, seg, axis=0), d)]
            kept[seg] = True
            marks = np.zeros(shape, np.uint8)
            marks[coords[seg, 0] + d, coords[seg, 1] + d] = 1
            blocked |= cv2.dilate(marks, square)
        pos = b
    return kept


def _raster_runs(coords: np.ndarray, values: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` of the runs of :data:`_TIED_RUN` or more equal values in raster order."""
    starts = np.flatnonzero(np.diff(values, prepend=np.nan, append=np.nan) != 0)
    long = np.flatnonzero(np.diff(starts) >= _TIED_RUN)
    width = int(coords[:, 1].max()) + 1
    runs = []
    for a, b in zip(starts[long].tolist(), starts[long + 1].tolist(), strict=True):
        keys = coords[a:b, 0].astype(np.int64) * width + coords[a:b, 1]
        if np.all(np.diff(keys) > 0):
            runs.append((a, b))
    return runs


def _raster_greedy(coords: np.ndarray, d: int) -> np.ndarray:
    """Greedy spacing of points in raster order, row by row, on runs of columns.

    The points of a row come in runs of consecutive columns. A kept point
    ``(y0, x0)`` excludes the columns ``x0 - d + 1 .. x0 + d - 1`` of the rows
    ``y0 + 1 .. y0 + d - 1``, and in its own row the next ``d - 1`` columns.
    So within a stretch of a run that earlier rows leave free, the kept
    points are the first at least ``d`` columns after the row's last kept one
    and then every ``d``-th column, and a stretch's exclusion below is one
    interval. The work grows with the runs and stretches, not with the points.
    """
    n = len(coords)
    rows, cols = coords[:, 0], coords[:, 1]
    cut = np.flatnonzero((np.diff(rows) != 0) | (np.diff(cols) != 1)) + 1
    starts, ends = np.concatenate([[0], cut]), np.append(cut, n)
    first_i, count = [], []  # each stretch's first kept point and how many, d apart
    active: list[tuple[int, int, int]] = []  # (lo, hi, last row) excluded by earlier rows
    pending: list[tuple[int, int, int]] = []  # exclusions of the current row's kept points
    free: list[tuple[int, int]] = []  # the union of the active exclusions, sorted
    free_hi: list[int] = []
    expires = np.inf  # the first row no longer under one of the active exclusions
    y_now, last = None, 0
    for y, lo, hi, i in zip(rows[starts].tolist(), cols[starts].tolist(),
                            cols[ends - 1].tolist(), starts.tolist(), strict=True):
        if y != y_now:
            if pending or y > expires:  # else the rows above exclude the same columns
                active = [a for a in active + pending if a[2] >= y]
                free = _union(active)
                free_hi = [f[1] for f in free]
                expires = min(a[2] for a in active) if active else np.inf
            pending, y_now, last = [], y, lo - d
        a = lo
        j = bisect.bisect_left(free_hi, lo)
        while True:
            b_lo, b_hi = free[j] if j < len(free) else (hi + 1, hi + 1)
            b = min(hi, b_lo - 1)  # the stretch a .. b is free
            p = max(a, last + d)
            if p <= b:
                m = (b - p) // d + 1
                first_i.append(i + p - lo)
                count.append(m)
                last = p + (m - 1) * d
                pending.append((p - d + 1, last + d - 1, y + d - 1))
            if b_hi >= hi:
                break
            a = max(a, b_hi + 1)
            j += 1
    kept = np.zeros(n, dtype=bool)
    if first_i:
        count = np.asarray(count)
        step = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
        kept[np.repeat(first_i, count) + d * step] = True
    return kept


def _union(intervals: list[tuple[int, int, int]]) -> list[tuple[int, int]]:
    """Sorted, disjoint ``(lo, hi)`` covering the given closed intervals."""
    out: list[tuple[int, int]] = []
    for lo, hi, _ in sorted(intervals):
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def _greedy_pairs(coords: np.ndarray, min_distance: int) -> np.ndarray:
    """Greedy spacing from the close pairs (:func:`_close_pairs`), for any order."""
    n = len(coords)
    kept = np.ones(n, dtype=bool)
    if n < 2:
        return kept
    pairs = _close_pairs(coords, min_distance)
    if len(pairs) == 0:
        return kept
    earlier = np.minimum(pairs[:, 0], pairs[:, 1])  # in priority order
    later = np.maximum(pairs[:, 0], pairs[:, 1])
    by_earlier = np.argsort(earlier, kind="stable")
    earlier, later = earlier[by_earlier], later[by_earlier]
    starts = np.flatnonzero(np.diff(earlier, prepend=-1))
    firsts = earlier[starts]
    ends = np.append(starts[1:], len(earlier))
    for i, a, b in zip(firsts.tolist(), starts.tolist(), ends.tolist(), strict=True):
        if kept[i]:
            kept[later[a:b]] = False
    return kept


def _close_pairs(coords: np.ndarray, min_distance: int) -> np.ndarray:
    """Index pairs ``(i, j)`` closer than ``min_distance`` in Chebyshev distance.

    Each point gets a key ``row * width + col`` with a width that leaves
    ``min_distance - 1`` spare columns on both sides; sorted, the points of
    row ``y + dy`` whose column lies within ``min_distance - 1`` of ``x``
    form one contiguous run of keys, found with ``searchsorted``. So the work
    is proportional to the pairs found, also for dense candidates (plateaus),
    and a worker needs no scipy.spatial.

    Returns
    -------
    ndarray of int, shape (P, 2)
        In no particular order, each pair once.
    """
    n, reach = len(coords), min_distance - 1
    if n < 2 or reach < 0:
        return np.empty((0, 2), np.intp)
    rows = coords[:, 0].astype(np.int64)
    cols = coords[:, 1].astype(np.int64)
    cols = cols - cols.min() + reach
    width = int(cols.max()) + reach + 1
    keys = rows * width + cols
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    idx = np.arange(n)
    found_i, found_j = [], []
    for dy in range(min_distance):
        lo = np.searchsorted(k, k + dy * width - reach, side="left")
        hi = np.searchsorted(k, k + dy * width + reach, side="right")
        if dy == 0:  # the same row: only the points after this one, each pair once
            lo = np.maximum(lo, idx + 1)
        counts = np.maximum(hi - lo, 0)
        total = int(counts.sum())
        if total == 0:
            continue
        first = np.repeat(idx, counts)
        offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        found_i.append(order[first])
        found_j.append(order[np.repeat(lo, counts) + offsets])
    if not found_i:
        return np.empty((0, 2), np.intp)
    return np.stack([np.concatenate(found_i), np.concatenate(found_j)], axis=1)


class _Tiers:
    """Smoothed values at chosen pixels, at increasing accuracy."""

    def __init__(self, image: np.ndarray, sigma: float) -> None:
        self.image = image
        self.sigma = float(sigma)
        self.radius = kernel_radius(sigma)
        self.kernel = gaussian_kernel(sigma)
        self.c32 = error_bound(sigma)
        # non-negative images get relative bounds; others one global bound
        if image.dtype.kind in "ub":
            lo, hi = 0.0, 1.0
        else:
            lo, hi = float(image.min()), float(image.max())
        self.magnitude = max(abs(lo), abs(hi))
        self.absolute = 0.0 if lo >= 0 else 3.0 * self.magnitude
        # absolute allowance for float32 underflow, which only float images
        # can reach (integer pixels times weights stay far above 1e-38)
        self._TINY = 1e-33 if image.dtype.kind == "f" else 0.0


    def float32_safe(self) -> bool:
        """Whether float32 can hold the image without overflow."""
        return self.magnitude < 1e36

    def bound(self, values: np.ndarray, c: float) -> np.ndarray:
        """Error bound of ``values`` computed at relative accuracy ``c``."""
        return c * (np.abs(values) + self.absolute) + self._TINY

    def one_pass(self, line: np.ndarray) -> np.ndarray:
        """The reference's ``correlate1d`` at the centre of ``(2r+1, ...)`` lines, its order.

        Two pixels are added exactly as the reference adds their float64
        conversions: integers of up to 16 bits add exactly in int32 too, with
        half the memory traffic.
        """
        r, w = self.radius, self.kernel
        if line.dtype.kind in "uib" and line.dtype.itemsize <= 2:
            pair_type = np.int32
        else:
            line, pair_type = line.astype(np.float64), np.float64
        out = line[r] * w[r]
        pair = np.empty(line.shape[1:], pair_type)
        term = np.empty(line.shape[1:])
        for j in range(r, 0, -1):
            np.add(line[r - j], line[r + j], out=pair, dtype=pair_type)
            np.multiply(pair, w[r - j], out=term)
            out += term
        return out

    def affordable(self, plan: _ExactPoints) -> bool:
        """Whether ``plan`` costs less than smoothing the whole image exactly."""
        h, w = self.image.shape
        return plan.cost <= h * w

    def reference_values(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """The reference's smoothed values at the given pixels, its operations in its order.

        scipy's ``correlate1d`` with a symmetric kernel computes each output
        as ``x[0] * w[0]`` plus, for ``j`` from the outermost tap inwards,
        ``(x[-j] + x[j]) * w[j]``; ``gaussian_filter`` runs it along axis 0,
        then axis 1. Done here with separate numpy multiplications and
        additions (IEEE, no fused multiply-add), so each value is the
        reference's to the last bit, on any processor and with any BLAS:
        first the axis-0 pass at every pixel of the rows asked for that lies
        within ``r`` columns of a pixel asked for (each computed once, however
        many pixels share it), then the axis-1 pass at the pixels themselves.
        Indices clipped to the image are the ``nearest`` edge mode. The cost
        grows with the pixels asked for and their neighbourhoods, not with the
        image (:meth:`exact_points`).

        Returns
        -------
        ndarray of float64, shape (N,)
        """
        return self.exact_points(rows, cols).values()

    def exact_points(self, rows: np.ndarray, cols: np.ndarray) -> _ExactPoints:
        """Plan the reference's values at the given pixels (see :meth:`reference_values`)."""
        return _ExactPoints(self, rows, cols)

    def refine(self, coords: np.ndarray, values: np.ndarray, err: np.ndarray, idx: np.ndarray) -> None:
        """Make ``values[idx]`` exact (the reference's values, ``err`` 0), in place."""
        idx = np.asarray(idx)
        idx = idx[err[idx] > 0]
        if len(idx):
            values[idx] = self.reference_values(coords[idx, 0], coords[idx, 1])
            err[idx] = 0.0


class _ExactPoints:
    """The reference's values at chosen pixels: the plan, its cost, and the values.

    Two ways, the cheaper chosen for each request:

    - **by patch**: each pixel's ``(2r+1)^2`` input patch, both passes on it.
      Best for scattered pixels (a patch is a few contiguous copies).
    - **by row segment**: the pixels, in raster order, are grouped into runs
      of one row whose column spans ``x - r .. x + r`` touch; each segment
      needs the axis-0 pass at every column of its spans' union, once, then
      each pixel the axis-1 pass. Best for clustered pixels (plateaus,
      windows of rivals), whose patches overlap.
    """

    def __init__(self, tiers: _Tiers, rows, cols) -> None:
        self.tiers = tiers
        h, wd = tiers.image.shape
        rows = np.asarray(rows, dtype=np.intp)
        cols = np.asarray(cols, dtype=np.intp)
        asked = rows * wd + cols
        if len(asked) > _SORT_LIMIT:  # a mark per pixel is cheaper than sorting them
            marks = np.zeros(h * wd, bool)
            marks[asked] = True
            flat = np.flatnonzero(marks)
            where = np.empty(h * wd, np.int32)
            where[flat] = np.arange(len(flat), dtype=np.int32)
            self.inverse = where[asked]
        else:
            flat, self.inverse = np.unique(asked, return_inverse=True)
        self.y, self.x = np.divmod(flat, wd)
        n, r = len(flat), tiers.radius
        lo, hi = np.maximum(self.x - r, 0), np.minimum(self.x + r, wd - 1)
        new = np.ones(n, bool)
        new[1:] = (self.y[1:] != self.y[:-1]) | (lo[1:] > hi[:-1] + 1)
        starts = np.flatnonzero(new)
        ends = np.append(starts[1:], n)
        self.seg_y, self.seg_lo = self.y[starts], lo[starts]
        self.seg_len = hi[ends - 1] - self.seg_lo + 1
        self.seg_count = ends - starts
        by_segment = (int(self.seg_len.sum()) + n) * _SEGMENT_COST
        by_patch = n * (2 * r + 1) * _PATCH_COST
        self.by_segment = by_segment < by_patch
        #: the cost, in pixels of the whole-image exact smoothing (two passes)
        self.cost = min(by_segment, by_patch) / 2

    def values(self) -> np.ndarray:
        """The reference's values, in the order the pixels were given (float64)."""
        t = self.tiers
        if t.sigma <= 1e-15:  # gaussian_filter leaves such an axis alone
            out = t.image[self.y, self.x].astype(np.float64)
        elif self.by_segment:
            out = self._by_segment()
        else:
            out = self._by_patch()
        return out[self.inverse]

    def _by_segment(self) -> np.ndarray:
        t = self.tiers
        h, wd = t.image.shape
        first = np.cumsum(self.seg_len) - self.seg_len  # each segment's first axis-0 value
        row_y = np.repeat(self.seg_y, self.seg_len)
        row_x = np.arange(len(row_y)) - np.repeat(first - self.seg_lo, self.seg_len)
        off = np.arange(-t.radius, t.radius + 1)[:, None]
        step = max(1, 2_000_000 // len(off))
        axis0 = np.empty(len(row_y))
        for s in range(0, len(axis0), step):
            ry, rx = row_y[s : s + step], row_x[s : s + step]
            axis0[s : s + step] = t.one_pass(t.image[np.clip(ry + off, 0, h - 1), rx])
        # a pixel's span starts at its segment's first value plus its column offset
        shift = np.repeat(first - self.seg_lo, self.seg_count)
        out = np.empty(len(self.y))
        for s in range(0, len(out), step):
            at = shift[s : s + step] + np.clip(self.x[s : s + step] + off, 0, wd - 1)
            out[s : s + step] = t.one_pass(axis0[at])
        return out

    def _by_patch(self) -> np.ndarray:
        t = self.tiers
        r = t.radius
        h, wd = t.image.shape
        rows, cols = self.y, self.x
        out = np.empty(len(rows))
        inner = (rows >= r) & (rows < h - r) & (cols >= r) & (cols < wd - r)
        # inner pixels first: whole windows of the image, no clipping needed
        order = np.concatenate([np.flatnonzero(inner), np.flatnonzero(~inner)])
        windows = sliding_window_view(t.image, (2 * r + 1, 2 * r + 1))
        off = np.arange(-r, r + 1)
        step = max(1, 2_000_000 // (2 * r + 1) ** 2)
        for s in range(0, len(order), step):
            part = order[s : s + step]
            edge = part[~inner[part]]
            mid = part[: len(part) - len(edge)]
            patch = windows[rows[mid] - r, cols[mid] - r]
            if len(edge):
                # clipped indices: the ``nearest`` edge mode, without a padded copy
                ri = np.clip(rows[edge][:, None] + off, 0, h - 1)
                ci = np.clip(cols[edge][:, None] + off, 0, wd - 1)
                patch = np.concatenate([patch, t.image[ri[:, :, None], ci[:, None, :]]])
            # axis 0 over (row, patch, column) views, then axis 1 on contiguous columns
            by_row = t.one_pass(patch.transpose(1, 0, 2))
            out[part] = t.one_pass(np.ascontiguousarray(by_row.T))
        return out


@dataclass
class Candidates:
    """All reference peak candidates of one image above ``floor``, in reference order.

    ``coords`` and ``kept`` are exact. ``values`` are the smoothed intensities,
    each within ``err`` of the reference's value (``err == 0``: bit-identical);
    every comparison made with them is certain.

    Attributes
    ----------
    coords : ndarray of intp, shape (N, 2)
    values : ndarray of float64, shape (N,)
    err : ndarray of float64, shape (N,)
    kept : ndarray of bool, shape (N,)
    floor : float
        Only candidates strictly above ``floor`` are listed; ``select`` needs a
        threshold ``>= floor``.
    """

    coords: np.ndarray
    values: np.ndarray
    err: np.ndarray
    kept: np.ndarray
    floor: float
    min_distance: int
    tiers: _Tiers = field(repr=False)

    def select(self, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(coords, intensities)`` for ``threshold_abs=threshold``.

        ``intensities`` are the reference's float64 values (bit-identical).

        Raises
        ------
        ValueError
            If ``threshold`` is below the ``floor`` these candidates were made for.
        """
        threshold = float(threshold)
        if threshold < self.floor:
            raise ValueError(f"threshold_abs {threshold} is below the cached floor {self.floor}")
        v, e = self.values, self.err
        # exact values, in one pass, for the candidates the threshold may cut and
        # for every kept one that may be above it: every reported intensity is
        # the reference's value, whichever tier decided the peak (kept in place
        # for the next threshold)
        maybe = (np.abs(v - threshold) <= e) | (self.kept & (v + e > threshold))
        self.tiers.refine(self.coords, v, e, np.flatnonzero(maybe))
        # values are in exact reference order, so "above" is a prefix
        n = int(np.count_nonzero(v > threshold))
        sel = np.flatnonzero(self.kept[:n])
        return self.coords[sel], v[sel]


def _candidates(tiers, coords, values, err, floor, d) -> Candidates:
    """Sort candidates (given in raster order) as the reference does and thin them."""
    order = np.argsort(-values, kind="stable")
    for _ in range(8):
        sv, se = values[order], err[order]
        tol = se[:-1] + se[1:]
        close = ((sv[:-1] - sv[1:]) <= tol) & (tol > 0)
        if not close.any():
            break
        involved = np.zeros(len(order), bool)
        involved[:-1] |= close
        involved[1:] |= close
        idx = order[involved]
        tiers.refine(coords, values, err, idx[err[idx] > 0])
        order = np.argsort(-values, kind="stable")
    else:  # pathological: make everything exact
        tiers.refine(coords, values, err, np.flatnonzero(err > 0))
        order = np.argsort(-values, kind="stable")
    coords, values = np.take(coords, order, axis=0), values[order]
    return Candidates(coords, values, err[order], greedy_keep(coords, d, values), floor, d, tiers)


def _empty(tiers, d, floor) -> Candidates:
    return Candidates(np.empty((0, 2), np.intp), np.empty(0), np.empty(0), np.empty(0, bool),
                      floor, d, tiers)


def _max_filter(g: np.ndarray, d: int, dst: np.ndarray | None = None) -> np.ndarray:
    size = 2 * d + 1
    return cv2.dilate(g, cv2.getStructuringElement(cv2.MORPH_RECT, (size, size)), dst=dst,
                      borderType=cv2.BORDER_REPLICATE)


_local = threading.local()


def _workspace(shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """Per-thread image-sized buffers, reused from one image to the next.

    A batch processes images of one size; fresh 5 MB arrays for every image
    would cost thousands of page faults (several ms) each time.
    """
    ws = getattr(_local, "workspace", None)
    if ws is None or ws["x"].shape != shape:
        ws = {name: np.empty(shape, np.float32) for name in ("x", "tmp", "g", "mx")}
        ws["mask"] = np.empty(shape, bool)
        _local.workspace = ws
    return ws


def _smooth32(image: np.ndarray, k: np.ndarray, ws: dict[str, np.ndarray]) -> np.ndarray:
    """The float32 tier: separable smoothing with OpenCV, ``nearest`` edges.

    Rows first, in bands of :data:`_BAND` rows converted to float32 on the
    way (a band's copy is still in the CPU cache when it is filtered), then
    columns over the whole image. Either order has the same error bound.
    Returns the workspace's ``g`` buffer.
    """
    g, tmp = ws["g"], ws["tmp"]
    if len(k) >= _DFT_TAPS:  # filter2D would use a DFT, whose error is not bounded the same way
        x = ws["x"]
        np.copyto(x, image, casting="unsafe")
        return cv2.sepFilter2D(x, cv2.CV_32F, k, k, dst=g, borderType=cv2.BORDER_REPLICATE)
    if image.dtype == np.float32 and image.flags.c_contiguous:
        cv2.filter2D(image, cv2.CV_32F, k[None, :], dst=tmp, borderType=cv2.BORDER_REPLICATE)
    else:
        band = ws["x"].reshape(-1)[: _BAND * image.shape[1]].reshape(-1, image.shape[1])
        for a in range(0, image.shape[0], _BAND):
            b = min(image.shape[0], a + _BAND)
            src = band[: b - a]
            np.copyto(src, image[a:b], casting="unsafe")
            cv2.filter2D(src, cv2.CV_32F, k[None, :], dst=tmp[a:b],
                         borderType=cv2.BORDER_REPLICATE)
    cv2.filter2D(tmp, cv2.CV_32F, k[:, None], dst=g, borderType=cv2.BORDER_REPLICATE)
    return g


def _separable32(src: np.ndarray, k: np.ndarray, tmp: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Separable float32 smoothing of ``src`` into ``dst`` (rows into ``tmp`` first), ``nearest`` edges."""
    if len(k) >= _DFT_TAPS:  # filter2D would use a DFT
        return cv2.sepFilter2D(src, cv2.CV_32F, k, k, dst=dst, borderType=cv2.BORDER_REPLICATE)
    cv2.filter2D(src, cv2.CV_32F, k[None, :], dst=tmp, borderType=cv2.BORDER_REPLICATE)
    return cv2.filter2D(tmp, cv2.CV_32F, k[:, None], dst=dst, borderType=cv2.BORDER_REPLICATE)


def smooth_max(image: np.ndarray, sigma: float) -> float:
    """The largest value of the reference's smoothed image, exactly, at the float32 tier's cost.

    The whole image is smoothed in float32 (a few milliseconds for 1024x1280);
    only the pixels whose float32 value may belong to the largest exact value
    get the reference's value (:meth:`_Tiers.reference_values`), and the
    largest of those is returned: bit-identical to
    ``exact_smooth(image, sigma).max()``.

    Parameters
    ----------
    image : ndarray, shape (H, W)
        A validated 2-D real image with finite values.
    sigma : float
        Gaussian standard deviation, pixels.

    Returns
    -------
    float
    """
    tiers = _Tiers(image, sigma)
    h, w = image.shape
    r = tiers.radius
    if h <= 2 * r or w <= 2 * r or not tiers.float32_safe():
        return float(exact_smooth(image, sigma).max())
    g = _smooth32(image, tiers.kernel.astype(np.float32), _workspace(image.shape))
    top = float(g.max())
    # the largest exact value M has a float32 value within its bound, and no float32
    # value exceeds M by more than that bound: M's pixel lies within two bounds of the
    # float32 maximum (three leave room for rounding the limit to float32)
    c = tiers.c32
    if tiers.absolute == 0:  # non-negative images: bounds relative to the value
        lowest = top * (1 - 3 * c) - 3 * tiers._TINY
    else:
        lowest = top - 3 * (c * (tiers.magnitude + tiers.absolute) + tiers._TINY)
    plan = tiers.exact_points(*np.nonzero(g >= lowest))
    if not tiers.affordable(plan):  # a wide plateau at the top: smooth it all
        return float(exact_smooth(image, sigma).max())
    return float(plan.values().max())


def _clear_border(mask: np.ndarray, d: int) -> None:
    mask[:d] = 0
    mask[-d:] = 0
    mask[:, :d] = 0
    mask[:, -d:] = 0


def _prepare_exact(tiers: _Tiers, d: int, floor: float) -> Candidates:
    """Candidates from the reference's float64 smoothing (the slow, sure path)."""
    g = exact_smooth(tiers.image, tiers.sigma)
    mask = g == _max_filter(g, d)
    if mask.all():  # the reference finds no peak in a trivial (constant) image
        return _empty(tiers, d, floor)
    mask &= g > floor
    _clear_border(mask, d)
    rows, cols = np.nonzero(mask)
    coords = np.stack([rows, cols], axis=1).astype(np.intp)
    values = g[rows, cols]
    return _candidates(tiers, coords, values, np.zeros(len(values)), floor, d)


def prepare(image: np.ndarray, sigma: float, min_distance: int, floor: float = -np.inf) -> Candidates:
    """Find all reference peak candidates above ``floor``, exactly, fast.

    Parameters
    ----------
    image : ndarray, shape (H, W)
        A validated 2-D real image with finite values.
    sigma : float
        Gaussian standard deviation, pixels.
    min_distance : int
        Window half-size, border width and spacing, pixels.
    floor : float, optional
        Lowest threshold that will be asked of ``Candidates.select``. A finite
        floor (the threshold itself, for a one-off detection) skips the work on
        dim regions; ``-inf`` keeps every candidate for interactive tuning.

    Returns
    -------
    Candidates
    """
    d = int(min_distance)
    tiers = _Tiers(image, sigma)
    h, w = image.shape
    if h <= 2 * d or w <= 2 * d:
        return _empty(tiers, d, floor)
    r = tiers.radius
    if h <= 2 * r or w <= 2 * r or not tiers.float32_safe():
        # tiny image (the exact path is cheap and avoids OpenCV edge cases), or
        # values too large for float32
        return _prepare_exact(tiers, d, floor)

    ws = _workspace(image.shape)
    g = _smooth32(image, tiers.kernel.astype(np.float32), ws)
    interior = (h - 2 * d) * (w - 2 * d)

    # With a threshold, only bright pixels matter and a 3x3 maximum is a cheap
    # enough pre-filter (every window maximum is one); the window test below
    # decides. Without one (interactive tuning), or when too many bright pixels
    # pass it, the full window keeps the number of pixels to check small.
    if np.isfinite(floor):
        rows, cols = _near_maxima(g, ws, tiers, floor, d, half=1)
        if len(rows) > _MAX_PREFILTERED:
            rows, cols = _near_maxima(g, ws, tiers, floor, d, half=d)
    else:
        rows, cols = _near_maxima(g, ws, tiers, floor, d, half=d)
    n = len(rows)
    if n == 0:
        return _empty(tiers, d, floor)
    if n == interior:
        # every pixel is within the bounds of its window maximum: a (nearly)
        # flat image, whose triviality and ties the reference decides itself
        return _prepare_exact(tiers, d, floor)
    size = 2 * d + 1
    gather = min(_MAX_GATHER, h * w * (2 * r + 1) / 4)
    found = None
    if n * size * size <= gather:
        found = _window_peaks(g, tiers, rows, cols, d, floor)
    else:
        # gathering their windows would cost more than smoothing the whole image exactly
        log.debug("%d near-maximal pixels: too many windows to gather", n)
    if found is None:
        # most of them may lie on plateaus, which are decided without their windows
        found = _plateau_peaks(g, ws, tiers, rows, cols, d, floor, gather)
    if found is None:
        log.debug("exact smoothing of the whole image")
        return _prepare_exact(tiers, d, floor)
    sel, values, err = found
    coords = np.stack([rows[sel], cols[sel]], axis=1)
    if np.isfinite(floor):
        # exact values for all that may be above the floor, in one pass: then the
        # floor, the order and the reported intensities need no other
        tiers.refine(coords, values, err, np.flatnonzero(values + err > floor))
        above = values > floor
        coords, values, err = coords[above], values[above], err[above]
    return _candidates(tiers, coords, values, err, floor, d)


def _window_peaks(g, tiers: _Tiers, rows, cols, d: int, floor: float,
                  plateau: _Plateau | None = None):
    """The peaks among near-maximal pixels, decided window by window.

    ``plateau``, where given, settles the windows that float32 leaves
    undecided from values relative to its level before any exact value is
    computed, and gives rivals on plateaus their exact values.

    Returns ``(sel, values, err)``: the indices of the peaks into ``rows`` and
    ``cols`` (so in raster order), their values and error bounds; or ``None``
    where the undecided windows would cost more than smoothing the whole
    image exactly.
    """
    h, w = g.shape
    values = g[rows, cols].astype(np.float64)
    err = tiers.bound(values, tiers.c32)
    is_peak, unsure, rivals = _window_test(g, rows, cols, tiers, d)
    if len(unsure) and plateau is not None:
        beaten, rivals = plateau.settle(rows[unsure], cols[unsure], rivals, d)
        left = rivals.any(axis=(1, 2))
        is_peak[unsure] = ~beaten & ~left
        unsure, rivals = unsure[left], rivals[left]
    if len(unsure):
        # exact values at the centres and their rivals only (the rest of each
        # window is surely dimmer); a rival equal to the centre does not beat it
        if len(unsure) + np.count_nonzero(rivals) > h * w // 4:
            # windows of rivals overlapping many times over (wide plateaus): finding
            # the pixels they share would cost about as much as smoothing everything
            log.debug("%d uncertain windows", len(unsure))
            return None
        which, dy, dx = np.nonzero(rivals)
        # a one-off detection (a finite floor) reports each peak above the floor
        # with its exact value: the sure ones are asked for in the same pass
        sure = (np.flatnonzero(is_peak & (values + err > floor)) if np.isfinite(floor)
                else np.empty(0, np.intp))
        rr, rc = rows[unsure][which] + dy - d, cols[unsure][which] + dx - d
        known = plateau.flat[rr, rc] if plateau is not None else np.zeros(len(rr), bool)
        pr = np.concatenate([rows[unsure], rows[sure], rr[~known]])
        pc = np.concatenate([cols[unsure], cols[sure], rc[~known]])
        plan = tiers.exact_points(pr, pc)
        if not tiers.affordable(plan):
            log.debug("%d uncertain windows with %d rivals", len(unsure), len(which))
            return None
        exact = plan.values()
        nu, ns = len(unsure), len(sure)
        centre, rival = exact[:nu], np.empty(len(rr))
        rival[~known] = exact[nu + ns :]
        rival[known] = _plateau_values(tiers, tiers.image[rr[known], rc[known]])
        values[sure] = exact[nu : nu + ns]
        err[sure] = 0.0
        beaten = np.bincount(which, rival > centre[which], minlength=nu) > 0
        is_peak[unsure] = ~beaten
        values[unsure] = centre
        err[unsure] = 0.0
    sel = np.flatnonzero(is_peak)
    return sel, values[sel], err[sel]


def _flat_footprints(tiers: _Tiers, d: int) -> np.ndarray | None:
    """Pixels whose whole ``(2r+1)^2`` input footprint holds one value.

    ``None`` where plateaus are not decided this way: a window wider than the
    footprint (``d > r``: a window could then hold two plateaus of different
    values), or pixels other than integers of up to 16 bits (whose
    differences float32 holds exactly, see :class:`_Plateau`).
    """
    r = tiers.radius
    image = tiers.image
    if d > r or image.dtype.kind not in "uib" or image.dtype.itemsize > 2:
        return None
    if image.dtype == bool:
        image = image.view(np.uint8)
    elif image.dtype == np.int8:
        image = image.astype(np.int16)
    image = np.ascontiguousarray(image)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * r + 1, 2 * r + 1))
    lo = cv2.erode(image, kernel, borderType=cv2.BORDER_REPLICATE)
    return lo == cv2.dilate(image, kernel, borderType=cv2.BORDER_REPLICATE)


def _plateau_values(tiers: _Tiers, levels: np.ndarray) -> np.ndarray:
    """The reference's smoothed value inside a plateau of each given input value.

    Within a footprint of one value ``c`` both passes add the same operands in
    the same order at every pixel, so one constant patch per value gives the
    reference's value to the last bit.
    """
    unique, inverse = np.unique(levels, return_inverse=True)
    size = 2 * tiers.radius + 1
    axis0 = tiers.one_pass(np.broadcast_to(unique, (size, len(unique))))
    return tiers.one_pass(np.broadcast_to(axis0, (size, len(unique))))[inverse]


class _Plateau:
    """Smoothed values relative to a plateau's level ``c``, with their own bound.

    Near a plateau the float32 values differ from each other by less than
    their bound, which grows with the value. Their differences from ``c``,
    ``diff = sum(w * (x - c))``, are smoothed in float32 from the positive and
    negative parts of ``x - c`` (exact for integer pixels; the negative part
    is zero where no pixel is below ``c``, as beside a background at the
    image's minimum), with a bound ``tol`` that grows with ``sum(w * |x - c|)``
    instead (doubled, as the float32 tier's), plus the reference's own float64
    rounding: tiny beside a plateau. Two pixels compare as their ``diff``
    within the sum of their ``tol``; a pixel on the plateau has ``diff`` 0.
    Held in the workspace's ``x`` and ``tmp`` buffers.
    """

    def __init__(self, tiers: _Tiers, ws, flat: np.ndarray, c) -> None:
        self.flat = flat
        k = tiers.kernel.astype(np.float32)
        x, tmp, mx = ws["x"], ws["tmp"], ws["mx"]
        np.subtract(tiers.image, c, out=mx, dtype=np.float32, casting="unsafe")
        np.maximum(mx, 0, out=mx)
        above = _separable32(mx, k, tmp, x)
        if tiers.image.min() < c:
            np.subtract(c, tiers.image, out=mx, dtype=np.float32, casting="unsafe")
            np.maximum(mx, 0, out=mx)
            below = _separable32(mx, k, tmp, mx)
            np.add(above, below, out=tmp)
            np.subtract(above, below, out=x)
        else:
            np.copyto(tmp, above)
        # 1.001: room for rounding these float32 operations themselves
        np.multiply(tmp, np.float32(1.001 * (2 * tiers.c32 + 1e-12)), out=tmp)
        np.add(tmp, np.float32(1.001e-12 * abs(float(c))), out=tmp)
        self.diff, self.tol = x, tmp

    def beaten(self, ws, rows, cols, d: int) -> tuple[np.ndarray, np.ndarray]:
        """For pixels on the plateau: whether a pixel of the window surely outshines them.

        Returns ``(beaten, close)``, both of shape (N,): ``close`` where a pixel
        of the window is too close to the plateau's value to call; those
        pixels stay marked in the workspace's ``mask``.
        """
        kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * d + 1, 2 * d + 1))
        work = ws["mx"]
        np.subtract(self.diff, self.tol, out=work)
        work[self.flat] = -np.inf
        cv2.dilate(work, kernel, dst=work, borderType=cv2.BORDER_REPLICATE)
        beaten = work[rows, cols] > 0
        near = ws["mask"]
        np.less_equal(np.abs(self.diff, out=work), self.tol, out=near)
        near[self.flat] = False
        close = cv2.dilate(near.view(np.uint8), kernel, borderType=cv2.BORDER_REPLICATE)
        return beaten, close[rows, cols] > 0

    def settle(self, rows, cols, rivals: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
        """Windows that float32 left undecided, from the relative values.

        ``rows``, ``cols`` are their centres and ``rivals`` (N, 2d+1, 2d+1) the
        pixels that may be as bright. Returns ``(beaten, rivals)``: the windows
        a rival surely outshines, and the rivals still too close to call.
        """
        which, dy, dx = np.nonzero(rivals)
        cr, cc = rows[which], cols[which]
        rr, rc = cr + dy - d, cc + dx - d
        gap = self.diff[rr, rc].astype(np.float64) - self.diff[cr, cc]
        tol = self.tol[rr, rc].astype(np.float64) + self.tol[cr, cc]
        beaten = np.bincount(which, gap > tol, minlength=len(rows)) > 0
        close = (np.abs(gap) <= tol) & ~beaten[which]
        left = np.zeros_like(rivals)
        left[which[close], dy[close], dx[close]] = True
        return beaten, left


def _plateau_peaks(g, ws, tiers: _Tiers, rows, cols, d: int, floor: float, gather: float):
    """The peaks among near-maximal pixels, those on plateaus decided without their windows.

    A pixel whose footprint is flat (:func:`_flat_footprints`) has its
    plateau's exact value (:func:`_plateau_values`), and so has every flat
    pixel of its window (with ``d <= r`` they share its value): it is a peak
    unless a pixel off the plateau is brighter, which values relative to the
    plateau's level settle for all of them at once (:class:`_Plateau`; exact
    values where even those are too close). The other near-maximal pixels are
    decided window by window (:func:`_window_peaks`), with the relative values
    of the commonest plateau as a second tier.

    Returns ``(sel, values, err)`` as :func:`_window_peaks`, or ``None`` where
    this costs more than smoothing the whole image exactly (or more than four
    plateau levels).
    """
    flat = _flat_footprints(tiers, d)
    if flat is None:
        return None
    on = flat[rows, cols]
    size = 2 * d + 1
    if not on.any() or np.count_nonzero(~on) * size * size > gather:
        return None
    fi = np.flatnonzero(on)
    fr, fc = rows[fi], cols[fi]
    levels = tiers.image[fr, fc]
    unique, counts = np.unique(levels, return_counts=True)
    if len(unique) > 4:
        return None
    peak, value = np.zeros(len(fi), bool), np.empty(len(fi))
    # the commonest level last: its relative values then serve the other windows
    for c in unique[np.argsort(counts, kind="stable")].tolist():
        mine = np.flatnonzero(levels == c)
        level = _plateau_values(tiers, np.array([c], tiers.image.dtype))[0]
        value[mine] = level
        plateau = _Plateau(tiers, ws, flat, c)
        beaten, close = plateau.beaten(ws, fr[mine], fc[mine], d)
        ask = np.flatnonzero(close & ~beaten)
        if len(ask):
            if len(ask) * size * size > gather:
                return None
            ar, ac = fr[mine][ask], fc[mine][ask]
            which, dy, dx = np.nonzero(sliding_window_view(ws["mask"], (size, size))[ar - d, ac - d])
            plan = tiers.exact_points(ar[which] + dy - d, ac[which] + dx - d)
            if not tiers.affordable(plan):
                return None
            beaten[ask] = np.bincount(which, plan.values() > level, minlength=len(ask)) > 0
        peak[mine] = ~beaten
    rest = _window_peaks(g, tiers, rows[~on], cols[~on], d, floor, plateau)
    if rest is None:
        return None
    keep, values, err = np.zeros(len(rows), bool), np.empty(len(rows)), np.zeros(len(rows))
    others = np.flatnonzero(~on)[rest[0]]
    keep[others], values[others], err[others] = True, rest[1], rest[2]
    keep[fi[peak]] = True
    values[fi[peak]] = value[peak]
    sel = np.flatnonzero(keep)
    return sel, values[sel], err[sel]


def _near_maxima(g, ws, tiers: _Tiers, floor: float, d: int, half: int):
    """Pixels that may be peaks: within the bounds of their ``(2 half + 1)^2`` maximum.

    Also above ``floor`` within the bounds, outside the ``d``-pixel border.
    Returns ``(rows, cols)`` in raster order.

    Works in bands of :data:`_BAND` rows so that the maximum, the limit and
    the mask of a band stay in the CPU cache (about 25 % faster than whole
    image passes, which are bound by memory bandwidth).
    """
    c32 = tiers.c32
    h, w = g.shape
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * half + 1, 2 * half + 1))
    if tiers.absolute == 0:
        scale, shift = np.float32(1 - 2 * c32), np.float32(2 * tiers._TINY)
    else:
        scale, shift = None, np.float32(2 * c32 * tiers.absolute + 2 * tiers._TINY)
    lowest = None
    if np.isfinite(floor):
        # strictly above ``floor`` minus both bounds: with bounds of zero (a
        # threshold of 0 on a non-negative image, whose float32 zeros are exact)
        # the flat zero background drops out here
        lowest = np.float32(floor - 2 * (c32 * (abs(floor) + tiers.absolute) + tiers._TINY))
        lowest = np.nextafter(lowest, np.float32(np.inf))
    buf = ws["mx"].reshape(-1)[: (_BAND + 2 * half) * w].reshape(-1, w)
    mask_buf = ws["mask"].reshape(-1)[: _BAND * w].reshape(-1, w)
    all_rows, all_cols = [], []
    for a in range(d, h - d, _BAND):
        b = min(h - d, a + _BAND)
        a0, b0 = max(0, a - half), min(h, b + half)
        mx = cv2.dilate(g[a0:b0], kernel, dst=buf[: b0 - a0], borderType=cv2.BORDER_REPLICATE)
        # p cannot be a peak if the window maximum beats it beyond both bounds
        lim = mx[a - a0 : b - a0]
        if scale is not None:
            np.multiply(lim, scale, out=lim)
        if shift:
            np.subtract(lim, shift, out=lim)
        if lowest is not None:
            cv2.max(lim, float(lowest), dst=lim)
        mask = np.greater_equal(g[a:b], lim, out=mask_buf[: b - a])
        mask[:, :d] = False
        mask[:, w - d :] = False
        rows, cols = np.divmod(np.flatnonzero(mask), w)
        all_rows.append(rows + a)
        all_cols.append(cols)
    if not all_rows:
        return np.empty(0, np.intp), np.empty(0, np.intp)
    return np.concatenate(all_rows), np.concatenate(all_cols)


def _window_test(g: np.ndarray, rows: np.ndarray, cols: np.ndarray, tiers: _Tiers, d: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decide ``centre == window max`` for every candidate from the float32 image.

    For non-negative images the bound grows with the value, so comparing the
    centre with the brightest other pixel of its window settles most windows:
    if the centre beats it beyond both bounds it beats every pixel, and if it
    loses beyond both bounds it is surely no peak. Only the others get the
    pixel-by-pixel test of :func:`_peak_test`, in float64. (Images with
    negative values take that test for every window.)

    Returns
    -------
    is_peak : ndarray of bool, shape (N,)
        Certain peaks (``False`` for undecided windows, for now).
    unsure : ndarray of int
        Indices of the windows the bounds cannot decide.
    rivals : ndarray of bool, shape (len(unsure), 2d+1, 2d+1)
        For each undecided window, the pixels that may be as bright as its centre.
    """
    # candidates lie at least d pixels inside the image: their windows are whole
    all_windows = sliding_window_view(g, (2 * d + 1, 2 * d + 1))

    def windows(sel):
        return all_windows[rows[sel] - d, cols[sel] - d]

    c32 = tiers.c32
    if tiers.absolute != 0:
        win = windows(slice(None)).astype(np.float64)
        is_peak, unsure, rivals = _peak_test(win, tiers.bound(win, c32), d)
        return is_peak, unsure, rivals[unsure]
    win = windows(slice(None))  # a float32 copy
    centre = win[:, d, d].astype(np.float64)
    win[:, d, d] = -np.inf
    brightest = win.max(axis=(1, 2)).astype(np.float64)
    tol = tiers.bound(centre, c32) + tiers.bound(brightest, c32)
    sure_peak = centre - brightest > tol
    maybe = np.flatnonzero(~sure_peak & ~(brightest - centre > tol))
    is_peak = sure_peak
    if len(maybe) == 0:
        return is_peak, maybe, np.zeros((0, 2 * d + 1, 2 * d + 1), bool)
    win = windows(maybe).astype(np.float64)
    peak, unsure, rivals = _peak_test(win, tiers.bound(win, c32), d)
    is_peak[maybe] = peak
    return is_peak, maybe[unsure], rivals[unsure]


def _peak_test(win: np.ndarray, bound: np.ndarray, d: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decide ``centre == window max`` from approximate windows.

    Returns
    -------
    is_peak : ndarray of bool, shape (N,)
        Certain peaks (and, for undecided windows, ``False`` for now).
    unsure : ndarray of int
        Indices of windows whose answer the bounds cannot decide.
    rivals : ndarray of bool, shape (N, 2d+1, 2d+1)
        Pixels that may be as bright as the centre (never the centre itself).
    """
    centre = win[:, d, d][:, None, None]
    cb = bound[:, d, d][:, None, None]
    gap = centre - win
    tol = cb + bound
    beaten = (gap < -tol).any(axis=(1, 2))  # someone is surely brighter
    rivals = gap <= tol
    rivals[:, d, d] = False
    rival = rivals.any(axis=(1, 2))
    is_peak = ~beaten & ~rival
    unsure = np.flatnonzero(~beaten & rival)
    return is_peak, unsure, rivals
