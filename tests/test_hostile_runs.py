"""Hostile environments of a run (issue 23: A1, D, E), each on real processes and files.

Signals arriving at the worst moment, a console that cannot be written, names
at the system's limits, inputs that cannot be read: each test runs the
installed ``nuclei-counter`` (or the core on real files) and checks one
promise, named in the test.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from helpers import EXE, link_copies
from napari_nuclei_counter.core.io.discovery import list_folder
from napari_nuclei_counter.core.io.images import atomic_write
from napari_nuclei_counter.core.results.integrity import check_folder
from napari_nuclei_counter.core.results.tables import load_results
from napari_nuclei_counter.core.run.lock import LOCK_NAME
from napari_nuclei_counter.core.run.pipeline import PREVIOUS_RUN
from napari_nuclei_counter.core.sample import write_sample_plate


def cli(*args, timeout=120, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def one_sentence(p) -> str:
    """The last line of stderr, which must be the error, without a traceback or 'unexpected'."""
    assert "Traceback" not in p.stderr, p.stderr
    assert "unexpected" not in p.stderr, p.stderr
    return p.stderr.strip().splitlines()[-1]


def _plate(folder: Path, copies: int = 0) -> list[Path]:
    paths = write_sample_plate(folder, rows="B", columns=range(2, 4), sites=1, seed=1,
                               shape=(256, 320))
    if copies:
        link_copies(paths, copies, "H")
    return paths


def _wait_for_rows(out: Path, rows: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    partial = out / "images.partial.csv"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if partial.read_bytes().count(b"\n") > rows:
                return
        except FileNotFoundError:
            pass
        time.sleep(0.002)


def _is_this_runs_result(out: Path, threshold: float) -> None:
    """What every reader shows of ``out`` comes from the run with ``threshold``, consistently."""
    results = load_results(out)  # what gallery, platemap and the napari reader read
    assert results.params.threshold_abs == threshold
    run = results.run
    assert run["parameters"]["threshold_abs"] == threshold


# ------------------------------------------------------------- A1: two quick Ctrl+C

def test_two_quick_ctrl_c_near_the_end_write_the_tables_or_say_so_never_show_an_earlier_run(
        tmp_path):
    folder = tmp_path / "in"
    _plate(folder, copies=50)  # 102 images, about a second with the reference engine
    earlier = tmp_path / "earlier"
    p = cli("detect", folder, "--out", earlier, "--threshold", 2000, "--quiet")
    assert p.returncode == 0, p.stderr
    n = len(pd.read_csv(earlier / "images.csv"))
    # the second Ctrl+C at several moments: while the run stops, while the
    # final tables are written, after they are
    for k, (rows, gap) in enumerate([(n - 30, 0.0), (n - 12, 0.005), (n - 8, 0.02),
                                     (n - 40, 0.05), (n - 5, 0.0)]):
        out = tmp_path / f"out{k}"
        shutil.copytree(earlier, out)
        proc = subprocess.Popen([EXE, "detect", str(folder), "--out", str(out), "--workers", "2",
                                 "--engine", "reference", "--quiet", "--overwrite"],
                                stderr=subprocess.PIPE, text=True)
        _wait_for_rows(out, rows, proc)
        proc.send_signal(signal.SIGINT)
        time.sleep(gap)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert "Traceback" not in err, err
        assert not (out / LOCK_NAME).exists(), err
        last = err.strip().splitlines()[-1]
        if proc.returncode == 0:  # every image was done before the first Ctrl+C
            assert "tables in" in last, err
        else:
            assert proc.returncode == 130, err
            assert "interrupted (Ctrl+C)" in last, err
        if proc.returncode == 0 or "tables written" in last:
            check_folder(out)  # the final set, consistent
            run = json.loads((out / "run.json").read_text())
            assert run["n_processed"] == len(pd.read_csv(out / "images.csv"))
            assert run["complete"] == (proc.returncode == 0)
            assert not (out / PREVIOUS_RUN).exists()  # the earlier tables went with it
        else:  # the message says that the final tables are not written, and where things are
            assert "not written" in last and "--resume" in last, err
            assert not (out / "images.csv").exists() and not (out / "run.json").exists()
            assert (out / PREVIOUS_RUN / "run.json").exists()
        _is_this_runs_result(out, 1000.0)
        # and --resume finishes it into the same tables as an uninterrupted run
        if k == 0:
            p = cli("detect", folder, "--out", out, "--resume", "--quiet")
            assert p.returncode == 0, p.stderr
            fresh = tmp_path / "fresh"
            assert cli("detect", folder, "--out", fresh, "--quiet").returncode == 0
            assert (out / "nuclei.csv").read_bytes() == (fresh / "nuclei.csv").read_bytes()


def test_a_run_that_stops_before_its_final_tables_never_shows_the_earlier_runs(tmp_path):
    """A run killed outright (no final write at all): readers show it, never the earlier run."""
    folder = tmp_path / "in"
    _plate(folder, copies=60)
    out = tmp_path / "out"
    assert cli("detect", folder, "--out", out, "--threshold", 2000, "--quiet").returncode == 0
    proc = subprocess.Popen([EXE, "detect", str(folder), "--out", str(out), "--workers", "2",
                             "--engine", "reference", "--quiet", "--overwrite"],
                            stderr=subprocess.PIPE)
    _wait_for_rows(out, 20, proc)
    proc.kill()
    proc.communicate(timeout=30)
    assert not (out / "images.csv").exists() and (out / PREVIOUS_RUN / "images.csv").exists()
    _is_this_runs_result(out, 1000.0)
    p = cli("platemap", out, "--out", tmp_path / "plate.png")
    assert p.returncode == 0 and "stopped before it finished" in p.stderr, p.stderr
    # --resume finishes it; then the earlier tables are gone
    p = cli("detect", folder, "--out", out, "--resume", "--quiet")
    assert p.returncode == 0, p.stderr
    assert not (out / PREVIOUS_RUN).exists()
    check_folder(out)
    _is_this_runs_result(out, 1000.0)


def test_a_second_ctrl_c_while_images_run_stops_at_once_and_writes_the_tables(tmp_path):
    """Serial, one slow image after another: the second Ctrl+C stops the image in progress."""
    folder = tmp_path / "in"
    _plate(folder, copies=30)
    out = tmp_path / "out"
    proc = subprocess.Popen([EXE, "detect", str(folder), "--out", str(out), "--workers", "0",
                             "--engine", "reference", "--quiet"], stderr=subprocess.PIPE,
                            text=True)
    _wait_for_rows(out, 5, proc)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "tables written" in err, err
    check_folder(out)
    assert not (out / LOCK_NAME).exists()


# ------------------------------------------------------------- E: SIGHUP

@pytest.mark.parametrize("to_group", [False, True], ids=["process", "process-group"])
def test_sighup_ends_a_run_like_sigterm_tables_written_lock_released(tmp_path, to_group):
    folder = tmp_path / "in"
    _plate(folder, copies=60)
    out = tmp_path / "out"
    # a terminal that closes sends SIGHUP to the whole process group: workers included
    proc = subprocess.Popen([EXE, "detect", str(folder), "--out", str(out), "--workers", "2",
                             "--engine", "reference", "--quiet"], stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    _wait_for_rows(out, 10, proc)
    everyone = {c.pid for c in psutil.Process(proc.pid).children(recursive=True)}
    if to_group:
        os.killpg(proc.pid, signal.SIGHUP)
    else:
        proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err
    assert "interrupted (SIGHUP)" in err and "tables written" in err, err
    check_folder(out)
    assert not (out / LOCK_NAME).exists()
    run = json.loads((out / "run.json").read_text())
    assert not run["complete"] and run["n_processed"] == len(pd.read_csv(out / "images.csv"))
    _, alive = psutil.wait_procs([psutil.Process(p) for p in everyone if psutil.pid_exists(p)],
                                 timeout=3)
    assert not alive, f"processes left behind: {alive}"


def test_sighup_is_left_ignored_under_nohup(tmp_path):
    folder = tmp_path / "in"
    _plate(folder, copies=20)
    out = tmp_path / "out"
    proc = subprocess.Popen(["nohup", EXE, "detect", str(folder), "--out", str(out),
                             "--workers", "2", "--engine", "reference", "--quiet"],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    _wait_for_rows(out, 5, proc)
    proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err  # the run went on to the end
    assert json.loads((out / "run.json").read_text())["complete"]


# ------------------------------------------------------------- E: a console that cannot be written

@pytest.mark.parametrize("stderr", ["dev-full", "closed"])
def test_a_console_that_cannot_be_written_never_stops_the_run(tmp_path, stderr):
    folder = tmp_path / "in"
    _plate(folder)
    (folder / "Week1_22123_B04_s1_w1X.tif").write_bytes(b"not an image")  # a failed row: messages
    out = tmp_path / "out"
    argv = [EXE, "detect", str(folder), "--out", str(out), "--workers", "2"]
    if stderr == "dev-full":
        with open("/dev/full", "w") as full:
            code = subprocess.run(argv, stderr=full, stdout=full, timeout=120).returncode
    else:
        code = subprocess.run(argv, timeout=120, preexec_fn=lambda: (os.close(1), os.close(2))
                              ).returncode
    assert code == 1  # the status of the run: one image failed
    check_folder(out)
    images = pd.read_csv(out / "images.csv", keep_default_na=False)
    assert len(images) == 3 and (images["error"] != "").sum() == 1
    assert not (out / LOCK_NAME).exists()
    # a closed stderr is not taken by a table: nothing but tables in the folder
    assert {p.name for p in out.iterdir()} == {"images.csv", "nuclei.csv", "wells.csv",
                                               "run.json"}


def test_a_usage_error_with_a_console_that_cannot_be_written_keeps_its_status(tmp_path):
    with open("/dev/full", "w") as full:
        code = subprocess.run([EXE, "detect", str(tmp_path / "missing"), "--out",
                               str(tmp_path / "out")], stderr=full, timeout=60).returncode
    assert code == 2


# ------------------------------------------------------------- D: names at the system's limit

def test_atomic_writes_fit_names_at_the_systems_limit(tmp_path):
    limit = os.pathconf(tmp_path, "PC_NAME_MAX")
    # a name of exactly the limit; one whose temporary name is cut inside a character
    for name in ("x" * 250, "y" * (limit - 4) + ".png", "é" * ((limit - 5) // 2) + ".csv"):
        path = tmp_path / name
        with atomic_write(path, "wb") as fh:
            fh.write(b"data")
        assert path.read_bytes() == b"data"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_a_250_byte_out_name_is_written(tmp_path):
    folder = tmp_path / "in"
    _plate(folder)
    out = tmp_path / ("o" * 250)
    p = cli("detect", folder, "--out", out, "--quiet")
    assert p.returncode == 0, p.stderr
    check_folder(out)
    for command, name in (("gallery", "g" * 251 + ".png"), ("platemap", "m" * 250)):
        p = cli(command, out, "--out", tmp_path / name)
        assert p.returncode == 0, p.stderr
        assert (tmp_path / name).stat().st_size > 0
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


# ------------------------------------------------------------- D: inputs that cannot be read

def _without_root_privileges() -> list[str]:
    """A prefix that runs a command without the permission overrides of root, or skips."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("needs setpriv to drop root's permission overrides")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search"]


