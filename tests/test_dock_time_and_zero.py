"""The dock's side of time series and of zero counts (issue 24, items 12 and 1).

Folder mode previews the first time point of a time series, *preview file*
steps through its time points, and a time choice ("every time point", or
one) goes to the run. After a run in which the fixed threshold was above
every smoothed value of some images, the status line and one notification
say how many and which threshold to try. Expected pixels come from tifffile
(and bioio for the CZI) reading the files themselves; expected counts from
``detect`` and scikit-image on those pixels.
"""

from __future__ import annotations

import re
import shutil
import statistics

import numpy as np
import pandas as pd
import pytest
import tifffile

pytest.importorskip("napari")
pytest.importorskip("qtpy")

from napari.utils.notifications import notification_manager

from conftest import shared_data_dir
from helpers import PLUGIN
from napari_nuclei_counter import DetectionParams, detect
from napari_nuclei_counter.core.sample import make_nuclei_image
from test_zero_counts import eight_bit_image, otsu_suggestion, reference_count, smoothed

pytestmark = pytest.mark.gui

PARAMS = DetectionParams(3.0, 5, 1000.0)
#: for the 32 x 32 CZIs of napari-ndev
PCZI = DetectionParams(1.0, 2, 0.0)


def _shown(mgui_widget, dock) -> bool:
    """Whether the dock shows a field (the window itself is not on screen in tests)."""
    return mgui_widget.native.isVisibleTo(dock)


def _folder_dock(viewer, folder, pattern, params):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Nuclei detector")
    widget.model.params = params
    widget.run_panel.workers.value = 0
    widget.source_panel.source.value = "folder"
    widget.source_panel.folder_picker.pattern.value = pattern
    widget.source_panel.folder_picker.folder.value = folder
    return widget


def _wait_preview(qtbot, viewer, name: str) -> np.ndarray:
    """The pixels of the ``folder preview`` layer once it shows the image ``name``."""
    def shown():
        return ("folder preview" in viewer.layers
                and viewer.layers["folder preview"].metadata.get("path", "").endswith("/" + name))

    qtbot.waitUntil(shown, timeout=30000)
    return np.asarray(viewer.layers["folder preview"].data)


def _run_into(qtbot, widget, out) -> pd.DataFrame:
    """Run the dock into ``out``; its ``images.csv``."""
    widget.model.output = out
    widget.run_panel.start_run(ask=False)
    qtbot.waitUntil(lambda: widget.settled, timeout=120000)
    return pd.read_csv(out / "images.csv", keep_default_na=False,
                       dtype={"timepoint": str, "scene": str})


def _items(combo) -> list[str]:
    native = combo.native
    return [native.itemText(i) for i in range(native.count())]


# ---------------------------------------------------------------- time series
@pytest.fixture
def ome_series(tmp_path):
    """``series.ome.tif``: three time points of a Tubulin and a DAPI channel (TCYX), and
    ``still.ome.tif``: one time point of the same two channels (CYX)."""
    folder = tmp_path / "time lapse (OME)"
    folder.mkdir()
    rng = np.random.default_rng(3)
    dapi = [make_nuclei_image(seed, n_nuclei=12 + 4 * seed, shape=(128, 160))[0]
            for seed in (11, 12, 13, 14)]
    tubulin = [(rng.random(d.shape) * 3000).astype(d.dtype) for d in dapi]
    names = {"Channel": {"Name": ["Tubulin", "DAPI"]}}
    tifffile.imwrite(folder / "series.ome.tif",
                     np.stack([np.stack([tubulin[t], dapi[t]]) for t in range(3)]), ome=True,
                     metadata={"axes": "TCYX", **names})
    tifffile.imwrite(folder / "still.ome.tif", np.stack([tubulin[3], dapi[3]]), ome=True,
                     metadata={"axes": "CYX", **names})
    return folder


