"""The sample plate's tables are those of the code before the run pipeline was rewritten.

``tests/golden`` holds the tables written at 065c3df (see its README); every
front end that writes tables (the command line on every backend, the core's
pipeline on an in-memory stack) must write the same ones, column for column,
except the times.
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

from napari_nuclei_counter.cli import main
from napari_nuclei_counter.core.params import DetectionParams
from napari_nuclei_counter.core.sample import write_sample_plate

GOLDEN = Path(__file__).parent / "golden"
VOLATILE = ["seconds", "file_mtime"]


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


def assert_golden_tables(out: Path) -> None:
    """Assert that the tables in ``out`` are the golden ones, column for column but times."""
    images, nuclei, wells = _written(out)
    g_images, g_nuclei, g_wells = _golden()
    # columns added since 065c3df (name fields the sample plate's names do not have) are blank
    added = [c for c in images.columns if c not in g_images.columns]
    assert added == ["plane", "timepoint", "scene", "threshold"]
    assert (images[added[:3]] == "").all().all()
    # the threshold each image used (per image with --threshold otsu|li|triangle): fixed here
    assert (images["threshold"].astype(float) == 1000.0).all()
    pd.testing.assert_frame_equal(images[list(g_images.columns)], g_images)
    pd.testing.assert_frame_equal(nuclei, g_nuclei)
    pd.testing.assert_frame_equal(wells, g_wells)
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
    from napari_nuclei_counter.core.detection import reference_detect

    g_images, g_nuclei, _ = _golden()
    by_name = {p.name: p for p in plate}
    for name in list(g_images["path"])[:3]:
        image = tifffile.imread(by_name[name])
        ref = reference_detect(image, DetectionParams(4.0, 6, 1000.0)).coords
        rows = g_nuclei[g_nuclei["path"] == name][["y", "x"]].astype(int).to_numpy()
        np.testing.assert_array_equal(rows, ref)
