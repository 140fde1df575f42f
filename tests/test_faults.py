"""Faults and hostile inputs on real processes and files: stuck workers, a full disk,
odd names, formulas, resume keys, damaged and mixed folders, exit codes."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import tifffile

from helpers import EXE, worker_pids
from napari_nuclei_counter.core.results.integrity import InconsistentResults, check_folder
from napari_nuclei_counter.core.results.tables import load_results
from napari_nuclei_counter.core.run.pipeline import Run


def cli(*args, timeout=180):
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def one_sentence(p):
    lines = p.stderr.strip().splitlines()
    assert "Traceback" not in p.stderr, p.stderr
    return lines[-1]


# ------------------------------------------------------------------ stuck worker

def test_a_sigstopped_worker_is_killed_and_its_image_retried(tmp_path, sample_images):
    stopped = []

    def progress(result, done, total):
        if done == 2 and not stopped:
            pid = sorted(worker_pids())[0]
            os.kill(pid, signal.SIGSTOP)  # a real stopped worker with a task in flight
            stopped.append(pid)

    run = Run(sample_images[0].parent, workers=2, out=tmp_path / "out", progress=progress,
              stall_timeout=3)
    results = list(run)
    assert stopped and run.summary.n_done == len(sample_images)
    assert run.summary.n_failed == 0 and all(r.ok for r in results)
    with pytest.raises(ProcessLookupError):  # killed, not left stopped
        os.kill(stopped[0], 0)
        os.waitpid(stopped[0], os.WNOHANG)
        raise ProcessLookupError
    images = pd.read_csv(tmp_path / "out" / "images.csv", keep_default_na=False)
    assert len(images) == len(sample_images)


def test_stall_timeout_option_is_checked():
    p = cli("detect", ".", "--stall-timeout", "-1")
    assert p.returncode == 2 and "--stall-timeout" in one_sentence(p)


# ------------------------------------------------------------------ full / read-only disk

def _mount_tmpfs(where: Path, options: str):
    where.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                       capture_output=True)
    if p.returncode:
        pytest.skip("needs a tmpfs mount (root)")


def _umount(where: Path):
    subprocess.run(["umount", str(where)], check=False)


def test_a_full_disk_stops_the_run_keeps_tables_and_resumes(tmp_path, sample_images):
    folder = sample_images[0].parent
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "size=48k")
    try:
        out = disk / "out"
        p = cli("detect", folder, "--out", out, "--workers", 1, "--pattern", "*B02*w1*.tif")
        assert p.returncode == 0, p.stderr  # a small earlier run fits
        before = {n: (out / n).read_bytes() for n in ("images.csv", "nuclei.csv", "run.json")}
        p = cli("detect", folder, "--out", out, "--workers", 1, "--threshold", 0, "--overwrite")
        assert p.returncode == 3, p.stderr
        assert "is full" in one_sentence(p) and "--resume" in one_sentence(p)
        # nothing half-written: the previous tables are set aside whole, never shown as
        # this run's
        assert {n: (out / "previous-run" / n).read_bytes() for n in before} == before
        check_folder(out)
        # space freed: --resume finishes
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        p = cli("detect", folder, "--out", out, "--workers", 1, "--threshold", 0, "--resume")
        assert p.returncode == 0, p.stderr
        fresh = tmp_path / "fresh"
        assert cli("detect", folder, "--out", fresh, "--workers", 1, "--threshold", 0).returncode == 0
        a = pd.read_csv(out / "images.csv").drop(columns="seconds")
        b = pd.read_csv(fresh / "images.csv").drop(columns="seconds")
        pd.testing.assert_frame_equal(a, b)
        assert (out / "nuclei.csv").read_bytes() == (fresh / "nuclei.csv").read_bytes()
    finally:
        _umount(disk)


def test_a_read_only_out_is_one_sentence(tmp_path, sample_images):
    disk = tmp_path / "ro"
    _mount_tmpfs(disk, "ro,size=1m")
    try:
        p = cli("detect", sample_images[0].parent, "--out", disk / "out")
        assert p.returncode == 2
        assert "output folder" in one_sentence(p) and "Read-only" in one_sentence(p)
    finally:
        _umount(disk)


# ------------------------------------------------------------------ names and formulas

ODD_NAMES = [b"\xff\xfe_w1.tif", b"line\rbreak_w1.tif", b"new\nline_w1.tif",
             b"=HYPERLINK(1)_w1.tif", b"+1_w1.tif", b"-2_w1.tif", b"@SUM_w1.tif",
             b"'quoted_w1.tif", b"back\\x41slash_w1.tif", "Gr\u00fc\u00dfe_w1.tif".encode()]


def test_names_of_any_bytes_round_trip_and_formulas_are_neutralised(tmp_path, sample_images):
    folder = tmp_path / "odd"
    folder.mkdir()
    img = tifffile.imread(sample_images[0])
    for name in ODD_NAMES:
        tifffile.imwrite(os.fsdecode(os.path.join(os.fsencode(folder), name)), img)
    out = tmp_path / "out"
    p = cli("detect", folder, "--out", out, "--pattern", "*_w1.tif", "--workers", 1)
    assert p.returncode == 0, p.stderr
    raw = (out / "images.csv").read_bytes()
    raw.decode("utf-8")  # valid UTF-8
    assert len(raw.splitlines()) == len(ODD_NAMES) + 1  # one line per row: no raw CR/LF
    names = {os.fsencode(Path(x).name) for x in load_results(out).images["path"]}
    assert names == set(ODD_NAMES)  # exactly, byte for byte
    nuclei = load_results(out).nuclei
    assert {os.fsencode(Path(x).name) for x in nuclei["path"]} == set(ODD_NAMES)
    # in the files no cell starts a formula; the ones that would, start with '
    for table in ("images.csv", "nuclei.csv"):
        cells = pd.read_csv(out / table, dtype=str, keep_default_na=False)
        for col in ("path", "plate", "well", "site"):
            if col in cells:
                assert not cells[col].str.match(r"[=+\-@\t\r]").any()
    # a resume finds every image done (the names match)
    p = cli("detect", folder, "--out", out, "--pattern", "*_w1.tif", "--workers", 1, "--resume")
    assert p.returncode == 0 and f"{len(ODD_NAMES)} of {len(ODD_NAMES)} images already done" in p.stderr


def test_formula_cells_start_with_a_quote(tmp_path, sample_images):
    folder = tmp_path / "f"
    folder.mkdir()
    shutil.copy(sample_images[0], folder / "=1+1_w1.tif")
    out = tmp_path / "out"
    assert cli("detect", folder, "--out", out, "--pattern", "*_w1.tif",
               "--regex", r"(?P<plate>=\d)\+(?P<well>\d)").returncode == 0
    row = pd.read_csv(out / "images.csv", dtype=str, keep_default_na=False).iloc[0]
    assert row["plate"] == "'=1" and row["path"].startswith("/")
    assert load_results(out).images["plate"].iloc[0] == "=1"


# ------------------------------------------------------------------ resume key

def test_resume_with_another_regex_or_engine_redoes_everything(tmp_path, sample_images):
    folder, out = sample_images[0].parent, tmp_path / "out"
    assert cli("detect", folder, "--out", out, "--workers", 1).returncode == 0
    p = cli("detect", folder, "--out", out, "--workers", 1, "--resume",
            "--regex", r"(?P<plate>Week\d)_(?P<well>\d+)")
    assert p.returncode == 0 and "0 of" in p.stderr
    assert set(pd.read_csv(out / "images.csv", dtype=str)["plate"]) == {"Week1"}
    p = cli("detect", folder, "--out", out, "--workers", 1, "--resume", "--engine", "reference")
    assert p.returncode == 0 and "0 of" in p.stderr


def test_resume_retries_a_failed_image_that_was_fixed(tmp_path, sample_images):
    folder, out = sample_images[0].parent, tmp_path / "out"
    bad = folder / "Week1_22123_B01_s1_w1BAD.tif"
    good = sample_images[0].read_bytes()
    bad.write_bytes(b"\0" * len(good))  # unreadable, with the size it will have
    st = bad.stat()
    assert cli("detect", folder, "--out", out, "--workers", 1).returncode == 1
    bad.write_bytes(good)
    os.utime(bad, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size and time: only "failed" tells
    p = cli("detect", folder, "--out", out, "--workers", 1, "--resume")
    assert p.returncode == 0, p.stderr
    images = pd.read_csv(out / "images.csv", keep_default_na=False)
    assert (images["error"] == "").all()


@pytest.mark.parametrize("damage", [b"\xff\xfe\x00garbage\x81\nmore\x00\xff,\n", b"", None])
def test_a_damaged_streaming_file_is_one_sentence(tmp_path, sample_images, damage):
    folder, out = sample_images[0].parent, tmp_path / "out"
    proc = subprocess.Popen([EXE, "detect", str(folder), "--out", str(out), "--workers", "1"])
    proc.wait(120)
    # a run "killed" mid-way: its streaming files, then damaged
    shutil.copy(out / "images.csv", out / "images.partial.csv")
    shutil.copy(out / "nuclei.csv", out / "nuclei.partial.csv")
    shutil.copy(out / "run.json", out / "run.partial.json")
    path = out / "images.partial.csv"
    if damage is None:  # extra fields in a row
        lines = path.read_text().splitlines()
        lines[1] += ",extra,fields"
        path.write_text("\n".join(lines) + "\n")
    else:
        path.write_bytes(damage)
    p = cli("detect", folder, "--out", out, "--workers", 1, "--resume")
    if damage == b"":  # what a kill before the header reached the disk leaves: start afresh
        assert p.returncode == 0 and "0 of" in p.stderr, p.stderr
        return
    assert p.returncode == 2, p.stderr
    assert "images.partial.csv" in one_sentence(p) and "damaged" in one_sentence(p)
    assert "garbage" not in p.stderr  # no file content in messages


# ------------------------------------------------------------------ final set

def test_a_mixed_final_set_is_refused_by_readers(tmp_path, sample_images):
    folder = sample_images[0].parent
    a, b = tmp_path / "a", tmp_path / "b"
    assert cli("detect", folder, "--out", a, "--workers", 1).returncode == 0
    assert cli("detect", folder, "--out", b, "--workers", 1, "--threshold", 50).returncode == 0
    run = json.loads((a / "run.json").read_text())
    assert run["schema"] >= 2 and set(run["tables"]) == {"images.csv", "nuclei.csv", "wells.csv"}
    assert run["tables"]["images.csv"]["rows"] == len(sample_images)
    # what a kill between the final renames leaves: a new images.csv beside the old rest
    shutil.copy(b / "images.csv", a / "images.csv")
    for cmd in ("platemap", "gallery"):
        p = cli(cmd, a, "--out", tmp_path / f"{cmd}.png")
        assert p.returncode == 2 and "images.csv" in one_sentence(p)
        assert "not the table run.json describes" in one_sentence(p)
    with pytest.raises(InconsistentResults):
        load_results(a)
    # a run into the folder rewrites a consistent set
    assert cli("detect", folder, "--out", a, "--workers", 1, "--resume").returncode == 0
    check_folder(a)


# ------------------------------------------------------------------ plate maps, limits, options

def test_platemap_of_an_odd_well_is_small_and_lists_nothing_huge(tmp_path, sample_images):
    folder = tmp_path / "w"
    folder.mkdir()
    shutil.copy(sample_images[0], folder / "P1_ZZ999_w1.tif")
    shutil.copy(sample_images[1], folder / "P1_B02_w1.tif")
    out = tmp_path / "out"
    assert cli("detect", folder, "--out", out, "--pattern", "*_w1.tif",
               "--regex", r"(?P<plate>P\d)_(?P<well>[A-Z]+\d+)").returncode == 0
    p = subprocess.run(["bash", "-c", f"ulimit -v 2500000; {EXE} platemap {out} --out "
                        f"{tmp_path / 'p.png'}"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    from PIL import Image

    w, h = Image.open(tmp_path / "p.png").size
    assert w * h < 4_000_000


def test_negative_numbers_in_any_notation(tmp_path, sample_images):
    for value in ("-1e3", "-5", "-.5", "-1.5E+2"):
        out = tmp_path / value
        p = cli("detect", sample_images[0].parent, "--out", out, "--threshold", value,
                "--workers", 1)
        assert p.returncode == 0, p.stderr
        assert json.loads((out / "run.json").read_text())["parameters"]["threshold_abs"] == float(value)


def test_options_without_effect_and_too_many_workers_warn(tmp_path, sample_images):
    p = cli("detect", sample_images[0].parent, "--out", tmp_path / "o", "--workers", 999,
            "--scheduler", "tcp://127.0.0.1:1")
    assert p.returncode == 0, p.stderr
    assert "--scheduler has no effect without --backend dask" in p.stderr
    assert "999 workers asked for" in p.stderr


def test_sigma_beyond_the_image_is_a_clear_row_error(tmp_path, sample_images):
    p = cli("detect", sample_images[0].parent, "--out", tmp_path / "o", "--sigma", "1e6",
            "--workers", 1, timeout=60)
    assert p.returncode == 1
    images = pd.read_csv(tmp_path / "o" / "images.csv", keep_default_na=False)
    assert images["error"].str.contains("sigma must be at most the image's longer side").all()


def test_bad_regex_is_a_usage_error(sample_images, tmp_path):
    p = cli("detect", sample_images[0].parent, "--out", tmp_path / "o", "--regex", "(")
    assert p.returncode == 2 and "--regex" in one_sentence(p)


def test_unexpected_errors_are_one_sentence_and_debug_shows_the_traceback(tmp_path):
    bad = tmp_path / "r"
    bad.mkdir()
    (bad / "images.csv").write_bytes(b"\x00\x01garbage")
    p = cli("platemap", bad, "--out", tmp_path / "p.png")
    assert p.returncode == 2 and "damaged" in one_sentence(p)
    p = cli("--debug", "platemap", bad, "--out", tmp_path / "p.png")
    assert p.returncode == 2 and "Traceback" in p.stderr


# ------------------------------------------------------------------ napari reader

def test_the_reader_refuses_fifos_and_bad_coordinates(tmp_path, sample_images):
    folder = tmp_path / "fifo"
    folder.mkdir()
    shutil.copy(sample_images[0], folder / "a_w1.tif")
    os.mkfifo(folder / "b_w1.tif")
    csv = tmp_path / "points.csv"
    csv.write_text("path,y,x\n,1,2\n,1e300,3\n,nan,4\n,inf,5\n,-1,6\n")
    code = (
        "import sys\n"
        "from napari_nuclei_counter._reader import read_image_folder, read_results\n"
        f"layers = read_image_folder({str(folder)!r})\n"
        "stack = layers[0][0]\n"
        "assert stack.shape[0] == 2, stack.shape\n"
        "assert (stack[1].compute() == 0).all()\n"  # the FIFO shows blank, never blocks
        f"pts = read_results({str(csv)!r})[-1][0]\n"
        "assert pts.tolist() == [[0.0, 1.0, 2.0]], pts\n"
        "print('ok')\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "ok" in p.stdout, p.stderr
    assert "4 of 5 nuclei rows left out" in p.stderr
