"""The detector dock's Qt-free model, and the dock's parts following it."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from helpers import PLUGIN
from napari_nuclei_counter.core.params import DetectionParams
from napari_nuclei_counter.core.results.store import ResultsStore
from napari_nuclei_counter.core.results.tables import ImageResult
from napari_nuclei_counter.gui.detector.model import DetectorModel

OTSU = DetectionParams(2.5, 5, 123.0, threshold_method="otsu")


def test_the_model_imports_no_qt_and_no_napari():
    code = ("import sys, napari_nuclei_counter.gui.detector.model as m; m.DetectorModel(); "
            "print(sorted({k.split('.')[0] for k in sys.modules} & "
            "{'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'magicgui', 'superqt', 'napari', "
            "'vispy'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_field_emits_its_event_on_change_only():
    model = DetectorModel()
    values = {"params": OTSU, "preview": False, "preview_text": "x", "threshold_offer": 37.0,
              "source": "folder",
              "image_layer": object(), "folder_layer": object(), "folder": Path("/data"),
              "pattern": "*.png", "channel": 1, "z": "max", "t": "2",
              "workers": 3, "backend": "Dask",
              "scheduler": "tcp://h:8786", "output": Path("/out"), "resume_run": True,
              "running": True, "layer_building": True, "layer_deferred": True, "unsaved": True,
              "edited": True, "status": "Done."}
    assert set(values) == {f.name for f in fields(DetectorModel)}
    for name, value in values.items():
        seen = []
        getattr(model.events, name).connect(lambda *args, seen=seen: seen.append(args))
        setattr(model, name, value)
        setattr(model, name, value)  # the same value again: no event
        assert len(seen) == 1 and seen[0][0] == value, name


def test_the_target_follows_the_source():
    model = DetectorModel()
    layer, folder_layer = object(), object()
    seen = []
    model.target_changed.connect(seen.append)
    model.image_layer = layer
    model.folder_layer = folder_layer  # not the target in image-layer mode
    assert seen == [layer] and model.target is layer
    model.source = "folder"
    assert seen == [layer, folder_layer] and model.target is folder_layer
    model.image_layer = None  # not the target in folder mode
    assert seen == [layer, folder_layer]
    model.folder_layer = None
    assert seen == [layer, folder_layer, None]


@pytest.mark.parametrize("params", [
    OTSU,
    DetectionParams(7.0, 12, 0.25, threshold_method="li"),
    DetectionParams(1.5, 2, 40000.0, threshold_method="triangle"),
    DetectionParams(3.0, 5, 987.5),
])
def test_presets_round_trip_every_field(tmp_path, params):
    a = DetectorModel(params=params)
    a.save_preset(tmp_path / "p.json")
    b = DetectorModel()
    seen = []
    b.events.params.connect(seen.append)
    assert b.load_preset(tmp_path / "p.json") == params
    assert b.params == params and seen == [params]
    for f in fields(DetectionParams):  # field by field, the threshold method included
        assert getattr(b.params, f.name) == getattr(params, f.name)


def test_an_invalid_preset_changes_nothing(tmp_path):
    model = DetectorModel(params=OTSU)
    (tmp_path / "bad.json").write_text('{"sigma": 2, "threshold_method": "median"}')
    with pytest.raises(ValueError, match="threshold_method"):
        model.load_preset(tmp_path / "bad.json")
    assert model.params == OTSU


def test_the_replace_question():
    model = DetectorModel()
    store = ResultsStore()
    store.reset(["a", "b"])
    for i in range(2):
        store.add(ImageResult(i, f"img{i}", coords=np.zeros((1, 2), np.intp),
                              intensities=np.zeros(1)))
    assert model.replace_question(store) == ""  # saved (or from an output folder)
    model.unsaved = True
    assert model.replace_question(store).startswith("The results shown (2 images) are not saved.")
    model.unsaved, model.edited = False, True
    store.set_points(1, np.zeros((0, 2)))
    assert model.replace_question(store).startswith("1 image were corrected by hand after saving.")


# ------------------------------------------------------------------ the real dock
def _dock(viewer):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Nuclei detector")
    return widget


@pytest.mark.gui
def test_an_otsu_preset_previews_with_the_images_own_threshold(make_napari_viewer, qtbot,
                                                                  tmp_path):
    pytest.importorskip("napari")
    from napari_nuclei_counter import detect
    from napari_nuclei_counter.core.detect.thresholds import resolve_threshold
    from napari_nuclei_counter.core.sample import make_nuclei_image

    DetectorModel(params=OTSU).save_preset(tmp_path / "otsu.json")
    image, _ = make_nuclei_image(3, 40, (256, 256))
    viewer = make_napari_viewer()
    viewer.add_image(image, name="dapi")
    dock = _dock(viewer)
    qtbot.waitUntil(lambda: dock.preview.idle
                    and dock.preview.label.value.startswith("Preview:"), timeout=15000)
    dock.model.load_preset(tmp_path / "otsu.json")
    assert dock.model.params == OTSU  # loaded as otsu, not as a fixed number
    resolved = resolve_threshold(image, OTSU)
    assert resolved.threshold_abs != OTSU.threshold_abs
    expected = detect(image, OTSU)
    np.testing.assert_array_equal(expected.coords, detect(image, resolved).coords)
    qtbot.waitUntil(lambda: dock.preview.idle
                    and f"otsu threshold {resolved.threshold_abs:g}" in dock.preview.label.value,
                    timeout=15000)
    np.testing.assert_array_equal(viewer.layers["nuclei preview"].data, expected.coords)
    assert dock.preview.label.value.startswith(f"Preview: {expected.count} nuclei, otsu")
    # the sliders' other moves keep the method; moving the threshold sets a fixed one
    dock.parameters.sigma.value = 3.0
    assert dock.model.params.threshold_method == "otsu" and dock.model.params.sigma == 3.0
    dock.parameters.threshold.value = 2000.0
    assert dock.model.params == DetectionParams(3.0, 5, 2000.0)
    qtbot.waitUntil(lambda: dock.preview.idle and len(viewer.layers["nuclei preview"].data)
                    == detect(image, DetectionParams(3.0, 5, 2000.0)).count, timeout=15000)
    assert "otsu" not in dock.preview.label.value
    # the parameters saved between sessions keep the method too
    dock.model.params = OTSU
    from napari_nuclei_counter.gui.detector.settings import load_settings

    qtbot.waitUntil(lambda: load_settings().get("params") == OTSU.to_dict(), timeout=5000)
    assert _dock(viewer).model.params == OTSU


@pytest.mark.gui
def test_the_parts_follow_the_model(make_napari_viewer, qtbot, tmp_path):
    pytest.importorskip("napari")
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((40, 50), np.uint16), name="img")
    dock = _dock(viewer)
    model = dock.model
    model.params = DetectionParams(2.5, 9, 321.0)
    p = dock.parameters
    assert (p.sigma.value, p.min_distance.value, p.threshold.value) == (2.5, 9, 321.0)
    model.params = DetectionParams(30.0, 80, 1e6)  # beyond the sliders: their ends count
    assert model.params == DetectionParams(20.0, 50, 1e6) and p.threshold.max >= 1e6
    model.preview = False
    assert dock.preview.check.value is False
    model.status = "Hello."
    assert dock.run_panel.status.value == "Hello."
    model.workers, model.backend, model.resume_run = 3, "Dask", True
    run = dock.run_panel
    assert run.workers.value == 3 and run.backend.value == "Dask" and run.scheduler.enabled
    assert run.resume_check.value
    model.output = tmp_path
    assert Path(run.output.value) == tmp_path
    source = dock.source_panel
    model.folder, model.pattern = tmp_path, "*.png"
    assert Path(source.folder_picker.folder.value) == tmp_path
    assert source.folder_picker.pattern.value == "*.png"
    model.source = "folder"
    assert source.source.value == "folder"
    assert source.folder_picker.folder.native.isVisibleTo(dock)
    assert not source.image_combo.native.isVisibleTo(dock)
    assert dock.preview.label.value == "Choose a folder of images."
    # and the widgets set the model
    source.source.value = "image layer"
    assert model.source == "image layer" and model.target is viewer.layers["img"]
    run.workers.value = 1
    assert model.workers == 1
    dock.preview.check.value = True
    assert model.preview
    second = viewer.add_image(np.ones((40, 50), np.uint16), name="second")
    assert model.image_layer is second or model.image_layer == second  # a new image is the target
    model.image_layer = viewer.layers["img"]
    assert source.image_combo.value == viewer.layers["img"]
