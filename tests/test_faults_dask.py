"""A real Dask scheduler and worker killed mid-run; an unreachable scheduler."""

import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from helpers import EXE

pytest.importorskip("distributed")

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def plate(tmp_path):
    from napari_nuclei_counter.core.sample import write_sample_plate

    write_sample_plate(tmp_path / "plate", rows="ABCDEFGH", columns=range(1, 13), sites=2,
                       seed=1)
    return tmp_path / "plate"


@pytest.fixture
def cluster(tmp_path):
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    sched = subprocess.Popen([str(BIN / "dask"), "scheduler", "--port", str(port),
                              "--no-dashboard"], stderr=subprocess.DEVNULL)
    worker = subprocess.Popen([str(BIN / "dask"), "worker", address, "--nworkers", "1",
                               "--nthreads", "1", "--no-dashboard"], stderr=subprocess.DEVNULL)
    yield address, sched, worker
    for p in (worker, sched):
        for child in psutil.Process(p.pid).children(recursive=True) if p.poll() is None else []:
            child.kill()
        p.kill()
        p.wait(30)


def _run_and_kill(plate, out, address, kill):
    detect = subprocess.Popen([EXE, "detect", str(plate), "--out", str(out), "--backend", "dask",
                               "--scheduler", address, "--quiet", "--engine", "reference",
                               "--stall-timeout", "10"], stderr=subprocess.PIPE, text=True)
    partial = out / "images.partial.csv"
    deadline = time.monotonic() + 120
    while not (partial.exists() and partial.read_text().count("\n") > 20):
        assert detect.poll() is None, detect.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.1)
    kill()
    t0 = time.monotonic()
    err = detect.communicate(timeout=120)[1]  # never hangs: the guard is this timeout
    return detect.returncode, err, time.monotonic() - t0


def _check_kept_and_resumable(plate, out):
    images = pd.read_csv(out / "images.csv", keep_default_na=False)
    assert 20 <= len(images) < 192 and (images["error"] == "").all()
    p = subprocess.run([EXE, "detect", str(plate), "--out", str(out), "--resume", "--quiet",
                        "--engine", "reference", "--workers", "1"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert f"{len(images)} of 192 images already done" in p.stderr
    assert len(pd.read_csv(out / "images.csv")) == 192


def test_a_killed_scheduler_ends_the_run_with_tables_and_exit_3(plate, cluster, tmp_path):
    address, sched, _ = cluster
    out = tmp_path / "out"
    code, err, after = _run_and_kill(plate, out, address, sched.kill)
    assert code == 3, err
    last = err.strip().splitlines()[-1]
    assert ("Dask scheduler" in last or "no worker left" in last) and "--resume" in last
    assert "Traceback" not in err  # distributed's reconnection reports are left to --debug
    _check_kept_and_resumable(plate, out)


def test_a_killed_only_worker_and_nanny_ends_the_run(plate, cluster, tmp_path):
    address, _, worker = cluster

    def kill():
        for child in psutil.Process(worker.pid).children(recursive=True):
            child.kill()
        worker.kill()

    out = tmp_path / "out"
    code, err, after = _run_and_kill(plate, out, address, kill)
    assert code == 3, err
    assert "no worker left" in err.strip().splitlines()[-1]
    _check_kept_and_resumable(plate, out)


def test_an_unreachable_scheduler_is_a_usage_error(tmp_path, sample_images):
    p = subprocess.run([EXE, "detect", str(sample_images[0].parent), "--out", str(tmp_path / "o"),
                        "--backend", "dask", "--scheduler", f"tcp://127.0.0.1:{_free_port()}"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "cannot reach the Dask scheduler" in p.stderr.strip().splitlines()[-1]
