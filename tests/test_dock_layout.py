"""The detector dock in a real napari window (issue 24, items 4-6).

The dock fits a laptop's window: at 1280x800 with every section open the canvas keeps
at least half the window's width, the window is no taller than the screen, no label or
button is cut, and the results table shows many rows; at napari's default size nothing
is cut either. The preview's rings stay above every other layer, and the status texts
follow the model (a message about a value goes when the value changes; after a run on a
folder the preview line describes the folder's image on screen).

Sizes are read from plain Qt: the main window is the ``QMainWindow`` among
``QApplication.topLevelWidgets()`` that holds the dock, the canvas its ``centralWidget()``.
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

pytest.importorskip("napari")
pytest.importorskip("qtpy")

from qtpy.QtCore import Qt
from qtpy.QtGui import QFontMetrics
from qtpy.QtWidgets import (
    QAbstractButton,
    QAbstractSpinBox,
    QApplication,
    QLabel,
    QMainWindow,
    QScrollArea,
    QTabBar,
    QWidget,
)

from helpers import PLUGIN
from napari_nuclei_counter import DetectionParams
from napari_nuclei_counter.gui.detector.model import DetectorModel
from napari_nuclei_counter.gui.detector.preview import PREVIEW_LAYER

pytestmark = pytest.mark.gui

PARAMS = DetectionParams(3.0, 5, 1000.0)
#: napari's default window on this project's test screens, and two laptop/desktop screens
DEFAULT, LAPTOP, DESKTOP = (1089, 630), (1280, 800), (1920, 1080)


# ---------------------------------------------------------------- measuring
def _main_window(widget) -> QMainWindow:
    """The napari window that holds ``widget`` (plain Qt: no private napari API)."""
    for top in QApplication.topLevelWidgets():
        if isinstance(top, QMainWindow) and top.isAncestorOf(widget):
            return top
    raise AssertionError("the dock is in no main window")


def _dock_frame(widget) -> QWidget:
    """The ``QDockWidget`` napari made around the dock."""
    return widget.parentWidget()


def _clipped(root: QWidget) -> list[str]:
    """Every text shown in ``root`` that its widget cuts, or a widget cut by ``root``'s edge.

    A label's text must fit its width (``QFontMetrics``; wrapped labels break lines); a
    button (push, check, radio) must be as wide as its size hint, which holds its text
    and indicator; a tab's title must fit its tab; and no shown widget may reach past the
    right edge of ``root`` or of the scroll area it is in (those scroll only up and down).
    """
    out = []
    right = root.width()
    for w in root.findChildren(QWidget):
        if not w.isVisible():
            continue
        name = f"{type(w).__name__} {getattr(w, 'text', lambda: '')()!r}"
        if isinstance(w, QLabel) and w.text() and not w.wordWrap():
            need = QFontMetrics(w.font()).horizontalAdvance(w.text())
            if need > w.contentsRect().width():
                out.append(f"{name}: text {need} px in {w.contentsRect().width()} px")
        elif isinstance(w, QAbstractButton) and w.text():
            if w.width() < w.sizeHint().width():
                out.append(f"{name}: {w.width()} px of {w.sizeHint().width()} px")
        elif isinstance(w, QTabBar):
            metrics = QFontMetrics(w.font())
            for i in range(w.count()):
                if metrics.horizontalAdvance(w.tabText(i)) > w.tabRect(i).width():
                    out.append(f"tab {w.tabText(i)!r}: {w.tabRect(i).width()} px")
        elif isinstance(w, QAbstractSpinBox) and w.lineEdit() is not None:
            # the value shown, and the widest value it may show, fit the box
            texts = [w.text()] + ([w.textFromValue(w.maximum())] if hasattr(w, "textFromValue")
                                  else [])
            need = max(QFontMetrics(w.font()).horizontalAdvance(t) for t in texts)
            if need > w.lineEdit().width():
                out.append(f"{name}: {texts} need {need} px in {w.lineEdit().width()} px")
        if w.mapTo(root, w.rect().topRight()).x() > right:
            out.append(f"{name}: past the dock's right edge")
    for area in root.findChildren(QScrollArea):
        if area.isVisible() and area.widget() is not None \
                and area.widget().width() > area.viewport().width():
            out.append(f"{type(area).__name__}: its page is wider than its view")
    return out


def _open_everything(widget, qtbot) -> None:
    """Folder mode's rows shown, *Advanced* and *Are my counts right?* open."""
    widget.run_panel.advanced.expand(animate=False)
    widget.scoring_box.expand(animate=False)
    qtbot.wait(50)


