"""The detector dock's Treatments tab, the plate map and the gallery with a plate layout.

Real napari viewer (Xvfb), a real run on a small generated plate, a layout
file written here, real matplotlib clicks on the dose-response canvas.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("qtpy")
pytest.importorskip("matplotlib")

import matplotlib
from qtpy.QtCore import QPoint, Qt

from helpers import PLUGIN
from napari_nuclei_counter import DetectionParams
from napari_nuclei_counter.core.sample import write_sample_plate
from napari_nuclei_counter.gui.views.gallery import GalleryWidget
from napari_nuclei_counter.gui.views.plate_map import PlateMapWidget

pytestmark = pytest.mark.gui

PARAMS = DetectionParams(3.0, 5, 500.0)
#: the layout written for the plate: (well, compound, concentration in µM, control);
#: columns 2 to 7 of rows B to E hold 24 images with more nuclei in higher columns
LAYOUT = (
    [(f"{r}07", "DMSO", None, "negative") for r in "BCDE"]
    + [(f"{r}02", "taxol", 0.3, "positive") for r in "BCDE"]
    + [(f"{r}{c:02d}", drug, conc, "") for r, drug in zip("BCDE", ["drugA", "drugA", "drugB",
                                                                      "drugB"], strict=True)
       for c, conc in zip(range(3, 7), [10, 3, 1, 0.3], strict=True)]
)
COMPOUNDS = ["DMSO", "drugA", "drugB", "taxol"]  # in natural order, ignoring case


@pytest.fixture
def plate(tmp_path):
    """4 rows x 6 columns x 1 site = 24 small BBBC021-named images."""
    return write_sample_plate(tmp_path / "plate", rows="BCDE", columns=range(2, 8), sites=1,
                              seed=5, shape=(256, 320))


@pytest.fixture
def layout_file(tmp_path):
    path = tmp_path / "layout.csv"
    lines = ["well,compound,concentration,unit,control"]
    for well, compound, conc, control in LAYOUT:
        lines.append(f"{well},{compound},{'' if conc is None else conc},"
                     f"{'' if conc is None else 'µM'},{control}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _dock(viewer, plate):
    viewer.window.show()  # clicks on the curves need a window on the (virtual) screen
    viewer.open(str(plate[0].parent), plugin=PLUGIN)
    _, det = viewer.window.add_plugin_dock_widget(PLUGIN, "Nuclei detector")
    det.preview.check.value = False
    det.run_panel.workers.value = 0
    det.model.params = PARAMS
    return det


def _run(det, qtbot):
    assert det.run_panel.start_run(ask=False) is not None
    qtbot.waitUntil(lambda: not det.run_panel.running, timeout=60000)


def _counts_by_well(store):
    """Nuclei per image, by well name (one site per well here)."""
    return {store.meta[i].well: r.count for i, r in store.results.items() if r.ok}


def _tab10(k):
    r, g, b = matplotlib.colormaps["tab10"].colors[k][:3]
    return round(r * 255), round(g * 255), round(b * 255)


def _pixel(canvas, well):
    """Colour painted at the centre of a well, read back from the widget's pixels."""
    image = canvas.grab().toImage()
    centre = canvas.rect_of(well).center()
    ratio = image.devicePixelRatio()
    colour = image.pixelColor(int(centre.x() * ratio), int(centre.y() * ratio))
    return colour.red(), colour.green(), colour.blue()


def _table_rows(table):
    return [tuple(table.item(r, c).text() for c in range(table.columnCount()))
            for r in range(table.rowCount())]


