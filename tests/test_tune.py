"""Parameter search: every threshold from one detection, and the search finds good parameters."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_bipartite_matching
from scipy.spatial.distance import cdist

from napari_nuclei_counter.core.detect.detection import reference_detect
from napari_nuclei_counter.core.params import DetectionParams
from napari_nuclei_counter.core.sample import make_nuclei_image
from napari_nuclei_counter.core.scoring.evaluate import Truth
from napari_nuclei_counter.core.scoring.tune import (
    _nice_between,
    threshold_sweep,
    tune,
    write_tuning,
)


def disks(centres, shape, radius=6):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    lab = np.zeros(shape, np.int32)
    for k, (y, x) in enumerate(centres):
        lab[(yy - y) ** 2 + (xx - x) ** 2 <= radius**2] = k + 1
    return lab


def brute_tp_points(det, pts, radius):
    """Most one-to-one pairs closer than ``radius``: a maximum bipartite matching."""
    if len(det) == 0:
        return 0
    adj = csr_matrix(cdist(det, pts) <= radius)
    return int((maximum_bipartite_matching(adj, perm_type="column") >= 0).sum())


def brute_tp_labels(det, lab):
    hit = lab[det[:, 0], det[:, 1]]
    return len(np.unique(hit[hit > 0]))


@pytest.fixture(scope="module")
def small():
    img, centres = make_nuclei_image(3, 45, (256, 256))
    return img, centres


def test_label_sweep_equals_separate_reference_detections(small):
    img, centres = small
    lab = disks(centres, img.shape)
    n_true = int(lab.max())
    sw = threshold_sweep([img], [Truth(labels=lab)], 3.0, 5)
    assert len(sw.thresholds) > 20 and np.all(np.diff(sw.thresholds) < 0)
    picks = sorted(set(np.linspace(0, len(sw.thresholds) - 1, 25).astype(int).tolist()))
    for j in picks:
        ref = reference_detect(img, DetectionParams(3.0, 5, float(sw.thresholds[j]))).coords
        tp = brute_tp_labels(ref, lab)
        assert sw.counts[j].tolist() == [tp, len(ref) - tp, n_true - tp], j


def test_point_sweep_equals_separate_reference_detections(small):
    img, centres = small
    sw = threshold_sweep([img, img[::-1]], [Truth(points=centres),
                                           Truth(points=[(255 - y, x) for y, x in centres])],
                         2.5, 4, match_radius=5.0)
    picks = sorted(set(np.linspace(0, len(sw.thresholds) - 1, 20).astype(int).tolist()))
    for j in picks:
        t = float(sw.thresholds[j])
        expected = np.zeros(3, int)
        for im, pts in ((img, centres), (img[::-1], np.c_[255 - centres[:, 0], centres[:, 1]])):
            ref = reference_detect(im, DetectionParams(2.5, 4, t)).coords
            tp = brute_tp_points(ref, pts, 5.0)
            expected += [tp, len(ref) - tp, len(pts) - tp]
        assert sw.counts[j].tolist() == expected.tolist(), j


@pytest.fixture(scope="module")
def generated():
    imgs, cents = [], []
    for seed in (10, 11):
        img, c = make_nuclei_image(seed, 40, (512, 512))
        imgs.append(img)
        cents.append(c)
    return imgs, cents


@pytest.mark.parametrize("kind", ["points", "labels"])
def test_search_reaches_f1_095_on_generated_images(generated, kind):
    imgs, cents = generated
    truths = [Truth(points=c) if kind == "points" else Truth(labels=disks(c, im.shape))
              for im, c in zip(imgs, cents, strict=True)]
    seen = []
    res = tune(imgs, truths, workers=2, progress=lambda done, total: seen.append((done, total)))
    assert res.score.f1 >= 0.95
    assert seen and seen[-1][0] == len(res.table) and len(res.table) >= 16
    assert seen[-1][1] == len(res.table)  # the total announced is the total run
    assert [d for d, _ in seen] == list(range(1, len(res.table) + 1))
    # the reference detection with the best parameters, scored independently
    tp = fp = fn = 0
    for im, c, truth in zip(imgs, cents, truths, strict=True):
        ref = reference_detect(im, res.best).coords
        k = brute_tp_points(ref, c, 10.0) if kind == "points" else \
            brute_tp_labels(ref, truth.labels)
        tp, fp, fn = tp + k, fp + len(ref) - k, fn + len(c) - k
    assert 2 * tp / (2 * tp + fp + fn) >= 0.95
    defaults = DetectionParams()  # 1000 counts on 1500-6000 bright nuclei: fine here too
    assert res.best != defaults or res.score.f1 >= 0.95


def test_preset_is_the_docks_format_and_tuning_csv_lists_every_set(generated, tmp_path):
    imgs, cents = generated
    res = tune(imgs[:1], [Truth(points=cents[0])], sigmas=[2, 3], min_distances=[4, 6],
               refine=False, match_radius=6)
    preset, csv = write_tuning(res, tmp_path / "out")
    data = json.loads(open(preset).read())
    assert set(data) == {"sigma", "min_distance", "threshold_abs"}
    assert DetectionParams.from_json(open(preset).read()) == res.best
    table = pd.read_csv(csv)
    assert len(table) == 4 and table["rank"].tolist() == [1, 2, 3, 4]
    assert {(r.sigma, r.min_distance) for r in table.itertuples()} == \
        {(2.0, 4), (2.0, 6), (3.0, 4), (3.0, 6)}
    assert table["f1"].is_monotonic_decreasing
    assert len(res.runners_up) == 3


def test_cancel_keeps_what_was_tried(generated):
    imgs, cents = generated
    calls = []
    res = tune(imgs[:1], [Truth(points=cents[0])], sigmas=[2, 3, 4], min_distances=[4, 6],
               match_radius=6, progress=lambda d, t: calls.append(d),
               cancel=lambda: len(calls) >= 2)
    assert res.cancelled and len(res.table) == 2
    with pytest.raises(InterruptedError):
        tune(imgs[:1], [Truth(points=cents[0])], match_radius=6, cancel=lambda: True)
    with pytest.raises(ValueError, match="one truth per image"):
        tune(imgs, [Truth(points=cents[0])])


def test_thresholds_are_round_numbers_where_possible():
    assert _nice_between(17.3, 29.9) == 20
    assert _nice_between(0.0012, 0.0013) == 0.00125
    assert 1.0000001 < _nice_between(1.0000001, 1.0000002) < 1.0000002
