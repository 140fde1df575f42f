"""The nuclei layer built off the window's thread: what happens while it is being built.

Real napari viewer (Xvfb), real runs on small generated plates; the budgets
are set to zero so every run's layer is built in a worker thread, and the
build waits on a gate so that the test acts while it is in flight.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("qtpy")

from helpers import PLUGIN
from napari_nuclei_counter import DetectionParams
from napari_nuclei_counter.gui.detector.results import points as _points
from napari_nuclei_counter.gui.detector.results import points_build as _points_build

pytestmark = pytest.mark.gui

PARAMS = DetectionParams(3.0, 5, 1000.0)
_BUILD = _points_build.build_layer


@pytest.fixture
def gate(monkeypatch):
    """Builds wait until ``gate.set()``."""
    event = threading.Event()

    def slow_build(*args, **kwargs):
        event.wait(30)
        return _BUILD(*args, **kwargs)

    monkeypatch.setattr(_points, "LIVE_BUDGET_S", 0.0)
    monkeypatch.setattr(_points, "MIN_POINTS", 0)
    monkeypatch.setattr(_points, "SWAP_S", 0.0)
    monkeypatch.setattr(_points_build, "build_layer", slow_build)
    yield event
    event.set()


def _dock(viewer, folder):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Nuclei detector")
    widget.source_panel.source.value = "folder"
    widget.source_panel.folder_picker.folder.value = folder
    widget.run_panel.workers.value = 0
    widget.model.params = PARAMS
    return widget


def _run_until_building(qtbot, widget):
    assert widget.run_panel.start_run(ask=False) is not None
    qtbot.waitUntil(lambda: not widget.run_panel.running, timeout=60000)
    assert widget.results_panel.points.building and not widget.settled
    assert widget.run_panel.status.value.endswith("; filling the nuclei layer…")


def _first_run(qtbot, widget, gate):
    assert widget.run_panel.start_run(ask=False) is not None
    gate.set()
    qtbot.waitUntil(lambda: widget.settled, timeout=60000)
    gate.clear()


def test_the_old_layer_cannot_be_edited_while_the_new_one_is_built(
        make_napari_viewer, qtbot, sample_images, gate):
    viewer = make_napari_viewer()
    widget = _dock(viewer, sample_images[0].parent)
    _first_run(qtbot, widget, gate)
    old = viewer.layers["nuclei"]
    assert old.editable
    _run_until_building(qtbot, widget)
    assert viewer.layers["nuclei"] is old and not old.editable
    gate.set()
    qtbot.waitUntil(lambda: widget.settled, timeout=10000)
    new = viewer.layers["nuclei"]
    assert new is not old and new.editable and new.visible and old not in viewer.layers
    assert widget.run_panel.status.value.startswith("Done: 6 of 6 images")
    assert not widget.run_panel.status.value.endswith("layer…")


def test_clear_while_building_leaves_no_layer_behind(make_napari_viewer, qtbot, sample_images,
                                                     gate):
    viewer = make_napari_viewer()
    widget = _dock(viewer, sample_images[0].parent)
    _run_until_building(qtbot, widget)
    assert widget.results_panel.clear_results(ask=False)
    assert widget.settled
    gate.set()
    qtbot.wait(800)  # the dropped build returns meanwhile
    assert "nuclei" not in viewer.layers and not widget.store.results
    assert not widget.run_panel.status.value.startswith("Done")


def test_a_new_run_while_building_keeps_its_own_status(make_napari_viewer, qtbot, sample_images,
                                                       gate):
    viewer = make_napari_viewer()
    widget = _dock(viewer, sample_images[0].parent)
    _first_run(qtbot, widget, gate)
    _run_until_building(qtbot, widget)
    assert widget.run_panel.start_run(ask=False) is not None
    widget.run_panel.cancel()  # before its first result: the previous results stay
    qtbot.waitUntil(lambda: not widget.run_panel.running, timeout=60000)
    cancelled = widget.run_panel.status.value
    assert cancelled.startswith("Cancelled before any result")
    gate.set()
    qtbot.waitUntil(lambda: widget.settled, timeout=10000)
    qtbot.wait(300)
    assert widget.run_panel.status.value == cancelled
    # the dropped build left the layer the user's to edit
    assert viewer.layers["nuclei"].editable


def test_closing_the_dock_while_building_raises_nothing(make_napari_viewer, qtbot, sample_images,
                                                        gate):
    viewer = make_napari_viewer()
    widget = _dock(viewer, sample_images[0].parent)
    _run_until_building(qtbot, widget)
    points = widget.results_panel.points
    viewer.window.remove_dock_widget(widget)
    widget.deleteLater()
    qtbot.waitUntil(lambda: not points.building, timeout=5000)  # destroyed: the build dropped
    gate.set()
    qtbot.wait(800)  # pytest-qt fails the test on an exception in the event loop
    assert "nuclei" not in viewer.layers
    np.testing.assert_equal(points.ready, [])