def _resize(viewer, widget, qtbot, size) -> QMainWindow:
    window = _main_window(widget)
    viewer.window.resize(*size)
    qtbot.wait(100)
    QApplication.processEvents()
    return window


def _measure(widget, window) -> dict:
    frame = _dock_frame(widget)
    return {"window": (window.width(), window.height()),
            "window_min_height": window.minimumSizeHint().height(),
            "canvas": window.centralWidget().width(),
            "dock": (frame.width(), frame.height()),
            "dock_min": (frame.minimumSizeHint().width(), frame.minimumSizeHint().height())}


def _dock(viewer, qtbot):
    viewer.window.show()  # sizes and clipping need a window on the (virtual) screen
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Nuclei detector")
    widget.model.params = PARAMS
    widget.run_panel.workers.value = 0
    qtbot.wait(50)
    return widget


def _run(widget, qtbot) -> None:
    widget.run_panel.start_run(ask=False)
    qtbot.waitUntil(lambda: widget.settled and len(widget.store.results) > 0, timeout=60000)


# ------------------------------------------------------------------- item 4
def test_the_dock_fits_a_1280x800_window_with_every_section_open(make_napari_viewer, qtbot,
                                                                  sample_images):
    viewer = make_napari_viewer()
    stack = np.stack([tifffile.imread(p) for p in sample_images] * 4)  # 24 images
    viewer.add_image(stack, name="plate")
    widget = _dock(viewer, qtbot)
    _open_everything(widget, qtbot)
    _run(widget, qtbot)
    assert widget.tabs.currentWidget() is widget.results_tab  # the new run's table in front
    assert widget.tabs.tabText(1) == "Results (24)"
    window = _resize(viewer, widget, qtbot, LAPTOP)
    m = _measure(widget, window)
    assert m["window"] == LAPTOP, m  # the window can be as short as the screen
    assert m["window_min_height"] <= LAPTOP[1], m
    assert m["canvas"] >= LAPTOP[0] / 2, m
    assert m["dock"][0] <= 320, m
    # the table has the dock's height: many rows in sight
    table = widget.results_panel.table
    assert table.isVisible() and table.viewport().height() // table.rowHeight(0) >= 12
    assert _clipped(widget) == []
    # the Detect tab, every row of folder mode shown too
    widget.tabs.setCurrentWidget(widget.detect_tab)
    widget.model.source = "folder"
    qtbot.wait(100)
    assert _clipped(widget) == []
    assert m["canvas"] >= LAPTOP[0] / 2 and window.centralWidget().width() == m["canvas"]
    # Run, the progress and the status line stay in sight under both tabs
    assert widget.run_panel.run_button.native.isVisible()
    assert widget.run_panel.status.native.isVisible()


@pytest.mark.parametrize("size", [DEFAULT, DESKTOP])
def test_nothing_is_cut_at_napari_default_size_and_on_a_desktop(make_napari_viewer, qtbot,
                                                                 sample_images, tmp_path, size):
    viewer = make_napari_viewer()
    viewer.add_image(tifffile.imread(sample_images[0]), name="a rather long image layer name")
    widget = _dock(viewer, qtbot)
    _open_everything(widget, qtbot)
    window = _resize(viewer, widget, qtbot, size)
    for source in ("image layer", "folder"):
        widget.model.source = source
        widget.model.folder = sample_images[0].parent
        qtbot.wait(100)
        m = _measure(widget, window)
        assert m["window"] == size, m
        assert m["canvas"] >= 0.4 * size[0], m
        assert _clipped(widget) == [], (source, m)
    # a long file name is elided in the middle, the whole name in the tooltip
    long = tmp_path / ("Week1_150607_B02_s4_w1EB868A72-19FC-46BB-BDFA-66B8966A817C" + ".tif")
    tifffile.imwrite(long, tifffile.imread(sample_images[0]))
    widget.model.folder, widget.model.pattern = tmp_path, "*.tif"
    name = widget.source_panel.folder_preview.name
    qtbot.waitUntil(lambda: name.native.toolTip() == long.name, timeout=15000)
    qtbot.wait(50)
    assert _clipped(widget) == []


