"""The fast engine against the reference (the README's Exactness section), image by image."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from skimage.feature import peak_local_max
from skimage.filters import gaussian

from napari_nuclei_counter import DetectionParams, detect, detect_nuclei, reference_detect
from napari_nuclei_counter.core.detect import _fast
from napari_nuclei_counter.core.sample import make_nuclei_image


def oracle(image, sigma=4.0, min_distance=6, threshold_abs=1000.0):
    """The contract, spelled out exactly as in the README's Exactness section."""
    g = gaussian(np.asarray(image).astype(np.float64), sigma, mode="nearest", truncate=4.0)
    c = peak_local_max(g, min_distance=min_distance, threshold_abs=threshold_abs,
                       exclude_border=min_distance, p_norm=np.inf)
    return np.asarray(c).reshape(-1, 2), g


def assert_same(image, sigma=4.0, min_distance=6, threshold_abs=1000.0):
    expected, g = oracle(image, sigma, min_distance, threshold_abs)
    got = detect(image, DetectionParams(sigma, min_distance, threshold_abs))
    assert got.coords.dtype == np.intp and got.coords.shape == (len(expected), 2)
    np.testing.assert_array_equal(got.coords, expected)
    if len(expected):
        ref = g[expected[:, 0], expected[:, 1]]
        # the reference's own operations in its order: equal to the last bit on
        # x86-64; 1e-12 leaves room only for a compiler that fuses multiply-adds
        np.testing.assert_allclose(got.intensities, ref, rtol=1e-12, atol=1e-300)
    return expected


@pytest.mark.parametrize("seed", range(4))
def test_bbbc021_sized_generated_images(seed):
    img, _ = make_nuclei_image(seed, n_nuclei=[30, 150, 300, 600][seed])
    assert img.shape == (1024, 1280) and img.dtype == np.uint16
    found = assert_same(img)
    assert len(found) > 10


def test_public_function_signature_and_empty_result():
    img, _ = make_nuclei_image(1, n_nuclei=40, shape=(200, 240))
    coords = detect_nuclei(img, sigma=4, min_distance=6, threshold_abs=1000)
    np.testing.assert_array_equal(coords, oracle(img)[0])
    none = detect_nuclei(np.zeros((50, 60), np.uint16))
    assert none.shape == (0, 2) and none.dtype == np.intp


def test_reference_engine_is_the_oracle():
    img, _ = make_nuclei_image(5, n_nuclei=60, shape=(300, 300))
    ref = detect(img, engine="reference")
    np.testing.assert_array_equal(ref.coords, oracle(img)[0])
    with pytest.raises(ValueError, match="engine"):
        detect(img, engine="gpu-someday")


def test_constant_image_has_no_peaks():
    for value in (0, 5000, 65535):
        img = np.full((120, 140), value, np.uint16)
        assert assert_same(img, threshold_abs=-1.0).shape == (0, 2)


def test_flat_plateaus_and_exact_ties():
    img = np.full((160, 200), 100, np.uint16)
    img[20:60, 30:90] = 3000  # a wide plateau: many equal maxima after smoothing
    img[90:140, 120:170] = 3000  # the same plateau again: exact ties between them
    img[100:104, 20:24] = 5000
    img[40, 150] = 9000  # a single hot pixel
    img[10:15, 180:185] = 3000  # near the border
    found = assert_same(img, sigma=2.0, min_distance=5, threshold_abs=150.0)
    assert len(found) > 10  # plateaus yield several spaced peaks


def test_identical_blobs_tie_in_raster_order():
    img = np.zeros((100, 100), np.float32)
    for r, c in [(30, 30), (30, 70), (70, 30), (70, 70)]:
        img[r - 2 : r + 3, c - 2 : c + 3] = 1.0
    found = assert_same(img, sigma=1.5, min_distance=4, threshold_abs=0.1)
    np.testing.assert_array_equal(found, [[30, 30], [30, 70], [70, 30], [70, 70]])


def test_threshold_exactly_on_a_peak_value_is_excluded():
    img, _ = make_nuclei_image(2, n_nuclei=20, shape=(256, 256))
    expected, g = oracle(img, threshold_abs=1000.0)
    top = g[expected[0, 0], expected[0, 1]]
    third = g[expected[2, 0], expected[2, 1]]
    for t in (third, np.nextafter(third, -np.inf), np.nextafter(third, np.inf), top):
        assert_same(img, threshold_abs=float(t))
    assert len(oracle(img, threshold_abs=float(third))[0]) == 2  # strict: third excluded


