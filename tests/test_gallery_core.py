"""Thumbnails, well tables, plate maps and galleries as arrays (core.wells, core.thumbnails,
core.render, core.gallery)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_nuclei_counter.core.render.gallery import (
    caption,
    gallery_from_results,
    gallery_order,
    gallery_sample,
    gallery_selection,
    gallery_tile,
    gallery_tiles,
    items_of_results,
    result_caption,
    sample_by_count,
)
from napari_nuclei_counter.core.render.pictures import (
    MISSING_RGB,
    colormap,
    colour_index,
    render_gallery,
    render_plate_map,
    save_png,
)
from napari_nuclei_counter.core.render.thumbnails import blank_tile, thumbnail
from napari_nuclei_counter.core.results.wells import (
    WELL_COLUMNS,
    colour_bar_labels,
    format_value,
    infer_plate_format,
    plate_map_title,
    plate_map_values,
    row_label,
    well_name,
    well_position,
    well_table,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------- thumbnails


@pytest.mark.parametrize("shape, expected", [
    ((200, 400), (80, 160)),
    ((400, 200), (160, 80)),
    ((1024, 1280), (128, 160)),
    ((160, 160), (160, 160)),
    ((50, 60), (133, 160)),  # small images are enlarged
])
def test_thumbnail_shape_dtype_and_aspect(shape, expected):
    img = np.random.default_rng(0).integers(0, 4000, shape, dtype=np.uint16)
    t = thumbnail(img, size=160)
    assert t.dtype == np.uint8
    assert t.shape == (*expected, 3)
    assert np.array_equal(t[..., 0], t[..., 1]) and np.array_equal(t[..., 0], t[..., 2])


def test_thumbnail_stretches_between_percentiles():
    halves = np.full((100, 200), 100, np.uint16)
    halves[:, 100:] = 300
    t = thumbnail(halves, size=100, percentiles=(0.0, 100.0))
    assert (t[:, :50] == 0).all() and (t[:, 50:] == 255).all()
    ramp = np.tile(np.arange(1000, dtype=np.uint16), (100, 1))
    t = thumbnail(ramp, size=100, percentiles=(0.0, 100.0))
    assert t.min() <= 2 and t.max() >= 253  # INTER_AREA averages 10 ramp values per pixel
    assert (np.diff(t[5, :, 0].astype(int)) >= 0).all()  # monotone along the ramp
    clipped = thumbnail(ramp, size=100, percentiles=(10.0, 90.0))
    assert (clipped[:, :5] == 0).all() and (clipped[:, -5:] == 255).all()


@pytest.mark.parametrize("value, dtype", [(0, np.uint16), (1234, np.uint16), (0.5, np.float32)])
def test_thumbnail_of_a_constant_image(value, dtype):
    t = thumbnail(np.full((64, 96), value, dtype), size=48)
    assert t.shape == (32, 48, 3)
    assert (t == 0).all()


def test_thumbnail_draws_dots_at_the_scaled_centres():
    img = np.zeros((100, 200), np.uint16)
    t = thumbnail(img, [[50, 100], [0, 0], [99, 199]], size=100, dot_rgb=(255, 64, 64),
                  dot_radius=1)
    assert t.shape == (50, 100, 3)
    red = np.all(t == (255, 64, 64), axis=2)
    # (50.5 * 0.5 - 0.5, 100.5 * 0.5 - 0.5) = (24.75, 49.75) -> (25, 50)
    assert red[25, 50] and red[24, 50] and red[26, 50] and red[25, 49] and red[25, 51]
    assert red[0, 0] and red[49, 99]
    assert not red[25, 53] and not red[10, 30]
    assert red.sum() == 5 + 3 + 3  # a radius-1 disc is a plus; the corners are clipped
    assert not thumbnail(img, None, size=100).any()
    assert not thumbnail(img, np.empty((0, 2)), size=100).any()


def test_thumbnail_rejects_bad_input():
    with pytest.raises(ValueError, match="2-D"):
        thumbnail(np.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match="size"):
        thumbnail(np.zeros((4, 4)), size=0)


# ----------------------------------------------------------------------------- wells


@pytest.mark.parametrize("well, pos", [
    ("A01", (0, 0)), ("B02", (1, 1)), ("b2", (1, 1)), ("H12", (7, 11)), ("P24", (15, 23)),
    ("AA01", (26, 0)), ("", None), ("junk", None), ("A00", None), (None, None),
    (float("nan"), None),
])
def test_well_position(well, pos):
    assert well_position(well) == pos


@pytest.mark.parametrize("wells, fmt", [
    (["B02", "H12", "A01"], (8, 12)),
    (["B02", "I01"], (16, 24)),
    (["A13"], (16, 24)),
    (["P24"], (16, 24)),
    (["Q01"], (32, 48)),
    (["", "junk", None, "B02"], (8, 12)),
    ([], (8, 12)),
    (["", "x"], (8, 12)),
])
def test_infer_plate_format(wells, fmt):
    assert infer_plate_format(wells) == fmt


def _images_table() -> pd.DataFrame:
    rows = [
        ("P", "B02", "s1", 10, ""),
        ("P", "B02", "s2", 20, ""),
        ("P", "B02", "s3", None, "not a readable TIFF"),
        ("P", "B03", "s1", 5, ""),
        ("P", "A12", "s1", 0, ""),
        ("P", "A12", "s2", 4, ""),
        ("P", "", "", 99, ""),  # a name without a well: left out
        ("P", "C01", "s1", None, "file not found"),
        ("Q", "A01", "s1", 7, ""),
        ("P", "B10", "s1", 3, ""),  # B10 after B03, not between B01 and B02
    ]
    df = pd.DataFrame(rows, columns=["plate", "well", "site", "n_nuclei", "error"])
    df.insert(0, "path", [f"/data/img{i}.tif" for i in range(len(df))])
    df["n_nuclei"] = df["n_nuclei"].astype("Int64")
    return df


def test_well_table_numbers():
    wt = well_table(_images_table())
    expected = pd.DataFrame({
        "plate": ["P", "P", "P", "P", "P", "Q"],
        "well": ["A12", "B02", "B03", "B10", "C01", "A01"],
        "images": [2, 2, 1, 1, 0, 1],
        "total": pd.array([4, 30, 5, 3, pd.NA, 7], dtype="Int64"),
        "mean": [2.0, 15.0, 5.0, 3.0, np.nan, 7.0],
        "std": [np.sqrt(8.0), np.sqrt(50.0), np.nan, np.nan, np.nan, np.nan],
    }).astype({"plate": object, "well": object})
    assert list(wt.columns) == WELL_COLUMNS
    pd.testing.assert_frame_equal(wt, expected)


def test_well_table_of_an_empty_table():
    wt = well_table(_images_table().iloc[:0])
    assert list(wt.columns) == WELL_COLUMNS and wt.empty


def test_plate_map_values_positions_and_missing():
    wt = well_table(_images_table())
    grid = plate_map_values(wt)  # first plate: P
    assert grid.shape == (8, 12) and grid.dtype == np.float64
    assert grid[0, 11] == 2.0 and grid[1, 1] == 15.0 and grid[1, 2] == 5.0 and grid[1, 9] == 3.0
    assert np.isnan(grid[2, 0])  # C01: every image failed
    assert np.isfinite(grid).sum() == 4
    total = plate_map_values(wt, value="total")
    assert total[1, 1] == 30.0 and total[0, 11] == 4.0
    q = plate_map_values(wt, plate="Q", layout=(16, 24))
    assert q.shape == (16, 24) and q[0, 0] == 7.0 and np.isfinite(q).sum() == 1


def test_plate_map_values_errors():
    wt = well_table(_images_table())
    with pytest.raises(ValueError, match="value"):
        plate_map_values(wt, value="median")
    with pytest.raises(ValueError, match="plate"):
        plate_map_values(wt, plate="nope")
    with pytest.raises(ValueError, match="does not fit"):
        plate_map_values(wt, layout=(4, 6))


# ----------------------------------------------------------------------------- rendering


def test_colormap_is_viridis():
    lut = colormap("viridis")
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    assert tuple(lut[0]) == (68, 1, 84) and tuple(lut[-1]) == (253, 231, 37)
    with pytest.raises(ValueError, match="cmap"):
        colormap("jet2")


def _count(img: np.ndarray, rgb) -> int:
    return int(np.all(img == np.asarray(rgb, np.uint8), axis=2).sum())


def test_render_plate_map_colours_low_and_high_wells(tmp_path):
    wt = well_table(_images_table())
    cell = 36
    img = render_plate_map(wt, cell=cell)
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert img.shape[0] > 8 * cell and img.shape[1] > 12 * cell
    lut = colormap("viridis")
    # lowest well (A12, mean 2) and highest (B02, mean 15): most of a cell each
    assert _count(img, lut[0]) > (cell - 2) ** 2 // 2
    assert _count(img, lut[255]) > (cell - 2) ** 2 // 2
    assert tuple(lut[0]) != tuple(lut[255])
    # 96 - 4 wells without data, grey
    assert _count(img, MISSING_RGB) > 92 * (cell - 2) ** 2 // 2
    total = render_plate_map(wt, value="total", plate="Q", cell=20)
    assert total.shape[0] > 8 * 20
    assert save_png(img, tmp_path / "map.png").read_bytes()[:8] == PNG_SIGNATURE


def test_render_plate_map_of_a_single_value_and_of_no_data():
    wt = well_table(_images_table())
    single = render_plate_map(wt, plate="Q")
    lut = colormap("viridis")
    assert _count(single, lut[128]) > 30 * 30  # one value: the middle colour
    empty = render_plate_map(well_table(_images_table().iloc[:0]))
    assert empty.ndim == 3
    with pytest.raises(ValueError, match="cell"):
        render_plate_map(wt, cell=4)


def test_render_gallery_geometry():
    tiles = [(np.full((50, 100, 3), 200, np.uint8), "one"),
             (np.full((100, 50, 3), 100, np.uint8), "two"),
             (np.full((40, 40), 50, np.uint8), "three, with a caption far too long to fit")]
    m = render_gallery(tiles, columns=2, caption_height=20, gap=4)
    assert m.dtype == np.uint8
    # cells 100 x 100 (largest tile), 2 per row, 2 rows
    assert m.shape == (2 * (100 + 20) + 3 * 4, 2 * 100 + 3 * 4, 3)
    assert (m[4 + 25:4 + 75, 4:104] == 200).all()  # first tile centred vertically
    assert (m[4:104, 108 + 25:108 + 75] == 100).all()  # second centred horizontally
    assert tuple(m[0, 0]) == (24, 24, 24)  # dark background
    caption_strip = m[4 + 100:4 + 120, 4:104]
    assert caption_strip.max() > 150  # light text
    one_row = render_gallery(tiles[:1], columns=4, caption_height=0, gap=0)
    assert one_row.shape == (50, 100, 3)
    with pytest.raises(ValueError, match="empty"):
        render_gallery([])


# ----------------------------------------------------------------------------- galleries


def test_gallery_selection_sorting_and_sampling():
    df = pd.DataFrame({
        "path": [f"{i}.tif" for i in range(6)],
        "n_nuclei": pd.array([5, 50, 20, None, 7, 20], dtype="Int64"),
        "error": ["", "", "", "boom", "", ""],
    })
    assert gallery_selection(df, 0)["n_nuclei"].tolist() == [50, 20, 20, 7, 5]
    assert gallery_selection(df, 0)["path"].tolist() == ["1.tif", "2.tif", "5.tif", "4.tif",
                                                         "0.tif"]  # ties keep table order
    assert gallery_selection(df, 5, ascending=True)["n_nuclei"].tolist() == [5, 7, 20, 20, 50]
    two = gallery_selection(df, 2, seed=3)
    assert len(two) == 2 and "3.tif" not in two["path"].tolist()
    assert two["n_nuclei"].is_monotonic_decreasing
    ok = df.drop(index=3).reset_index(drop=True)
    picked = np.sort(np.random.default_rng(3).choice(5, size=2, replace=False))
    assert sorted(two["path"]) == sorted(ok["path"].iloc[picked])
    pd.testing.assert_frame_equal(two, gallery_selection(df, 2, seed=3))


def test_plate_map_words():
    assert [row_label(r) for r in (0, 7, 25, 26, 31)] == ["A", "H", "Z", "AA", "AF"]
    assert well_name(1, 1) == "B02" and well_name(26, 47) == "AA48"
    assert all(well_position(well_name(r, c)) == (r, c) for r in range(32) for c in range(48))
    assert [format_value(v) for v in (214.0, 12.4, 3.0, 3.25, np.nan)] == ["214", "12", "3",
                                                                          "3.2", ""]
    assert plate_map_title("mean", "P1") == "plate P1: mean nuclei per site"
    assert plate_map_title("total", "") == "total nuclei per well"
    with pytest.raises(ValueError, match="value"):
        plate_map_title("median")
    assert colour_bar_labels(2.0, 15.5) == ("16", "2")
    assert colour_bar_labels(np.nan, np.nan) == ("no data", "")
    assert colour_index([2.0, 15.0, 8.5, np.nan], 2.0, 15.0).tolist() == [0, 255, 128, 0]
    assert colour_index([7.0], 7.0, 7.0).tolist() == [128]


def test_gallery_order_filters_and_sorts():
    from napari_nuclei_counter.core.io.discovery import ImageMeta
    from napari_nuclei_counter.core.results.tables import ImageResult

    def result(i, n, well, error=""):
        return ImageResult(i, f"{i}.tif", ImageMeta(well=well), coords=np.zeros((n, 2), int),
                           error=error)

    results = {0: result(0, 5, "B02"), 1: result(1, 50, "B03"), 2: result(2, 20, "B02"),
               3: result(3, 0, "B02", error="boom"), 4: result(4, 20, "B03")}
    flags = {0: "no_nuclei", 1: "", 2: "saturated;count_outlier", 4: "count_outlier"}
    found = gallery_order(results)
    assert found.rows == [1, 2, 4, 0] and (found.successful, found.failed, found.top) == (4, 1, 50)
    assert gallery_order(results, ascending=True).rows == [0, 2, 4, 1]
    assert gallery_order(results, low=6, high=20).rows == [2, 4]
    assert gallery_order(results, well="B02").rows == [2, 0]
    assert gallery_order(results, qc="flagged", flags=flags).rows == [2, 4, 0]
    assert gallery_order(results, qc="count_outlier", flags=flags).rows == [2, 4]
    assert gallery_order(results, qc="flagged").rows == []  # no flags known yet


def test_caption():
    row = pd.Series({"path": "/x/plate 1 (a)/img_07.tif", "well": "B02", "site": "s1",
                     "n_nuclei": 214})
    assert caption(row) == "B02 s1: 214 nuclei"
    assert caption({**row.to_dict(), "well": ""}) == "img_07: 214 nuclei"
    assert caption({**row.to_dict(), "n_nuclei": 1}) == "B02 s1: 1 nucleus"
    assert caption({**row.to_dict(), "site": ""}) == "B02: 214 nuclei"


@pytest.fixture
def results_folder(tmp_path):
    from napari_nuclei_counter.cli.app import main
    from napari_nuclei_counter.core.sample import write_sample_plate

    plate = tmp_path / "plate (1)"
    write_sample_plate(plate, rows="BC", columns=range(2, 4), sites=2, seed=1, shape=(256, 320))
    out = tmp_path / "results"
    assert main(["detect", str(plate), "--out", str(out), "--quiet", "--workers", "0"]) == 0
    return out


def test_gallery_from_results(results_folder, tmp_path):
    from napari_nuclei_counter.core.results.tables import load_results

    res = load_results(results_folder)
    assert len(res.images) == 8
    mosaic = gallery_from_results(results_folder, n=4, size=100)
    # 256 x 320 images -> 80 x 100 thumbnails; 4 per row; captions 22 px; gaps 4 px
    assert mosaic.shape == (80 + 22 + 2 * 4, 4 * 100 + 5 * 4, 3)
    assert mosaic.dtype == np.uint8
    chosen = gallery_selection(res.images, 4, seed=11)
    assert len(chosen) == 4 and chosen["n_nuclei"].is_monotonic_decreasing
    assert set(chosen["path"]) <= set(res.images["path"])
    # red dots in the first tile: the nuclei of the densest chosen image
    first = mosaic[4:84, 4:104]
    assert np.all(first == (255, 64, 64), axis=2).sum() > 0
    everything = gallery_from_results(results_folder, n=0, size=100, ascending=True)
    assert everything.shape == (2 * (80 + 22) + 3 * 4, 4 * 100 + 5 * 4, 3)
    png = save_png(mosaic, tmp_path / "figs" / "gallery.png")
    assert png.read_bytes()[:8] == PNG_SIGNATURE


def test_gallery_tiles_survive_moved_images(results_folder):
    from napari_nuclei_counter.core.results.tables import load_results

    res = load_results(results_folder)
    sel = gallery_selection(res.images, 2)
    missing = sel.copy()
    missing.loc[missing.index[0], "path"] = "/nowhere/gone.tif"
    tiles = gallery_tiles(res, missing, size=64)
    assert tiles[0][1].endswith("(unreadable)") and tiles[0][0].shape == (64, 64, 3)
    assert tiles[1][0].shape == (51, 64, 3)


def test_plate_map_of_a_results_folder(results_folder, tmp_path):
    from napari_nuclei_counter.core.results.tables import load_results

    wt = well_table(load_results(results_folder).images)
    assert wt["well"].tolist() == ["B02", "B03", "C02", "C03"]
    assert (wt["images"] == 2).all()
    grid = plate_map_values(wt)
    assert grid[1, 2] > grid[1, 1]  # density rises across columns in the sample plate
    png = save_png(render_plate_map(wt), tmp_path / "map.png")
    assert png.read_bytes()[:8] == PNG_SIGNATURE


def test_save_png_round_trip(tmp_path):
    from PIL import Image

    rgb = np.random.default_rng(0).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    path = save_png(rgb, tmp_path / "a.png")
    assert path == tmp_path / "a.png"
    with Image.open(path) as im:
        assert np.array_equal(np.asarray(im), rgb)
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]  # no temporary file left
    with pytest.raises(ValueError, match="uint8"):
        save_png(rgb.astype(np.float32), tmp_path / "b.png")


# ----------------------------------------------------------------------------- one pipeline


@pytest.fixture
def run_and_folder(tmp_path):
    """A run's results in memory (as a results store holds them) and the same run's folder.

    14 images: the sample plate, a copy of its first image under another well (a tie in
    counts) and a file that fails.
    """
    import shutil

    from napari_nuclei_counter import DetectionParams, run_batch
    from napari_nuclei_counter.core.results.writer import write_results
    from napari_nuclei_counter.core.sample import write_sample_plate

    params = DetectionParams(3.0, 5, 500.0)
    paths = write_sample_plate(tmp_path / "plate (1)", rows="BC", columns=range(2, 5), sites=2,
                               seed=5, shape=(128, 160))
    twin = paths[0].with_name(paths[0].name.replace("_B02_", "_D07_"))
    shutil.copy(paths[0], twin)
    junk = tmp_path / "plate (1)" / "junk_w1.tif"
    junk.write_bytes(b"not an image")
    results = {r.index: r for r in run_batch([*paths, twin, junk], params, workers=0)}
    assert sum(not r.ok for r in results.values()) == 1
    folder = write_results(tmp_path / "results", sorted(results.values(), key=lambda r: r.index),
                           params)
    return results, folder


def test_sample_by_count_is_the_documented_rule():
    counts = [5, 50, 20, 7, 20]
    assert sample_by_count(counts) == [1, 2, 4, 3, 0]  # ties (20, 20) in the given order
    assert sample_by_count(counts, ascending=True) == [0, 3, 2, 4, 1]
    assert sample_by_count(counts, 5) == sample_by_count(counts, 0) == sample_by_count(counts, 9)
    picked = np.sort(np.random.default_rng(3).choice(5, size=2, replace=False)).tolist()
    assert sample_by_count(counts, 2, seed=3) == sorted(picked, key=lambda p: -counts[p])
    assert sample_by_count([], 4) == []


@pytest.mark.parametrize("n, seed, ascending", [(0, 11, False), (0, 11, True), (5, 11, False),
                                                (5, 3, True), (13, 11, False), (40, 1, False)])
def test_a_store_and_its_folder_select_the_same_images(run_and_folder, n, seed, ascending):
    from napari_nuclei_counter.core.results.tables import load_results

    results, folder = run_and_folder
    images = load_results(folder).images
    from_folder = gallery_selection(images, n, seed=seed, ascending=ascending)["path"].tolist()
    # the dock exporting every image it shows
    from_store = gallery_sample(results, list(results), n, seed=seed, ascending=ascending)
    assert [results[i].path for i in from_store] == from_folder
    if n == 0:  # the dock's order without filters is the command line's `--n 0` order
        rows = gallery_order(results, ascending=ascending).rows
        assert [results[i].path for i in rows] == from_folder
    assert len(from_folder) == (13 if n <= 0 or n >= 13 else n)


def test_dock_filters_select_what_the_core_selects_on_the_table(run_and_folder):
    from napari_nuclei_counter.core.results.tables import load_results

    results, folder = run_and_folder
    images = load_results(folder).images
    n_nuclei = images["n_nuclei"].fillna(-1)  # the failed image: in no count range
    counts = sorted(n_nuclei[n_nuclei >= 0])
    low, high = counts[2], counts[9]
    in_range = ((n_nuclei >= low) & (n_nuclei <= high)).sum()
    for ascending in (False, True):
        rows = gallery_order(results, low=low, high=high, ascending=ascending).rows
        table = images[(n_nuclei >= low) & (n_nuclei <= high)]
        expected = gallery_selection(table, 0, ascending=ascending)["path"].tolist()
        assert [results[i].path for i in rows] == expected and len(rows) == in_range >= 8
        rows = gallery_order(results, well="B03", ascending=ascending).rows
        expected = gallery_selection(images[images["well"] == "B03"], 0,
                                     ascending=ascending)["path"].tolist()
        assert [results[i].path for i in rows] == expected and len(rows) == 2
        # a sample of what the filters show: `nuclei-counter gallery` on those rows
        shown = gallery_order(results, low=low, ascending=ascending).rows
        table = images[n_nuclei >= low]
        assert [results[i].path for i in gallery_sample(results, shown, 4, seed=7,
                                                        ascending=ascending)] == \
            gallery_selection(table, 4, seed=7, ascending=ascending)["path"].tolist()


def test_a_store_and_its_folder_make_the_same_tiles_and_mosaic(run_and_folder):
    from napari_nuclei_counter.core.results.tables import load_results

    results, folder = run_and_folder
    res = load_results(folder)
    selection = gallery_selection(res.images, 6, seed=2)
    from_folder = gallery_tiles(res, selection, size=80, folder=folder)
    items = items_of_results(results, gallery_sample(results, list(results), 6, seed=2))
    from_store = [gallery_tile(item, size=80) for item in items]
    assert [t.caption for t in from_store] == [t.caption for t in from_folder] == [
        caption(row) for _, row in selection.iterrows()]
    for a, b in zip(from_store, from_folder, strict=True):
        assert a.readable and b.readable
        np.testing.assert_array_equal(a.picture, b.picture)
    mosaic = gallery_from_results(folder, n=6, seed=2, size=80)
    np.testing.assert_array_equal(render_gallery(from_store), mosaic)


def test_captions_of_results(run_and_folder):
    import dataclasses

    results, _ = run_and_folder
    r = results[0]
    assert result_caption(r) == f"{r.meta.well} {r.meta.site}: {r.count} nuclei"
    edited = dataclasses.replace(r, edited=True)
    assert result_caption(edited) == result_caption(r)  # mosaics do not mark edits
    assert result_caption(edited, mark_edited=True) == result_caption(r) + " (edited)"
    (failed,) = [r for r in results.values() if not r.ok]
    assert result_caption(failed) == "junk_w1: failed"


def test_gallery_tile_of_memory_moved_and_missing_images(run_and_folder, tmp_path):
    from napari_nuclei_counter.core.io.images import read_image

    results, folder = run_and_folder
    r = results[3]
    pixels = read_image(r.path)
    (item,) = items_of_results(results, [3])
    expected = thumbnail(pixels, r.coords, size=64, dot_radius=1)
    np.testing.assert_array_equal(gallery_tile(item, size=64, dot_radius=1).picture, expected)
    # an in-memory stack: the item's plane of the run's data
    stack = np.stack([np.zeros_like(pixels), pixels])
    in_memory = item._replace(path="stack[1]", data=stack, index=1)
    tile = gallery_tile(in_memory, size=64, dot_radius=1)
    assert tile.readable and tile.caption == item.caption
    np.testing.assert_array_equal(tile.picture, expected)
    # a file moved into the results folder is found there
    moved = folder / Path(r.path).name
    Path(r.path).rename(moved)
    np.testing.assert_array_equal(gallery_tile(item, size=64, dot_radius=1, folder=folder).picture,
                                  expected)
    # and without it: the grey square, and the caption says so
    tile = gallery_tile(item, size=64)
    assert not tile.readable and tile.caption == item.caption + " (unreadable)"
    np.testing.assert_array_equal(tile.picture, blank_tile(64))
