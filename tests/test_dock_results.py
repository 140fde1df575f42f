"""The detector dock keeps the user's results, asks before replacing them, shows progress.

Real napari viewer (Xvfb), real runs on small generated plates.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import tifffile
from skimage.filters import gaussian, threshold_otsu

pytest.importorskip("napari")
pytest.importorskip("qtpy")

from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication, QMessageBox

from helpers import PLUGIN
from napari_nuclei_counter import DetectionParams, detect
from napari_nuclei_counter.gui.navigation import show_image

pytestmark = pytest.mark.gui

PARAMS = DetectionParams(3.0, 5, 1000.0)


def _dock(viewer):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Nuclei detector")
    return widget


def _folder_dock(viewer, folder):
    widget = _dock(viewer)
    widget.source_panel.source.value = "folder"
    widget.source_panel.folder_picker.folder.value = folder
    widget.run_panel.workers.value = 0
    widget.model.params = PARAMS
    return widget


def _run(qtbot, widget, **kwargs):
    worker = widget.run_panel.start_run(**kwargs)
    assert worker is not None
    # not waitSignal: a tiny run may end before a signal spy could connect
    qtbot.waitUntil(lambda: widget.settled, timeout=60000)
    return worker


def _answer(button):
    """Click ``button`` of the next modal message box (a real one)."""
    def click():
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            box.button(button).click()
        else:
            QTimer.singleShot(20, click)
    QTimer.singleShot(20, click)


def test_results_stay_after_a_cancel_until_the_first_new_result(make_napari_viewer, qtbot,
                                                                 sample_images):
    viewer = make_napari_viewer()
    widget = _folder_dock(viewer, sample_images[0].parent)
    assert not widget.results_panel.table.isVisible() and not widget.results_panel.table.isVisibleTo(widget)
    _run(qtbot, widget)
    n_points = len(viewer.layers["nuclei"].data)
    assert len(widget.store.results) == 6 and n_points > 0
    assert widget.results_panel.save_button.isEnabled() and widget.results_panel.clear_button.isEnabled()
    assert widget.results_panel.table.isVisibleTo(widget)
    # progress: the bar is full, the line says how fast
    assert widget.run_panel.progress.bar.max == 6 and widget.run_panel.progress.bar.value == 6
    assert "6 / 6 images" in widget.run_panel.progress.label.value
    # unsaved results: the dock asks; "Cancel" keeps everything
    assert "not saved" in widget.model.replace_question(widget.store)
    _answer(QMessageBox.StandardButton.Cancel)
    assert widget.run_panel.start_run() is None
    assert len(widget.store.results) == 6 and len(viewer.layers["nuclei"].data) == n_points
    # "Yes", then a cancel before any result arrived: nothing is lost
    _answer(QMessageBox.StandardButton.Yes)
    worker = widget.run_panel.start_run()
    assert worker is not None
    widget.run_panel.cancel()  # before the worker thread even listed the folder
    qtbot.waitUntil(lambda: not widget.run_panel.running, timeout=30000)
    assert widget.run_panel.status.value.startswith("Cancelled before any result")
    assert "previous results (6 images) are kept" in widget.run_panel.status.value
    assert len(widget.store.results) == 6 and len(viewer.layers["nuclei"].data) == n_points
    assert widget.results_panel.save_button.isEnabled()
    assert widget.results_panel.table.model().rowCount() == 6
    # saved results need no question; a new run replaces them at its first result
    widget.results_panel.save_tables(sample_images[0].parent.parent / "saved")
    assert widget.model.replace_question(widget.store) == ""
    widget.model.params = DetectionParams(3.0, 5, 3000.0)
    _run(qtbot, widget)
    expected = sum(detect(tifffile.imread(p), DetectionParams(3.0, 5, 3000.0)).count
                   for p in widget.store.source.metadata["nuclei_counter"]["paths"])
    assert len(viewer.layers["nuclei"].data) == expected != n_points
    # Clear: explicit, and asks first for unsaved results
    _answer(QMessageBox.StandardButton.Yes)
    assert widget.results_panel.clear_results()
    assert not widget.store.results and "nuclei" not in viewer.layers
    assert not widget.results_panel.save_button.isEnabled()


def test_hand_added_nucleus_belongs_to_its_image(make_napari_viewer, qtbot, sample_images):
    viewer = make_napari_viewer()
    widget = _folder_dock(viewer, sample_images[0].parent)
    _run(qtbot, widget)
    pts = viewer.layers["nuclei"]
    paths = widget.store.source.metadata["nuclei_counter"]["paths"]
    before = {i: r.count for i, r in widget.store.results.items()}
    # select the last point of the last image, then add a point on image 1
    pts.selected_data = {len(pts.data) - 1}
    viewer.dims.set_current_step(0, 1)
    pts.add(np.array([[1.0, 40.0, 50.0]]))
    row = pts.features.iloc[-1]
    assert row["image"] == 1 and np.isnan(row["intensity"])
    assert row["path"] == paths[1]
    assert row["well"] == widget.store.meta[1].well and row["site"] == widget.store.meta[1].site
    assert widget.store.results[1].count == before[1] + 1 and widget.store.results[1].edited
    assert widget.store.results[5].count == before[5]
    assert widget.results_panel.table.model().index(1, 3).data() == f"{before[1] + 1} (edited)"
    # deleting one of image 0's points changes image 0 only
    first0 = int(np.flatnonzero(pts.data[:, 0] == 0)[0])
    pts.selected_data = {first0}
    pts.remove_selected()
    assert widget.store.results[0].count == before[0] - 1
    assert widget.store.results[1].count == before[1] + 1
    assert widget.run_panel.status.value.startswith("Edited by hand: image(s) 0")
    # a new run over corrected images asks first, even after the tables were saved
    widget.results_panel.save_tables(sample_images[0].parent.parent / "saved")
    pts.add(np.array([[2.0, 60.0, 70.0]]))
    assert "corrected by hand" in widget.model.replace_question(widget.store)
    _answer(QMessageBox.StandardButton.Cancel)
    assert widget.run_panel.start_run() is None
    assert widget.store.results[2].count == before[2] + 1


def test_preview_hidden_when_results_arrive_and_one_numbering(make_napari_viewer, qtbot,
                                                              sample_images):
    viewer = make_napari_viewer()
    viewer.open(str(sample_images[0].parent), plugin=PLUGIN)
    widget = _dock(viewer)
    widget.run_panel.workers.value = 0
    widget.model.params = PARAMS
    layer = widget.model.image_layer
    assert layer.axis_labels[0] == "image"  # the slider's name, not "-3"
    viewer.dims.set_current_step(0, 3)
    qtbot.waitUntil(lambda: widget.preview.label.value.startswith("Preview:")
                    and "in image 3" in widget.preview.label.value, timeout=15000)
    assert viewer.layers["nuclei preview"].visible
    assert widget.parameters.decimals() == 0  # "1000", not "1000.00", for integers
    _run(qtbot, widget)
    assert not viewer.layers["nuclei preview"].visible
    assert viewer.layers["nuclei"].visible
    model = widget.results_panel.table.model()
    assert [model.index(r, 0).data() for r in range(6)] == [str(i) for i in range(6)]
    show_image(viewer, widget.store, 4)
    assert viewer.dims.current_step[0] == 4
    # moving a slider again shows the preview again
    widget.parameters.threshold.value = 1500.0
    qtbot.waitUntil(lambda: viewer.layers["nuclei preview"].visible, timeout=10000)


def test_threshold_only_change_is_answered_at_once(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    rng = np.random.default_rng(1)
    image = (rng.random((200, 240)) * 3000).astype(np.uint16)
    viewer.add_image(image, name="img")
    widget = _dock(viewer)
    widget.model.params = DetectionParams(2.0, 4, 1000.0)
    qtbot.waitUntil(lambda: widget.preview.idle
                    and widget.preview.label.value.startswith("Preview:"), timeout=10000)
    drawn = widget.preview.drawn
    # a threshold that still finds nuclei (a count of 0 also starts a check of the threshold)
    expected = detect(image, DetectionParams(2.0, 4, 1600.0)).coords
    assert len(expected) > 0
    widget.parameters.threshold.value = 1600.0  # no worker, no wait: drawn before this returns
    assert widget.preview.drawn == drawn + 1 and widget.preview.worker is None
    np.testing.assert_array_equal(viewer.layers["nuclei preview"].data, expected)


def test_otsu_message_is_true_to_the_slider(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = _dock(viewer)
    widget.model.params = DetectionParams(4.0, 6, 1000.0)
    rng = np.random.default_rng(2)
    image = (rng.random((80, 90)) * 200).astype(np.uint8)
    viewer.add_image(image, name="u8")
    assert "outside this image's range" in widget.run_panel.status.value
    # the value a run suggests too: Otsu's threshold of the blurred image, rounded down
    blurred = gaussian(image.astype(np.float64), 4.0, mode="nearest", truncate=4.0,
                       preserve_range=True, channel_axis=None)
    assert widget.parameters.threshold.value == math.floor(threshold_otsu(blurred))
    assert f"set to {widget.parameters.threshold.value:g} (Otsu)" in widget.run_panel.status.value
    # the sample's own parameters win, and no Otsu message contradicts them
    widget.model.status = ""
    viewer.open_sample(PLUGIN, "bbbc007")
    assert widget.model.params == DetectionParams(3.5, 6, 20.0)
    assert "Otsu" not in widget.run_panel.status.value


def test_describe_progress_words():
    from napari_nuclei_counter.gui.detector.run.progress import describe_progress, format_seconds

    assert describe_progress(0, 240, 0.0) == "0 / 240 images"
    assert describe_progress(57, 240, 57 / 37.1) == \
        "57 / 240 images · 37.1 images/s · about 5 s left"
    assert describe_progress(240, 240, 10.0) == "240 / 240 images · 24.0 images/s"
    # after a resume, only this run's images count for the rate
    assert describe_progress(150, 200, 10.0, start_done=100) == \
        "150 / 200 images · 5.0 images/s · about 10 s left"
    assert format_seconds(200) == "3 min 20 s" and format_seconds(3900) == "1 h 05 min"


def test_a_big_layer_is_built_off_the_window_thread_and_put_in_place(
        make_napari_viewer, qtbot, sample_images, monkeypatch):
    """With the budgets at zero the layer waits for the end of the run, is
    built whole in a worker thread, takes the old layer's place, and hand
    corrections work on it as on a layer filled in place."""
    from napari_nuclei_counter.gui.detector.results import points as _points

    monkeypatch.setattr(_points, "LIVE_BUDGET_S", 0.0)
    monkeypatch.setattr(_points, "MIN_POINTS", 0)
    monkeypatch.setattr(_points, "SWAP_S", 0.0)
    viewer = make_napari_viewer()
    widget = _folder_dock(viewer, sample_images[0].parent)
    # the folder's preview first: read after the runs, it would be the active layer
    qtbot.waitUntil(lambda: "folder preview" in viewer.layers, timeout=15000)
    _run(qtbot, widget)  # the first run: the layer is made by a build too
    first = viewer.layers["nuclei"]
    first.opacity = 0.5  # the user's choices survive the replacement
    first.visible = False
    widget.results_panel.save_tables(sample_images[0].parent.parent / "saved")
    widget.model.params = DetectionParams(3.0, 5, 3000.0)
    built = []
    widget.results_panel.points.ready.append(lambda: built.append(viewer.layers["nuclei"]))
    worker = widget.run_panel.start_run()
    assert worker is not None
    qtbot.waitUntil(lambda: not widget.run_panel.running, timeout=60000)
    assert widget.results_panel.points.building or built  # the end of the run started the build
    qtbot.waitUntil(lambda: widget.settled, timeout=60000)
    paths = widget.store.source.metadata["nuclei_counter"]["paths"]
    counts = [detect(tifffile.imread(p), DetectionParams(3.0, 5, 3000.0)).count for p in paths]
    pts = viewer.layers["nuclei"]
    assert built == [pts] and pts is not first and first not in viewer.layers
    assert [lay.name for lay in viewer.layers].count("nuclei") == 1
    assert pts.opacity == 0.5 and not pts.visible and pts.face_color_mode == "colormap"
    assert len(pts.data) == sum(counts)
    assert np.bincount(pts.data[:, 0].astype(int), minlength=len(paths)).tolist() == counts
    feats = pts.features
    assert (feats["path"].astype(str).to_numpy() == np.array(paths)[feats["image"]]).all()
    assert widget.run_panel.status.value.startswith("Done: 6 of 6 images")
    assert viewer.layers.selection.active.name == widget.store.source.name
    # a hand-added nucleus on image 3 of the new layer belongs to image 3
    pts.add(np.array([[3.0, 40.0, 50.0]]))
    row = pts.features.iloc[-1]
    assert row["image"] == 3 and row["path"] == paths[3] and np.isnan(row["intensity"])
    assert widget.store.results[3].count == counts[3] + 1 and widget.store.results[3].edited
