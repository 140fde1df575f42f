"""The output-folder lock, with real second processes (command line and Run)."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

from helpers import EXE
from napari_nuclei_counter.core.run.errors import FolderLocked, RunError
from napari_nuclei_counter.core.run.lock import LOCK_NAME, OutputLock, lock_holder
from napari_nuclei_counter.core.run.pipeline import Run

#: a process that takes the lock on argv[1], says so, and waits
HOLDER = textwrap.dedent("""
    import sys, time
    from napari_nuclei_counter.core.run.lock import OutputLock
    lock = OutputLock(sys.argv[1]).acquire()
    print("locked", flush=True)
    time.sleep(120)
""")


def cli(*args, timeout=120):
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def holder(tmp_path):
    """A real second process holding the lock on tmp_path/out."""
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "locked"
    yield out, proc
    proc.kill()
    proc.wait(10)


def test_a_second_run_is_refused_with_one_sentence(holder, sample_images):
    out, proc = holder
    p = cli("detect", sample_images[0].parent, "--out", out, "--workers", 1)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "in use by another run" in lines[0]
    assert f"pid {proc.pid}" in lines[0] and "Traceback" not in p.stderr
    assert not (out / "images.partial.csv").exists()  # nothing touched
    assert lock_holder(out)["pid"] == proc.pid  # the holder keeps its lock


def test_run_itself_refuses_so_the_dock_does_too(holder, sample_images):
    out, _ = holder
    run = Run(sample_images[0].parent, out=out, workers=0)
    with pytest.raises(FolderLocked, match="in use by another run") as info:
        run.prepare()
    assert isinstance(info.value, RunError)  # the dock shows a RunError's message


def test_two_real_runs_into_one_folder(tmp_path, sample_images):
    out = tmp_path / "out"
    folder = sample_images[0].parent
    first = subprocess.Popen([EXE, "detect", str(folder), "--out", str(out), "--workers", "1",
                              "--engine", "reference", "--quiet"], stderr=subprocess.PIPE,
                             text=True)
    deadline = time.monotonic() + 60
    while not (out / LOCK_NAME).exists() and first.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    # the first run holds the lock, paused, while the second one tries: the two overlap
    # on every machine, however fast
    first.send_signal(signal.SIGSTOP)
    try:
        assert first.poll() is None and (out / LOCK_NAME).exists(), "the first run never held the lock"
        second = cli("detect", folder, "--out", out, "--workers", 1)
    finally:
        first.send_signal(signal.SIGCONT)
    first_err = first.communicate(timeout=120)[1]
    assert second.returncode == 2 and "in use by another run" in second.stderr
    assert first.returncode == 0, first_err
    images = pd.read_csv(out / "images.csv", keep_default_na=False)
    nuclei = pd.read_csv(out / "nuclei.csv")
    assert len(images) == len(sample_images)
    assert images.set_index("path")["n_nuclei"].to_dict() == nuclei.groupby("path").size().to_dict()
    assert not (out / LOCK_NAME).exists()


def test_a_killed_runs_lock_is_taken_over(tmp_path, sample_images):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "locked"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert lock_holder(out)["stale"]
    p = cli("detect", sample_images[0].parent, "--out", out, "--workers", 1, "--resume")
    assert p.returncode == 0, p.stderr
    assert "taking over the lock of a run that is gone" in p.stderr
    assert not (out / LOCK_NAME).exists()


def test_another_hosts_lock_needs_break_lock(tmp_path, sample_images):
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "elsewhere.example",
                                             "started": "2024-01-01T00:00:00+00:00"}))
    p = cli("detect", sample_images[0].parent, "--out", out, "--workers", 1)
    assert p.returncode == 2 and "another host" in p.stderr and "--break-lock" in p.stderr
    p = cli("detect", sample_images[0].parent, "--out", out, "--workers", 1, "--break-lock")
    assert p.returncode == 0, p.stderr
    assert "breaking the lock" in p.stderr and not (out / LOCK_NAME).exists()


def test_readers_may_read_a_locked_folder(tmp_path, sample_images):
    out = tmp_path / "out"
    assert cli("detect", sample_images[0].parent, "--out", out, "--workers", 1).returncode == 0
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        for cmd in (("platemap", out, "--out", tmp_path / "p.png"),
                    ("gallery", out, "--out", tmp_path / "g.png")):
            p = cli(*cmd)
            assert p.returncode == 0, p.stderr
            assert "still writing" in p.stderr
    finally:
        proc.kill()
        proc.wait(10)


def test_lock_is_released_and_reacquired(tmp_path):
    lock = OutputLock(tmp_path / "o")
    with lock:
        info = lock_holder(tmp_path / "o")
        assert info["pid"] == os.getpid() and info["host"] == socket.gethostname()
        assert not info["stale"]
        with pytest.raises(FolderLocked):
            OutputLock(tmp_path / "o").acquire()
    assert lock_holder(tmp_path / "o") is None
    OutputLock(tmp_path / "o").acquire().release()


def test_out_that_is_a_file_is_a_usage_error(tmp_path, sample_images):
    p = cli("detect", sample_images[0].parent, "--out", sample_images[0])
    assert p.returncode == 2 and "is a file, not a folder" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