def test_the_dock_previews_and_runs_each_time_point_or_the_one_chosen(
        make_napari_viewer, qtbot, ome_series, tmp_path):
    series, still = ome_series / "series.ome.tif", ome_series / "still.ome.tif"
    own = tifffile.imread(series)  # (T, C, Y, X), tifffile's own read
    assert own.shape[:2] == (3, 2)
    planes = [own[t, 1] for t in range(3)] + [tifffile.imread(still)[1]]
    assert len({p.tobytes() for p in planes}) == 4
    viewer = make_napari_viewer()
    widget = _folder_dock(viewer, ome_series, "*.ome.tif", PARAMS)
    channels, preview = widget.source_panel.channels, widget.source_panel.folder_preview
    qtbot.waitUntil(lambda: _shown(channels.t, widget), timeout=30000)
    assert _items(channels.t) == ["every time point", "time point 0", "time point 1",
                                  "time point 2"]
    assert channels.channel.value == 1 and not _shown(channels.z, widget)
    assert widget.model.t is None and channels.time_choice() is None
    # the first time point of the series, not an error asking for one
    np.testing.assert_array_equal(_wait_preview(qtbot, viewer, "series.ome.tif#t0"), planes[0])
    assert preview.name.value == "series.ome.tif#t0"
    # the series' time points, then the other file: four images to step through
    assert preview.step.max == 3
    preview.step.value = 1
    np.testing.assert_array_equal(_wait_preview(qtbot, viewer, "series.ome.tif#t1"), planes[1])
    preview.step.value = 3
    np.testing.assert_array_equal(_wait_preview(qtbot, viewer, "still.ome.tif"), planes[3])
    assert preview.name.value == "still.ome.tif" and preview.step.max == 3
    preview.step.value = 2
    np.testing.assert_array_equal(_wait_preview(qtbot, viewer, "series.ome.tif#t2"), planes[2])

    # every time point (the default): one row each
    images = _run_into(qtbot, widget, tmp_path / "every")
    assert images[["path", "timepoint", "n_nuclei"]].values.tolist() == [
        [f"{series}#t{t}", str(t), detect(planes[t], PARAMS).count] for t in range(3)] + [
        [str(still), "", detect(planes[3], PARAMS).count]]
    assert (images["error"] == "").all()
    assert widget.run_panel.status.value.startswith("Done: 4 of 4 images")

    # one time point: the series gives that one, the file without a time axis itself
    channels.t.value = "1"
    assert widget.model.t == "1" and channels.time_choice() == "1"
    images = _run_into(qtbot, widget, tmp_path / "one")
    assert images[["path", "timepoint", "n_nuclei"]].values.tolist() == [
        [f"{series}#t1", "1", detect(planes[1], PARAMS).count],
        [str(still), "", detect(planes[3], PARAMS).count]]
    assert widget.run_panel.status.value.startswith("Done: 2 of 2 images")
    assert widget.store.source.metadata["nuclei_counter"]["paths"] == [f"{series}#t1",
                                                                     str(still)]


def test_the_time_choice_restricts_the_preview_before_a_run(make_napari_viewer, qtbot,
                                                              ome_series):
    series = ome_series / "series.ome.tif"
    own = tifffile.imread(series)
    viewer = make_napari_viewer()
    widget = _folder_dock(viewer, ome_series, "*.ome.tif", PARAMS)
    channels, preview = widget.source_panel.channels, widget.source_panel.folder_preview
    qtbot.waitUntil(lambda: _shown(channels.t, widget), timeout=30000)
    _wait_preview(qtbot, viewer, "series.ome.tif#t0")
    channels.t.value = "2"
    np.testing.assert_array_equal(_wait_preview(qtbot, viewer, "series.ome.tif#t2"), own[2, 1])
    assert preview.step.value == 0 and preview.step.max == 1  # the series' one, the still file
    channels.t.value = "every"
    assert widget.model.t is None
    np.testing.assert_array_equal(_wait_preview(qtbot, viewer, "series.ome.tif#t0"), own[0, 1])
    assert preview.step.max == 3


def test_a_plain_folder_shows_no_time_choice(make_napari_viewer, qtbot, sample_images):
    viewer = make_napari_viewer()
    widget = _folder_dock(viewer, sample_images[0].parent, "*_w1*.tif", PARAMS)
    channels = widget.source_panel.channels
    qtbot.waitUntil(lambda: "folder preview" in viewer.layers, timeout=30000)
    assert not _shown(channels.t, widget) and widget.model.t is None
    assert widget.source_panel.folder_preview.step.max == len(sample_images) - 1


@pytest.fixture
def czi_series(tmp_path):
    """A copy of napari-ndev's ``10T-4C-0Z.czi``: 10 time points, 4 channels (DAPI last)."""
    pytest.importorskip("bioio")
    pytest.importorskip("bioio_czi")
    root = shared_data_dir()
    source = None if root is None else root / "czi_ndev" / "10T-4C-0Z.czi"
    if source is None or not source.is_file():
        pytest.skip("../shared/data/czi_ndev is not present")
    folder = tmp_path / "czi time lapse"
    folder.mkdir()
    shutil.copy(source, folder / "10T-4C-0Z.czi")
    return folder / "10T-4C-0Z.czi"


def _bioio_dapi(path, t: int) -> np.ndarray:
    """DAPI (channel 3) of time point ``t``, read by bioio itself."""
    from bioio import BioImage

    return BioImage(path).get_image_data("YX", T=t, C=3, Z=0)


