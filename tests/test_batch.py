"""The batch engine on real files and a real process pool."""

import os
import signal
import time

import numpy as np
import pytest
import tifffile

from helpers import worker_pids
from napari_nuclei_counter import DetectionParams, detect, run_batch
from napari_nuclei_counter.core.io.images import read_image

P = DetectionParams(sigma=4.0, min_distance=6, threshold_abs=1000.0)


def _wait_no_children(before, timeout=3.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        left = worker_pids() - before
        if not left:
            return set()
        time.sleep(0.05)
    return worker_pids() - before


def test_two_workers_with_a_broken_file(sample_images, tmp_path):
    broken = sample_images[0].parent / "Week1_22123_B09_s1_w1BROKEN.tif"
    broken.write_bytes(b"this is not a tiff")
    paths = sample_images[:3] + [broken] + sample_images[3:]
    results = sorted(run_batch(paths, P, workers=2), key=lambda r: r.index)
    assert [r.index for r in results] == list(range(7))
    bad = results[3]
    assert not bad.ok and "not a readable TIFF" in bad.error and bad.count is None
    assert bad.meta.well == "B09"
    for r in results[:3] + results[4:]:
        assert r.ok, r.error
        np.testing.assert_array_equal(r.coords, detect(tifffile.imread(r.path), P).coords)
        assert r.count == len(r.coords) > 0 and r.seconds > 0
        assert r.meta.plate == "22123" and r.meta.channel == "w1"


def test_serial_mode_gives_the_same_results(sample_images):
    a = sorted(run_batch(sample_images, P, workers=0), key=lambda r: r.index)
    b = sorted(run_batch(sample_images, P, workers=2, chunksize=1), key=lambda r: r.index)
    assert [r.count for r in a] == [r.count for r in b]


def test_read_image_errors(tmp_path):
    (tmp_path / "zero.tif").write_bytes(b"")
    with pytest.raises(ValueError, match="empty file"):
        read_image(tmp_path / "zero.tif")
    os.symlink(tmp_path / "gone.tif", tmp_path / "link.tif")
    with pytest.raises(FileNotFoundError, match="broken symbolic link"):
        read_image(tmp_path / "link.tif")
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((20, 20, 3), np.uint8), photometric="rgb")
    with pytest.raises(ValueError, match="RGB"):
        read_image(tmp_path / "rgb.tif")
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((3, 20, 20), np.uint16),
                     photometric="minisblack")
    with pytest.raises(ValueError, match="3 pages without axis metadata: choose --z"):
        read_image(tmp_path / "stack.tif")
    nan = np.zeros((20, 20), np.float32)
    nan[3, 3] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", nan)
    with pytest.raises(ValueError, match="NaN"):
        read_image(tmp_path / "nan.tif")


def test_closing_the_generator_stops_the_workers(tmp_path):
    from napari_nuclei_counter.core.sample import write_sample_plate

    paths = write_sample_plate(tmp_path, rows="B", columns=range(2, 4), sites=2, seed=1)
    many = paths * 30  # 120 full-size images: far more than done before the close
    before = worker_pids()
    gen = run_batch(many, P, workers=2, chunksize=1)
    first = next(gen)
    assert first.ok
    assert len(worker_pids() - before) >= 2  # real worker processes exist
    gen.close()
    left = _wait_no_children(before, timeout=2.0)  # a hang guard, not a speed target
    assert not left, f"worker processes still alive: {left}"


def test_a_killed_worker_is_detected_and_its_images_retried(tmp_path, caplog):
    from napari_nuclei_counter.core.sample import write_sample_plate

    paths = write_sample_plate(tmp_path, rows="B", columns=range(2, 4), sites=2, seed=2)
    many = paths * 10
    before = worker_pids()
    gen = run_batch(many, P, workers=2, chunksize=1)
    results = [next(gen)]
    workers = sorted(worker_pids() - before)
    assert len(workers) == 2
    os.kill(workers[-1], signal.SIGKILL)
    results += list(gen)  # the run ends (no hang), with every image
    by_index = {r.index: r for r in results}
    assert sorted(by_index) == list(range(len(many)))  # every image reported once
    assert all(r.ok for r in by_index.values())  # innocent images succeed on retry
    counts = {r.path: r.count for r in results}
    assert len(counts) == len(paths)
    assert not _wait_no_children(before)
    assert "a worker process died" in caplog.text


def test_in_memory_stack_through_shared_memory(sample_images):
    from napari_nuclei_counter.core.run.batch import run_batch_arrays

    stack = np.stack([tifffile.imread(p) for p in sample_images])
    odd = stack[0, :100, :90].astype(np.float32)  # a different size and dtype too
    images = list(stack) + [odd, np.zeros((5, 5, 3))]
    got = sorted(run_batch_arrays(images, P, workers=2), key=lambda r: r.index)
    assert [r.path for r in got][:2] == ["image 0", "image 1"]
    for r, im in zip(got[:-1], images[:-1], strict=True):
        assert r.ok
        np.testing.assert_array_equal(r.coords, detect(im, P).coords)
    assert not got[-1].ok and "RGB" in got[-1].error
    serial = sorted(run_batch_arrays(images, P, workers=0), key=lambda r: r.index)
    assert [r.count for r in serial] == [r.count for r in got]


def test_cancel_event_stops_the_pool_within_a_second(tmp_path):
    import threading

    from napari_nuclei_counter.core.sample import write_sample_plate

    paths = write_sample_plate(tmp_path, rows="B", columns=range(2, 3), sites=2, seed=4) * 60
    cancel = threading.Event()
    before = worker_pids()
    got = []
    for r in run_batch(paths, P, workers=2, chunksize=1, cancel=cancel, engine="reference"):
        got.append(r)
        if len(got) == 2:
            threading.Timer(0.05, cancel.set).start()
    assert 2 <= len(got) < len(paths)  # the pending work was dropped
    assert not _wait_no_children(before, timeout=2.0)


def test_unguarded_script_is_not_rerun_by_workers(sample_images, tmp_path):
    """A user script without a __main__ guard must not run again in each worker."""
    import subprocess
    import sys

    marker = tmp_path / "runs.txt"
    script = tmp_path / "unguarded.py"
    script.write_text(
        "from napari_nuclei_counter import run_batch, DetectionParams\n"
        f"open({str(marker)!r}, 'a').write('x')\n"
        f"paths = {[str(p) for p in sample_images]!r}\n"
        "res = list(run_batch(paths, DetectionParams(), workers=2, chunksize=1))\n"
        "assert all(r.ok for r in res) and len(res) == len(paths)\n"
    )
    subprocess.run([sys.executable, str(script)], check=True, timeout=120)
    assert marker.read_text() == "x"
