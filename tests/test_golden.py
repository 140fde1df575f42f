"""The sample plate's tables are those of the code before the run pipeline was rewritten.

``tests/golden`` holds the tables written at 065c3df (see its README); every
front end that writes tables (the command line on every backend, the core's
pipeline on an in-memory stack) must write the same ones, column for column,
except the times. Text, integers, coordinates, order and flags are compared
exactly; floating-point measurements within the tolerances of ``FLOAT_RTOL``,
so that the tables hold on any processor, BLAS and number of threads.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_nuclei_counter.cli.app import main
from napari_nuclei_counter.core.params import DetectionParams
from napari_nuclei_counter.core.sample import write_sample_plate

GOLDEN = Path(__file__).parent / "golden"
VOLATILE = ["seconds", "file_mtime"]
#: relative tolerance of each floating-point column. ``intensity`` is the
#: reference's smoothed value, computed with its operations in its order (equal
#: to the last bit on x86-64; 1e-9 leaves room only for a compiler that fuses
#: multiply-adds); ``sharpness`` is a float32 Laplacian summed by numpy, whose
#: last bits depend on the processor's vector unit; the others are ratios of
#: integers.
FLOAT_RTOL = {"intensity": 1e-9, "sharpness": 1e-6, "saturated_fraction": 1e-12,
              "file_size": 0.0, "mean": 1e-12, "std": 1e-12}


@pytest.fixture(scope="module")
def plate(tmp_path_factory):
    """The sample plate of ``nuclei-counter sample`` with its defaults (24 images)."""
    return write_sample_plate(tmp_path_factory.mktemp("golden") / "plate")


def _golden():
    images = pd.read_csv(GOLDEN / "sample_images.csv", keep_default_na=False, dtype=str)
    with gzip.open(GOLDEN / "sample_nuclei.csv.gz", "rt", newline="") as fh:
        nuclei = pd.read_csv(fh, keep_default_na=False, dtype=str)
    wells = pd.read_csv(GOLDEN / "sample_wells.csv", keep_default_na=False, dtype=str)
    return images, nuclei, wells


def _written(out: Path, paths_as_names: bool = True):
    images = pd.read_csv(out / "images.csv", keep_default_na=False, dtype=str)
    nuclei = pd.read_csv(out / "nuclei.csv", keep_default_na=False, dtype=str)
    wells = pd.read_csv(out / "wells.csv", keep_default_na=False, dtype=str)
    if paths_as_names:
        images["path"] = images["path"].map(os.path.basename)
        nuclei["path"] = nuclei["path"].map(os.path.basename)
    return images.drop(columns=VOLATILE), nuclei, wells


def assert_same_table(got: pd.DataFrame, golden: pd.DataFrame, name: str) -> None:
    """Columns, rows and order exactly; text exactly; floats within ``FLOAT_RTOL``."""
    assert list(got.columns) == list(golden.columns), name
    assert len(got) == len(golden), f"{name}: {len(got)} rows, golden {len(golden)}"
    for col in golden.columns:
        if col in FLOAT_RTOL:
            a, b = got[col].replace("", "nan").astype(float), golden[col].replace("", "nan").astype(float)
            np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=FLOAT_RTOL[col], atol=0,
                                       equal_nan=True, err_msg=f"{name}, column {col}")
        else:
            bad = np.flatnonzero(got[col].to_numpy() != golden[col].to_numpy())
            assert len(bad) == 0, (f"{name}, column {col}: {len(bad)} rows differ, first row "
                                   f"{bad[:1].tolist()}: {got[col].iloc[bad[0]]!r} != "
                                   f"{golden[col].iloc[bad[0]]!r}")


def assert_golden_tables(out: Path) -> None:
    """Assert that the tables in ``out`` are the golden ones, column for column but times."""
    images, nuclei, wells = _written(out)
    g_images, g_nuclei, g_wells = _golden()
    # columns added since 065c3df (name fields the sample plate's names do not have) are blank
    added = [c for c in images.columns if c not in g_images.columns]
    assert added == ["plane", "timepoint", "scene", "threshold", "threshold_above_image"]
    assert (images[added[:3]] == "").all().all()
    # the threshold each image used (per image with --threshold otsu|li|triangle): fixed here
    assert (images["threshold"].astype(float) == 1000.0).all()
    # every image has nuclei: none has the threshold above all its smoothed values
    assert (images["threshold_above_image"] == "False").all()
    assert_same_table(images[list(g_images.columns)], g_images, "images.csv")
    assert_same_table(nuclei, g_nuclei, "nuclei.csv")
    assert_same_table(wells, g_wells, "wells.csv")
    run = json.loads((out / "run.json").read_text())
    assert set(json.loads((GOLDEN / "sample_run_keys.json").read_text())) <= set(run)
    assert run["n_images"] == 24 and run["n_nuclei"] == 4054 and run["complete"] is True


@pytest.mark.parametrize("workers", [0, 2])
def test_command_line_writes_the_golden_tables(plate, tmp_path, workers):
    out = tmp_path / "res"
    assert main(["detect", str(plate[0].parent), "--out", str(out), "--quiet",
                 "--workers", str(workers)]) == 0
    assert_golden_tables(out)


def test_resume_of_a_finished_run_keeps_the_golden_tables(plate, tmp_path):
    out = tmp_path / "res"
    assert main(["detect", str(plate[0].parent), "--out", str(out), "--quiet"]) == 0
    first = (out / "nuclei.csv").read_bytes()
    assert main(["detect", str(plate[0].parent), "--out", str(out), "--quiet", "--resume"]) == 0
    assert (out / "nuclei.csv").read_bytes() == first
    assert_golden_tables(out)


@pytest.mark.slow
def test_dask_backend_writes_the_golden_tables(plate, tmp_path):
    pytest.importorskip("distributed")
    out = tmp_path / "res"
    assert main(["detect", str(plate[0].parent), "--out", str(out), "--quiet",
                 "--backend", "dask", "--workers", "2"]) == 0
    assert_golden_tables(out)


def test_golden_counts_are_the_reference_detection(plate):
    """The golden copy itself: its counts are scikit-image's, image by image."""
    from napari_nuclei_counter.core.detect.detection import reference_detect

    g_images, g_nuclei, _ = _golden()
    by_name = {p.name: p for p in plate}
    for name in list(g_images["path"])[:3]:
        image = tifffile.imread(by_name[name])
        ref = reference_detect(image, DetectionParams(4.0, 6, 1000.0)).coords
        rows = g_nuclei[g_nuclei["path"] == name][["y", "x"]].astype(int).to_numpy()
        np.testing.assert_array_equal(rows, ref)


