"""Resumable runs: killed outright, then finished with --resume, same tables."""

import json
import os
import signal
import subprocess
import time

import pandas as pd
import psutil

from helpers import EXE, link_copies
from napari_nuclei_counter import DetectionParams
from napari_nuclei_counter.core.results.tables import load_results
from napari_nuclei_counter.core.run.resume import resume_state
from napari_nuclei_counter.core.sample import write_sample_plate

STABLE = ["path", "plate", "well", "site", "channel", "n_nuclei", "error", "qc_flags",
          "file_size", "file_mtime"]


def _plate(tmp_path, n_links=30):
    paths = write_sample_plate(tmp_path / "p", rows="B", columns=range(2, 5), sites=1, seed=12,
                               shape=(512, 640))
    link_copies(paths, n_links, "H")
    return tmp_path / "p"


def test_killed_run_resumes_to_the_same_tables(tmp_path):
    folder = _plate(tmp_path)
    ref = tmp_path / "uninterrupted"
    # the reference engine throughout: slow enough to be killed mid-run
    subprocess.run([EXE, "detect", str(folder), "--out", str(ref), "--quiet", "--workers", "2",
                    "--engine", "reference"], check=True, timeout=300)
    out = tmp_path / "out"
    cli = subprocess.Popen([EXE, "detect", str(folder), "--out", str(out), "--quiet",
                            "--workers", "2", "--engine", "reference"])
    partial = out / "images.partial.csv"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if partial.exists() and len(partial.read_text().splitlines()) > 12:
            break
        time.sleep(0.05)
    family = psutil.Process(cli.pid).children(recursive=True)
    os.kill(cli.pid, signal.SIGKILL)  # a crash: no clean-up at all
    cli.wait()
    for p in family:
        try:
            p.wait(5)  # orphaned workers notice the dead parent and exit
        except psutil.NoSuchProcess:
            pass
    assert not (out / "images.csv").exists()
    crashed = load_results(out)  # the rows done so far are readable
    assert 0 < len(crashed.images) < 93
    assert len(crashed.nuclei) >= crashed.images["n_nuclei"].sum() - 400

    p = subprocess.run([EXE, "detect", str(folder), "--out", str(out), "--quiet", "--workers",
                        "2", "--resume", "--engine", "reference"], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    assert "resuming:" in p.stderr
    done = int(p.stderr.split("resuming: ")[1].split(" of")[0])
    assert done >= len(crashed.images) - 2
    a = pd.read_csv(ref / "images.csv", keep_default_na=False)
    b = pd.read_csv(out / "images.csv", keep_default_na=False)
    pd.testing.assert_frame_equal(a[STABLE], b[STABLE])
    assert (ref / "nuclei.csv").read_text() == (out / "nuclei.csv").read_text()
    assert (ref / "wells.csv").read_text() == (out / "wells.csv").read_text()
    run = json.loads((out / "run.json").read_text())
    assert run["complete"] is True and run["n_processed"] == 93
    assert not (out / "images.partial.csv").exists() and not (out / "run.partial.json").exists()


def test_resume_with_other_parameters_starts_over(tmp_path):
    folder = _plate(tmp_path, n_links=0)
    out = tmp_path / "out"
    subprocess.run([EXE, "detect", str(folder), "--out", str(out), "--quiet", "--workers", "0"],
                   check=True)
    paths = [str(p) for p in sorted(folder.iterdir())]
    paths = list(pd.read_csv(out / "images.csv")["path"])
    assert resume_state(out, DetectionParams(), paths) == {0, 1, 2}
    assert resume_state(out, DetectionParams(threshold_abs=999.0), paths) == set()
    # a file that changed is done again, and everything after it, so that the
    # tables come out in input order
    os.utime(paths[1], (1, 1))
    assert resume_state(out, DetectionParams(), paths) == {0}


def test_torn_last_line_is_ignored(tmp_path):
    folder = _plate(tmp_path, n_links=0)
    out = tmp_path / "out"
    subprocess.run([EXE, "detect", str(folder), "--out", str(out), "--quiet", "--workers", "0"],
                   check=True)
    # turn the finished run into a crashed one whose last write was cut short
    os.replace(out / "images.csv", out / "images.partial.csv")
    os.replace(out / "nuclei.csv", out / "nuclei.partial.csv")
    os.replace(out / "run.json", out / "run.partial.json")
    with open(out / "images.partial.csv", "a") as fh:
        fh.write("/half/a/line.tif,2212")
    res = load_results(out)
    assert len(res.images) == 3
    paths = list(res.images["path"])
    assert resume_state(out, DetectionParams(), paths) == {0, 1, 2}


def test_parquet_output(tmp_path):
    folder = _plate(tmp_path, n_links=0)
    out = tmp_path / "out"
    subprocess.run([EXE, "detect", str(folder), "--out", str(out), "--quiet", "--workers", "0",
                    "--parquet"], check=True)
    a = pd.read_parquet(out / "nuclei.parquet")
    b = pd.read_csv(out / "nuclei.csv", keep_default_na=False)
    assert len(a) == len(b) > 0 and list(a.columns) == list(b.columns)
    assert (a["y"].to_numpy() == b["y"].to_numpy()).all()
    assert len(pd.read_parquet(out / "images.parquet")) == 3