def test_border_peaks_excluded_within_min_distance():
    img = np.zeros((64, 64), np.float64)
    img[3, 30] = 1000  # closer than d to the top border: excluded
    img[6, 10] = 1000  # exactly d from the border: kept
    img[40, 57] = 1000  # closer than d to the right border: excluded
    found = assert_same(img, sigma=1.0, min_distance=6, threshold_abs=1.0)
    assert [6, 10] in found.tolist() and [3, 30] not in found.tolist()


@pytest.mark.parametrize("shape", [(5, 7), (20, 31), (33, 33), (40, 20)])
def test_images_smaller_than_the_kernel(shape):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 1000, shape).astype(np.uint16)
    assert_same(img, sigma=4.0, min_distance=2, threshold_abs=10.0)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.int32, np.float32,
                                   np.float64, bool])
def test_dtypes(dtype):
    img, _ = make_nuclei_image(7, n_nuclei=50, shape=(300, 320))
    if dtype is np.uint8:
        img, t = (img // 256).astype(np.uint8), 6.0
    elif dtype is bool:
        img, t = img > 2000, 0.2
    elif dtype is np.int16:
        img, t = (img.astype(np.int32) - 3000).astype(np.int16), -2000.0  # negative values
    elif dtype in (np.float32, np.float64):
        img, t = (img / 65535.0).astype(dtype), 0.015
    else:
        img, t = img.astype(dtype), 1000.0
    found = assert_same(img, sigma=3.0, min_distance=5, threshold_abs=t)
    assert len(found) > 5


@pytest.mark.parametrize("sigma, d", [(1.0, 1), (2.0, 3), (4.0, 6), (7.5, 10), (40.0, 12)])
def test_sigma_and_min_distance_range(sigma, d):
    img, _ = make_nuclei_image(11, n_nuclei=120, shape=(400, 500))
    assert_same(img, sigma=sigma, min_distance=d, threshold_abs=400.0)


def test_real_images(real_image_paths):
    n = 0
    for path in real_image_paths:
        img = tifffile.imread(path)
        if img.ndim == 3:
            img = img[..., 0]
        for sigma, d, t in [(3.0, 6, 20.0), (4.0, 8, 40.0), (2.0, 4, 10.0)]:
            n += len(assert_same(img, sigma, d, t))
    assert n > 1000


@pytest.mark.slow
def test_every_real_family_at_thresholds_0_low_and_typical(real_image_paths, mnfinder_image_paths):
    """Widefield 16-bit, confocal 8-bit projections with flat backgrounds, BBBC007, DSB2018,
    ExampleFly: parameters estimated from each image, thresholds 0, a quarter and all of the
    estimated (Li) one."""
    from napari_nuclei_counter.core.scoring.estimate import estimate_params

    total = 0
    for path in real_image_paths + mnfinder_image_paths:
        img = tifffile.imread(path)
        img = img[..., 0] if img.ndim == 3 else img
        est = estimate_params(img).params
        for t in (0.0, est.threshold_abs / 4, est.threshold_abs):
            total += len(assert_same(img, est.sigma, est.min_distance, t))
    assert total > 10_000


def plateau_image(seed: int = 0) -> np.ndarray:
    """8-bit: large flat regions at a few grey levels, blobs, a saturated blob, noise-free."""
    rng = np.random.default_rng(seed)
    img = np.full((300, 360), 1, np.uint8)
    img[:, 200:] = 3
    img[150:, :120] = 0
    for _ in range(25):
        y, x, r = rng.integers(20, 280), rng.integers(20, 340), rng.integers(4, 12)
        yy, xx = np.ogrid[:300, :360]
        img[(yy - y) ** 2 + (xx - x) ** 2 <= r * r] = rng.choice([40, 90, 160])
    img[60:100, 60:110] = 255  # saturated
    img[200:240, 250:330] = 90  # a wide plateau of a nucleus' value
    return img


@pytest.mark.parametrize("sigma, d", [(1.0, 2), (2.0, 4), (4.0, 6), (7.0, 12)])
@pytest.mark.parametrize("t", [0.0, 0.5, 1.0, 2.0, 3.5, 50.0, 254.0])
def test_plateau_heavy_8bit_image(sigma, d, t):
    assert_same(plateau_image(), sigma, d, t)


def test_preview_cache_matches_reference_for_every_threshold():
    img, _ = make_nuclei_image(4, n_nuclei=200, shape=(512, 640))
    cands = _fast.prepare(img, 4.0, 6)  # floor -inf: every candidate
    for t in (-5.0, 0.0, 250.0, 600.0, 1000.0, 2500.0, 7000.0):
        coords, values = cands.select(t)
        expected, g = oracle(img, 4.0, 6, t)
        np.testing.assert_array_equal(coords, expected)
        np.testing.assert_allclose(values, g[expected[:, 0], expected[:, 1]], rtol=1e-12, atol=0)
    high = _fast.prepare(img, 4.0, 6, floor=1000.0)
    with pytest.raises(ValueError, match="floor"):
        high.select(999.0)


@pytest.mark.parametrize("sigma", [0.1, 1.0, 2.5, 4.0, 10.0])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_intensities_at_any_pixel_are_the_reference_smoothing(sigma, dtype):
    """Every pixel asked for, edges and corners included, gets scikit-image's value."""
    img, _ = make_nuclei_image(7, n_nuclei=80, shape=(300, 340))
    img = (img // 257).astype(dtype) if dtype == np.uint8 else img.astype(dtype)
    g = oracle(img, sigma)[1]
    rng = np.random.default_rng(3)
    rows = np.concatenate([[0, 0, 299, 299, 5], rng.integers(0, 300, 2000)])
    cols = np.concatenate([[0, 339, 0, 339, 338], rng.integers(0, 340, 2000)])
    got = _fast._Tiers(img, sigma).reference_values(rows, cols)
    np.testing.assert_allclose(got, g[rows, cols], rtol=1e-12, atol=0)



@pytest.mark.parametrize("sigma", [1.0, 4.0, 10.0])
@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_exact_values_by_row_segment_and_by_patch(sigma, dtype):
    """Clustered pixels (a block reaching two edges, asked for twice) go by row segment,
    scattered ones by patch; both get scikit-image's values, in the order asked."""
    img = make_nuclei_image(5, n_nuclei=60, shape=(260, 300))[0].astype(dtype)
    g = oracle(img, sigma)[1]
    tiers = _fast._Tiers(img, sigma)
    yy, xx = np.mgrid[200:260, 0:90]
    block_r = np.concatenate([yy.ravel(), yy.ravel()[::-7]])
    block_c = np.concatenate([xx.ravel(), xx.ravel()[::-7]])
    rng = np.random.default_rng(8)
    scattered_r, scattered_c = rng.integers(0, 260, 40), rng.integers(0, 300, 40)
    for rows, cols, by_segment in ((block_r, block_c, True), (scattered_r, scattered_c, False)):
        plan = tiers.exact_points(rows, cols)
        assert plan.by_segment is by_segment
        np.testing.assert_allclose(plan.values(), g[rows, cols], rtol=1e-12, atol=0)


def test_many_duplicate_pixels_are_found_by_marking():
    """Above the sorting limit, pixels asked for many times over are computed once each."""
    img = make_nuclei_image(2, n_nuclei=40, shape=(200, 220))[0]
    g = oracle(img, 2.0)[1]
    rng = np.random.default_rng(4)
    rows = rng.integers(50, 90, _fast._SORT_LIMIT + 1000)
    cols = rng.integers(60, 100, len(rows))
    plan = _fast._Tiers(img, 2.0).exact_points(rows, cols)
    assert len(plan.y) == len(np.unique(rows * 220 + cols))
    np.testing.assert_allclose(plan.values(), g[rows, cols], rtol=1e-12, atol=0)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32,
                                   np.float64])
