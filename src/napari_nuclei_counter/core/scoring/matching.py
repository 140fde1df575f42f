"""One-to-one matching of detections to clicked points, for every prefix of a ranking.

Used by :mod:`.evaluate` (the last prefix is the score of all detections) and
so by :mod:`.tune` (every threshold is a prefix). A match is a pair closer than
the radius; among all matchings the one with the most pairs, then the smallest
total distance, is taken. Pairs only connect points of one connected
component of the "closer than the radius" graph, so each component is matched
on its own.

Memory grows with the number of candidate pairs, not with the product of the
numbers of detections and points: the pairs are found with a KD-tree
(:meth:`scipy.spatial.cKDTree.sparse_distance_matrix`) and kept sparse. A
component small enough (at most :data:`DENSE_CELLS` detection-point cells) is
matched with :func:`scipy.optimize.linear_sum_assignment` on its dense cost
matrix; a larger one (a dense cloud of points, e.g. a million clicked points)
with :func:`scipy.sparse.csgraph.min_weight_full_bipartite_matching` on the
sparse pairs. The counts of every prefix of a large component are exact too:
when every point counts (no region), ``tp`` is the size of a largest matching
of the prefix, which does not depend on the distances and grows by at most
one per detection, so one augmenting-path search per detection finds it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["DENSE_CELLS", "match_points", "point_prefix"]

#: the largest component (detections x points) matched on a dense cost matrix
DENSE_CELLS = 1 << 20


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


def _assign_sparse(i: np.ndarray, j: np.ndarray, v: np.ndarray, n: int, m: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_assign` for pairs ``(i, j)`` at distances ``v`` of ``n`` rows and ``m`` columns.

    A full matching of an ``(n + m)``-square sparse graph: row ``i`` may also
    take its own "unmatched" column at a cost above any matching, column
    ``j`` its own "unmatched" row, and the two "unmatched" nodes of a pair
    meet at no cost. Every full matching has ``n + m`` edges, so adding one to
    every weight (the solver drops zero weights) does not change the optimum.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import min_weight_full_bipartite_matching

    big = float(v.sum()) + 1.0
    rows = np.concatenate([i, np.arange(n), n + np.arange(m), n + j])
    cols = np.concatenate([j, m + np.arange(n), np.arange(m), m + i])
    weight = np.concatenate([v, np.full(n + m, big), np.zeros(len(i))]) + 1.0
    graph = coo_matrix((weight, (rows, cols)), shape=(n + m, n + m)).tocsr()
    _, col_of_row = min_weight_full_bipartite_matching(graph)
    r = np.flatnonzero(col_of_row[:n] < m)
    return r, col_of_row[r].astype(np.intp)


def _components(i: np.ndarray, j: np.ndarray, n: int, m: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Detections and points (sorted index arrays) of each connected component of the pairs."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(i)), (i, j + n)), shape=(n + m, n + m))
    _, comp = connected_components(graph, directed=False)
    dets, tps = np.unique(i), np.unique(j)
    dc, tc = comp[dets], comp[n + tps]
    d_order, t_order = np.argsort(dc, kind="stable"), np.argsort(tc, kind="stable")
    labels, d_start = np.unique(dc[d_order], return_index=True)
    _, t_start = np.unique(tc[t_order], return_index=True)
    d_groups = np.split(dets[d_order], d_start[1:])
    t_groups = np.split(tps[t_order], t_start[1:])
    return list(zip(d_groups, t_groups, strict=True)) if len(labels) else []


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
    if len(ui) * len(uj) <= DENSE_CELLS:
        cost = np.zeros((len(ui), len(uj)))
        feasible = np.zeros_like(cost, bool)
        cost[ri, rj] = v
        feasible[ri, rj] = True
        r, c = _assign(cost, feasible)
        return ui[r], uj[c]
    r, c = _assign_sparse(ri, rj, v, len(ui), len(uj))
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
    from scipy.sparse import csr_matrix

    n, m = len(det), len(pts)
    det_in = inside(det) if n else np.zeros(0, bool)
    pts_in = inside(pts)
    everywhere = bool(det_in.all() and pts_in.all())
    d_tp = np.zeros(n + 1, np.int64)      # change of tp when detection k joins
    d_used = np.zeros(n + 1, np.int64)    # change of matched detections inside the region
    i, j, v = _pairs(det, pts, radius)
    if len(i):
        # pair k is stored as k + 1, so that a pair at distance 0 is not a missing entry
        pair_of = csr_matrix((np.arange(1, len(i) + 1), (i, j)), shape=(n, m))
        for dets, tps in _components(i, j, n, m):
            _component(dets, tps, pair_of, v, det_in, pts_in, everywhere, d_tp, d_used)
    tp = np.cumsum(d_tp)
    used = np.cumsum(d_used)
    inside_count = np.concatenate([[0], np.cumsum(det_in)])
    out = np.empty((n + 1, 3), np.int64)
    out[:, 0] = tp
    out[:, 1] = inside_count - used
    out[:, 2] = int(pts_in.sum()) - tp
    return out


def _component(dets, tps, pair_of, v, det_in, pts_in, everywhere, d_tp, d_used) -> None:
    """Match each prefix of one component's detections (ranked) to its points."""
    if len(tps) == 1 and everywhere:  # the first detection matches; later ones cannot
        d_tp[dets[0] + 1] += 1
        d_used[dets[0] + 1] += 1
        return
    sub = pair_of[dets][:, tps].tocsr()
    if everywhere and len(dets) * len(tps) > DENSE_CELLS:
        _grow_largest_matching(dets, sub, d_tp, d_used)
        return
    tp_in = pts_in[tps]
    d_in = det_in[dets]
    if len(dets) * len(tps) <= DENSE_CELLS:
        ids = sub.toarray()
        feasible = ids > 0
        cost = np.where(feasible, v[ids - 1], 0.0)

        def assign(k):
            return _assign(cost[:k], feasible[:k])
    else:
        coo = sub.tocoo()

        def assign(k):
            keep = coo.row < k
            return _assign_sparse(coo.row[keep], coo.col[keep], v[coo.data[keep] - 1], k,
                                  len(tps))
    prev_tp = prev_used = 0
    for k in range(1, len(dets) + 1):
        r, c = assign(k)
        now_tp, now_used = int(tp_in[c].sum()), int(d_in[r].sum())
        d_tp[dets[k - 1] + 1] += now_tp - prev_tp
        d_used[dets[k - 1] + 1] += now_used - prev_used
        prev_tp, prev_used = now_tp, now_used
        if everywhere and now_tp == len(tps):
            break


def _grow_largest_matching(dets, sub, d_tp, d_used) -> None:
    """Every prefix's largest matching, one augmenting-path search per detection (Kuhn).

    Adding a detection to a largest matching of the prefix before it gives a
    largest matching of the new prefix after at most one augmentation.
    """
    indptr, cols = sub.indptr, sub.indices
    owner = np.full(sub.shape[1], -1, np.intp)  # the row matched to each point
    for k in range(len(dets)):
        # iterative depth-first search for an alternating path from row k to a free point
        seen = set()
        path = []  # (row, position in its neighbours)
        stack = [(k, indptr[k])]
        found = False
        while stack:
            row, pos = stack[-1]
            if pos >= indptr[row + 1]:
                stack.pop()
                if path:
                    path.pop()
                continue
            stack[-1] = (row, pos + 1)
            col = int(cols[pos])
            if col in seen:
                continue
            seen.add(col)
            path.append((row, col))
            if owner[col] < 0:
                found = True
                break
            stack.append((int(owner[col]), indptr[owner[col]]))
        if found:
            for row, col in path:
                owner[col] = row
            d_tp[dets[k] + 1] += 1
            d_used[dets[k] + 1] += 1
