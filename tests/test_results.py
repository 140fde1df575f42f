import json

import numpy as np
import pandas as pd
import pytest

from napari_nuclei_counter import DetectionParams, ImageResult, load_results
from napari_nuclei_counter.core.io.discovery import ImageMeta
from napari_nuclei_counter.core.io.images import atomic_write
from napari_nuclei_counter.core.results.tables import IMAGE_COLUMNS, NUCLEI_COLUMNS
from napari_nuclei_counter.core.results.writer import ResultsWriter, write_results

P = DetectionParams(3.0, 5, 20.0)


def _results():
    m = ImageMeta("22123", "B02", "s1", "w1")
    return [
        ImageResult(0, "/x/a (1).tif", m, np.array([[5, 6], [7, 8]]), np.array([30.5, 21.25]), 0.01),
        ImageResult(1, "/x/b.tif", ImageMeta(), error="not a readable TIFF (boom)", seconds=0.002),
        ImageResult(2, "/x/c.tif", m, np.empty((0, 2), np.intp), np.empty(0), 0.03),
    ]


def test_tables_round_trip(tmp_path):
    write_results(tmp_path, _results(), P, info={"command": "test"})
    res = load_results(tmp_path)
    assert list(res.images.columns) == IMAGE_COLUMNS
    assert list(res.nuclei.columns) == NUCLEI_COLUMNS
    assert res.images["n_nuclei"].tolist()[0::2] == [2, 0]
    assert pd.isna(res.images["n_nuclei"][1]) and res.images["error"][1].startswith("not a")
    assert res.images["error"][0] == "" and res.images["path"][0] == "/x/a (1).tif"
    assert res.nuclei[["y", "x"]].values.tolist() == [[5, 6], [7, 8]]
    assert res.nuclei["intensity"].tolist() == [30.5, 21.25]
    assert res.params == P
    assert res.run["n_images"] == 3 and res.run["n_failed"] == 1 and res.run["command"] == "test"
    assert res.run["complete"] is True and "scikit-image" in res.run["versions"]


def test_writer_orders_rows_by_input_index(tmp_path):
    w = ResultsWriter(tmp_path, P, 3)
    r = _results()
    for x in (r[2], r[0], r[1]):
        w.add(x)
    w.close()
    assert pd.read_csv(tmp_path / "images.csv")["path"].tolist() == ["/x/a (1).tif", "/x/b.tif", "/x/c.tif"]


def test_cancelled_run_keeps_what_was_done(tmp_path):
    w = ResultsWriter(tmp_path, P, 10)
    w.add(_results()[0])
    w.close(complete=False)
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["complete"] is False and run["n_processed"] == 1
    assert len(pd.read_csv(tmp_path / "nuclei.csv")) == 2


def test_interrupted_write_leaves_the_previous_file(tmp_path):
    target = tmp_path / "images.csv"
    target.write_text("old,valid\n")
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(target) as fh:
            fh.write("half a fi")
            raise KeyboardInterrupt
    assert target.read_text() == "old,valid\n"
    assert [p.name for p in tmp_path.iterdir()] == ["images.csv"]  # no temp file left


def test_aborted_writer_leaves_previous_tables(tmp_path):
    write_results(tmp_path, _results(), P)
    before = (tmp_path / "nuclei.csv").read_text()
    with pytest.raises(RuntimeError):
        with ResultsWriter(tmp_path, P, 3) as w:
            w.add(_results()[2])
            raise RuntimeError("crash")
    assert (tmp_path / "nuclei.csv").read_text() == before
    # the rows of the crashed run stay in the streaming files, for --resume
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "images.csv", "images.partial.csv", "nuclei.csv", "nuclei.partial.csv", "run.json",
        "run.partial.json", "wells.csv"]


def test_interrupted_before_any_image_still_writes_valid_tables(tmp_path):
    w = ResultsWriter(tmp_path, P, 5)
    w.close(complete=False)
    images = load_results(tmp_path).images
    assert len(images) == 0 and list(images.columns) == IMAGE_COLUMNS