def test_intensities_at_the_extremes_of_each_dtype(dtype):
    """Pixels at their dtype's extremes, side by side: sums of two of them must not wrap."""
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else np.finfo(np.float32)
    rng = np.random.default_rng(11)
    img = rng.choice(np.array([info.min, info.max, 0, 1], dtype=np.float64), (90, 100))
    img = img.astype(dtype)
    img[30:60, 40:70] = info.max
    img[10:20, 10:20] = info.min
    g = oracle(img, 3.0)[1]
    rows, cols = np.divmod(np.arange(img.size), img.shape[1])
    got = _fast._Tiers(img, 3.0).reference_values(rows, cols)
    np.testing.assert_allclose(got, g[rows, cols], rtol=1e-12, atol=1e-300)

def _kernel(sigma):
    """The reference's 1-D weights, from scipy's definition (radius int(4 sigma + 0.5))."""
    r = int(4.0 * sigma + 0.5)
    x = np.arange(-r, r + 1, dtype=np.float64)
    w = np.exp(-0.5 * x * x / (sigma * sigma))
    return w / w.sum()


def assert_float32_error_inside_the_bound(images):
    """OpenCV's float32 separable blur against the reference's float64 blur.

    The engine's float32 tier relies on a relative error of at most
    ``(2n + 4) * 2**-24`` (n taps) times its safety factor; observed errors are
    about 0.1-0.26 of the unscaled bound. The exact values are scikit-image's
    (the oracle's), the kernel is recomputed here, not taken from the engine.
    """
    for img in images:
        img = img[..., 0] if img.ndim == 3 else img
        for sigma in (2.0, 4.0):
            exact = oracle(img, sigma)[1]
            k = _kernel(sigma).astype(np.float32)
            x = img.astype(np.float32)
            g = cv2.filter2D(cv2.filter2D(x, cv2.CV_32F, k[:, None], borderType=cv2.BORDER_REPLICATE),
                             cv2.CV_32F, k[None, :], borderType=cv2.BORDER_REPLICATE)
            analytic = (2 * len(k) + 4) * 2.0**-24
            c32 = _fast.error_bound(sigma)
            assert c32 >= analytic  # the engine's bound is no tighter than the analysis
            worst = np.max(np.abs(g - exact) / (analytic * (np.abs(exact) + 1e-30)))
            assert worst < 0.5