def test_golden_intensities_are_the_reference_smoothing(plate):
    """The golden copy itself: ``intensity`` is scikit-image's smoothed value at each centre."""
    from skimage.filters import gaussian

    _, g_nuclei, _ = _golden()
    by_name = {p.name: p for p in plate}
    for name, rows in list(g_nuclei.groupby("path", sort=False))[:4]:
        g = gaussian(tifffile.imread(by_name[name]).astype(np.float64), 4.0, mode="nearest",
                     truncate=4.0, preserve_range=True, channel_axis=None)
        yx = rows[["y", "x"]].astype(int).to_numpy()
        np.testing.assert_allclose(rows["intensity"].astype(float), g[yx[:, 0], yx[:, 1]],
                                   rtol=1e-12, atol=0)


@pytest.fixture(scope="module")
def golden_run(plate, tmp_path_factory):
    out = tmp_path_factory.mktemp("golden_run") / "res"
    assert main(["detect", str(plate[0].parent), "--out", str(out), "--quiet"]) == 0
    return out


def _shift_x(df):
    df.loc[100, "x"] = str(int(df.loc[100, "x"]) + 1)
    return df


def _scale_intensity(df):
    df.loc[100, "intensity"] = repr(float(df.loc[100, "intensity"]) * (1 + 1e-4))
    return df


@pytest.mark.parametrize("change", [_shift_x, lambda df: df.drop(index=100), _scale_intensity],
                         ids=["centre moved one pixel", "nucleus missing",
                              "intensity 1e-4 relative"])
def test_golden_comparison_catches_a_real_change(golden_run, tmp_path, change):
    import shutil

    assert_golden_tables(golden_run)
    out = shutil.copytree(golden_run, tmp_path / "changed")
    nuclei = pd.read_csv(out / "nuclei.csv", keep_default_na=False, dtype=str)
    change(nuclei).to_csv(out / "nuclei.csv", index=False)
    with pytest.raises(AssertionError, match="nuclei.csv"):
        assert_golden_tables(out)
