"""The run pipeline itself: sources, progress, cancel, resume and the tables, on real processes."""

from __future__ import annotations

import json
import threading

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_nuclei_counter import DetectionParams, detect
from napari_nuclei_counter.core.run.pipeline import Run, RunError

P = DetectionParams(4.0, 6, 1000.0)


def test_a_folder_run_reports_progress_and_writes_consistent_tables(sample_images, tmp_path):
    seen = []
    run = Run(sample_images[0].parent, P, workers=2, out=tmp_path / "out",
              progress=lambda r, done, total: seen.append((r.index, done, total)))
    results = {r.index: r for r in run}
    assert sorted(results) == list(range(6))
    assert [d for _, d, _ in seen] == [1, 2, 3, 4, 5, 6] and {t for *_, t in seen} == {6}
    s = run.summary
    assert (s.n_images, s.n_done, s.n_failed, s.cancelled, s.n_new) == (6, 6, 0, False, 6)
    images = pd.read_csv(tmp_path / "out" / "images.csv", keep_default_na=False)
    nuclei = pd.read_csv(tmp_path / "out" / "nuclei.csv")
    assert list(images["path"]) == [str(p) for p in sample_images]  # input order
    for path, row in zip(sample_images, images.itertuples(), strict=True):
        expected = detect(tifffile.imread(path), P).coords
        assert row.n_nuclei == len(expected)
        np.testing.assert_array_equal(nuclei[nuclei["path"] == str(path)][["y", "x"]], expected)
    assert s.n_nuclei == len(nuclei)
    info = json.loads((tmp_path / "out" / "run.json").read_text())
    assert info["backend"] == "process" and info["workers"] == 2 and info["complete"] is True
    assert info["input"] == str(sample_images[0].parent) and info["pattern"] == "*_w1*.tif"


def test_images_in_memory_run_on_workers_and_serially_alike(sample_images):
    arrays = [tifffile.imread(p) for p in sample_images]
    pooled = {r.index: r for r in Run(arrays, P, workers=2, labels=list("abcdef"))}
    serial = {r.index: r for r in Run(np.stack(arrays), P, workers=0)}
    for i, image in enumerate(arrays):
        expected = detect(image, P).coords
        np.testing.assert_array_equal(pooled[i].coords, expected)
        np.testing.assert_array_equal(serial[i].coords, expected)
    assert pooled[0].path == "a" and serial[0].path == "image 0"


def test_cancel_keeps_a_prefix_that_resume_finishes(tmp_path):
    from napari_nuclei_counter.core.sample import write_sample_plate

    paths = write_sample_plate(tmp_path / "p", rows="BC", columns=range(2, 12), sites=2,
                               seed=5, shape=(256, 320))
    cancel = threading.Event()
    out = tmp_path / "out"
    first = Run(paths[0].parent, P, workers=2, out=out, cancel=cancel, chunksize=1)
    for n, _ in enumerate(first, 1):
        if n == 8:
            cancel.set()
    assert first.summary.cancelled
    done = pd.read_csv(out / "images.csv")
    assert 0 < len(done) < len(paths)
    assert list(done["path"]) == [str(p) for p in paths[:len(done)]]  # a prefix, in order
    assert json.loads((out / "run.json").read_text())["complete"] is False
    second = Run(paths[0].parent, P, workers=2, out=out, resume=True)
    second.prepare()
    assert second.done == set(range(len(done)))
    assert [r.index for r in second.done_results()] == list(range(len(done)))
    new = sorted(r.index for r in second)
    assert new == list(range(len(done), len(paths)))  # only the rest is processed
    assert second.summary.n_done == len(paths) and not second.summary.cancelled
    reference = tmp_path / "ref"
    list(Run(paths[0].parent, P, workers=0, out=reference))
    for name in ("images.csv", "wells.csv"):
        a = pd.read_csv(out / name, keep_default_na=False).drop(columns=["seconds"], errors="ignore")
        b = pd.read_csv(reference / name, keep_default_na=False).drop(columns=["seconds"],
                                                                      errors="ignore")
        pd.testing.assert_frame_equal(a, b)
    assert (out / "nuclei.csv").read_bytes() == (reference / "nuclei.csv").read_bytes()


def test_sources_that_cannot_run_say_why(tmp_path):
    with pytest.raises(RunError, match="input folder not found"):
        Run(tmp_path / "nope", P).prepare()
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError, match=r"matches the pattern '\*_w1\*\.tif'"):
        Run(tmp_path / "empty", P).prepare()
    with pytest.raises(RunError, match="2 labels for 3 images"):
        Run([np.zeros((8, 8))] * 3, P, labels=["a", "b"]).prepare()
    with pytest.raises(TypeError):
        Run(tmp_path, P, "serial")  # options after the first two are keyword-only