def test_float32_error_stays_far_inside_the_bound_on_generated_images():
    """Needs no data folder: BBBC021-sized generated images, sparse and dense."""
    assert_float32_error_inside_the_bound(
        [make_nuclei_image(s, n_nuclei=n)[0] for s, n in [(0, 300), (1, 600)]])


def test_float32_error_stays_far_inside_the_bound_on_real_images(real_image_paths):
    """The same bound on real images (skips when ../shared/data is absent)."""
    assert_float32_error_inside_the_bound([tifffile.imread(p) for p in real_image_paths[:6]])


small_images = st.one_of(
    hnp.arrays(np.uint8, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=48),
               elements=st.sampled_from([0, 7, 200])),  # few values: plateaus and ties
    hnp.arrays(np.uint16, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=48)),
    hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=48),
               elements=st.floats(-1e3, 1e3, width=32)),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(img=small_images, sigma=st.sampled_from([0.7, 1.0, 2.0, 3.3]),
       d=st.integers(1, 5), t=st.sampled_from([-1.0, 0.0, 3.0, 7.0, 100.0]))
@example(img=np.zeros((1, 1), np.uint8), sigma=2.0, d=1, t=0.0)  # beyond the sigma limit
@example(img=np.zeros((1, 3), np.uint16), sigma=2.0, d=1, t=0.0)  # at it
def test_property_random_images(img, sigma, d, t):
    if sigma > max(img.shape):  # the documented limit: sigma at most the longer side
        with pytest.raises(ValueError, match="sigma must be at most the image's longer side"):
            detect(img, DetectionParams(sigma, d, t))
        return
    assert_same(img, sigma, d, t)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), levels=st.integers(2, 6))