# ------------------------------------------------------------------- item 5
def test_the_rings_stay_above_every_layer_in_folder_mode(make_napari_viewer, qtbot, sample_images):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((64, 64), np.uint16), name="other image")
    viewer.add_labels(np.zeros((64, 64), np.int32), name="labels")
    widget = _dock(viewer, qtbot)
    widget.source_panel.source.value = "folder"
    widget.source_panel.folder_picker.folder.value = sample_images[0].parent
    qtbot.waitUntil(lambda: "folder preview" in viewer.layers
                    and widget.preview.label.value.startswith("Preview:"), timeout=15000)
    qtbot.waitUntil(lambda: viewer.layers[-1].name == PREVIEW_LAYER, timeout=5000)
    rings = viewer.layers[PREVIEW_LAYER]
    assert rings.visible and len(rings.data) > 0
    assert [ly.name for ly in viewer.layers].index("folder preview") < len(viewer.layers) - 1
    # another file, another layer: the rings go back on top
    viewer.add_image(np.zeros((64, 64), np.uint8), name="opened later")
    qtbot.waitUntil(lambda: viewer.layers[-1].name == PREVIEW_LAYER, timeout=5000)
    viewer.add_points(np.zeros((0, 2)), name="clicks")
    qtbot.waitUntil(lambda: viewer.layers[-1].name == PREVIEW_LAYER, timeout=5000)


# ------------------------------------------------------------------- item 6
def test_a_message_about_a_value_goes_when_the_value_changes():
    model = DetectorModel()
    model.say_about_params("Threshold 1000 is outside this image's range; set to 41 (Otsu).")
    model.params = DetectionParams(4.0, 6, 20.0)
    assert model.status == ""
    model.status = "Done: 24 of 24 images, 960 nuclei, 1.2 s"
    model.params = DetectionParams(4.0, 6, 21.0)  # other messages stay
    assert model.status.startswith("Done:")


def test_the_otsu_message_goes_when_the_user_types_a_threshold(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = _dock(viewer, qtbot)
    widget.model.params = DetectionParams(4.0, 6, 1000.0)
    rng = np.random.default_rng(2)
    viewer.add_image((rng.random((80, 90)) * 200).astype(np.uint8), name="u8")
    assert "(Otsu)" in widget.run_panel.status.value
    spin = widget.parameters._threshold_slider()
    spin.selectAll()
    qtbot.keyClicks(spin, "20")
    qtbot.keyClick(spin, Qt.Key.Key_Return)
    assert widget.model.params.threshold_abs == 20.0
    assert widget.run_panel.status.value == ""
    # so does a suggestion's, once a slider moves
    widget.scoring._apply(DetectionParams(3.0, 5, 30.0), "suggested")
    assert widget.run_panel.status.value == "Parameters: suggested"
    widget.parameters.sigma.value = 2.5
    assert widget.run_panel.status.value == ""


def test_after_a_folder_run_the_preview_line_describes_the_folder_image(make_napari_viewer, qtbot,
                                                                         sample_images):
    viewer = make_napari_viewer()
    widget = _dock(viewer, qtbot)
    widget.source_panel.source.value = "folder"
    widget.source_panel.folder_picker.folder.value = sample_images[0].parent
    qtbot.waitUntil(lambda: widget.preview.label.value.startswith("Preview:"), timeout=15000)
    _run(widget, qtbot)
    qtbot.waitUntil(lambda: widget.preview.idle, timeout=15000)
    stack = widget.store.source
    assert widget.model.folder_layer is stack and widget.model.target is stack
    assert widget.source_panel.folder_picker.match_label.value == "6 images match"
    text = widget.preview.label.value
    assert text.startswith("Preview:") and "in image" in text and "Choose a folder" not in text
    # the results are on screen: the rings stay hidden until a slider moves, and the line says so
    assert not viewer.layers[PREVIEW_LAYER].visible and "rings hidden" in text
    assert stack.visible and viewer.layers["nuclei"].visible
    # stepping through the folder's files moves through the stack, reading nothing again
    n_layers = len(viewer.layers)
    widget.source_panel.folder_preview.step.value = 4
    qtbot.waitUntil(lambda: viewer.dims.current_step[0] == 4 and widget.preview.idle
                    and "in image 4" in widget.preview.label.value, timeout=15000)
    assert len(viewer.layers) == n_layers and "folder preview" not in viewer.layers
    assert viewer.layers[PREVIEW_LAYER].visible  # the displayed image changed: rings again
    # back to the image layer and to the folder: the run's stack is never hidden
    widget.source_panel.source.value = "image layer"
    widget.source_panel.source.value = "folder"
    assert stack in viewer.layers and stack.visible
