"""The gallery and plate map docks in a real napari viewer (Xvfb + Mesa)."""

from __future__ import annotations

import gc
import logging
import struct
import types
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("napari")
pytest.importorskip("qtpy")

from qtpy.QtCore import QEvent, QPoint, Qt
from qtpy.QtGui import QHelpEvent, QPixmap
from qtpy.QtWidgets import QApplication, QToolTip

from helpers import PLUGIN
from napari_nuclei_counter import DetectionParams
from napari_nuclei_counter.core.io.discovery import ImageMeta
from napari_nuclei_counter.core.results.store import ResultsStore
from napari_nuclei_counter.core.results.tables import ImageResult
from napari_nuclei_counter.core.sample import write_sample_plate
from napari_nuclei_counter.gui.detector.dock import NucleiCounterWidget
from napari_nuclei_counter.gui.registry import release, store_for
from napari_nuclei_counter.gui.views.gallery import GalleryWidget
from napari_nuclei_counter.gui.views.plate_map import PlateMapWidget

pytestmark = pytest.mark.gui

PARAMS = DetectionParams(3.0, 5, 500.0)
DECORATION = Qt.ItemDataRole.DecorationRole
DISPLAY = Qt.ItemDataRole.DisplayRole


@pytest.fixture
def plate(tmp_path):
    """2 rows x 3 columns x 2 sites = 12 small BBBC021-named images."""
    return write_sample_plate(tmp_path / "plate", rows="BC", columns=range(2, 5), sites=2,
                              seed=5, shape=(256, 320))


def _run(viewer, qtbot, plate, workers=0, params=PARAMS):
    """Open the plate, dock the detector, run it; return the detector."""
    viewer.open(str(plate[0].parent), plugin=PLUGIN)
    _, det = viewer.window.add_plugin_dock_widget(PLUGIN, "Nuclei detector")
    det.preview.check.value = False
    det.run_panel.workers.value = workers
    det.model.params = params
    _start(det, qtbot)
    return det


def _start(det, qtbot):
    worker = det.run_panel.start_run(ask=False)  # replacing the last run's results is the point here
    assert worker is not None
    # not waitSignal: a tiny run may end before a signal spy could connect
    qtbot.waitUntil(lambda: not det.run_panel.running, timeout=60000)


def _dock(viewer, qtbot):
    gallery = GalleryWidget(viewer)
    viewer.window.add_dock_widget(gallery, name="Nuclei gallery")
    plate_map = PlateMapWidget(viewer)
    viewer.window.add_dock_widget(plate_map, name="Plate map")
    qtbot.waitUntil(lambda: not plate_map.busy and len(plate_map.wells) > 0, timeout=10000)
    return gallery, plate_map


def _counts(store):
    return {i: r.count for i, r in store.results.items() if r.ok}


def _desc(counts):
    return sorted(counts, key=lambda i: (-counts[i], i))


def _png_size(path):
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    assert raw[12:16] == b"IHDR"
    width, height = struct.unpack(">II", raw[16:24])
    return width, height