def test_property_quantised_blocky_images(seed, levels):
    """Large images made of flat blocks: wide plateaus and many exact ties."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, levels, (12, 15)).astype(np.uint16) * 1000
    img = cv2.resize(small, (300, 240), interpolation=cv2.INTER_NEAREST)
    assert_same(img, 3.0, 4, 500.0)


@pytest.mark.parametrize("limit", [0, 10**9])
def test_prefilter_and_its_fallback_agree_with_the_reference(monkeypatch, limit):
    """Low thresholds on noisy images: the 3x3 pre-filter or the full window."""
    monkeypatch.setattr(_fast, "_MAX_PREFILTERED", limit)
    rng = np.random.default_rng(21)
    img = make_nuclei_image(21, n_nuclei=80, shape=(300, 360))[0]
    img = img + rng.poisson(40, img.shape).astype(np.uint16)
    for t in (150.0, 260.0, 1000.0):
        assert_same(img, 2.0, 3, t)


@settings(max_examples=300, deadline=None)
@given(coords=hnp.arrays(np.intp, st.tuples(st.integers(0, 80), st.just(2)),
                         elements=st.integers(0, 40)),
       d=st.integers(1, 15))
def test_close_pairs_match_a_kd_tree(coords, d):
    """The keyed sweep finds exactly the k-d tree's pairs (duplicates and dense sets included)."""
    from scipy.spatial import cKDTree

    want = cKDTree(coords).query_pairs(r=d - 0.5, p=np.inf, output_type="ndarray") \
        if len(coords) else np.empty((0, 2), int)
    got = _fast._close_pairs(coords, d)
    assert len(got) == len(want)
    assert {tuple(p) for p in np.sort(got, axis=1).tolist()} == \
        {tuple(p) for p in np.sort(want, axis=1).tolist()}


@pytest.mark.parametrize("band", [1, 7, 1000])
def test_band_height_does_not_change_the_answer(monkeypatch, band):
    """The engine works in bands of rows; any band height gives the reference's answer."""
    monkeypatch.setattr(_fast, "_BAND", band)
    img = make_nuclei_image(13, n_nuclei=60, shape=(150, 170))[0]
    for sigma, d, t in [(2.0, 3, 500.0), (4.0, 6, 1000.0), (3.0, 70, 300.0)]:
        assert_same(img, sigma, d, t)
    cands = _fast.prepare(img, 3.0, 4)  # interactive: no floor, the full window
    for t in (200.0, 800.0, 1500.0):
        np.testing.assert_array_equal(cands.select(t)[0], oracle(img, 3.0, 4, t)[0])


# ----------------------------------------------------------------------------- fuzz
# Validity is decided here, from the documented contract, never by the code under
# test: valid input must give the oracle's answer; only invalid input may raise, and
# then a ValueError or TypeError whose message names what is wrong.

any_array = hnp.arrays(
    dtype=st.sampled_from([np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32,
                           np.uint32, np.int64, np.float16, np.float32, np.float64,
                           np.complex64]),
    shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=24),
)


def expected_plane(img):
    """The 2-D plane detection must use, or the problem the message must name.

    From the docstrings of ``detect_nuclei`` and ``as_grayscale_2d``: real
    (integer, boolean, float) dtypes; singleton axes of a >2-D array dropped;
    then exactly 2-D, not empty, finite.

    Returns
    -------
    (plane, None) for a valid image, (None, (exception type, word)) otherwise.
    """
    a = np.asarray(img)
    if a.dtype.kind not in "biuf":
        return None, (TypeError, "image")
    if a.ndim > 2:
        a = a.reshape([n for n in a.shape if n != 1])
    if a.ndim != 2 or a.size == 0:
        return None, (ValueError, "image")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        return None, (ValueError, "image")
    return (a.astype(np.uint8) if a.dtype == bool else a), None


def parameter_problems(sigma, d, t):
    """The invalid parameters, as (exception type, name) pairs (DetectionParams' contract)."""
    bad = []
    if not (np.isfinite(sigma) and sigma > 0):
        bad.append((ValueError, "sigma"))
    if d < 1:
        bad.append((ValueError, "min_distance"))
    if not np.isfinite(t):
        bad.append((ValueError, "threshold_abs"))
    return bad


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(img=any_array, sigma=st.one_of(st.floats(-2, 8), st.just(0.0)),
       d=st.integers(-1, 6), t=st.one_of(st.floats(allow_nan=True), st.integers(-5, 300)))
