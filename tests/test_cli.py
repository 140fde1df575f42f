"""``nuclei-counter`` end to end, in a real subprocess."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import tifffile

from helpers import EXE
from napari_nuclei_counter import DetectionParams, detect


def run(*args, cwd=None):
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_help_explains_every_option_with_units():
    out = run("detect", "--help").stdout
    for words in ("--sigma", "pixels", "--min-distance", "--threshold", "intensity units",
                  "--workers", "--pattern", "--out", "--recursive", "default: 4.0"):
        assert words in out


def test_detect_end_to_end(sample_images, tmp_path):
    folder = sample_images[0].parent
    broken = folder / "Week1_22123_C09_s1_w1BAD.tif"
    broken.write_text("not an image")
    out = tmp_path / "results (run 1)"
    p = run("detect", folder, "--workers", 2, "--out", out, "--sigma", 4, "--min-distance", 6,
            "--threshold", 1000)
    assert p.returncode == 1, p.stderr  # one image failed
    assert "failed" in p.stderr and "BAD.tif" in p.stderr
    images = pd.read_csv(out / "images.csv", keep_default_na=False)
    nuclei = pd.read_csv(out / "nuclei.csv")
    assert list(images.columns) == ["path", "plate", "well", "site", "channel", "plane",
                                    "timepoint", "scene", "n_nuclei",
                                    "error", "seconds", "saturated_fraction", "sharpness",
                                    "qc_flags", "edited", "file_size", "file_mtime", "threshold",
                                    "threshold_above_image"]
    wells = pd.read_csv(out / "wells.csv")
    assert list(wells.columns) == ["plate", "well", "images", "total", "mean", "std"]
    assert wells["total"].sum() == len(nuclei)
    assert list(nuclei.columns) == ["path", "plate", "well", "site", "y", "x", "intensity"]
    assert len(images) == 7
    bad = images[images["path"].str.endswith("BAD.tif")].iloc[0]
    assert bad["n_nuclei"] == "" and "not a readable TIFF" in bad["error"]
    good = images[images["error"] == ""]
    params = DetectionParams(4.0, 6, 1000.0)
    for _, row in good.iterrows():
        expected = detect(tifffile.imread(row["path"]), params).coords
        assert int(row["n_nuclei"]) == len(expected)
        mine = nuclei[nuclei["path"] == row["path"]][["y", "x"]].to_numpy()
        np.testing.assert_array_equal(mine, expected)
    run_json = json.loads((out / "run.json").read_text())
    assert run_json["n_images"] == 7 and run_json["n_failed"] == 1
    assert run_json["parameters"] == params.to_dict()
    assert {"numpy", "scipy", "scikit-image", "tifffile", "opencv"} <= set(run_json["versions"])
    # the program leaves with os._exit: its last words must still reach the pipe
    assert f"7 images, {len(nuclei)} nuclei, 1 failed" in p.stderr.splitlines()[-1]


def test_all_good_exits_zero_and_serial_matches(sample_images, tmp_path):
    folder = sample_images[0].parent
    a = run("detect", folder, "--out", tmp_path / "a", "--quiet")
    b = run("detect", folder, "--out", tmp_path / "b", "--workers", 0, "--quiet",
            "--engine", "reference")
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    ta = pd.read_csv(tmp_path / "a" / "images.csv")
    tb = pd.read_csv(tmp_path / "b" / "images.csv")
    assert ta["n_nuclei"].tolist() == tb["n_nuclei"].tolist() and ta["n_nuclei"].sum() > 20
    na = pd.read_csv(tmp_path / "a" / "nuclei.csv")
    nb = pd.read_csv(tmp_path / "b" / "nuclei.csv")
    pd.testing.assert_frame_equal(na[["path", "y", "x"]], nb[["path", "y", "x"]])


@pytest.mark.parametrize("args, message", [
    (("detect", "/no/such/folder"), "not found"),
    (("detect", "{folder}", "--pattern", "*.png"), "matches the pattern"),
    (("detect", "{folder}", "--sigma", "0"), "sigma"),
    (("detect", "{folder}", "--min-distance", "0"), "min_distance"),
    (("detect", "{folder}", "--sigma", "abc"), "invalid float"),
])
def test_usage_errors_exit_2(sample_images, tmp_path, args, message):
    folder = sample_images[0].parent
    p = run(*[a.format(folder=folder) for a in args], cwd=tmp_path)
    assert p.returncode == 2
    assert message in p.stderr
    assert not (tmp_path / "nuclei-counter-results").exists()


def test_sample_command_writes_a_plate(tmp_path):
    p = run("sample", tmp_path / "plate", "--rows", "B", "--columns", 2, "--sites", 1)
    assert p.returncode == 0, p.stderr
    names = sorted(x.name for x in (tmp_path / "plate").iterdir())
    assert len(names) == 2 and names[0].startswith("Week1_22123_B02_s1_w1")


def test_module_entry_point():
    p = subprocess.run([sys.executable, "-m", "napari_nuclei_counter.cli.app", "--version"],
                       capture_output=True, text=True)
    assert p.returncode == 0 and "nuclei-counter" in p.stdout


def test_gallery_and_platemap_pngs(sample_images, tmp_path):
    from PIL import Image

    folder = sample_images[0].parent
    out = tmp_path / "res"
    assert run("detect", folder, "--out", out, "--quiet", "--workers", 0).returncode == 0
    g = run("gallery", out, "--out", tmp_path / "g.png", "--n", 4, "--seed", 1, "--columns", 2,
            "--size", 100)
    assert g.returncode == 0, g.stderr
    m = run("platemap", out, "--out", tmp_path / "m.png", "--value", "total")
    assert m.returncode == 0, m.stderr
    for name in ("g.png", "m.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = Image.open(tmp_path / "g.png").size
    assert 200 <= w <= 260 and h > 200  # 2 columns of 100 px thumbnails, 2 rows with captions
    bad = run("gallery", tmp_path / "nowhere")
    assert bad.returncode == 2 and "not a results folder" in bad.stderr


def test_detect_with_the_dask_backend(sample_images, tmp_path):
    pytest.importorskip("distributed")
    folder = sample_images[0].parent
    a = run("detect", folder, "--out", tmp_path / "a", "--quiet", "--workers", 0)
    b = run("detect", folder, "--out", tmp_path / "b", "--quiet", "--workers", 2,
            "--backend", "dask")
    assert a.returncode == 0 and b.returncode == 0, b.stderr
    ta = pd.read_csv(tmp_path / "a" / "nuclei.csv")
    tb = pd.read_csv(tmp_path / "b" / "nuclei.csv")
    pd.testing.assert_frame_equal(ta, tb)
