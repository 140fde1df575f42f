"""Bad inputs, interruptions and fuzzing: keep going, say why, lose nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import EXE, link_copies, worker_pids
from napari_nuclei_counter import DetectionParams, detect, detect_nuclei
from napari_nuclei_counter.core.sample import make_nuclei_image, write_sample_plate

P = DetectionParams(4.0, 6, 1000.0)


def _write_bad_folder(folder: Path) -> dict[str, str]:
    """Good images with every kind of bad file between them; returns name -> expected error."""
    folder.mkdir(parents=True)
    write_sample_plate(folder, rows="B", columns=range(2, 4), sites=1, seed=9, shape=(256, 320))
    bad = {}

    def add(name, expected, writer):
        writer(folder / name)
        bad[name] = expected

    add("Week1_1_C01_s1_w1zero.tif", "empty file", lambda p: p.write_bytes(b""))
    good_bytes = next(folder.glob("Week1_22123_B02*")).read_bytes()
    add("Week1_1_C02_s1_w1truncated.tif", "not a readable TIFF",
        lambda p: p.write_bytes(good_bytes[: len(good_bytes) // 3]))
    add("Week1_1_C03_s1_w1text.tif", "not a readable TIFF",
        lambda p: p.write_text("hello, I am not an image"))
    add("Week1_1_C04_s1_w1rgb.tif", "RGB",
        lambda p: tifffile.imwrite(p, np.zeros((64, 64, 3), np.uint8), photometric="rgb"))

    def nan_image(p):
        img = make_nuclei_image(1, 30, (128, 128))[0].astype(np.float32)
        img[5, 5] = np.nan
        tifffile.imwrite(p, img)

    add("Week1_1_C05_s1_w1nan.tif", "NaN", nan_image)
    add("Week1_1_C06_s1_w1stack.tif", "3 pages without axis metadata: choose --z",
        lambda p: tifffile.imwrite(p, np.zeros((3, 64, 64), np.uint16), photometric="minisblack"))
    os.symlink(folder / "nowhere.tif", folder / "Week1_1_C07_s1_w1dangling.tif")
    bad["Week1_1_C07_s1_w1dangling.tif"] = "broken symbolic link"
    # valid but unusual: processed, not errors
    tifffile.imwrite(folder / "Week1_1_D01_s1_w1allzero.tif", np.zeros((200, 200), np.uint16))
    tifffile.imwrite(folder / "Week1_1_D02_s1_w1tiny.tif",
                     make_nuclei_image(2, 3, (20, 24))[0])
    os.link(next(folder.glob("Week1_22123_B03*")), folder / "Week1_1_D03_s1_w1 spaces (1) é.tif")
    return bad


BAD_KINDS = ["zero", "truncated", "text", "rgb", "nan", "stack", "dangling"]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_each_bad_input_alone_among_good_ones(tmp_path, kind):
    from napari_nuclei_counter import find_images, run_batch

    folder = tmp_path / "plate"
    bad = _write_bad_folder(folder)
    # keep the good files and just this one bad file
    for name in bad:
        if kind not in name:
            (folder / name).unlink()
    paths = find_images(folder)
    results = {Path(r.path).name: r for r in run_batch(paths, P, workers=2)}
    assert len(results) == len(paths) == 6
    (name, expected), = [(n, e) for n, e in bad.items() if kind in n]
    assert not results[name].ok and expected in results[name].error
    for other, r in results.items():
        if other != name:
            assert r.ok, (other, r.error)
            ref = detect(tifffile.imread(folder / other), P, engine="reference").coords
            np.testing.assert_array_equal(r.coords, ref)


def test_bad_inputs_each_get_a_clear_error_and_the_rest_is_exact(tmp_path):
    folder = tmp_path / "mixed (folder) é"
    bad = _write_bad_folder(folder)
    out = tmp_path / "out"
    p = subprocess.run([EXE, "detect", str(folder), "--out", str(out), "--workers", "2",
                        "--quiet"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr
    images = pd.read_csv(out / "images.csv", keep_default_na=False)
    nuclei = pd.read_csv(out / "nuclei.csv")
    assert len(images) == len(list(folder.iterdir()))
    by_name = {Path(x).name: row for x, row in zip(images["path"], images.to_dict("records"), strict=True)}
    for name, expected in bad.items():
        row = by_name[name]
        assert expected in row["error"], (name, row["error"])
        assert row["n_nuclei"] == ""
    good = [n for n in by_name if n not in bad]
    assert len(good) == 5
    for name in good:
        row = by_name[name]
        assert row["error"] == ""
        expected = detect(tifffile.imread(folder / name), P, engine="reference").coords
        assert int(row["n_nuclei"]) == len(expected)
        mine = nuclei[nuclei["path"] == row["path"]][["y", "x"]].to_numpy()
        np.testing.assert_array_equal(mine.reshape(-1, 2), expected)
    assert int(by_name["Week1_1_D01_s1_w1allzero.tif"]["n_nuclei"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["n_failed"] == len(bad) and run["complete"] is True


def test_empty_folder_is_a_usage_error(tmp_path):
    (tmp_path / "empty").mkdir()
    p = subprocess.run([EXE, "detect", str(tmp_path / "empty")], capture_output=True, text=True,
                       cwd=tmp_path)
    assert p.returncode == 2 and "matches the pattern" in p.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_stops_workers_and_keeps_valid_tables(tmp_path, sig):
    paths = write_sample_plate(tmp_path / "p", rows="B", columns=range(2, 4), sites=1, seed=10)
    link_copies(paths, 60, "H")
    out = tmp_path / "out"
    cli = subprocess.Popen([EXE, "detect", str(tmp_path / "p"), "--out", str(out), "--workers",
                            "2", "--engine", "reference"], stderr=subprocess.PIPE, text=True)
    proc = psutil.Process(cli.pid)
    deadline = time.monotonic() + 60
    workers: set[int] = set()
    while time.monotonic() < deadline and len(workers) < 2:
        workers = worker_pids(proc)
        time.sleep(0.05)
    assert len(workers) == 2
    partial = out / "images.partial.csv"
    while time.monotonic() < deadline:  # some images done
        if partial.exists() and len(partial.read_text().splitlines()) > 3:
            break
        time.sleep(0.05)
    everyone = {c.pid for c in proc.children(recursive=True)}
    cli.send_signal(sig)
    _, err = cli.communicate(timeout=20)
    assert cli.returncode == 130, err
    gone, alive = psutil.wait_procs([psutil.Process(p) for p in everyone if psutil.pid_exists(p)],
                                    timeout=2)
    assert not alive, f"processes left behind: {alive}"
    assert "interrupted" in err and "Traceback" not in err
    images = pd.read_csv(out / "images.csv", keep_default_na=False)
    run = json.loads((out / "run.json").read_text())
    assert 0 < len(images) < 122 and run["complete"] is False
    assert run["n_processed"] == len(images)
    assert (images["error"] == "").all()
    assert len(pd.read_csv(out / "nuclei.csv")) == images["n_nuclei"].astype(int).sum()


def oracle(img, s, d, t):
    from skimage.feature import peak_local_max
    from skimage.filters import gaussian

    g = gaussian(np.asarray(img).astype(np.float64), s, mode="nearest", truncate=4.0)
    return np.asarray(peak_local_max(g, min_distance=d, threshold_abs=t, exclude_border=d,
                                     p_norm=np.inf)).reshape(-1, 2)


# the fuzz of detect_nuclei over arbitrary input (valid input must give the oracle's
# answer, invalid input a ValueError/TypeError naming the problem): test_exactness.py


@settings(max_examples=60, deadline=None)
@given(scale=st.sampled_from([1e-40, 1e-30, 1e-3, 1e20, 1e35, 1e300]),
       seed=st.integers(0, 1000))
def test_fuzz_extreme_float_magnitudes(scale, seed):
    img = make_nuclei_image(seed, 20, (64, 72))[0].astype(np.float64) * scale
    t = 1000.0 * scale
    np.testing.assert_array_equal(detect_nuclei(img, 3.0, 4, t), oracle(img, 3.0, 4, t))