def test_fuzz_detect_nuclei_is_the_reference_or_names_the_problem(img, sigma, d, t):
    plane, image_problem = expected_plane(img)
    problems = parameter_problems(sigma, d, t) + ([image_problem] if image_problem else [])
    if plane is not None and np.isfinite(sigma) and sigma > max(plane.shape):
        problems.append((ValueError, "sigma"))  # the documented limit: the longer side
    if not problems:
        got = detect_nuclei(img, sigma=sigma, min_distance=d, threshold_abs=t)
        assert got.dtype == np.intp and got.ndim == 2 and got.shape[1] == 2
        want = oracle(plane, sigma, d, float(t))[0]
        np.testing.assert_array_equal(got, want)
        params = DetectionParams(sigma, d, t)
        np.testing.assert_array_equal(reference_detect(img, params).coords, want)
        return
    with pytest.raises((ValueError, TypeError)) as info:
        detect_nuclei(img, sigma=sigma, min_distance=d, threshold_abs=t)
    named = [(kind, word) for kind, word in problems if word in str(info.value)]
    assert named, f"{info.value!r} names none of {[w for _, w in problems]}"
    if len(problems) == 1:  # one problem: its exception type too
        assert isinstance(info.value, problems[0][0])


@pytest.mark.parametrize("kwargs, name, kind", [
    ({"sigma": "4"}, "sigma", TypeError),
    ({"min_distance": 2.5}, "min_distance", ValueError),
    ({"min_distance": None}, "min_distance", TypeError),
    ({"threshold_abs": "1000"}, "threshold_abs", TypeError),
    ({"image": np.zeros((8, 8), complex)}, "image", TypeError),
    ({"image": np.zeros((8, 8, 3), np.uint8)}, "image", ValueError),
    ({"image": np.zeros((2, 8, 8), np.uint8)}, "image", ValueError),
    ({"image": np.array([[1.0, np.nan]])}, "image", ValueError),
    ({"image": np.zeros((0, 5))}, "image", ValueError),
])
def test_invalid_argument_is_named(kwargs, name, kind):
    args = {"image": np.zeros((16, 16), np.uint16), "sigma": 2.0, "min_distance": 3,
            "threshold_abs": 10.0, **kwargs}
    with pytest.raises(kind, match=name):
        detect_nuclei(**args)


