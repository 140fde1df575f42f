"""One-to-one matching of detections to clicked points, for every prefix of a ranking.

Used by :mod:`.evaluate` (the last prefix is the score of all detections) and
so by :mod:`.tune` (every threshold is a prefix). A match is a pair closer than
the radius; among all matchings the one with the most pairs, then the smallest
total distance, is taken (:func:`scipy.optimize.linear_sum_assignment`). Pairs
only connect points of one connected component of the "closer than the radius"
graph, so each component is matched on its own.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["match_points", "point_prefix"]


def _pairs(det: np.ndarray, pts: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from scipy.spatial import cKDTree

    if len(det) == 0 or len(pts) == 0:
        e = np.empty(0, np.intp)
        return e, e, np.empty(0)
    found = cKDTree(det).sparse_distance_matrix(cKDTree(pts), radius, output_type="ndarray")
    return found["i"].astype(np.intp), found["j"].astype(np.intp), found["v"].astype(float)


def _assign(cost: np.ndarray, feasible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Most pairs, then least total distance: infeasible pairs cost more than any matching."""
    from scipy.optimize import linear_sum_assignment

    big = (float(cost[feasible].sum()) if feasible.any() else 0.0) + 1.0
    r, c = linear_sum_assignment(np.where(feasible, cost, big))
    ok = feasible[r, c]
    return r[ok], c[ok]


def match_points(det, pts, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(i_det, i_pts)`` of the matched pairs, closer than ``radius`` (inclusive)."""
    det = np.asarray(det, float).reshape(-1, 2)
    pts = np.asarray(pts, float).reshape(-1, 2)
    i, j, v = _pairs(det, pts, radius)
    if len(i) == 0:
        e = np.empty(0, np.intp)
        return e, e
    ui, ri = np.unique(i, return_inverse=True)
    uj, rj = np.unique(j, return_inverse=True)
    cost = np.zeros((len(ui), len(uj)))
    feasible = np.zeros_like(cost, bool)
    cost[ri, rj] = v
    feasible[ri, rj] = True
    r, c = _assign(cost, feasible)
    return ui[r], uj[c]


def point_prefix(det: np.ndarray, pts: np.ndarray, radius: float,
                 inside: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``(tp, fp, fn)`` for every prefix of ranked detections ``det`` against points ``pts``.

    ``inside`` says which points lie in the scored region: a matched pair
    counts when its point is inside, an unmatched detection when it is inside.

    Returns
    -------
    ndarray of int64, shape (len(det) + 1, 3)
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n, m = len(det), len(pts)
    det_in = inside(det) if n else np.zeros(0, bool)
    pts_in = inside(pts)
    everywhere = bool(det_in.all() and pts_in.all())
    d_tp = np.zeros(n + 1, np.int64)      # change of tp when detection k joins
    d_used = np.zeros(n + 1, np.int64)    # change of matched detections inside the region
    i, j, v = _pairs(det, pts, radius)
    if len(i):
        graph = coo_matrix((np.ones(len(i)), (i, j + n)), shape=(n + m, n + m))
        _, comp = connected_components(graph, directed=False)
        cost_all = {}
        for a, b, dist in zip(i.tolist(), j.tolist(), v.tolist(), strict=True):
            cost_all[a, b] = dist
        members = {}
        for a in np.unique(i).tolist():
            members.setdefault(comp[a], ([], []))[0].append(a)
        for b in np.unique(j).tolist():
            members[comp[b + n]][1].append(b)
        for dets, tps in members.values():
            _component(dets, tps, cost_all, det_in, pts_in, everywhere, d_tp, d_used)
    tp = np.cumsum(d_tp)
    used = np.cumsum(d_used)
    inside_count = np.concatenate([[0], np.cumsum(det_in)])
    out = np.empty((n + 1, 3), np.int64)
    out[:, 0] = tp
    out[:, 1] = inside_count - used
    out[:, 2] = int(pts_in.sum()) - tp
    return out


def _component(dets, tps, cost_all, det_in, pts_in, everywhere, d_tp, d_used) -> None:
    """Match each prefix of one component's detections (ranked) to its points."""
    dets = sorted(dets)
    if len(tps) == 1 and everywhere:  # the first detection matches; later ones cannot
        d_tp[dets[0] + 1] += 1
        d_used[dets[0] + 1] += 1
        return
    cost = np.zeros((len(dets), len(tps)))
    feasible = np.zeros_like(cost, bool)
    col = {b: c for c, b in enumerate(tps)}
    for r, a in enumerate(dets):
        for b in tps:
            if (a, b) in cost_all:
                cost[r, col[b]] = cost_all[a, b]
                feasible[r, col[b]] = True
    prev_tp = prev_used = 0
    tp_in = pts_in[np.asarray(tps)]
    d_in = det_in[np.asarray(dets)]
    for k in range(1, len(dets) + 1):
        r, c = _assign(cost[:k], feasible[:k])
        now_tp, now_used = int(tp_in[c].sum()), int(d_in[r].sum())
        d_tp[dets[k - 1] + 1] += now_tp - prev_tp
        d_used[dets[k - 1] + 1] += now_used - prev_used
        prev_tp, prev_used = now_tp, now_used
        if everywhere and now_tp == len(tps):
            break
