"""Folder mode previews files and picks a channel; the views dock as tabs and stop on close."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

pytest.importorskip("napari")
pytest.importorskip("qtpy")

from qtpy.QtWidgets import QMainWindow

from helpers import PLUGIN
from napari_nuclei_counter import DetectionParams, detect
from napari_nuclei_counter.core.sample import write_sample_plate

pytestmark = pytest.mark.gui

PARAMS = DetectionParams(3.0, 5, 1000.0)


def _shown(mgui_widget, dock) -> bool:
    """Whether the dock shows a field (the window itself is not on screen in tests)."""
    return mgui_widget.native.isVisibleTo(dock)


def _folder_dock(viewer, folder, pattern=None):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Nuclei detector")
    widget.model.params = PARAMS
    widget.run_panel.workers.value = 0
    widget.source_panel.source.value = "folder"
    if pattern is not None:
        widget.source_panel.folder_picker.pattern.value = pattern
    widget.source_panel.folder_picker.folder.value = folder
    return widget


def test_folder_mode_previews_the_files_and_steps_through_them(make_napari_viewer, qtbot,
                                                                sample_images):
    viewer = make_napari_viewer()
    widget = _folder_dock(viewer, sample_images[0].parent)
    qtbot.waitUntil(lambda: "folder preview" in viewer.layers
                    and widget.preview.label.value.startswith("Preview:"), timeout=15000)
    assert widget.source_panel.folder_picker.match_label.value == "6 images match"
    paths = widget.source_panel.folder_picker.matches
    layer = viewer.layers["folder preview"]
    np.testing.assert_array_equal(layer.data, tifffile.imread(paths[0]))
    pts = viewer.layers["nuclei preview"]
    np.testing.assert_array_equal(pts.data, detect(tifffile.imread(paths[0]), PARAMS).coords)
    channels, folder_preview = widget.source_panel.channels, widget.source_panel.folder_preview
    assert not _shown(channels.channel, widget) and not _shown(channels.z, widget)
    assert _shown(folder_preview.step, widget) and folder_preview.step.max == 5
    folder_preview.step.value = 3
    expected = detect(tifffile.imread(paths[3]), PARAMS).coords
    qtbot.waitUntil(lambda: layer.metadata.get("path") == str(paths[3]) and widget.preview.idle
                    and len(pts.data) == len(expected), timeout=15000)
    np.testing.assert_array_equal(pts.data, expected)
    assert folder_preview.name.value == paths[3].name
    # the folder preview is no run target; the run's stack replaces it
    combo = widget.source_panel.image_combo
    combo.reset_choices()
    assert layer not in combo.choices
    inserted = []
    viewer.layers.events.inserted.connect(lambda e: inserted.append(e.value.name))
    widget.run_panel.start_run()
    qtbot.waitUntil(lambda: widget.settled, timeout=60000)
    assert "folder preview" not in viewer.layers and len(widget.store.results) == 6
    # the preview's layer became the run's stack: no image layer added for it (the preview's
    # rings are made again for a stack)
    assert [name for name in inserted if name != "nuclei preview"] == ["nuclei"]
    stack = widget.store.source
    assert stack.name == sample_images[0].parent.name and stack.visible
    assert stack.data.shape == (6, *tifffile.imread(paths[0]).shape)
    np.testing.assert_array_equal(np.asarray(stack.data[4]), tifffile.imread(paths[4]))
    assert stack.metadata["nuclei_counter"]["paths"] == [str(p) for p in paths]
    assert widget.source_panel.image_combo.value.name == stack.name


def test_channel_picker_passes_the_choice_to_the_run(make_napari_viewer, qtbot, tmp_path):
    folder = tmp_path / "two channels"
    folder.mkdir()
    rng = np.random.default_rng(4)
    dapi = []
    for k in range(2):
        nuclei = write_sample_plate(tmp_path / f"src{k}", rows="B", columns=[2], sites=1,
                                    seed=20 + k, shape=(256, 320))[0]
        plane = tifffile.imread(nuclei)
        tubulin = (rng.random(plane.shape) * 4000).astype(plane.dtype)
        tifffile.imwrite(folder / f"cells_{k}.ome.tif", np.stack([tubulin, plane]),
                         ome=True, metadata={"axes": "CYX",
                                             "Channel": {"Name": ["Tubulin", "DAPI"]}})
        dapi.append(plane)
    viewer = make_napari_viewer()
    widget = _folder_dock(viewer, folder, pattern="*.ome.tif")
    qtbot.waitUntil(lambda: _shown(widget.source_panel.channels.channel, widget), timeout=15000)
    combo = widget.source_panel.channels.channel.native
    assert [combo.itemText(i) for i in range(combo.count())] == ["0: Tubulin", "1: DAPI"]
    assert widget.source_panel.channels.channel.value == 1  # the DNA stain first
    assert not _shown(widget.source_panel.channels.z, widget)
    assert widget.source_panel.channels.choice() == (1, None)
    qtbot.waitUntil(lambda: "folder preview" in viewer.layers, timeout=15000)
    np.testing.assert_array_equal(viewer.layers["folder preview"].data, dapi[0])
    widget.run_panel.start_run()
    qtbot.waitUntil(lambda: widget.settled, timeout=60000)
    assert widget.run_panel.status.value.startswith("Done: 2 of 2 images")
    counts = [widget.store.results[i].count for i in range(2)]
    assert counts == [detect(p, PARAMS).count for p in dapi]
    # the other channel, picked by hand, gives that channel's counts
    widget.source_panel.channels.channel.value = 0
    assert widget.source_panel.channels.choice() == (0, None)


def test_views_open_as_tabs_and_stop_their_work_when_closed(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Nuclei detector")
    gallery = widget.results_panel.open_gallery()
    plate_map = widget.results_panel.open_plate_map()
    detector_dock = widget.parent()
    window = detector_dock.parent()
    assert isinstance(window, QMainWindow)
    tabs = set(window.tabifiedDockWidgets(detector_dock))
    assert {gallery.parent(), plate_map.parent()} <= tabs  # one column of tabs, not three
    # napari's close button takes the view out of its dock: its threads stop now
    assert not gallery._closed.is_set()
    viewer.window.remove_dock_widget(gallery.parent())
    assert gallery._closed.is_set()
    assert not plate_map._closed.is_set()
    viewer.window.remove_dock_widget(plate_map.parent())
    assert plate_map._closed.is_set()
    # and the button docks a fresh gallery again
    again = widget.results_panel.open_gallery()
    assert again is not gallery and not again._closed.is_set()
