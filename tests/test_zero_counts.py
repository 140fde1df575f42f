"""No silent zero counts (issue 24, item 1): a threshold above every smoothed value is named.

A threshold for 16-bit images (1000) on 8-bit ones, or one beyond an image's
type (70000 on 16-bit images), finds nothing. The images get
``threshold_above_image`` in ``images.csv``, ``detect`` warns once with a
threshold to try, ``evaluate`` names the cause of its F1 of 0, and the
dock's preview says why it shows 0 nuclei and offers the image's own
threshold. Expected values come from scikit-image called directly: the
reference smoothing, its Otsu threshold rounded down to a whole number (every
image here suggests more than 10), and ``peak_local_max`` counts.
"""

from __future__ import annotations

import math
import re
import shutil
import statistics
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from conftest import shared_data_dir
from helpers import EXE
from napari_nuclei_counter.core.detect._fast import exact_smooth, smooth_max
from napari_nuclei_counter.core.detect.preview import PreviewCache
from napari_nuclei_counter.core.detect.thresholds import (
    check_threshold,
    round_down,
    threshold_above,
)
from napari_nuclei_counter.core.params import DetectionParams
from napari_nuclei_counter.core.results.tables import load_results
from napari_nuclei_counter.core.run.pipeline import Run
from napari_nuclei_counter.core.sample import make_nuclei_image, write_sample_plate


def smoothed(image: np.ndarray, sigma: float = 4.0) -> np.ndarray:
    """The reference's smoothed image (the contract of DESIGN.md), from scikit-image."""
    from skimage.filters import gaussian

    return gaussian(image.astype(np.float64), sigma, mode="nearest", truncate=4.0,
                    preserve_range=True, channel_axis=None)


def otsu_suggestion(image: np.ndarray, sigma: float = 4.0) -> int:
    """Otsu's threshold of the smoothed image, rounded down (a whole number from 10 up)."""
    from skimage.filters import threshold_otsu

    value = float(threshold_otsu(smoothed(image, sigma)))
    assert value >= 10  # whole numbers: the rounding these tests expect
    return math.floor(value)


def reference_count(image: np.ndarray, threshold: float, sigma: float = 4.0, d: int = 6) -> int:
    from skimage.feature import peak_local_max

    return len(peak_local_max(smoothed(image, sigma), min_distance=d, threshold_abs=threshold,
                              exclude_border=d, p_norm=np.inf))


def eight_bit_image(seed: int, n_nuclei: int = 30, shape=(240, 260)) -> np.ndarray:
    """Rendered nuclei in 8 bits as BBBC007's look: background about 12, nuclei up to 255."""
    image, _ = make_nuclei_image(seed, n_nuclei=n_nuclei, shape=shape)
    return np.clip(image / 16, 0, 255).astype(np.uint8)


def bbbc007_a9() -> Path | None:
    root = shared_data_dir()
    folder = None if root is None else root / "bbbc007" / "BBBC007_v1_images" / "A9"
    return folder if folder is not None and (folder / "A9 p5d.tif").exists() else None


@pytest.fixture
def eight_bit(tmp_path) -> list[Path]:
    """8-bit images with truth beside them: BBBC007's A9 images (label masks), else generated.

    The generated ones (when ../shared/data is absent) are rendered nuclei
    scaled to 8 bits, each with a CSV of its nuclei centres. Either way the
    images, and only they, match ``*d.tif``.
    """
    folder = tmp_path / "eight bit (A9)"
    folder.mkdir()
    source = bbbc007_a9()
    if source is not None:
        for name in ("A9 p5d", "A9 p7d", "A9 p10d"):
            shutil.copy(source / f"{name}.tif", folder)
            shutil.copy(source / f"{name}_labels.tif", folder)
        return sorted(folder.glob("*d.tif"))
    paths = []
    for seed in (1, 2, 3):
        image, centres = make_nuclei_image(seed, n_nuclei=40, shape=(300, 320))
        image = np.clip(image / 16, 0, 255).astype(np.uint8)
        path = folder / f"generated p{seed}d.tif"
        tifffile.imwrite(path, image)
        inside = centres[(centres[:, 0] < 299.5) & (centres[:, 1] < 319.5)]
        pd.DataFrame({"y": inside[:, 0], "x": inside[:, 1]}).to_csv(
            folder / f"generated p{seed}d.csv", index=False)
        paths.append(path)
    return paths


