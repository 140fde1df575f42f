"""The Treatments tab's model without Qt: a layout, its events, which image is in which treatment."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from napari_nuclei_counter.core.io.discovery import ImageMeta
from napari_nuclei_counter.core.results.store import ResultsStore
from napari_nuclei_counter.core.results.tables import ImageResult
from napari_nuclei_counter.gui.treatments.model import (
    TreatmentsModel,
    format_concentration,
    run_analysis,
    summary,
)

#: (well, nuclei per image of its two sites); DMSO in column 2, drugA at 1 and 10 in 3 and 4
COUNTS = {"B02": (100, 100), "C02": (90, 110), "B03": (80, 80), "C03": (70, 90),
          "B04": (40, 40), "C04": (30, 50)}


@pytest.fixture
def store():
    """Two sites per well; the store's images in well order, one result each."""
    s = ResultsStore()
    wells = [(w, site) for w in COUNTS for site in (1, 2)]
    s.reset([f"/plate/P1_{w}_s{site}_w1.tif" for w, site in wells],
            [ImageMeta(plate="P1", well=w, site=f"s{site}") for w, site in wells])
    for i, (w, site) in enumerate(wells):
        n = COUNTS[w][site - 1]
        s.add(ImageResult(i, s.labels[i], s.meta[i], coords=np.zeros((n, 2), int)))
    return s


@pytest.fixture
def layout(tmp_path):
    path = tmp_path / "layout.csv"
    path.write_text("well,compound,concentration,unit,control\n"
                    "B02,DMSO,,,negative\nC02,DMSO,,,negative\n"
                    "B03,drugA,1,µM,\nC03,drugA,1,µM,\nB04,drugA,10,µM,\nC04,drugA,10,µM,\n",
                    encoding="utf-8")
    return path


def test_the_model_needs_no_qt():
    """Importing it loads neither Qt nor napari (it is tested here without them)."""
    code = ("import sys; import napari_nuclei_counter.gui.treatments.model; "
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "('qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'napari')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_loading_a_layout_emits_and_joins_by_plate_and_well(store, layout, tmp_path):
    model = TreatmentsModel(store)
    seen = []
    model.events.layout.connect(lambda new, *_: seen.append(("layout", new.path.name)))
    model.events.error.connect(lambda new, *_: seen.append(("error", new)))
    assert model.load_layout(layout) is not None
    assert seen == [("layout", "layout.csv")]
    assert model.compounds() == ["DMSO", "drugA"]
    # before any analysis: the layout joined to the store's images by plate and well
    assert model.images_of_compound("drugA") == set(range(4, 12))
    assert model.images_of_well("", "C03") == [] and model.images_of_well("P1", "C03") == [6, 7]
    rows = model.well_rows("P1")
    assert rows[(2, 3)]["compound"] == "drugA" and rows[(2, 3)]["concentration"] == 10
    assert "percent_of_control" not in rows[(2, 3)]
    # a file that is no layout: an error sentence, the layout stays
    junk = tmp_path / "junk.csv"
    junk.write_text("a,b\n1,2\n", encoding="utf-8")
    assert model.load_layout(junk) is None
    assert model.layout.path == layout and seen[-1][0] == "error" and model.error


def test_the_analysis_and_a_stale_one(store, layout):
    model = TreatmentsModel(store)
    model.load_layout(layout)
    outcome = run_analysis(*model.snapshot())
    analysis, error, _ = outcome
    assert error == "" and analysis is not None
    assert model.set_analysis(outcome) and model.analysis is analysis
    negative = np.mean([np.mean(COUNTS["B02"]), np.mean(COUNTS["C02"])])  # 100
    rows = model.well_rows("P1")
    assert rows[(2, 3)]["percent_of_control"] == pytest.approx(100 * 40 / negative)
    assert rows[(1, 2)]["percent_of_control"] == pytest.approx(100 * 80 / negative)
    assert model.images_of_well("P1", "B04") == [8, 9]
    # an outcome computed for other controls is not taken
    stale = run_analysis(*model.snapshot())
    model.negative = "drugA"
    assert not model.set_analysis(stale) and model.analysis is analysis
    # the summary: no positive control, so no Z'; one compound fitted or not
    text = summary(analysis)
    assert text.splitlines()[0] == "plate P1: no Z′ (2 negative, 0 positive control wells)"


def test_a_layout_naming_wells_the_results_lack_says_so(store, tmp_path):
    path = tmp_path / "more.csv"
    path.write_text("well,compound,concentration,control\nB02,DMSO,,negative\n"
                    "H12,drugA,1,\n", encoding="utf-8")
    model = TreatmentsModel(store)
    model.load_layout(path)
    analysis, error, key = run_analysis(*model.snapshot())
    assert analysis is None and "H12" in error
    assert model.set_analysis((analysis, error, key)) and model.error == error
    model.clear_layout()
    assert model.layout is None and model.error == "" and model.compounds() == []


def test_format_concentration():
    assert format_concentration(0.3, "µM") == "0.3 µM"
    assert format_concentration(10.0, "") == "10"
    assert format_concentration(np.nan, "µM") == ""