def test_a_czi_time_series_in_folder_mode(czi_series, make_napari_viewer, qtbot, tmp_path):
    # czi_series first: it skips before napari's viewer fixture is set up (whose teardown
    # fails on a test skipped after it)
    dapi = [_bioio_dapi(czi_series, t) for t in range(10)]
    viewer = make_napari_viewer()
    widget = _folder_dock(viewer, czi_series.parent, "*.czi", PCZI)
    channels, preview = widget.source_panel.channels, widget.source_panel.folder_preview
    qtbot.waitUntil(lambda: _shown(channels.t, widget), timeout=60000)
    assert _items(channels.t) == ["every time point", *(f"time point {t}" for t in range(10))]
    assert _items(channels.channel) == ["0: AF647", "1: AF568", "2: AF488", "3: DAPI"]
    assert channels.channel.value == 3
    np.testing.assert_array_equal(_wait_preview(qtbot, viewer, "10T-4C-0Z.czi#t0"), dapi[0])
    assert preview.step.max == 9
    preview.step.value = 7
    np.testing.assert_array_equal(_wait_preview(qtbot, viewer, "10T-4C-0Z.czi#t7"), dapi[7])

    images = _run_into(qtbot, widget, tmp_path / "every")
    assert images[["path", "timepoint", "n_nuclei"]].values.tolist() == [
        [f"{czi_series}#t{t}", str(t), detect(dapi[t], PCZI).count] for t in range(10)]

    channels.t.value = "4"
    images = _run_into(qtbot, widget, tmp_path / "one")
    assert images[["path", "timepoint", "n_nuclei"]].values.tolist() == [
        [f"{czi_series}#t4", "4", detect(dapi[4], PCZI).count]]


# ---------------------------------------------------------------- zero counts
def test_a_run_says_once_when_the_threshold_is_above_its_images(make_napari_viewer, qtbot,
                                                                 tmp_path):
    folder = tmp_path / "mixed bits"
    folder.mkdir()
    # a 16-bit image first (the preview shows it: the threshold fits it), then 8-bit ones
    sixteen, _ = make_nuclei_image(9, n_nuclei=30, shape=(240, 260))
    tifffile.imwrite(folder / "a.tif", sixteen)
    eight = [eight_bit_image(seed) for seed in (1, 2, 3)]
    for k, image in enumerate(eight):
        tifffile.imwrite(folder / f"b{k}.tif", image)
    params = DetectionParams(4.0, 6, 1000.0)
    assert all(smoothed(image).max() <= 1000 for image in eight)
    assert smoothed(sixteen).max() > 1000
    nuclei = reference_count(sixteen, 1000.0)
    assert nuclei > 0
    suggestion = statistics.median_low([otsu_suggestion(image) for image in eight])

    viewer = make_napari_viewer()
    widget = _folder_dock(viewer, folder, "*.tif", params)
    qtbot.waitUntil(lambda: "folder preview" in viewer.layers, timeout=30000)
    assert widget.model.params == params
    notification_manager.records.clear()
    widget.run_panel.start_run(ask=False)
    qtbot.waitUntil(lambda: widget.settled, timeout=120000)
    note = (f"3 of 4 images: the threshold 1000 is above every smoothed value: nothing can "
            f"be found in them; try threshold {suggestion}")
    status = widget.run_panel.status.value
    assert re.fullmatch(rf"Done: 4 of 4 images, {nuclei} nuclei, [0-9]+\.[0-9] s\. "
                        + re.escape(note), status), status
    assert widget.model.status == status
    said = [r.message for r in notification_manager.records if "smoothed value" in r.message]
    assert said == [note + "."]
    assert [widget.store.results[i].threshold_above_image for i in range(4)] == [
        False, True, True, True]


def test_a_run_with_nothing_above_says_nothing_of_thresholds(make_napari_viewer, qtbot,
                                                             sample_images):
    viewer = make_napari_viewer()
    widget = _folder_dock(viewer, sample_images[0].parent, "*_w1*.tif", PARAMS)
    qtbot.waitUntil(lambda: "folder preview" in viewer.layers, timeout=30000)
    notification_manager.records.clear()
    widget.run_panel.start_run(ask=False)
    qtbot.waitUntil(lambda: widget.settled, timeout=120000)
    status = widget.run_panel.status.value
    assert status.startswith(f"Done: {len(sample_images)} of {len(sample_images)} images")
    assert "smoothed value" not in status
    assert not [r for r in notification_manager.records if "smoothed value" in r.message]
