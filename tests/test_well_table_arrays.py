"""``well_table`` by arrays (issue 25's benchmark) and ``load_results(read_nuclei=False)``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from napari_nuclei_counter.core.results.tables import load_results
from napari_nuclei_counter.core.results.wells import well_table
from treatment_plates import write_results_folder


def _images(seed: int, n: int = 3000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    images = pd.DataFrame({
        "plate": rng.choice(["P2", "P10", "P1", ""], n),
        "well": rng.choice(["B02", "A01", " a1", "", "H12", "odd"], n),
        "timepoint": rng.choice(["t2", "t10", "t1"], n),
        "n_nuclei": pd.array(rng.integers(0, 10**6, n), dtype="Int64"),
        "error": rng.choice(["", "", "", "unreadable"], n),
    })
    images.loc[rng.random(n) < 0.1, "n_nuclei"] = pd.NA
    return images


def test_well_table_is_numpy_well_by_well():
    images = _images(0)
    table = well_table(images)
    ok = images["n_nuclei"].notna() & (images["error"] == "")
    keys = ["plate", "well", "timepoint"]
    assert list(table.columns) == ["plate", "well", "timepoint", "images", "total", "mean", "std"]
    assert len(table) == 4 * 5 * 3  # ' a1' is stripped, not renamed; no blank well
    assert table["plate"].unique().tolist() == ["", "P1", "P2", "P10"]
    assert table["well"].unique().tolist()[-3:] == ["B02", "H12", "odd"]  # A01 and a1 first
    assert table.loc[table["well"] == "H12", "timepoint"].tolist()[:3] == ["t1", "t2", "t10"]
    for row in table.itertuples(index=False):
        sel = ((images["plate"] == row.plate) & (images["well"].str.strip() == row.well)
               & (images["timepoint"] == row.timepoint) & ok)
        counts = images.loc[sel, "n_nuclei"].to_numpy(dtype=np.int64)
        assert row.images == len(counts)
        assert row.total == counts.sum()
        assert row.mean == counts.mean()  # to the last bit
        assert row.std == counts.std(ddof=1)
    assert table.dtypes.astype(str).tolist()[3:] == ["int64", "Int64", "float64", "float64"]
    assert table[keys].duplicated().sum() == 0


def test_a_well_whose_every_image_failed_has_no_total_mean_or_std():
    images = pd.DataFrame({"plate": "P1", "well": ["A01", "A01", "A02"],
                           "n_nuclei": pd.array([None, 5, 7], dtype="Int64"),
                           "error": ["unreadable", "unreadable", ""]})
    table = well_table(images)
    assert table["images"].tolist() == [0, 1]
    assert table["total"].isna().tolist() == [True, False]
    assert table["total"].iloc[1] == 7 and table["mean"].iloc[1] == 7.0
    assert np.isnan(table["mean"].iloc[0]) and table["std"].isna().all()


def test_load_results_can_leave_the_nuclei_unread(tmp_path):
    folder = write_results_folder(tmp_path / "r", [("P1_A01_s1_w1.tif", "A01", 3),
                                                   ("P1_A02_s1_w1.tif", "A02", 2)])
    full = load_results(folder)
    light = load_results(folder, read_nuclei=False)
    assert len(full.nuclei) == 5 and len(light.nuclei) == 0
    assert list(light.nuclei.columns) == list(full.nuclei.columns)
    pd.testing.assert_frame_equal(light.images, full.images)
    pd.testing.assert_frame_equal(light.wells, full.wells)