def test_an_unreadable_input_folder_is_one_sentence_and_exit_2(tmp_path):
    folder = tmp_path / "in"
    _plate(folder)
    folder.chmod(0)
    try:
        p = subprocess.run([*_without_root_privileges(), EXE, "detect", str(folder), "--out",
                            str(tmp_path / "out")], capture_output=True, text=True, timeout=60)
    finally:
        folder.chmod(0o755)
    assert p.returncode == 2, p.stderr
    assert "cannot read the input folder" in one_sentence(p) and "Permission denied" in p.stderr


def test_an_unreadable_sub_folder_is_a_warning_naming_it_and_exit_1(tmp_path):
    folder = tmp_path / "in"
    _plate(folder)
    hidden = folder / "sub"
    _plate(hidden)
    hidden.chmod(0)
    try:
        p = subprocess.run([*_without_root_privileges(), EXE, "detect", str(folder), "--out",
                            str(tmp_path / "out"), "--recursive", "--quiet"],
                           capture_output=True, text=True, timeout=60)
    finally:
        hidden.chmod(0o755)
    assert p.returncode == 1, p.stderr
    assert f"cannot list the folder {hidden}" in p.stderr and "unexpected" not in p.stderr
    assert len(pd.read_csv(tmp_path / "out" / "images.csv")) == 2


