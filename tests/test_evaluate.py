"""Scoring against annotated nuclei: exact counts on cases worked out by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_nuclei_counter.core.detect.detection import reference_detect
from napari_nuclei_counter.core.io.images import read_image
from napari_nuclei_counter.core.params import DetectionParams
from napari_nuclei_counter.core.scoring.evaluate import (
    Score,
    TouchingNucleiWarning,
    Truth,
    classify,
    evaluate_image,
    labels_from_mask,
    prefix_counts,
    read_truth,
    score,
    total,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def three_nuclei():
    lab = np.zeros((40, 40), np.uint16)
    lab[2:8, 2:8] = 1        # centroid (4.5, 4.5)
    lab[10:16, 20:26] = 7    # ids need not be consecutive
    lab[30:36, 30:36] = 3
    return lab


def counts(s: Score):
    return (s.n_true, s.n_detected, s.tp, s.fp, s.fn)


def test_labels_known_tp_fp_fn_and_a_nucleus_hit_twice():
    det = [[3, 3], [6, 6], [12, 22], [20, 5]]  # nucleus 1 twice, nucleus 7 once, background once
    s = score(det, Truth(labels=three_nuclei()), shape=(40, 40))
    assert counts(s) == (3, 4, 2, 2, 1)
    assert s.precision == 0.5 and s.recall == 2 / 3 and s.f1 == 4 / 7 and s.count_error == 1


def test_nothing_to_find_and_nothing_found_is_perfect():
    s = score(np.empty((0, 2)), Truth(labels=three_nuclei()), shape=(40, 40),
              region=(18, 28, 0, 10))
    assert counts(s) == (0, 0, 0, 0, 0)
    assert s.f1 == 1.0 and s.precision == 1.0 and s.recall == 1.0
    missed = score(np.empty((0, 2)), Truth(labels=three_nuclei()), shape=(40, 40))
    assert counts(missed) == (3, 0, 0, 0, 3) and missed.f1 == 0.0 and missed.recall == 0.0


def test_totals_are_micro_averaged():
    t = total([Score(10, 8, 8, 0, 2), Score(2, 6, 1, 5, 1)])
    assert counts(t) == (12, 14, 9, 5, 3)
    assert t.f1 == pytest.approx(18 / 26)  # not the mean of the two images' F1


def test_colour_mask_one_colour_per_nucleus():
    rgb = np.zeros((20, 20, 3), np.uint8)
    rgb[1:5, 1:5] = (255, 0, 0)
    rgb[10:15, 10:15] = (0, 128, 255)
    rgb[16:19, 1:4] = (255, 0, 0)  # the same colour again: still the red nucleus
    lab = labels_from_mask(rgb)
    assert lab.max() == 2 and (lab[1:5, 1:5] == lab[17, 2]).all() and lab[0, 0] == 0
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[1:5, 1:5] = (10, 20, 30, 255)
    rgba[10:15, 10:15] = (40, 50, 60, 255)
    rgba[16:19, 16:19] = (70, 80, 90, 0)  # transparent: background whatever its colour
    lab = labels_from_mask(rgba)
    assert len(np.unique(lab)) == 3 and lab[17, 17] == 0


def test_binary_mask_split_by_connected_components_with_a_warning():
    m = np.zeros((30, 30), np.uint8)
    m[2:6, 2:6] = 255
    m[10:14, 10:14] = 255
    m[10:14, 14:18] = 255  # touching the previous one: merged
    with pytest.warns(TouchingNucleiWarning, match="2 nuclei"):
        lab = labels_from_mask(m)
    assert lab.max() == 2
    with pytest.warns(TouchingNucleiWarning):
        assert labels_from_mask(m > 0).max() == 2


def test_point_radius_is_inclusive():
    truth = Truth(points=[[10, 10], [30, 30]])
    det = [[10, 13], [30, 36]]  # 3 and 6 pixels away
    assert counts(score(det, truth, match_radius=5)) == (2, 2, 1, 1, 1)
    assert counts(score(det, truth, match_radius=6)) == (2, 2, 2, 0, 0)


def test_points_are_matched_one_to_one_optimally():
    # nearest-first would give d1 to B and leave A unmatched; the best matching pairs both
    truth = Truth(points=[[20, 20], [20, 26]])   # A, B
    det = [[20, 24], [20, 29]]                   # d1: 4 from A, 2 from B; d2: 3 from B, 9 from A
    assert counts(score(det, truth, match_radius=4.5)) == (2, 2, 2, 0, 0)
    # two detections at one point: one match
    assert counts(score([[20, 20], [20, 21]], Truth(points=[[20, 20]]), match_radius=3)) == \
        (1, 2, 1, 1, 0)


def test_region_limits_the_score():
    lab = three_nuclei()
    # rectangle holding nucleus 1 only; a detection outside it in background is ignored,
    # one inside in background is a false positive, one in nucleus 7 (outside) is ignored
    det = [[4, 4], [9, 9], [20, 5], [12, 22]]
    s = score(det, Truth(labels=lab), shape=(40, 40), region=(0, 10, 0, 10))
    assert counts(s) == (1, 2, 1, 1, 0)
    mask = np.zeros((40, 40), bool)
    mask[:20, 15:] = True  # nucleus 7 only
    s = score(det, Truth(labels=lab), shape=(40, 40), region=mask)
    assert counts(s) == (1, 1, 1, 0, 0)
    # points: a clicked point outside the region, and its detection, do not count
    pts = Truth(points=[[5, 5], [25, 25]])
    s = score([[5, 6], [25, 26], [8, 8]], pts, match_radius=2, region=(0, 10, 0, 10))
    assert counts(s) == (1, 2, 1, 1, 0)


def test_scale_and_translate_of_the_layers():
    # image drawn at scale 2 with translate (100, 0); points clicked in world coordinates
    truth = Truth(points=[[120, 20], [160, 60]])
    det = [[10, 10], [30, 30]]  # world (120, 20) and (160, 60)
    s = score(det, truth, match_radius=1, scale=(2, 2), translate=(100, 0))
    assert counts(s) == (2, 2, 2, 0, 0)
    assert score(det, truth, match_radius=1).tp == 0  # without the image's transform
    # labels at half resolution (scale 2) over a full-resolution image
    lab = np.zeros((20, 20), int)
    lab[5, 5] = 1  # covers image pixels (10..11, 10..11)
    s = score([[10, 10], [2, 2]], Truth(labels=lab, scale=(2, 2)), shape=(40, 40))
    assert counts(s) == (1, 2, 1, 1, 0)


def test_prefix_counts_score_every_prefix():
    det = [[3, 3], [6, 6], [12, 22], [20, 5]]
    rows = prefix_counts(det, Truth(labels=three_nuclei()), shape=(40, 40))
    assert rows.tolist() == [[0, 0, 3], [1, 0, 2], [1, 1, 2], [2, 1, 1], [2, 2, 1]]


def test_bad_truth_gives_clear_errors(tmp_path):
    with pytest.raises(ValueError, match=r"30x30 but the image is 40x40"):
        score([[1, 1]], Truth(labels=np.ones((30, 30), int)), shape=(40, 40))
    with pytest.raises(ValueError, match="no nuclei"):
        Truth(labels=np.zeros((10, 10), int))
    with pytest.raises(ValueError, match="no nuclei"):
        Truth(points=np.empty((0, 2)))
    bad = tmp_path / "bad_mask.tif"
    bad.write_bytes(b"not a tiff at all")
    with pytest.raises(ValueError, match="bad_mask.tif"):
        read_truth(bad)
    empty = tmp_path / "e.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match="e.csv"):
        read_truth(empty)
    cols = tmp_path / "c.csv"
    cols.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="y,x"):
        read_truth(cols)
    with pytest.raises(FileNotFoundError):
        read_truth(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="match_radius"):
        score([[1, 1]], Truth(points=[[1, 1]]))


def test_point_csvs_and_mask_files(tmp_path):
    (tmp_path / "a.csv").write_text("index,axis-0,axis-1\n0,10.5,20\n1,30,40\n")
    (tmp_path / "b.csv").write_text("x,y\n20,10.5\n40,30\n")
    a, b = read_truth(tmp_path / "a.csv"), read_truth(tmp_path / "b.csv")
    assert a.points.tolist() == b.points.tolist() == [[10.5, 20.0], [30.0, 40.0]]
    from PIL import Image

    rgb = np.zeros((20, 20, 3), np.uint8)
    rgb[1:5, 1:5] = (200, 10, 10)
    rgb[8:12, 8:12] = (10, 200, 10)
    Image.fromarray(rgb).save(tmp_path / "m.PNG")
    assert read_truth(tmp_path / "m.PNG").labels.max() == 2
    tifffile.imwrite(tmp_path / "l.tif", three_nuclei())
    assert sorted(np.unique(read_truth(tmp_path / "l.tif").labels)) == [0, 1, 3, 7]


needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="no ../shared/data")


def _independent_tp(coords, lab):
    hit = lab[coords[:, 0], coords[:, 1]]
    return len(np.unique(hit[hit > 0]))


@needs_data
def test_dsb2018_mask_through_the_python_api():
    img = read_image(DATA / "dsb2018" / "img2d.tif")
    truth = read_truth(DATA / "dsb2018" / "mask2d.tif")
    params = DetectionParams(sigma=4.0, min_distance=8, threshold_abs=30.0)
    s, coords = evaluate_image(img, truth, params)
    ref = reference_detect(img, params).coords
    np.testing.assert_array_equal(coords, ref)
    assert s.n_true == 125  # the README's count of the shipped mask
    tp = _independent_tp(ref, truth.labels)
    assert (s.tp, s.fp, s.fn) == (tp, len(ref) - tp, 125 - tp)
    assert s.f1 > 0.6


def test_classify_marks_matched_false_and_missed():
    det = [[3, 3], [6, 6], [12, 22], [20, 5]]
    matched, missed = classify(det, Truth(labels=three_nuclei()))
    assert matched.tolist() == [True, False, True, False]
    assert missed.tolist() == [[32.5, 32.5]]  # nucleus 3, never hit
    truth = Truth(points=[[20, 20], [20, 26], [5, 5]])
    matched, missed = classify([[20, 24], [20, 29], [30, 30]], truth, match_radius=4.5)
    assert matched.tolist() == [True, True, False] and missed.tolist() == [[5.0, 5.0]]
