"""Per-image automatic thresholds (otsu, li, triangle) on the smoothed image."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
import tifffile
from skimage import filters

from napari_nuclei_counter.core.detect.detection import detect, reference_detect
from napari_nuclei_counter.core.params import DetectionParams
from napari_nuclei_counter.core.run.pipeline import Run
from napari_nuclei_counter.core.sample import make_nuclei_image


def smoothed_reference(img, sigma):
    return filters.gaussian(img.astype(np.float64), sigma, mode="nearest", truncate=4.0,
                            preserve_range=True, channel_axis=None)


def test_fixed_parameters_keep_their_json_and_digest():
    p = DetectionParams()
    text = '{"min_distance": 6, "sigma": 4.0, "threshold_abs": 1000.0}'
    assert p.to_json() == text
    assert p.digest() == hashlib.sha256(text.encode()).hexdigest()[:16]
    auto = DetectionParams(threshold_method="Li")
    assert auto.threshold_method == "li" and auto.to_dict()["threshold_method"] == "li"
    assert DetectionParams.from_json(auto.to_json()) == auto and auto.digest() != p.digest()
    with pytest.raises(ValueError, match="threshold_method"):
        DetectionParams(threshold_method="mean")


@pytest.mark.parametrize("method", ["otsu", "li", "triangle"])
def test_auto_threshold_detection_equals_the_reference_at_that_threshold(method):
    img, _ = make_nuclei_image(5, 60, (300, 320), dtype=np.uint8)
    t = float(getattr(filters, f"threshold_{method}")(smoothed_reference(img, 3.0)))
    expected = reference_detect(img, DetectionParams(3.0, 5, t)).coords
    got = detect(img, DetectionParams(3.0, 5, 0.0, threshold_method=method)).coords
    np.testing.assert_array_equal(got, expected)


def test_the_threshold_used_is_recorded_per_image(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    imgs = []
    for k, gain in enumerate((1.0, 3.0)):  # two exposures
        img, _ = make_nuclei_image(7 + k, 50, (256, 256))
        img = np.clip(img.astype(float) * gain, 0, 65535).astype(np.uint16)
        tifffile.imwrite(folder / f"im{k}.tif", img)
        imgs.append(img)
    params = DetectionParams(3.0, 5, 1000.0, threshold_method="otsu")
    run = Run(folder, params, workers=0, pattern="*.tif", out=tmp_path / "out")
    results = sorted(run, key=lambda r: r.index)
    table = pd.read_csv(tmp_path / "out" / "images.csv")
    for k, img in enumerate(imgs):
        t = float(filters.threshold_otsu(smoothed_reference(img, 3.0)))
        assert results[k].threshold == pytest.approx(t, rel=1e-12)
        assert table["threshold"][k] == pytest.approx(t, rel=1e-12)
        assert results[k].count == len(reference_detect(img, DetectionParams(3.0, 5, t)).coords)
    assert table["threshold"][1] > 2 * table["threshold"][0]