def run_cli(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, timeout=300,
                          cwd=cwd)


def warnings_of(stderr: str) -> list[str]:
    """The warnings about thresholds above every smoothed value."""
    return [line for line in stderr.splitlines()
            if line.startswith("WARNING:") and "smoothed value" in line]


# ----------------------------------------------------------------- the core
def test_round_down_gives_numbers_a_person_types():
    assert [round_down(v) for v in (37.8, 1234.5, 10.0, 9.99, 3.78, 0.29, 0.0378)] == [
        37.0, 1234.0, 10.0, 9.9, 3.7, 0.29, 0.037]


def test_check_threshold_compares_with_the_brightest_smoothed_value(eight_bit):
    image = tifffile.imread(eight_bit[0])
    assert image.dtype == np.uint8
    g = smoothed(image)
    check = check_threshold(image, DetectionParams(4.0, 6, 1000.0))
    assert check.threshold == 1000.0 and check.above
    assert check.brightest == pytest.approx(g.max(), rel=1e-12)
    assert check.suggestion == otsu_suggestion(image)
    # just below the brightest value: not above (whatever the count)
    assert not check.at(g.max() - 0.01).above
    # at the brightest value: a centre must be strictly brighter, so nothing can be found
    assert check.at(g.max()).above
    # an automatic threshold is computed first: Otsu's lies inside the image
    auto = check_threshold(image, DetectionParams(4.0, 6, 1000.0, threshold_method="otsu"))
    assert not auto.above and math.floor(auto.threshold) == otsu_suggestion(image)


def test_a_threshold_beyond_the_type_range_is_above_every_image():
    image, _ = make_nuclei_image(4, n_nuclei=30, shape=(200, 240))  # uint16
    check = check_threshold(image, DetectionParams(4.0, 6, 70000.0))
    assert check.above and check.suggestion == otsu_suggestion(image)
    assert not check.at(1000.0).above


def test_a_constant_image_suggests_nothing():
    check = check_threshold(np.full((64, 64), 7, np.uint8), DetectionParams(2.0, 3, 1000.0))
    assert check.above and check.brightest == pytest.approx(7.0, abs=1e-9)
    assert check.suggestion is None


def test_the_smoothed_maximum_is_the_reference_one(eight_bit):
    """``smooth_max`` (float32 smoothing, exact values near the top) is bit-identical."""
    rng = np.random.default_rng(7)
    saturated = tifffile.imread(eight_bit[0]).copy()
    saturated[100:140, 100:150] = 255  # a plateau at the top
    images = [tifffile.imread(p) for p in eight_bit] + [
        saturated, make_nuclei_image(8, n_nuclei=60, shape=(300, 340))[0],
        rng.normal(0.0, 1.0, (120, 150)),  # negative values
        (rng.random((90, 100)) * 1e-30).astype(np.float32),  # tiny floats
        rng.integers(-50, 50, (64, 70)).astype(np.int16),
        np.full((40, 40), 9, np.uint8), np.zeros((12, 12), np.uint16)]  # flat; smaller than a kernel
    for image in images:
        for sigma in (0.5, 2.0, 4.0, 6.5):
            assert smooth_max(image, sigma) == smoothed(image, sigma).max(), (image.dtype, sigma)
            assert smooth_max(image, sigma) == exact_smooth(image, sigma).max()


def test_threshold_above_agrees_with_the_full_check(eight_bit):
    image = tifffile.imread(eight_bit[0])
    top = smoothed(image).max()
    for t in (1000.0, 256.0, float(image.max()), math.ceil(top), top, top - 0.001, 30.0, 0.0):
        params = DetectionParams(4.0, 6, t)
        assert threshold_above(image, params) == (t >= top) == check_threshold(image, params).above