def _gallery_png_size(n_tiles, thumb_hw, columns=4, caption=22, gap=4):
    """render_gallery's documented size."""
    k = min(columns, n_tiles)
    m = -(-n_tiles // k)
    h, w = thumb_hw
    return k * w + (k + 1) * gap, m * (h + caption) + (m + 1) * gap


# ----------------------------------------------------------------------------- gallery


def test_gallery_order_captions_click_and_filters(make_napari_viewer, qtbot, plate, tmp_path):
    viewer = make_napari_viewer()
    det = _run(viewer, qtbot, plate, workers=0)
    gallery, _ = _dock(viewer, qtbot)
    assert gallery.store is det.store  # found the detector's store by itself
    counts = _counts(det.store)
    assert len(counts) == 12 and len(set(counts.values())) > 3

    # most nuclei first, ties by image index; "ascending" reverses the counts
    desc = _desc(counts)
    assert gallery.order() == desc
    assert gallery.model.rowCount() == 12
    gallery.filters.ascending.setChecked(True)
    asc = gallery.order()
    assert asc == sorted(counts, key=lambda i: (counts[i], i))
    assert [counts[i] for i in asc] == [counts[i] for i in desc][::-1]
    gallery.filters.ascending.setChecked(False)
    assert gallery.order() == desc

    # captions: well, site and count, on the tiles too
    for row, i in enumerate(desc):
        meta = det.store.meta[i]
        text = gallery.caption_of(i)
        assert text == f"{meta.well} {meta.site}: {counts[i]} nuclei"
        assert gallery.model.data(gallery.model.index(row), DISPLAY) == text
        assert meta.well in gallery.model.data(gallery.model.index(row),
                                               Qt.ItemDataRole.ToolTipRole)

    # clicking a thumbnail shows its image
    for row in (3, 0, 11):
        gallery.on_clicked(row)
        assert viewer.dims.current_step[0] == desc[row]
        assert gallery.view.currentIndex().row() == row
    # ...and moving the viewer selects the thumbnail
    viewer.dims.set_current_step(0, desc[5])
    assert gallery.view.currentIndex().row() == 5

    # count range
    values = sorted(counts.values())
    lo, hi = values[3], values[8]
    gallery.set_count_range(lo, hi)
    assert gallery.count_range() == (lo, hi)
    assert gallery.order() == [i for i in desc if lo <= counts[i] <= hi]
    assert f"{len(gallery.order())} of 12 images" in gallery.status.text()
    gallery.filters.min_count.setValue(values[6])  # the spin boxes filter too
    assert gallery.order() == [i for i in desc if values[6] <= counts[i] <= hi]
    gallery.set_count_range(0, None)
    assert gallery.order() == desc and gallery.count_range() == (0, None)
    assert gallery.filters.max_count.value() == max(values)

    # one well (the plate map hears of it through the store)
    gallery.set_well("B03")
    b03 = [i for i in desc if det.store.meta[i].well == "B03"]
    assert len(b03) == 2 and gallery.order() == b03
    assert det.store.selected_well == "B03" and gallery.filters.well_combo.currentText() == "B03"
    gallery.filters.well_combo.setCurrentIndex(0)  # "all wells"
    assert det.store.selected_well is None and gallery.order() == desc
    assert gallery.filters.well_combo.count() == 1 + 6

    # QC flags, computed in the background from the images table
    flags = dict(zip(det.store.images_table()["index"], det.store.images_table()["qc_flags"], strict=True))
    for name in ("flagged", "no_nuclei", "count_outlier", "any"):
        gallery.set_qc_filter(name)
        qtbot.waitUntil(lambda: not gallery._flag_table.busy, timeout=10000)
        if name == "any":
            expected = desc
        elif name == "flagged":
            expected = [i for i in desc if flags[i]]
        else:
            expected = [i for i in desc if name in flags[i].split(";")]
        assert gallery.order() == expected
    with pytest.raises(ValueError, match="unknown QC filter"):
        gallery.set_qc_filter("blurry")


def _sample(counts: dict[int, int], shown: list[int], n: int, seed: int) -> list[int]:
    """The command line's gallery sample, written out: ``default_rng(seed).choice`` of ``n``
    among the images shown in image order, then the most nuclei first (ties: image order)."""
    pool = sorted(shown)
    if 0 < n < len(pool):
        picked = np.sort(np.random.default_rng(seed).choice(len(pool), size=n, replace=False))
        pool = [pool[k] for k in picked]
    return sorted(pool, key=lambda i: (-counts[i], i))


def test_gallery_thumbnails_and_export(make_napari_viewer, qtbot, plate, tmp_path):
    viewer = make_napari_viewer()
    det = _run(viewer, qtbot, plate, workers=2)
    # not docked, so nothing has painted (or asked for) a thumbnail yet
    gallery = GalleryWidget(viewer, det.store)
    model = gallery.model
    first = gallery.order()[0]
    # a placeholder first; the thumbnail is made in the background
    assert not gallery.thumbnail_ready(first) and model.made == 0
    assert model.data(model.index(0), DECORATION) is model.placeholder
    qtbot.waitUntil(lambda: model.data(model.index(0), DECORATION) is not model.placeholder,
                    timeout=10000)
    pix = model.data(model.index(0), DECORATION)
    assert isinstance(pix, QPixmap) and (pix.width(), pix.height()) == (160, 128)
    assert pix is not model.broken and gallery.thumbnail_ready(first)
    # detections are drawn in red on the thumbnail
    img = pix.toImage()
    reds = sum(1 for y in range(0, 128, 2) for x in range(0, 160, 2)
               if img.pixelColor(x, y).red() > 200 and img.pixelColor(x, y).green() < 120)
    assert reds > 10

    # export: every image shown (12 <= 16), thumbnails of 200 px: 4 x 3 tiles
    out = gallery.export_png(tmp_path / "gallery.png")
    assert out == tmp_path / "gallery.png"
    assert _png_size(out) == _gallery_png_size(12, (160, 200))
    # a seeded sample of 5, the same images as the command line's gallery would pick
    counts = _counts(det.store)
    assert gallery.export_selection(5, seed=11) == _sample(counts, list(counts), 5, 11)
    assert gallery.export_selection(5, seed=11) != gallery.export_selection(5, seed=12)
    out = gallery.export_png(tmp_path / "sample.png", n=5, seed=11)
    assert _png_size(out) == _gallery_png_size(5, (160, 200))
    assert _png_size(gallery.export_png(tmp_path / "all.png", n=0)) == _gallery_png_size(
        12, (160, 200))
    # of the filtered images only
    gallery.set_well("C04")
    c04 = [i for i in counts if det.store.meta[i].well == "C04"]
    assert len(c04) == 2 and gallery.export_selection(16) == _sample(counts, c04, 16, 11)
    assert _png_size(gallery.export_png(tmp_path / "c04.png")) == _gallery_png_size(
        2, (160, 200))
    # Export PNG... writes in a background thread
    assert gallery.start_export(tmp_path / "bg.png", n=0)
    qtbot.waitUntil(lambda: (tmp_path / "bg.png").exists(), timeout=10000)
    qtbot.waitUntil(lambda: gallery.exporter.queue.outstanding == 0, timeout=10000)
    assert _png_size(tmp_path / "bg.png") == _gallery_png_size(2, (160, 200))
    gallery.set_count_range(10 ** 6, None)
    with pytest.raises(ValueError, match="no image"):
        gallery.export_png(tmp_path / "none.png")
    assert not gallery.start_export(tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()


def test_gallery_fills_in_during_a_run_and_follows_new_results(make_napari_viewer, qtbot,
                                                               plate):
    viewer = make_napari_viewer()
    viewer.open(str(plate[0].parent), plugin=PLUGIN)
    gallery = GalleryWidget(viewer)  # docks the detector itself
    viewer.window.add_dock_widget(gallery, name="Nuclei gallery")
    (det,) = [w for w in viewer.window.dock_widgets.values()
              if isinstance(w, NucleiCounterWidget)]
    assert gallery.store is det.store
    assert gallery.order() == []
    det.preview.check.value = False
    det.run_panel.workers.value = 2
    det.model.params = PARAMS
    resets = []
    gallery.model.modelReset.connect(lambda: resets.append(len(gallery.order())))
    _start(det, qtbot)
    qtbot.waitUntil(lambda: len(gallery.order()) == 12, timeout=5000)
    assert gallery.order() == _desc(_counts(det.store))
    assert resets and resets[-1] == 12

    # a new result for the last image with more nuclei than any: it goes first
    last = gallery.order()[-1]
    old = det.store.results[last]
    det.store.add(ImageResult(last, old.path, old.meta, coords=np.tile([[50, 60]], (999, 1)),
                              intensities=np.ones(999)))
    qtbot.waitUntil(lambda: gallery.order()[0] == last, timeout=3000)
    assert gallery.model.data(gallery.model.index(0), DISPLAY).endswith(": 999 nuclei")
    assert gallery.filters.max_count.value() == 999  # an open maximum follows the largest count

    # run again with another threshold: the gallery starts over
    det.model.params = DetectionParams(3.0, 5, 2000.0)
    _start(det, qtbot)
    qtbot.waitUntil(lambda: gallery.order() == _desc(_counts(det.store)), timeout=5000)
    assert 999 not in _counts(det.store).values()


def test_gallery_of_an_in_memory_stack(make_napari_viewer, qtbot, plate):
    import tifffile

    viewer = make_napari_viewer()
    stack = np.stack([tifffile.imread(p) for p in plate[:4]])
    viewer.add_image(stack, name="in memory")
    _, det = viewer.window.add_plugin_dock_widget(PLUGIN, "Nuclei detector")
    det.preview.check.value = False
    det.source_panel.image_combo.value = viewer.layers["in memory"]
    det.run_panel.workers.value = 0
    det.model.params = PARAMS
    _start(det, qtbot)
    gallery = GalleryWidget(viewer, det.store)
    viewer.window.add_dock_widget(gallery, name="Nuclei gallery")
    counts = _counts(det.store)
    assert gallery.order() == _desc(counts)
    i = gallery.order()[0]
    assert gallery.caption_of(i) == f"in memory[{i}]: {counts[i]} nuclei"
    model = gallery.model
    model.data(model.index(0), DECORATION)
    qtbot.waitUntil(lambda: gallery.thumbnail_ready(i), timeout=10000)
    assert model.data(model.index(0), DECORATION) is not model.broken
    gallery.on_clicked(2)
    assert viewer.dims.current_step[0] == gallery.order()[2]


def test_gallery_is_virtual_and_memory_bounded(make_napari_viewer, qtbot):
    """10,000 images: only the tiles on screen are made, and at most cache_size are kept."""
    viewer = make_napari_viewer(show=True)
    n = 10_000
    image = np.random.default_rng(0).integers(0, 4000, (96, 120)).astype(np.uint16)
    store = ResultsStore()
    rows = "ABCDEFGHIJKLMNOP"
    meta = [ImageMeta("P1", f"{rows[i // 24 % 16]}{i % 24 + 1:02d}", f"s{i // 384 + 1}", "w1")
            for i in range(n)]
    source = types.SimpleNamespace(data=np.broadcast_to(image, (n, 96, 120)), ndim=3)
    store.reset([f"mem[{i}]" for i in range(n)], meta, PARAMS, source)
    rng = np.random.default_rng(1)
    for i in range(n):
        k = int(rng.integers(0, 300))
        store.add(ImageResult(i, f"mem[{i}]", coords=rng.integers(0, 96, (k, 2))))
    gallery = GalleryWidget(viewer, store, cache_size=60)
    viewer.window.add_dock_widget(gallery, name="Nuclei gallery")
    assert gallery.model.rowCount() == n
    model = gallery.model
    qtbot.waitUntil(lambda: model.made >= 4 and model.queue.outstanding == 0, timeout=20000)
    made = model.made
    assert made < 200  # only what is on screen, not 10,000
    # a real click on the second tile selects it
    rect = gallery.view.visualRect(model.index(1))
    qtbot.mouseClick(gallery.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert gallery.view.currentIndex().row() == 1
    bar = gallery.view.verticalScrollBar()
    for k in range(1, 11):  # scroll through the gallery
        bar.setValue(bar.maximum() * k // 10)
        qtbot.wait(50)
        qtbot.waitUntil(lambda: model.queue.outstanding == 0 and not model._waiting,
                        timeout=20000)
        assert model.cached <= 60
    assert model.made > made
    assert model.made < 1500
    order = gallery.order()
    assert gallery.thumbnail_ready(order[-1])  # the end of the list was painted
    assert sum(gallery.thumbnail_ready(i) for i in order) <= 60  # the rest was let go


def test_closed_gallery_stops_listening(make_napari_viewer, qtbot, caplog):
    viewer = make_napari_viewer()
    store = ResultsStore()
    store.reset(["a"], [ImageMeta(well="B02", site="s1")])
    gallery = GalleryWidget(viewer, store)
    plate_map = PlateMapWidget(viewer, store)
    dock_g = viewer.window.add_dock_widget(gallery, name="Nuclei gallery")
    dock_m = viewer.window.add_dock_widget(plate_map, name="Plate map")
    assert len(store._listeners) == 2
    # napari un-parents a removed dock's widget: it goes when nothing holds it
    viewer.window.remove_dock_widget(dock_g)
    viewer.window.remove_dock_widget(dock_m)
    del gallery, plate_map, dock_g, dock_m
    gc.collect()
    qtbot.waitUntil(lambda: not store._listeners, timeout=5000)
    with caplog.at_level(logging.ERROR):
        store.add(ImageResult(0, "a", coords=np.zeros((3, 2), int)))
        store.select_well("B02")
        qtbot.wait(400)
    assert not [r for r in caplog.records if "listener failed" in r.getMessage()]


# ---------------------------------------------------------------------------- plate map


def test_plate_map_geometry_tooltip_click_and_export(make_napari_viewer, qtbot, plate, tmp_path):
    viewer = make_napari_viewer()
    det = _run(viewer, qtbot, plate, workers=2)
    gallery, plate_map = _dock(viewer, qtbot)
    wells = det.store.wells_table()
    assert list(wells["well"]) == ["B02", "B03", "B04", "C02", "C03", "C04"]
    pd.testing.assert_frame_equal(plate_map.wells.reset_index(drop=True),
                                  wells.reset_index(drop=True))
    per_well = _per_well(det.store)  # from the results themselves, not from well_table
    assert sorted(per_well) == list(wells["well"])
    assert plate_map.canvas.grid.shape == (8, 12)  # a 96-well plate
    assert not plate_map.plate_combo.isVisible()

    # every well with data has a rectangle, and the point at its centre is that well
    rects = {}
    for well in wells["well"]:
        rect = plate_map.rect_of(well)
        assert not rect.isNull() and rect.width() >= 4
        assert plate_map.well_at(rect.center().x(), rect.center().y()) == well
        rects[well] = rect
    assert not rects["B03"].intersects(rects["B04"])
    assert plate_map.well_at(1, 1) is None
    assert plate_map.rect_of("Z99").isNull()
    assert plate_map.well_at(*_xy(plate_map.rect_of("H12").center())) == "H12"  # no data

    # colours are the mean per site (or the total)
    b03 = per_well["B03"]
    assert plate_map.canvas.grid[1, 2] == pytest.approx(np.mean(b03))
    assert np.isnan(plate_map.canvas.grid[0, 0])
    plate_map.set_value("total")
    assert plate_map.canvas.grid[1, 2] == sum(b03)
    assert "total nuclei per well" in plate_map.canvas.title
    plate_map.set_value("mean")

    # the tooltip tells the numbers
    tip = plate_map.tooltip_for("B03")
    assert f"mean: {np.mean(b03):.1f}" in tip and f"total: {sum(b03)} nuclei" in tip
    assert "images: 2" in tip and f"std: {np.std(b03, ddof=1):.1f}" in tip
    assert "no images" in plate_map.tooltip_for("H12")
    plate_map.on_hovered("B03")
    assert f"{np.mean(b03):.1f}" in plate_map.info.text()

    # clicking a well: the gallery shows its images, the viewer its first one
    plate_map.on_well_clicked("B03")
    b03 = det.store.indices_of_well("B03")
    assert det.store.selected_well == "B03" and plate_map.canvas.selected == "B03"
    assert sorted(gallery.order()) == b03
    assert viewer.dims.current_step[0] == b03[0]
    assert "Selected: B03" in plate_map.info.text()
    # a real mouse click on another well
    qtbot.mouseClick(plate_map.canvas, Qt.MouseButton.LeftButton,
                     pos=plate_map.rect_of("C04").center())
    c04 = det.store.indices_of_well("C04")
    assert det.store.selected_well == "C04" and sorted(gallery.order()) == c04
    assert viewer.dims.current_step[0] == c04[0]
    # clicking beside the wells clears the selection
    qtbot.mouseClick(plate_map.canvas, Qt.MouseButton.LeftButton, pos=QPoint(1, 1))
    assert det.store.selected_well is None and len(gallery.order()) == 12
    assert gallery.filters.well_combo.currentText() == "all wells"

    # export: the highest mean is the colour map's last colour, the lowest its first, each
    # a well-sized square where the wells are relative to one another; 90 wells are grey
    out = plate_map.export_png(tmp_path / "platemap.png")
    assert out == tmp_path / "platemap.png"
    _check_plate_png(out, per_well, cell=36)
    # Export PNG... writes in a background thread
    plate_map.start_export(tmp_path / "bg.png")
    qtbot.waitUntil(lambda: (tmp_path / "bg.png").exists(), timeout=10000)
    _check_plate_png(tmp_path / "bg.png", per_well, cell=36)


VIRIDIS_FIRST, VIRIDIS_LAST = (68, 1, 84), (253, 231, 37)
GREY = (200, 200, 200)


def _per_well(store) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for i, r in store.results.items():
        if r.ok:
            out.setdefault(store.meta[i].well, []).append(len(r.coords))
    return out


def _squares(rgb: np.ndarray, colour, side: int) -> list[tuple[float, float]]:
    """Centres of the ``side``-pixel squares of one colour (text inside them allowed)."""
    from scipy import ndimage

    labels, n = ndimage.label(np.all(rgb == colour, axis=2))
    centres = []
    for box in ndimage.find_objects(labels):
        h, w = box[0].stop - box[0].start, box[1].stop - box[1].start
        if abs(h - side) <= 1 and abs(w - side) <= 1:
            centres.append(((box[0].start + box[0].stop) / 2, (box[1].start + box[1].stop) / 2))
    return centres


def _check_plate_png(path, per_well: dict[str, list[int]], cell: int) -> None:
    from PIL import Image

    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"))
    means = {w: np.mean(c) for w, c in per_well.items()}
    high = [w for w, m in means.items() if m == max(means.values())]
    low = [w for w, m in means.items() if m == min(means.values())]
    top, bottom = _squares(rgb, VIRIDIS_LAST, cell - 2), _squares(rgb, VIRIDIS_FIRST, cell - 2)
    assert len(top) == len(high) and len(bottom) == len(low)
    # wells are ``cell`` pixels apart: rows are letters, columns numbers
    (r1, c1), (r0, c0) = top[0], bottom[0]
    rows = "ABCDEFGH"
    assert r1 - r0 == pytest.approx(cell * (rows.index(high[0][0]) - rows.index(low[0][0])))
    assert c1 - c0 == pytest.approx(cell * (int(high[0][1:]) - int(low[0][1:])))
    assert len(_squares(rgb, GREY, cell - 2)) == 96 - len(per_well)


def _xy(point):
    return point.x(), point.y()


def test_plate_map_of_several_plates_and_384_wells(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    store = ResultsStore()
    meta = [ImageMeta("P1", "B02", "s1"), ImageMeta("P1", "B02", "s2"),
            ImageMeta("P2", "N20", "s1"), ImageMeta("P2", "A01", "s1")]
    store.reset([f"img{i}" for i in range(4)], meta)
    for i, n in enumerate([10, 20, 30, 0]):
        store.add(ImageResult(i, f"img{i}", coords=np.zeros((n, 2), int)))
    plate_map = PlateMapWidget(viewer, store)
    viewer.window.add_dock_widget(plate_map, name="Plate map")
    qtbot.waitUntil(lambda: not plate_map.busy and len(plate_map.wells) == 3, timeout=10000)
    assert plate_map.plates() == ["P1", "P2"]
    assert plate_map.plate_combo.count() == 2 and not plate_map.plate_combo.isHidden()
    assert plate_map.plate() == "P1" and plate_map.canvas.grid.shape == (8, 12)
    assert "mean: 15.0" in plate_map.tooltip_for("B02")
    plate_map.plate_combo.setCurrentIndex(1)
    assert plate_map.plate() == "P2" and plate_map.canvas.grid.shape == (16, 24)
    assert plate_map.canvas.grid[13, 19] == 30
    assert plate_map.well_at(*_xy(plate_map.rect_of("N20").center())) == "N20"
    assert "total: 0 nuclei" in plate_map.tooltip_for("A01")
    assert "no images" in plate_map.tooltip_for("B02")  # not on this plate

    # hovering: the outline, the numbers under the map and in a tooltip
    canvas = plate_map.canvas
    centre = plate_map.rect_of("N20").center()
    qtbot.mouseMove(canvas, centre)
    qtbot.waitUntil(lambda: canvas.hovered == "N20", timeout=3000)
    assert "mean: 30.0" in plate_map.info.text()
    QApplication.sendEvent(canvas, QHelpEvent(QEvent.Type.ToolTip, centre,
                                              canvas.mapToGlobal(centre)))
    qtbot.waitUntil(lambda: QToolTip.isVisible(), timeout=3000)
    assert QToolTip.text() == plate_map.tooltip_for("N20")
    QToolTip.hideText()


# ------------------------------------------------------------------- hand corrections


def test_hand_correction_reaches_gallery_plate_map_and_tables(make_napari_viewer, qtbot, plate,
                                                              tmp_path):
    viewer = make_napari_viewer()
    det = _run(viewer, qtbot, plate, workers=0)
    gallery, plate_map = _dock(viewer, qtbot)
    model = gallery.model
    row0 = model.row_of(0)
    model.data(model.index(row0), DECORATION)
    qtbot.waitUntil(lambda: gallery.thumbnail_ready(0), timeout=10000)

    before = det.store.results[0].count
    well = det.store.meta[0].well
    total_before = int(det.store.wells_table().set_index("well").loc[well, "total"])
    pts = viewer.layers["nuclei"]
    first = int(np.flatnonzero(pts.data[:, 0] == 0)[0])
    pts.selected_data = {first}
    pts.remove_selected()

    result = det.store.results[0]
    assert result.count == before - 1 and result.edited is True
    assert det.results_panel.table.model().index(0, 3).data() == f"{before - 1} (edited)"  # the dock's table
    # the gallery: the caption at once, the thumbnail is made again
    assert gallery.caption_of(0) == (f"{well} {det.store.meta[0].site}: {before - 1} nuclei "
                                     "(edited)")
    assert not gallery.thumbnail_ready(0)
    qtbot.waitUntil(lambda: gallery.order() == _desc(_counts(det.store)), timeout=3000)
    row0 = model.row_of(0)
    assert model.data(model.index(row0), DISPLAY) == gallery.caption_of(0)
    model.data(model.index(row0), DECORATION)
    qtbot.waitUntil(lambda: gallery.thumbnail_ready(0), timeout=10000)
    # the plate map: the well's new total
    qtbot.waitUntil(lambda: f"total: {total_before - 1} nuclei" in plate_map.tooltip_for(well),
                    timeout=5000)
    assert int(det.store.wells_table().set_index("well").loc[well, "total"]) == total_before - 1
    # the tables
    out = det.results_panel.save_tables(tmp_path / "out")
    images = pd.read_csv(out / "images.csv", keep_default_na=False)
    row = images[images["path"] == result.path].iloc[0]
    assert str(row["edited"]) == "True" and int(row["n_nuclei"]) == before - 1
    assert (images["edited"].astype(str) == "True").sum() == 1


# ------------------------------------------------------------------ as napari docks them


def test_one_store_per_viewer_through_its_proxies(make_napari_viewer_proxy, make_napari_viewer):
    import weakref

    import napari

    proxy = make_napari_viewer_proxy()
    real = napari.current_viewer()  # the viewer behind the proxy, as napari hands it out
    assert hash(real) == hash(proxy) and type(real) is not type(proxy)
    store = store_for(proxy)
    assert type(store) is ResultsStore
    assert store_for(real) is store and store_for(proxy) is store
    other = make_napari_viewer()
    assert store_for(other) is not store
    # the registry does not keep a store alive: it goes with the docks that hold it
    ref = weakref.ref(store_for(other))
    gc.collect()
    assert ref() is None
    # release: the next request makes a new store
    assert release(proxy) is store
    assert store_for(proxy) is not store


def test_views_through_napari_plugin_proxy(make_napari_viewer_proxy, qtbot, plate):
    """Plugins get a ``PublicOnlyProxy`` viewer: the views find the real store, touch
    nothing private and move the viewer."""
    viewer = make_napari_viewer_proxy()
    det = _run(viewer, qtbot, plate, workers=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # private access through the proxy
        gallery = GalleryWidget(viewer)
        plate_map = PlateMapWidget(viewer)
        viewer.window.add_dock_widget(gallery, name="Nuclei gallery")
        viewer.window.add_dock_widget(plate_map, name="Plate map")
        assert type(gallery.store) is ResultsStore and gallery.store is plate_map.store
        assert gallery.store is store_for(viewer)  # the viewer's, which the detector filled
        assert _counts(gallery.store) == {i: r.count for i, r in det.store.results.items()
                                          if r.ok} and len(_counts(gallery.store)) == 12
        qtbot.waitUntil(lambda: not plate_map.busy and len(plate_map.wells) == 6, timeout=10000)
        counts = _counts(gallery.store)
        assert gallery.order() == _desc(counts)
        gallery.model.data(gallery.model.index(0), DECORATION)
        qtbot.waitUntil(lambda: gallery.thumbnail_ready(gallery.order()[0]), timeout=10000)
        gallery.on_clicked(1)
        assert viewer.dims.current_step[0] == gallery.order()[1]
        plate_map.on_well_clicked("C02")
        assert viewer.dims.current_step[0] == gallery.store.indices_of_well("C02")[0]
        assert sorted(gallery.order()) == gallery.store.indices_of_well("C02")


def test_docked_from_the_plugin_manifest(make_napari_viewer, qtbot, plate):
    from npe2 import PluginManager

    viewer = make_napari_viewer()
    manifest = PluginManager.instance().get_manifest(PLUGIN)
    names = {w.display_name for w in manifest.contributions.widgets or []}
    assert {"Nuclei detector", "Nuclei gallery", "Plate map"} <= names
    _, gallery = viewer.window.add_plugin_dock_widget(PLUGIN, "Nuclei gallery")
    _, plate_map = viewer.window.add_plugin_dock_widget(PLUGIN, "Plate map")
    (det,) = [w for w in viewer.window.dock_widgets.values()
              if isinstance(w, NucleiCounterWidget)]  # docked by the gallery
    assert isinstance(gallery, GalleryWidget) and isinstance(plate_map, PlateMapWidget)
    assert gallery.store is det.store and plate_map.store is det.store
    viewer.open(str(plate[0].parent), plugin=PLUGIN)
    det.preview.check.value = False
    det.run_panel.workers.value = 0
    det.model.params = PARAMS
    _start(det, qtbot)
    qtbot.waitUntil(lambda: len(gallery.order()) == 12 and len(plate_map.wells) == 6
                    and not plate_map.busy, timeout=10000)
    gallery.on_clicked(4)
    assert viewer.dims.current_step[0] == gallery.order()[4]


# ------------------------------------------------------------ one pipeline with the core


def _store_of_a_run(paths, params=PARAMS):
    """A results store filled by the core's batch runner, as a run fills it; and its results."""
    from napari_nuclei_counter import run_batch

    results = sorted(run_batch(paths, params, workers=0), key=lambda r: r.index)
    store = ResultsStore()
    store.reset([str(p) for p in paths], [r.meta for r in results], params)
    for r in results:
        store.add(r)
    return store, results


def _rgb(pixmap: QPixmap) -> np.ndarray:
    """The pixels of a pixmap as a uint8 ``(h, w, 3)`` array."""
    from qtpy.QtGui import QImage

    image = pixmap.toImage().convertToFormat(QImage.Format.Format_RGB888)
    w, h = image.width(), image.height()
    bits = image.constBits()
    if hasattr(bits, "setsize"):
        bits.setsize(image.sizeInBytes())
    rows = np.frombuffer(bytes(bits), np.uint8).reshape(h, image.bytesPerLine())
    return rows[:, :3 * w].reshape(h, w, 3).copy()


def _png_rgb(path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_the_dock_shows_and_exports_the_cores_gallery(make_napari_viewer, qtbot, plate, tmp_path):
    from napari_nuclei_counter.core.render.gallery import (
        caption,
        gallery_from_results,
        gallery_selection,
        gallery_tile,
        items_of_results,
    )
    from napari_nuclei_counter.core.render.thumbnails import blank_tile
    from napari_nuclei_counter.core.results.tables import load_results
    from napari_nuclei_counter.core.results.writer import write_results

    viewer = make_napari_viewer()
    store, results = _store_of_a_run(plate)
    folder = write_results(tmp_path / "results", results, PARAMS)
    images = load_results(folder).images
    gallery = GalleryWidget(viewer, store)
    model = gallery.model

    def paths(indices):
        return [store.results[i].path for i in indices]

    # order and captions: the core's selection of the run's saved tables
    everything = gallery_selection(images, 0)
    assert paths(gallery.order()) == everything["path"].tolist()
    assert [gallery.caption_of(i) for i in gallery.order()] == [
        caption(row) for _, row in everything.iterrows()]

    # the dock's tiles are the core's tiles, turned into pixmaps
    rows = (0, 5, 11)
    for row in rows:
        model.data(model.index(row), DECORATION)
    qtbot.waitUntil(lambda: all(gallery.thumbnail_ready(gallery.order()[r]) for r in rows),
                    timeout=10000)
    for row in rows:
        (item,) = items_of_results(store.results, [gallery.order()[row]])
        tile = gallery_tile(item, size=model.size, dot_radius=model.dot_radius, plane=store.plane)
        np.testing.assert_array_equal(_rgb(model.data(model.index(row), DECORATION)),
                                      tile.picture)

    # an image that cannot be read any more: the core's grey tile, and its caption says so
    row = 8
    lost = gallery.order()[row]
    Path(store.results[lost].path).unlink()
    model.data(model.index(row), DECORATION)
    qtbot.waitUntil(lambda: gallery.thumbnail_ready(lost), timeout=10000)
    assert model.data(model.index(row), DECORATION) is model.broken
    np.testing.assert_array_equal(_rgb(model.broken), blank_tile(model.size))
    assert model.data(model.index(row), DISPLAY) == caption(everything.iloc[row]) + " (unreadable)"

    # the export without filters is the command line's `gallery` of the same run, pixel for
    # pixel (the lost image too: a grey tile, "(unreadable)")
    assert lost in gallery.export_selection(0)
    for n, seed in ((5, 11), (0, 11)):
        out = gallery.export_png(tmp_path / f"dock{n}.png", n=n, seed=seed)
        np.testing.assert_array_equal(_png_rgb(out), gallery_from_results(folder, n=n, seed=seed))

    # filters: exactly the core's selection of the matching rows, in the same order,
    # and an export samples them as the command line samples a table of those rows
    counts = sorted(images["n_nuclei"])
    low = counts[4]
    gallery.filters.ascending.setChecked(True)
    gallery.set_count_range(low, None)
    table = images[images["n_nuclei"] >= low]
    assert paths(gallery.order()) == gallery_selection(table, 0, ascending=True)["path"].tolist()
    assert paths(gallery.export_selection(5, seed=3)) == gallery_selection(
        table, 5, seed=3, ascending=True)["path"].tolist()
    gallery.set_count_range(0, None)
    gallery.set_well("C03")
    table = images[images["well"] == "C03"]
    assert paths(gallery.order()) == gallery_selection(table, 0, ascending=True)["path"].tolist()