def test_treatments_tab_plate_map_curves_and_gallery(make_napari_viewer, qtbot, plate,
                                                     layout_file):
    viewer = make_napari_viewer()
    det = _dock(viewer, plate)
    panel = det.treatments_panel
    treatments = panel.treatments

    # a layout loaded before the run: the plate map colours the layout's wells by compound
    assert panel.load_layout(layout_file)
    assert treatments.compounds() == COMPOUNDS
    assert panel.file_label.toolTip() == "layout.csv"
    assert "24 wells, 4 compounds" in panel.summary.text()
    plate_map = PlateMapWidget(viewer)
    viewer.window.add_dock_widget(plate_map, name="Plate map")
    assert plate_map.treatments is treatments
    plate_map.set_value("compound")
    assert plate_map.legend() == [(c, _tab10(k)) for k, c in enumerate(COMPOUNDS)]
    assert plate_map.canvas.colour_of("C04") == _tab10(COMPOUNDS.index("drugA"))

    # the run; the analysis follows when it ends
    _run(det, qtbot)
    qtbot.waitUntil(lambda: treatments.analysis is not None and not panel.busy, timeout=30000)
    qtbot.waitUntil(lambda: not plate_map.busy and len(plate_map.wells) == 24, timeout=10000)
    store = det.store
    counts = _counts_by_well(store)
    assert len(counts) == 24 and treatments.error == ""
    negative = np.mean([counts[f"{r}07"] for r in "BCDE"])
    positive = np.mean([counts[f"{r}02"] for r in "BCDE"])
    percent = {w: 100 * n / negative for w, n in counts.items()}

    # the plate map by compound: the colours painted and the legend
    plate_map.set_value("compound")
    assert plate_map.plate() == "22123"
    assert plate_map.legend() == [(c, _tab10(k)) for k, c in enumerate(COMPOUNDS)]
    for well, compound, _, _ in LAYOUT:
        assert plate_map.canvas.colour_of(well) == _tab10(COMPOUNDS.index(compound))
    for well in ("B07", "C02", "C04", "E06"):
        assert _pixel(plate_map.canvas, well) == plate_map.canvas.colour_of(well)
    # ... by concentration (log scale) and by percent of control
    plate_map.set_value("concentration")
    assert plate_map.canvas.grid[1, 2] == pytest.approx(1.0)  # C03: 10 µM
    assert plate_map.canvas.grid[3, 5] == pytest.approx(np.log10(0.3))  # E06
    assert np.isnan(plate_map.canvas.grid[1, 6])  # C07: DMSO, no concentration
    assert plate_map.canvas.bar_labels() == ("10", "0.3")
    assert "concentration (µM), log scale" in plate_map.canvas.title
    plate_map.set_value("percent_of_control")
    assert plate_map.canvas.grid[1, 3] == pytest.approx(percent["C04"], rel=1e-9)
    assert plate_map.canvas.title == "plate 22123: percent of control"

    # the tooltip of a well
    n = counts["C04"]
    assert plate_map.tooltip_for("C04") == "\n".join([
        "C04  (plate 22123)", "images: 1", f"total: {n} nuclei", f"mean: {n:.1f} nuclei per site",
        "std: n/a (one image)", "compound: drugA", "concentration: 3 µM", "control: —",
        f"percent of control: {percent['C04']:.1f} %"])
    assert "control: negative" in plate_map.tooltip_for("D07")
    assert "control: positive" in plate_map.tooltip_for("D02")

    # the plates table: Z' over the control wells' means
    neg = [counts[f"{r}07"] for r in "BCDE"]
    pos = [counts[f"{r}02"] for r in "BCDE"]
    z = 1 - 3 * (np.std(pos, ddof=1) + np.std(neg, ddof=1)) / abs(positive - negative)
    rows = _table_rows(panel.plates)
    assert len(rows) == 1 and rows[0][:2] == ("22123", f"{z:.2f}")
    assert f"plate 22123: Z′ {z:.2f}" in panel.summary.text()

    # the conditions table: one row per compound and concentration
    expected = [("DMSO", "", "negative", "4", "4", f"{100:.1f}",
                 f"{np.std([percent[f'{r}07'] for r in 'BCDE'], ddof=1):.1f}"),
                ("taxol", "0.3 µM", "positive", "4", "4", f"{100 * positive / negative:.1f}",
                 f"{np.std([percent[f'{r}02'] for r in 'BCDE'], ddof=1):.1f}")]
    for drug, rows_of in (("drugA", "BC"), ("drugB", "DE")):
        for c, conc in zip(range(3, 7), ["10", "3", "1", "0.3"], strict=True):
            values = [percent[f"{r}{c:02d}"] for r in rows_of]
            expected.append((drug, f"{conc} µM", "", "2", "2", f"{np.mean(values):.1f}",
                             f"{np.std(values, ddof=1):.1f}"))
    assert sorted(_table_rows(panel.conditions)) == sorted(expected)

    # the curves: one axes per compound of a series (the controls are no series)
    det.tabs.setCurrentWidget(panel)
    panel.views.setCurrentWidget(panel.curves_page)
    qtbot.waitUntil(lambda: panel.canvas.isVisible(), timeout=5000)
    assert [p.compound for p in panel.panels] == ["drugA", "drugB"]
    assert len(panel.figure.axes) == 2
    assert {ax.get_title().split("\n")[0] for ax in panel.figure.axes} >= {"drugA", "drugB"}
    for p in panel.panels:
        assert p.scatter.get_offsets().shape == (8, 2)

    # clicking a point: the gallery filters to that well, the viewer shows its first image
    gallery = GalleryWidget(viewer)
    viewer.window.add_dock_widget(gallery, name="Nuclei gallery")
    det.tabs.setCurrentWidget(panel)  # docking may have raised another tab
    drug_b = panel.panels[1]
    k = next(i for i, w in enumerate(drug_b.points["well"]) if w == "E05")
    assert drug_b.points["concentration"].iloc[k] == 1.0
    assert drug_b.points["percent_of_control"].iloc[k] == pytest.approx(percent["E05"])
    panel.canvas.draw()
    x, y = drug_b.axes.transData.transform(drug_b.scatter.get_offsets()[k])
    ratio = panel.canvas.device_pixel_ratio
    at = QPoint(round(x / ratio), round(panel.canvas.height() - y / ratio))
    panel.curves.ensureVisible(at.x(), at.y())
    qtbot.mouseClick(panel.canvas, Qt.MouseButton.LeftButton, pos=at)
    e05 = next(i for i, m in enumerate(store.meta) if m.well == "E05")
    qtbot.waitUntil(lambda: store.selected_well == "E05", timeout=5000)
    assert gallery.well_filter() == "E05" and gallery.order() == [e05]
    assert viewer.dims.current_step[0] == e05
    assert plate_map.canvas.selected == "E05"
    assert panel.info.text().startswith("E05 (plate 22123): 1 image")

    # the gallery's compound filter: the images of drugA, most nuclei first
    gallery.set_well(None)
    assert gallery.filters.compound_combo.isVisibleTo(gallery)
    combo = gallery.filters.compound_combo
    assert [combo.itemText(i) for i in range(combo.count())] == ["all compounds", *COMPOUNDS]
    combo.setCurrentIndex(combo.findData("drugA"))
    assert treatments.compound == "drugA" and gallery.compound_filter() == "drugA"
    assert [p.compound for p in panel.panels] == ["drugA"]  # the curves follow
    assert panel.curve_combo.currentText() == "drugA"
    drug_a = [i for i, m in enumerate(store.meta) if m.well[0] in "BC" and 3 <= int(m.well[1:]) <= 6]
    by_count = {i: store.results[i].count for i in drug_a}
    assert gallery.order() == sorted(drug_a, key=lambda i: (-by_count[i], i))
    assert gallery.status.text().startswith("8 of 8 images of drugA")
    # the conditions table's rows pick the compound too
    row = next(r for r, cells in enumerate(_table_rows(panel.conditions)) if cells[0] == "taxol")
    panel.on_condition_clicked(row)
    taxol = sorted((i for i, m in enumerate(store.meta) if m.well.endswith("02")),
                   key=lambda i: (-store.results[i].count, i))
    assert gallery.order() == taxol
    assert [p.compound for p in panel.panels] == ["drugA", "drugB"]  # taxol has no curve
    # the combo above the curves picks the compound too
    panel.curve_combo.setCurrentIndex(panel.curve_combo.findData("drugB"))
    panel.on_curve_picked()
    assert [p.compound for p in panel.panels] == ["drugB"]
    assert gallery.filters.compound() == "drugB" and len(gallery.order()) == 8
    combo.setCurrentIndex(0)
    assert treatments.compound is None and len(gallery.order()) == 24
    assert [p.compound for p in panel.panels] == ["drugA", "drugB"]
    assert panel.curve_combo.currentText() == "all compounds"

    # a hand correction: the analysis follows the new count
    c04 = next(i for i, m in enumerate(store.meta) if m.well == "C04")
    before = treatments.analysis
    coords = store.results[c04].coords
    assert store.set_points(c04, coords[: len(coords) // 2])
    qtbot.waitUntil(lambda: treatments.analysis is not before and not panel.busy, timeout=30000)
    new = 100 * (len(coords) // 2) / negative
    wells = treatments.analysis.wells.set_index("well")
    assert wells.loc["C04", "percent_of_control"] == pytest.approx(new, rel=1e-9)
    qtbot.waitUntil(lambda: not plate_map.busy, timeout=10000)
    assert f"percent of control: {new:.1f} %" in plate_map.tooltip_for("C04")


def test_a_layout_that_does_not_fit_says_why_and_clear_forgets_it(make_napari_viewer, qtbot,
                                                                  plate, tmp_path):
    viewer = make_napari_viewer()
    det = _dock(viewer, plate)
    panel = det.treatments_panel
    treatments = panel.treatments
    _run(det, qtbot)
    # a layout naming a well the plate lacks: the core's sentence, no analysis
    bad = tmp_path / "bad.csv"
    bad.write_text("well,compound,concentration,control\nB07,DMSO,,negative\n"
                   "H12,drugA,1,\n", encoding="utf-8")
    assert panel.load_layout(bad)
    qtbot.waitUntil(lambda: treatments.error != "" and not panel.busy, timeout=30000)
    assert treatments.analysis is None
    assert "H12" in treatments.error and panel.summary.text() == treatments.error
    assert panel.panels == [] and panel.conditions.rowCount() == 0
    # a file that is no layout: the previous layout stays
    junk = tmp_path / "junk.csv"
    junk.write_text("this,is\nnot,a layout\n", encoding="utf-8")
    assert not panel.load_layout(junk)
    assert treatments.layout.path == bad and treatments.error
    # Clear: back to the hint, and the plate map offers counts only
    plate_map = PlateMapWidget(viewer)
    viewer.window.add_dock_widget(plate_map, name="Plate map")
    texts = [plate_map.value_combo.itemText(i) for i in range(plate_map.value_combo.count())]
    assert texts == ["mean per site", "total per well", "compound", "concentration",
                     "percent of control"]
    panel.clear_button.click()
    assert treatments.layout is None and treatments.error == ""
    assert panel.summary.text().startswith("Load a plate layout")
    texts = [plate_map.value_combo.itemText(i) for i in range(plate_map.value_combo.count())]
    assert texts == ["mean per site", "total per well"]
    with pytest.raises(ValueError, match="compound"):
        plate_map.set_value("compound")


def test_a_per_image_table_joins_by_file_name_and_its_plate_name_wins(make_napari_viewer, qtbot,
                                                                     plate, tmp_path):
    """A CellProfiler-style per-image table (BBBC021's columns), before and after the run."""
    treatment = {well: (compound, conc) for well, compound, conc, _ in LAYOUT}
    lines = ["Image_FileName_DAPI,Image_PathName_DAPI,Image_Metadata_Plate_DAPI,"
             "Image_Metadata_Well_DAPI,Image_Metadata_Compound,Image_Metadata_Concentration"]
    for path in plate:
        well = path.name.split("_")[2]
        compound, conc = treatment[well]
        lines.append(f"{path.name},Week9/Week9_999,Week9_999,{well},{compound},"
                     f"{0.0 if conc is None else conc}")
    table = tmp_path / "image.csv"
    table.write_text("\n".join(lines) + "\n", encoding="utf-8")
    viewer = make_napari_viewer()
    det = _dock(viewer, plate)
    panel = det.treatments_panel
    treatments = panel.treatments
    assert panel.load_layout(table) and treatments.layout.kind == "images"
    # before the run: the layout's own plate
    plate_map = PlateMapWidget(viewer)
    viewer.window.add_dock_widget(plate_map, name="Plate map")
    assert plate_map.plates() == ["Week9_999"]
    plate_map.set_value("compound")
    assert plate_map.canvas.title == "plate Week9_999: compound"
    assert plate_map.canvas.colour_of("C04") == _tab10(COMPOUNDS.index("drugA"))
    # BBBC021's table names no control: taxol at 0.3 is the positive one (DMSO is the default)
    panel.positive.setEditText("taxol@0.3")
    panel.on_controls_edited()
    assert treatments.positive == "taxol@0.3" and treatments.negative == ""

    _run(det, qtbot)
    qtbot.waitUntil(lambda: treatments.analysis is not None and not panel.busy, timeout=30000)
    qtbot.waitUntil(lambda: not plate_map.busy and len(plate_map.wells) == 24, timeout=10000)
    assert treatments.error == ""
    # the plate map's plate is the files' (22123); the layout's name is the one told
    assert plate_map.plate() == "22123"
    assert plate_map.canvas.title == "plate Week9_999: compound"
    tip = plate_map.tooltip_for("B02").split("\n")
    assert tip[0] == "B02  (plate 22123)"
    assert tip[-5:-1] == ["plate in the layout: Week9_999", "compound: taxol",
                          "concentration: 0.3", "control: positive"]
    assert _table_rows(panel.plates)[0][0] == "Week9_999"
    # a well of the analysis (the layout's plate name) shows the images of the store
    store = det.store
    d05 = next(i for i, m in enumerate(store.meta) if m.well == "D05")
    assert panel.show_well("Week9_999", "D05")
    assert store.selected_well == "D05" and viewer.dims.current_step[0] == d05
    assert not panel.show_well("Week9_999", "H12")
    assert panel.info.text() == "H12 (plate Week9_999): no images."
