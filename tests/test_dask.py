"""The Dask backend: same results as the core's batch engine, failures as results, prompt stop."""

from __future__ import annotations

import logging
import os
import platform
import subprocess
import sys
import threading
from types import SimpleNamespace

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
psutil = pytest.importorskip("psutil")

from napari_nuclei_counter.core.params import DetectionParams  # noqa: E402
from napari_nuclei_counter.core.run.batch import run_batch  # noqa: E402
from napari_nuclei_counter.core.sample import write_sample_plate  # noqa: E402
from napari_nuclei_counter.dask_backend import backend as _dask  # noqa: E402
from napari_nuclei_counter.dask_backend.backend import run_batch_dask  # noqa: E402

PARAMS = DetectionParams(sigma=4.0, min_distance=6, threshold_abs=1000.0)
#: no dashboard, HTTP server on a free port, quiet
QUIET = dict(dashboard_address=None, silence_logs=logging.WARNING,
             scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})


@pytest.fixture(scope="module")
def plate(tmp_path_factory):
    """Six small generated images plus one broken ``.tif`` (text), in that order."""
    folder = tmp_path_factory.mktemp("dask_plate")
    paths = [str(p) for p in write_sample_plate(folder, rows="BC", columns=range(2, 5), sites=1,
                                                seed=3, shape=(256, 320))]
    broken = folder / "Week1_22123_D02_s1_w1BROKEN.tif"
    broken.write_text("this is not a TIFF")
    return paths + [str(broken)]


@pytest.fixture(scope="module")
def expected(plate):
    """The core engine's results, in this process, by index."""
    return {r.index: r for r in run_batch(plate, PARAMS, workers=0)}


@pytest.fixture(scope="module")
def cluster():
    """A separate LocalCluster of two worker processes, as a user would start one."""
    lc = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, **QUIET)
    yield lc
    lc.close()


def _by_index(results) -> dict:
    out = {}
    for r in results:
        assert r.index not in out, f"index {r.index} reported twice"
        out[r.index] = r
    return out


def _assert_same(got: dict, expected: dict) -> None:
    assert sorted(got) == sorted(expected)
    for i, ref in expected.items():
        r = got[i]
        assert r.path == ref.path
        assert r.meta == ref.meta
        assert r.ok == ref.ok, (r.path, r.error, ref.error)
        if ref.ok:
            assert r.count == ref.count
            np.testing.assert_array_equal(r.coords, ref.coords)
            np.testing.assert_array_equal(r.intensities, ref.intensities)


def test_import_is_cheap():
    code = ("import sys, napari_nuclei_counter.dask_backend.backend; "
            "print(any(m == 'dask' or m.startswith(('dask.', 'distributed')) "
            "for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_relax_malloc_applies_only_under_a_nanny(monkeypatch):
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    assert _dask._relax_malloc() is False  # no nanny: nothing to undo
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    expected = sys.platform.startswith("linux") and "glibc" in " ".join(platform.libc_ver())
    assert _dask._relax_malloc() is expected  # glibc accepts the usual thresholds


def test_empty_input_starts_nothing():
    assert list(run_batch_dask([], PARAMS)) == []


def test_local_cluster_matches_run_batch(plate, expected, caplog):
    caplog.set_level(logging.INFO)
    got = _by_index(run_batch_dask(plate, PARAMS, n_workers=2, chunksize=2))
    _assert_same(got, expected)
    broken = got[len(plate) - 1]
    assert not broken.ok and "not a readable TIFF" in broken.error
    assert sum(r.ok for r in got.values()) == len(plate) - 1
    # the nannies' environment (MALLOC_TRIM_THRESHOLD_, ...) does not stay behind
    assert "MALLOC_TRIM_THRESHOLD_" not in os.environ
    # the cluster's start and stop do not flood the caller's logs
    chatter = [r for r in caplog.records
               if r.name.startswith("distributed") and r.levelno < logging.WARNING]
    assert not chatter, chatter[:3]


def test_scheduler_address(plate, expected, cluster):
    got = _by_index(run_batch_dask(plate, PARAMS, scheduler=cluster.scheduler_address))
    _assert_same(got, expected)


def test_given_client_is_left_open(plate, expected, cluster):
    with distributed.Client(cluster, set_as_default=False) as client:
        got = _by_index(run_batch_dask(plate, PARAMS, client=client, chunksize=3))
        _assert_same(got, expected)
        assert client.status == "running"
        assert client.submit(sum, [1, 2]).result() == 3


def test_unreachable_scheduler_is_a_setup_error(plate):
    import dask

    from napari_nuclei_counter.core.run.errors import RunError

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        gen = run_batch_dask(plate, PARAMS, scheduler="tcp://127.0.0.1:9")
        with pytest.raises(RunError, match="cannot reach the Dask scheduler"):
            next(gen)


def _fails_on_broken(fn, items, *args):
    """Stand-in task: the workers 'die' on the broken file (its whole chunk fails)."""
    if any(path.endswith("BROKEN.tif") for _, path in items):
        raise distributed.KilledWorker("task", SimpleNamespace(address="tcp://w:1"), 3)
    return _ORIGINAL_TASK(fn, items, *args)


_ORIGINAL_TASK = _dask._run_task


def test_task_failure_becomes_error_results(plate, expected, monkeypatch):
    # threads in this process, so that the stand-in task is the one that runs
    monkeypatch.setattr(_dask, "_run_task", _fails_on_broken)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  **QUIET) as lc, \
            distributed.Client(lc, set_as_default=False) as client:
        got = _by_index(run_batch_dask(plate, PARAMS, client=client, chunksize=3))
    assert sorted(got) == list(range(len(plate)))
    broken = got[len(plate) - 1]
    # alone, it killed its worker again: the culprit, named
    assert "worker process died every time it processed this image" in broken.error
    # the chunk-mates of the culprit were retried alone and succeeded
    _assert_same({i: r for i, r in got.items() if i != len(plate) - 1},
                 {i: r for i, r in expected.items() if i != len(plate) - 1})


def _new_children(before: set) -> list:
    me = psutil.Process()
    return [p for p in me.children(recursive=True) if p.pid not in before]


@pytest.mark.parametrize("how", ["event", "close"])
def test_stop_is_prompt_and_ends_workers(plate, how):
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    cancel = threading.Event()
    gen = run_batch_dask(plate[:-1] * 50, PARAMS, n_workers=2, chunksize=1, cancel=cancel)
    next(gen)
    workers = _new_children(before)
    assert len(workers) >= 2
    if how == "event":
        cancel.set()
        rest = list(gen)
        assert len(rest) < len(plate[:-1]) * 50 - 1  # the pending tasks were dropped
    else:
        gen.close()
    _, alive = psutil.wait_procs(workers, timeout=5.0)
    assert not alive, [p.cmdline() for p in alive]