def spacing_by_definition(coords, d):
    """``ensure_spacing`` as the contract states it: in order, keep a point unless a kept
    one lies at Chebyshev distance below ``d``."""
    taken = np.zeros(coords.max(axis=0) + d + 1, bool)  # kept points, shifted by d
    flags = np.zeros(len(coords), bool)
    for i, (y, x) in enumerate(coords.tolist()):
        if not taken[y + 1 : y + 2 * d, x + 1 : x + 2 * d].any():
            flags[i] = taken[y + d, x + d] = True
    return flags


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), d=st.integers(2, 9))
def test_spacing_of_tied_plateaus_row_by_row_is_the_greedy_definition(seed, d):
    """Long runs of tied candidates (plateaus, spaced row by row) between and after single
    brighter points, some of them inside the plateaus."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:60, :70]
    holes = rng.random((60, 70)) < rng.choice([0.0, 0.1, 0.5])
    plateau = (((yy - 30) ** 2 + (xx - 35) ** 2 < 28**2) | (xx > 62)) & ~holes
    second = (yy < 20) & (xx < 25) & ~plateau
    singles = np.stack([rng.integers(0, 60, 40), rng.integers(0, 70, 40)], axis=1)
    coords = np.concatenate([singles[:20], np.argwhere(plateau), singles[20:],
                             np.argwhere(second)])
    values = np.concatenate([np.linspace(9, 8, 20), np.full(plateau.sum(), 5.0),
                             np.linspace(4, 3, 20), np.full(second.sum(), 2.0)])
    assert plateau.sum() >= _fast._TIED_RUN
    np.testing.assert_array_equal(_fast.greedy_keep(coords, d, values),
                                  spacing_by_definition(coords, d))
    np.testing.assert_array_equal(_fast.greedy_keep(coords, d), spacing_by_definition(coords, d))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), d=st.integers(2, 9))
def test_row_by_row_spacing_of_any_raster_ordered_points(seed, d):
    """Unions of rectangles with random holes and whole empty rows, in raster order: the
    row-by-row spacing (runs of columns, stretches left free by earlier rows) keeps
    exactly the points the greedy definition keeps."""
    rng = np.random.default_rng(seed)
    h, w = rng.integers(5, 50, 2)
    inside = np.zeros((h, w), bool)
    for _ in range(rng.integers(1, 6)):
        y, x = rng.integers(0, h), rng.integers(0, w)
        inside[y : y + rng.integers(1, 25), x : x + rng.integers(1, 25)] = True
    inside &= rng.random((h, w)) >= rng.choice([0.0, 0.05, 0.3, 0.7])
    inside[rng.integers(0, h, 2)] = False
    coords = np.argwhere(inside)
    if len(coords):
        np.testing.assert_array_equal(_fast._raster_greedy(coords, d),
                                      spacing_by_definition(coords, d))


@pytest.mark.parametrize("sigma, d", [(1.0, 2), (4.0, 6)])
def test_plateau_heavy_image_in_the_preview_cache_at_every_threshold(sigma, d):
    """One candidate list (floor -inf, the preview's) with plateaus spaced row by row: each
    threshold's prefix is the reference's answer."""
    img = plateau_image(1)
    cands = _fast.prepare(img, sigma, d)
    assert _fast._raster_runs(cands.coords, cands.values)  # plateaus long enough
    for t in (-1.0, 0.5, 2.0, 40.0, 254.0):
        coords, values = cands.select(t)
        expected, g = oracle(img, sigma, d, t)
        np.testing.assert_array_equal(coords, expected)
        np.testing.assert_allclose(values, g[expected[:, 0], expected[:, 1]], rtol=1e-12, atol=0)


def blobs_on_a_flat_background(case: str, seed: int = 0) -> np.ndarray:
    """Bright noisy blobs on one flat grey level, as a confocal projection's background.

    ``minimum``: the background is the image's minimum; ``hole``: a darker flat
    region too (pixels below the plateau's level); ``uint16``, ``int16`` (the
    background below zero) and ``bool`` the same in other pixel types.
    """
    rng = np.random.default_rng(seed)
    img = np.full((240, 300), 5 if case == "hole" else 1, np.int64)
    if case == "hole":
        img[150:, :100] = 0
    yy, xx = np.ogrid[:240, :300]
    for _ in range(20):
        y, x, r = rng.integers(15, 225), rng.integers(15, 285), rng.integers(4, 10)
        disc = (yy - y) ** 2 + (xx - x) ** 2 <= r * r
        img[disc] = np.maximum(img[disc], rng.integers(30, 200, np.count_nonzero(disc)))
    if case == "uint16":
        return (img * 250).astype(np.uint16)
    if case == "int16":
        return (img - 50).astype(np.int16)
    if case == "bool":
        return img > 100
    return img.astype(np.uint8)


def _whole_image_exact_smoothing(*args, **kwargs):
    raise AssertionError("the whole image was smoothed exactly")


@pytest.mark.parametrize("case", ["minimum", "hole", "uint16", "int16", "bool"])
@pytest.mark.parametrize("sigma, d", [(1.0, 1), (2.0, 3), (3.5, 4)])
def test_flat_backgrounds_are_decided_without_smoothing_the_whole_image(monkeypatch, case,
                                                                          sigma, d):
    """A threshold below the background keeps every background pixel that ties with its
    window (thousands of tied candidates): the plateau's exact value and values relative
    to it decide them, never the reference's smoothing of the whole image."""
    img = blobs_on_a_flat_background(case)
    t = -100.0 if case == "int16" else -1.0
    monkeypatch.setattr(_fast, "exact_smooth", _whole_image_exact_smoothing)
    got = detect(img, DetectionParams(sigma, d, t))
    cands = _fast.prepare(img, sigma, d)  # the preview's candidate list
    monkeypatch.undo()
    for threshold in (t, 0.5, 60.0 if case != "uint16" else 15000.0):
        expected, g = oracle(img, sigma, d, threshold)
        coords, values = cands.select(threshold)
        np.testing.assert_array_equal(coords, expected)
        np.testing.assert_allclose(values, g[expected[:, 0], expected[:, 1]], rtol=1e-12, atol=0)
        if threshold == t:
            assert len(expected) > 1000  # the background's tied maxima, spaced out
            np.testing.assert_array_equal(got.coords, expected)
            np.testing.assert_allclose(got.intensities, values, rtol=1e-12, atol=0)


def test_more_than_four_plateau_levels_stay_exact():
    """Five flat levels among the candidates (beyond the plateau tier: the whole image is
    smoothed exactly): the answer is the reference's."""
    img = plateau_image()
    levels = np.unique(img[_fast._flat_footprints(_fast._Tiers(img, 2.0), 3)])
    assert len(levels) > 4
    assert_same(img, 2.0, 3, -1.0)