@pytest.mark.parametrize("kind", ["loop of links", "name too long", "path too long",
                                  "file as folder", "dangling link"])
def test_an_input_that_cannot_be_read_is_one_sentence_and_exit_2(tmp_path, kind):
    image = _plate(tmp_path / "in")[0]
    if kind == "loop of links":
        source = tmp_path / "loop"
        source.symlink_to(source)
    elif kind == "name too long":
        source = tmp_path / ("n" * 300)
    elif kind == "path too long":
        source = tmp_path.joinpath(*["p" * 200] * 25)
    elif kind == "file as folder":
        source = image / "sub"
    else:
        source = tmp_path / "dangling"
        source.symlink_to(tmp_path / "nowhere")
    p = cli("detect", source, "--out", tmp_path / "out")
    assert p.returncode == 2, p.stderr
    sentence = one_sentence(p)
    assert "input" in sentence and len(p.stderr.strip().splitlines()) == 1, p.stderr


def _nest(top: Path, name: str, depth: int) -> None:
    """``top/name/name/...``, ``depth`` deep, in relative steps (a full path may be too long)."""
    here = os.getcwd()
    try:
        os.chdir(top)
        for _ in range(depth):
            os.mkdir(name)
            os.chdir(name)
    finally:
        os.chdir(here)