def test_preview_cache_checks_once_per_image_and_sigma():
    image = eight_bit_image(5, shape=(160, 200))
    cache = PreviewCache()
    params = DetectionParams(4.0, 6, 1000.0)
    assert cache.threshold_check(image, params, key="a", compute=False) is None
    first = cache.threshold_check(image, params, key="a")
    assert first.above and first.suggestion == otsu_suggestion(image)
    # another threshold (or min distance) of the same image and sigma: nothing computed
    again = cache.threshold_check(image, DetectionParams(4.0, 3, 20.0), key="a", compute=False)
    assert again is not None and again.threshold == 20.0 and not again.above
    assert cache.threshold_check(image, DetectionParams(3.0, 6, 1000.0), key="a",
                                 compute=False) is None
    cache.clear()
    assert cache.threshold_check(image, params, key="a", compute=False) is None


def test_a_run_flags_the_images_and_sums_them_up(eight_bit):
    images = [tifffile.imread(p) for p in eight_bit]
    dim = (images[0] // 2).astype(np.uint8)
    threshold = float(math.ceil(smoothed(dim).max()))  # at or above all of it
    assert threshold < smoothed(images[1]).max() and threshold < smoothed(images[2]).max()
    stack = [images[1], dim, images[2]]
    run = Run(stack, DetectionParams(4.0, 6, threshold), backend="serial")
    results = list(run)
    assert [r.threshold_above_image for r in results] == [False, True, False]
    assert [r.count for r in results] == [reference_count(im, threshold) for im in stack]
    assert results[1].count == 0
    assert run.summary.threshold_above == 1 and run.threshold_above == [1]
    assert run.suggest_threshold() == otsu_suggestion(dim)


def test_a_results_folder_without_the_column_reads_as_not_flagged(tmp_path, eight_bit):
    """Folders of earlier versions have no ``threshold_above_image``: read as False."""
    out = tmp_path / "out"
    run = Run(eight_bit[0], DetectionParams(4.0, 6, 1000.0), backend="serial", out=out)
    list(run)
    images = pd.read_csv(out / "images.csv", dtype=str, keep_default_na=False)
    assert images["threshold_above_image"].tolist() == ["True"]
    older = tmp_path / "older"
    older.mkdir()
    images.drop(columns=["threshold_above_image"]).to_csv(older / "images.csv", index=False)
    shutil.copy(out / "nuclei.csv", older / "nuclei.csv")
    loaded = load_results(older).images
    assert loaded["threshold_above_image"].dtype == bool
    assert loaded["threshold_above_image"].tolist() == [False]
    assert loaded["n_nuclei"].tolist() == [0]


# ------------------------------------------------------- the command line
def test_detect_warns_once_about_a_threshold_for_16_bit_images_on_8_bit_ones(tmp_path,
                                                                             eight_bit):
    folder = eight_bit[0].parent
    out = tmp_path / "results"
    proc = run_cli("detect", folder, "--pattern", "*d.tif", "--out", out, "--quiet",
                   "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    images = [tifffile.imread(p) for p in eight_bit]
    suggested = statistics.median_low([otsu_suggestion(im) for im in images])
    assert warnings_of(proc.stderr) == [
        f"WARNING: 3 of 3 images: the threshold 1000 is above every smoothed value (nothing "
        f"can be found in them); try --threshold otsu or e.g. --threshold {suggested}"]
    table = pd.read_csv(out / "images.csv", dtype=str, keep_default_na=False)
    assert sorted(table["path"].map(lambda p: Path(p).name)) == sorted(p.name for p in eight_bit)
    assert table["threshold_above_image"].tolist() == ["True"] * 3
    assert table["n_nuclei"].tolist() == ["0"] * 3

    # the suggested threshold finds the nuclei: no warning, no flag
    again = run_cli("detect", folder, "--pattern", "*d.tif", "--out", tmp_path / "again",
                    "--quiet", "--workers", "0", "--threshold", suggested)
    assert again.returncode == 0, again.stderr
    assert warnings_of(again.stderr) == []
    table = pd.read_csv(tmp_path / "again" / "images.csv", dtype=str, keep_default_na=False)
    rows = {Path(p).name: row for p, (_, row) in zip(table["path"], table.iterrows(),
                                                     strict=True)}
    assert sorted(rows) == sorted(p.name for p in eight_bit)
    for path, image in zip(eight_bit, images, strict=True):
        assert rows[path.name]["threshold_above_image"] == "False"
        assert int(rows[path.name]["n_nuclei"]) == reference_count(image, suggested) > 0


def test_detect_flags_only_the_images_the_threshold_is_above(tmp_path):
    """A bright and a dim 8-bit image at threshold 200: one row flagged, one warning for it."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    bright = eight_bit_image(11)
    dim = (bright // 2).astype(np.uint8)
    assert smoothed(dim).max() < 200 and reference_count(bright, 200) > 0
    tifffile.imwrite(folder / "a bright.tif", bright)
    tifffile.imwrite(folder / "b dim.tif", dim)
    proc = run_cli("detect", folder, "--pattern", "*.tif", "--out", tmp_path / "out",
                   "--quiet", "--workers", "0", "--threshold", "200")
    assert proc.returncode == 0, proc.stderr
    assert warnings_of(proc.stderr) == [
        "WARNING: 1 of 2 images: the threshold 200 is above every smoothed value (nothing can "
        f"be found in it); try --threshold otsu or e.g. --threshold {otsu_suggestion(dim)}"]
    table = pd.read_csv(tmp_path / "out" / "images.csv", dtype=str, keep_default_na=False)
    assert [Path(p).name for p in table["path"]] == ["a bright.tif", "b dim.tif"]
    assert table["threshold_above_image"].tolist() == ["False", "True"]
    assert table["n_nuclei"].tolist() == [str(reference_count(bright, 200)), "0"]


def test_detect_warns_about_a_threshold_beyond_16_bit_images(tmp_path):
    paths = write_sample_plate(tmp_path / "plate", rows="B", columns=range(2, 4), sites=1,
                               seed=2, shape=(200, 240))
    proc = run_cli("detect", paths[0].parent, "--out", tmp_path / "out", "--quiet",
                   "--workers", "0", "--threshold", "70000")
    assert proc.returncode == 0, proc.stderr
    suggested = statistics.median_low([otsu_suggestion(tifffile.imread(p)) for p in paths])
    assert warnings_of(proc.stderr) == [
        "WARNING: 2 of 2 images: the threshold 70000 is above every smoothed value (nothing "
        f"can be found in them); try --threshold otsu or e.g. --threshold {suggested}"]
    table = pd.read_csv(tmp_path / "out" / "images.csv", dtype=str, keep_default_na=False)
    assert table["threshold_above_image"].tolist() == ["True", "True"]


def test_evaluate_names_the_threshold_when_nothing_was_detected(tmp_path, eight_bit):
    folder = eight_bit[0].parent
    proc = run_cli("evaluate", folder, "--truth", folder, "--out", tmp_path / "scores")
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.splitlines()[-1]
    assert last.startswith("total: 3 of 3 images scored,") and ", n_detected 0," in last
    assert ", f1 0.000," in last
    suggested = statistics.median_low([otsu_suggestion(tifffile.imread(p)) for p in eight_bit])
    assert warnings_of(proc.stderr) == [
        "WARNING: nothing was detected in 3 of 3 images scored: the threshold 1000 is above "
        "every smoothed value (nothing can be found in them); try --threshold otsu or e.g. "
        f"--threshold {suggested}"]
    # a threshold that finds nuclei: no such hint
    found = run_cli("evaluate", folder, "--truth", folder, "--out", tmp_path / "found",
                    "--threshold", suggested)
    assert found.returncode == 0, found.stderr
    assert warnings_of(found.stderr) == []


# -------------------------------------------------------------- the dock
@pytest.mark.gui
def test_the_dock_says_why_the_preview_is_empty_and_offers_a_threshold(
        make_napari_viewer, qtbot, eight_bit):
    pytest.importorskip("napari")
    from helpers import PLUGIN

    image = tifffile.imread(eight_bit[0])
    viewer = make_napari_viewer()
    viewer.add_image(image, name="eight bit")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Nuclei detector")
    model, preview = widget.model, widget.preview

    def settled():
        return preview.idle and model.preview_text.startswith("Preview:")

    qtbot.waitUntil(settled, timeout=15000)
    assert model.threshold_offer is None and preview.offer.native.isHidden()
    widget.parameters.bbbc_button.click()  # sigma 4, min distance 6, threshold 1000
    assert model.params == DetectionParams(4.0, 6, 1000.0)
    qtbot.waitUntil(lambda: settled() and model.threshold_offer is not None, timeout=15000)
    suggested = otsu_suggestion(image)
    assert model.threshold_offer == suggested
    text = model.preview_text
    found = re.fullmatch(r"Preview: 0 nuclei \([^)]*\)\. Threshold 1000 is above this image's "
                         r"brightest smoothed value \(([0-9.]+)\): nothing can be found\.", text)
    assert found, text
    assert float(found.group(1)) == pytest.approx(smoothed(image).max(), abs=0.01)
    assert preview.label.value == text
    assert not preview.offer.native.isHidden() and preview.offer.text == f"Use threshold {suggested}"

    preview.offer.native.click()
    assert model.params == DetectionParams(4.0, 6, float(suggested))
    assert model.threshold_offer is None and preview.offer.native.isHidden()
    expected = reference_count(image, suggested)
    assert expected > 0
    qtbot.waitUntil(lambda: settled() and model.preview_text.startswith(
        f"Preview: {expected} nuclei"), timeout=15000)
    assert len(viewer.layers["nuclei preview"].data) == expected
    assert model.threshold_offer is None and preview.offer.native.isHidden()
    assert widget.parameters.threshold.value == suggested


@pytest.mark.gui
def test_the_dock_checks_a_plane_of_a_stack_in_its_worker(make_napari_viewer, qtbot):
    """Moving to a plane the threshold is above: checked with the plane's first preview."""
    pytest.importorskip("napari")
    from helpers import PLUGIN

    bright = eight_bit_image(11)
    dim = (bright // 2).astype(np.uint8)
    assert smoothed(dim).max() < 200 and reference_count(bright, 200) > 0
    viewer = make_napari_viewer()
    viewer.add_image(np.stack([bright, dim]), name="stack")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Nuclei detector")
    model, preview = widget.model, widget.preview
    model.params = DetectionParams(4.0, 6, 200.0)
    qtbot.waitUntil(lambda: preview.idle and model.preview_text.startswith(
        f"Preview: {reference_count(bright, 200)} nuclei in image 0"), timeout=15000)
    assert model.threshold_offer is None
    viewer.dims.set_current_step(0, 1)
    qtbot.waitUntil(lambda: preview.idle and model.threshold_offer is not None, timeout=15000)
    assert model.preview_text.startswith("Preview: 0 nuclei in image 1 (")
    assert ". Threshold 200 is above this image's brightest smoothed value (" in \
        model.preview_text
    assert model.threshold_offer == otsu_suggestion(dim)
    viewer.dims.set_current_step(0, 0)  # back where the threshold finds nuclei: no offer
    qtbot.waitUntil(lambda: preview.idle and model.preview_text.startswith(
        f"Preview: {reference_count(bright, 200)} nuclei in image 0"), timeout=15000)
    assert model.threshold_offer is None and preview.offer.native.isHidden()


def test_the_model_offers_a_threshold_until_the_parameters_change():
    from napari_nuclei_counter.gui.detector.model import DetectorModel

    model = DetectorModel()
    model.params = DetectionParams(4.0, 6, 1000.0, threshold_method=None)
    model.use_threshold_offer()  # nothing offered: nothing changes
    assert model.params == DetectionParams(4.0, 6, 1000.0)
    seen = []
    model.events.threshold_offer.connect(seen.append)
    model.threshold_offer = 37.0
    model.use_threshold_offer()
    assert model.params == DetectionParams(4.0, 6, 37.0)
    assert model.threshold_offer is None and seen == [37.0, None]
    model.threshold_offer = 12.0
    model.params = DetectionParams(3.0, 6, 37.0)  # a slider moved: the offer was for before
    assert model.threshold_offer is None
