import numpy as np

from napari_nuclei_counter import DetectionParams, detect
from napari_nuclei_counter.core.detect.preview import PreviewCache
from napari_nuclei_counter.core.sample import make_nuclei_image


def test_threshold_changes_reuse_the_blur_and_stay_exact():
    img, _ = make_nuclei_image(8, n_nuclei=120, shape=(400, 480))
    cache = PreviewCache()
    counts = []
    for t in (500.0, 1000.0, 3000.0, 200.0):
        p = DetectionParams(4.0, 6, t)
        d = cache.detect(img, p, key="a")
        np.testing.assert_array_equal(d.coords, detect(img, p, engine="reference").coords)
        counts.append(d.count)
    assert cache.recomputed == 1
    assert counts[0] > counts[2] and counts[3] >= counts[0]
    cache.detect(img, DetectionParams(3.0, 6, 1000.0), key="a")  # sigma change: recompute
    cache.detect(img, DetectionParams(3.0, 4, 1000.0), key="a")  # min_distance change
    cache.detect(img[:200], DetectionParams(3.0, 4, 1000.0), key="b")  # another image
    assert cache.recomputed == 4


def test_preview_cache_resolves_an_automatic_threshold():
    from napari_nuclei_counter.core.detect.thresholds import resolve_threshold

    img, _ = make_nuclei_image(3, n_nuclei=60, shape=(256, 300))
    params = DetectionParams(3.0, 5, 0.0, threshold_method="otsu")
    fixed = resolve_threshold(img, params)
    assert fixed.threshold_method is None and fixed.threshold_abs > 0
    got = PreviewCache().detect(img, params)
    np.testing.assert_array_equal(got.coords, detect(img, fixed, engine="reference").coords)