def _remove_nested(top: Path) -> None:
    """Remove what :func:`_nest` made, files included, without recursion (pytest's rmtree recurses)."""
    here = os.getcwd()
    names = []
    try:
        os.chdir(top)
        while subs := [e.name for e in os.scandir(".") if e.is_dir(follow_symlinks=False)]:
            os.chdir(subs[0])
            names.append(subs[0])
        while names:
            for entry in os.scandir("."):
                os.unlink(entry.name)
            os.chdir("..")
            os.rmdir(names.pop())
    finally:
        os.chdir(here)


def test_folders_nested_1100_deep_are_listed_without_recursion(tmp_path):
    image = _plate(tmp_path / "in")[0]
    deep = tmp_path / "deep"
    deep.mkdir()
    _nest(deep, "d", 1100)
    try:
        bottom = deep.joinpath(*["d"] * 1100)
        shutil.copy(image, bottom / "Week1_22123_C02_s1_w1deep.tif")
        found, warnings = list_folder(deep, "*.tif", recursive=True)
        assert [p.name for p in found] == ["Week1_22123_C02_s1_w1deep.tif"] and not warnings
        p = cli("detect", deep, "--recursive", "--pattern", "*.tif", "--out", tmp_path / "out",
                "--quiet")
        assert p.returncode == 0, p.stderr
        assert len(pd.read_csv(tmp_path / "out" / "images.csv")) == 1
    finally:
        _remove_nested(deep)


def test_folders_nested_past_the_path_limit_are_a_warning_not_a_crash(tmp_path):
    deep = tmp_path / "deep"
    deep.mkdir()
    _nest(deep, "d" * 120, 40)  # 40 x 121 bytes: past the 4096 of a path
    try:
        found, warnings = list_folder(deep, "*.tif", recursive=True)
        assert found == [] and len(warnings) == 1 and "File name too long" in warnings[0]
    finally:
        _remove_nested(deep)


@pytest.mark.parametrize("plate, well", [
    ({"plate": {"wells": [{"path": 5}]}}, None),
    ({"plate": {"wells": {"B/2": 1}}}, None),
    ({"plate": {"wells": [{"path": ["B", "2"]}], "name": 3}}, None),
    ({"plate": {"wells": [{"path": "B/2", "rowIndex": "x", "columnIndex": None}]}},
     {"well": {"images": 5}}),
    ({"plate": {"wells": [{"path": "B/2"}]}}, {"well": [1]}),
    ({"plate": {"wells": [{"path": "B/2"}]}}, {"well": {"images": [{"path": {"x": 1}}, 7]}}),
])
def test_plate_metadata_of_the_wrong_types_is_one_sentence(tmp_path, plate, well):
    root = tmp_path / "plate.ome.zarr"
    (root / "B" / "2").mkdir(parents=True)
    (root / ".zattrs").write_text(json.dumps(plate))
    if well is not None:
        (root / "B" / "2" / ".zattrs").write_text(json.dumps(well))
    p = cli("detect", root, "--out", tmp_path / "out", "--quiet")
    assert p.returncode == 2, p.stderr
    one_sentence(p)


def test_a_final_write_interrupted_anyway_is_reported_as_not_written(tmp_path, monkeypatch):
    """A library user's Ctrl+C inside the final write: the summary and the message say so."""
    from napari_nuclei_counter.cli.app import _stopped_message
    from napari_nuclei_counter.core.results import writer
    from napari_nuclei_counter.core.run.pipeline import Run

    folder = tmp_path / "in"
    _plate(folder)
    out = tmp_path / "out"
    assert cli("detect", folder, "--out", out, "--threshold", 2000, "--quiet").returncode == 0

    def interrupted(*args, **kwargs):  # the streaming files are flushed and closed by then
        raise KeyboardInterrupt

    monkeypatch.setattr(writer, "finish_tables", interrupted)
    run = Run(folder, out=out, workers=0)
    with pytest.raises(KeyboardInterrupt):
        list(run)
    s = run.summary
    assert not s.tables_written and s.n_done == 2
    assert not (out / LOCK_NAME).exists()
    message = _stopped_message(s, "Ctrl+C")
    assert "not written" in message and str(out / PREVIOUS_RUN) in message
    assert "tables written" not in message
    monkeypatch.undo()
    _is_this_runs_result(out, 1000.0)  # the streaming files of this run, not the earlier tables
