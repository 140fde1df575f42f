"""``nuclei-counter analyze`` and ``detect --layout`` (issue 25), in a real subprocess."""

from __future__ import annotations

import hashlib
import json
import subprocess

import numpy as np
import pandas as pd
import pytest

from helpers import EXE
from napari_nuclei_counter.core.sample import write_sample_plate
from treatment_plates import DMSO_MEANS, IMAGE_CSV, MOA_CSV, PLATE, TAXOL_MEANS, write_week1

TABLES = ["conditions.csv", "dose_response.csv", "dose_response.png", "plates.csv",
          "wells_annotated.csv"]


def run(*args):
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def week1(tmp_path_factory):
    if not IMAGE_CSV.exists():
        pytest.skip("../shared/data/bbbc021_metadata not present")
    return write_week1(tmp_path_factory.mktemp("cli") / "results")[0]


def test_analyze_writes_the_tables_and_sums_up_in_the_last_line(week1, tmp_path):
    out = tmp_path / "analysis"
    before = (week1 / "run.json").read_bytes()
    p = run("analyze", week1, "--layout", IMAGE_CSV, "--positive", "taxol@0.3",
            "--annotations", MOA_CSV, "--out", out)
    assert p.returncode == 0, p.stderr
    neg = np.array(list(DMSO_MEANS.values()), float)
    pos = np.array(list(TAXOL_MEANS.values()), float)
    z = 1 - 3 * (pos.std(ddof=1) + neg.std(ddof=1)) / abs(pos.mean() - neg.mean())
    assert p.stderr.splitlines()[-1] == (
        f"1 plate: {PLATE} Z' {z:.2f} (excellent); 6 compounds: 4 fitted, 1 without effect, "
        f"1 out of range; tables in {out}")
    assert sorted(f.name for f in out.iterdir()) == sorted([*TABLES, "run.json"])
    assert (week1 / "run.json").read_bytes() == before  # --out: the results stay as they were
    entry = json.loads((out / "run.json").read_text())["analysis"]
    assert entry["layout"]["sha256"] == hashlib.sha256(IMAGE_CSV.read_bytes()).hexdigest()
    assert entry["controls"] == {"negative": "control = negative, or compound DMSO",
                                 "positive": "compound taxol at 0.3"}
    dose = pd.read_csv(out / "dose_response.csv", keep_default_na=False).set_index("compound")
    assert dose.loc["AZ-H", ["ic50", "status"]].tolist() == ["> 30", "ic50_above_range"]
    assert dose.loc["nocodazole", "moa"] == "Microtubule destabilizers"


def test_analyze_without_a_positive_control_has_no_z_prime(week1, tmp_path):
    p = run("analyze", week1, "--layout", IMAGE_CSV, "--out", tmp_path / "a")
    assert p.returncode == 0, p.stderr
    assert p.stderr.splitlines()[-1].startswith(
        f"1 plate: {PLATE} Z' n/a (no positive control); 6 compounds: ")


@pytest.mark.parametrize(("text", "says"), [
    ("well,compound\nB02,DMSO\nb2,drug\n",
     "well B02 in layout.csv is listed more than once (lines 2, 3); each well once"),
    ("well,compound,concentration\nB02,DMSO,0\nB03,drug,ten\n",
     "the concentration 'ten' of well B03 in layout.csv is not a number (0 or more; 1 such "
     "cell(s))"),
    ("well,compound\nB02,DMSO\nH12,drug\n",
     "the layout layout.csv names 1 well(s) that the results lack: H12 of plate 150607"),
])
def test_layout_errors_exit_2_in_one_sentence(week1, tmp_path, text, says):
    layout = tmp_path / "layout.csv"
    layout.write_text(text)
    p = run("analyze", week1, "--layout", layout, "--out", tmp_path / "a")
    assert p.returncode == 2
    assert p.stderr == f"nuclei-counter analyze: error: {says}\n"
    assert not (tmp_path / "a").exists()


def test_images_whose_well_the_layout_lacks_are_a_warning_with_a_count(week1, tmp_path):
    layout = tmp_path / "layout.csv"
    layout.write_text("well,compound\n" + "".join(f"{w},DMSO\n" for w in DMSO_MEANS)
                      + "".join(f"{w},taxol\n" for w in TAXOL_MEANS))
    p = run("analyze", week1, "--layout", layout, "--positive", "taxol", "--out", tmp_path / "a")
    assert p.returncode == 0, p.stderr
    lines = p.stderr.splitlines()
    assert lines[0].startswith("WARNING: 188 image(s) in 47 well(s) the layout lacks are left "
                               "out of the analysis (B03 of plate 150607, ")
    assert lines[-1].startswith("1 plate: 150607 Z' ")
    assert lines[-1].endswith(f"0 compounds: 0 fitted, 0 without effect, 0 out of range; "
                              f"tables in {tmp_path / 'a'}")


