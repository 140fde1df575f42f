"""Parameters from the image alone: the diameter estimate and its quality on real images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_nuclei_counter.core.io.images import read_image
from napari_nuclei_counter.core.scoring.estimate import (
    auto_threshold,
    estimate_diameter,
    estimate_params,
    smoothed,
)
from napari_nuclei_counter.core.scoring.evaluate import evaluate_image, read_truth, total

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def disk_image(radius: float, n_side: int = 6, spacing: int = 50) -> np.ndarray:
    size = n_side * spacing
    yy, xx = np.mgrid[:size, :size]
    img = np.full((size, size), 20.0)
    for i in range(n_side):
        for j in range(n_side):
            cy, cx = spacing * i + spacing // 2, spacing * j + spacing // 2
            img[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = 200.0
    rng = np.random.default_rng(0)
    return (img + rng.normal(0, 3, img.shape)).clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize("radius", [5, 9, 14])
@pytest.mark.parametrize("method", ["otsu", "log"])
def test_diameter_of_disks(radius, method):
    d = estimate_diameter(disk_image(radius), method)
    assert d == pytest.approx(2 * radius, rel=0.2 if method == "log" else 0.1)


def test_suggested_parameters_follow_the_diameter():
    img = disk_image(10)
    seen = []
    est = estimate_params(img, progress=lambda d, t: seen.append((d, t)))
    assert est.label == "suggested" and est.method == "otsu" and est.threshold_method == "li"
    assert est.params.sigma == pytest.approx(est.diameter / 5, abs=0.01)
    assert est.params.min_distance == round(est.diameter / 4)
    assert 20 < est.params.threshold_abs < 200  # between background and nuclei
    assert seen[-1] == (2, 2)
    with pytest.raises(InterruptedError):
        estimate_params([img, img], cancel=lambda: True)
    with pytest.raises(ValueError, match="no images"):
        estimate_params([])


def test_auto_thresholds():
    img = disk_image(8).astype(float)
    g = smoothed(img, 2.0)
    for m in ("otsu", "li", "triangle"):
        assert 20 < auto_threshold(g, m) < 200
    assert auto_threshold(np.full((10, 10), 7.0), "otsu") == 7.0
    with pytest.raises(ValueError, match="otsu, li, triangle"):
        auto_threshold(g, "mean")
    assert estimate_diameter(np.zeros((50, 50), np.uint8)) == 12.0  # nothing visible


def _truth_diameter(labels) -> float:
    areas = np.bincount(labels.ravel())[1:]
    return float(2 * np.sqrt(np.median(areas[areas > 0]) / np.pi))


def _masked_pairs():
    root = DATA / "bbbc007" / "BBBC007_v1_images"
    pairs = [(p.with_name(p.name.replace("_labels", "")), p) for p in sorted(root.glob("*/*_labels.tif"))]
    return [(a, b) for a, b in pairs if a.exists()]


needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="no ../shared/data")


@needs_data
def test_estimate_on_bbbc007_and_dsb2018():
    """Measured here: diameter within 5 % of the masks' (median), F1 0.923 and 0.853."""
    bbbc = [(read_image(a), read_truth(b)) for a, b in _masked_pairs()]
    assert len(bbbc) == 14
    dsb = [(read_image(DATA / "dsb2018" / "img2d.tif"),
            read_truth(DATA / "dsb2018" / "mask2d.tif"))]
    for images, min_f1 in ((bbbc, 0.90), (dsb, 0.82)):
        errors, scores = [], []
        for img, truth in images:
            est = estimate_params(img)
            errors.append(est.diameter / _truth_diameter(truth.labels) - 1)
            scores.append(evaluate_image(img, truth, est.params)[0])
        assert np.median(np.abs(errors)) < 0.06
        assert total(scores).f1 >= min_f1