@pytest.mark.parametrize("path, meta", [
    ("/plate 1/img_B02_s1.tif", ImageMeta("22123", "B02", "s1", "w1")),
    ('/odd, "quoted"\nname.tif', ImageMeta("p,1", 'w"2', "", "")),
    ("=1+1.tif", ImageMeta("@SUM(A1)", "-B02", "+s1", "")),
    ("plain.tif", ImageMeta()),
])
def test_nuclei_lines_are_the_one_row_writer_row_by_row(path, meta):
    """The fast nuclei rows are csv_line's rows: csv module quoting, text cells escaped."""
    import csv
    import io

    from napari_nuclei_counter.core.results.columns import NUCLEI
    from napari_nuclei_counter.core.results.csvsafe import csv_line, decode_cell
    from napari_nuclei_counter.core.results.writer import nuclei_lines

    coords = np.array([[5, 7], [1023, 0], [12, 1279]], dtype=np.intp)
    values = np.array([1000.0000001, 65535.0, 1 / 3])
    r = ImageResult(3, path, meta=meta, coords=coords, intensities=values)
    escaped = [c in NUCLEI.text for c in NUCLEI.names]
    expected = "".join(csv_line([path, meta.plate, meta.well, meta.site, y, x, v], escaped)
                       for (y, x), v in zip(coords.tolist(), values.tolist(), strict=True))
    assert nuclei_lines(r) == expected
    assert nuclei_lines(ImageResult(4, path, meta=meta)) == ""
    back = list(csv.reader(io.StringIO(nuclei_lines(r))))
    assert [decode_cell(row[0]) for row in back] == [path] * 3
    assert all(not row[k].startswith(("=", "+", "-", "@")) for row in back for k in range(4))
    assert [float(row[6]) for row in back] == values.tolist()


def test_store_tells_listeners_before_and_after_a_new_run():
    """Qt models must hear of a reset before the data changes, and again after."""
    from napari_nuclei_counter.core.results.store import ResultsStore

    store = ResultsStore()
    seen = []
    store.subscribe(lambda event, idx: seen.append((event, len(store.labels), idx)))
    store.reset(["a.tif", "b.tif"])
    store.add(ImageResult(1, "b.tif", coords=np.zeros((3, 2), np.intp), intensities=np.zeros(3)))
    store.reset(["c.tif"])
    assert seen == [("resetting", 0, None), ("reset", 2, None), ("result", 2, {1}),
                    ("resetting", 2, None), ("reset", 1, None)]


def test_column_specification_types_a_table_read_as_text():
    """Every table's columns, dtypes and escaped cells come from one place."""
    from napari_nuclei_counter.core.results.columns import IMAGES, NUCLEI, WELLS
    from napari_nuclei_counter.core.results.csvsafe import TEXT_COLUMNS
    from napari_nuclei_counter.core.results.wells import WELL_COLUMNS

    assert IMAGE_COLUMNS == IMAGES.names and NUCLEI_COLUMNS == NUCLEI.names
    assert WELL_COLUMNS == ["plate", "well", "images", "total", "mean", "std"]
    assert "timepoint" in WELLS.all_names and "timepoint" not in WELLS.text
    assert set(TEXT_COLUMNS) == {"path", "plate", "well", "site", "channel", "error"}
    raw = pd.DataFrame({"path": ["a.tif", "b.tif"], "n_nuclei": ["3", ""], "edited": ["True", ""],
                        "seconds": ["0.5", ""]}, dtype=object)
    df = IMAGES.typed(raw)
    assert list(df.columns) == IMAGES.names
    assert str(df["n_nuclei"].dtype) == "Int64" and df["n_nuclei"].isna().tolist() == [False, True]
    assert df["edited"].tolist() == [True, False] and df["seconds"].isna().tolist() == [False, True]
    assert df["plate"].tolist() == ["", ""]
    empty = NUCLEI.empty()
    assert list(empty.columns) == NUCLEI.names and str(empty["y"].dtype) == "int64"


def test_every_table_escapes_formula_cells(tmp_path):
    """images.csv, nuclei.csv and wells.csv: a formula-like name is text; reading it back is exact."""
    m = ImageMeta("=P1", "B02", "@s1", "w1")
    results = [ImageResult(0, "=1+1.tif", m, np.array([[5, 6]]), np.array([30.5]), 0.01)]
    write_results(tmp_path, results, P)
    for name in ("images.csv", "nuclei.csv", "wells.csv"):
        raw = pd.read_csv(tmp_path / name, dtype=str, keep_default_na=False)
        cells = [v for col in raw for v in raw[col] if isinstance(v, str)]
        assert not any(v.startswith(("=", "@")) for v in cells), name
    res = load_results(tmp_path)
    assert res.images["path"].tolist() == ["=1+1.tif"] and res.images["plate"][0] == "=P1"
    assert res.nuclei["site"].tolist() == ["@s1"] and res.wells["plate"].tolist() == ["=P1"]


def test_points_writer_escapes_and_the_reader_reads_back(tmp_path):
    from napari_nuclei_counter._reader import read_results
    from napari_nuclei_counter._writer import write_points_csv

    feats = pd.DataFrame({"path": ["=cmd|' /C calc'!A0"], "well": ["B02"], "intensity": [2.5]})
    path = str(tmp_path / "points.csv")
    write_points_csv(path, np.array([[3.0, 4.0]]), {"features": feats})
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert raw["path"][0].startswith("'=")
    layer = read_results(path)[-1]
    assert layer[1]["features"]["path"].tolist() == ["=cmd|' /C calc'!A0"]