def test_analyze_of_a_folder_that_is_not_results(tmp_path):
    layout = tmp_path / "layout.csv"
    layout.write_text("well,compound\nA01,DMSO\n")
    p = run("analyze", tmp_path, "--layout", layout)
    assert p.returncode == 2
    assert p.stderr == (f"nuclei-counter analyze: error: not a finished results folder "
                        f"(no images.csv): {tmp_path}\n")


def test_detect_with_a_layout_analyses_the_run_at_its_end(tmp_path):
    write_sample_plate(tmp_path / "plate", rows="BC", columns=range(2, 6), sites=1, seed=3,
                       shape=(256, 320))
    layout = tmp_path / "layout.csv"
    layout.write_text("well,compound,concentration,control\nB02,DMSO,0,negative\n"
                      "C02,DMSO,0,negative\nB03,drug,0.1,\nC03,drug,1,\nB04,drug,3,\n"
                      "C04,drug,10,\nB05,kill,1,positive\nC05,kill,1,positive\n")
    out = tmp_path / "out"
    p = run("detect", tmp_path / "plate", "--out", out, "--workers", "0", "--quiet",
            "--layout", layout)
    assert p.returncode == 0, p.stderr
    wells = pd.read_csv(out / "wells.csv", dtype={"plate": str})
    means = dict(zip(wells["well"], wells["mean"], strict=True))
    negative = (means["B02"] + means["C02"]) / 2
    annotated = pd.read_csv(out / "wells_annotated.csv", dtype={"plate": str}).set_index("well")
    for well, mean in means.items():
        assert annotated.loc[well, "percent_of_control"] == pytest.approx(100 * mean / negative,
                                                                          rel=1e-12)
    neg = np.array([means["B02"], means["C02"]])
    pos = np.array([means["B05"], means["C05"]])
    z = 1 - 3 * (pos.std(ddof=1) + neg.std(ddof=1)) / abs(pos.mean() - neg.mean())
    verdict = "excellent" if z >= 0.5 else "usable" if z >= 0 else "unusable"
    # 'drug': 4 wells, too few for four parameters; 'kill' is a control only
    assert p.stderr.splitlines()[-1] == (
        f"1 plate: {wells['plate'].iloc[0]} Z' {z:.2f} ({verdict}); 1 compound: 0 fitted, "
        f"0 without effect, 0 out of range, 1 failed; tables in {out}")
    run_json = json.loads((out / "run.json").read_text())
    assert run_json["analysis"]["layout"]["file"] == "layout.csv"
    assert run_json["n_images"] == 8  # the run's own entries stay


def test_detect_with_a_bad_layout_stops_before_any_image(tmp_path):
    write_sample_plate(tmp_path / "plate", rows="B", columns=range(2, 4), sites=1, seed=3,
                       shape=(256, 320))
    layout = tmp_path / "layout.csv"
    layout.write_text("well,compound\nB02,DMSO\nB02,drug\n")
    p = run("detect", tmp_path / "plate", "--out", tmp_path / "out", "--workers", "0",
            "--quiet", "--layout", layout)
    assert p.returncode == 2
    assert p.stderr == ("nuclei-counter detect: error: well B02 in layout.csv is listed more "
                        "than once (lines 2, 3); each well once\n")
    assert not (tmp_path / "out" / "images.csv").exists()


def test_layout_options_without_a_layout_are_refused(tmp_path):
    write_sample_plate(tmp_path / "plate", rows="B", columns=range(2, 3), sites=1, seed=3,
                       shape=(256, 320))
    p = run("detect", tmp_path / "plate", "--out", tmp_path / "out", "--positive", "taxol")
    assert p.returncode == 2
    assert p.stderr == "nuclei-counter detect: error: --positive needs --layout\n"


def test_detect_without_a_layout_leaves_the_analysis_unloaded(tmp_path):
    """The treatments analysis (and pandas with it) loads only for a layout: before the
    run, on the main thread, it cost half a second of every ``detect``."""
    import sys

    write_sample_plate(tmp_path / "plate", rows="B", columns=range(2, 3), sites=1, seed=3,
                       shape=(256, 320))
    script = ("import sys\n"
              "from napari_nuclei_counter.cli.app import main\n"
              f"code = main(['detect', {str(tmp_path / 'plate')!r}, '--out', "
              f"{str(tmp_path / 'out')!r}, '--workers', '0', '--quiet'])\n"
              "print(code, 'napari_nuclei_counter.core.treatments' in sys.modules)\n")
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=300)
    assert p.stdout == "0 False\n", p.stderr
