"""Hostile and damaged results folders, presets and options (issue 23, C, D and E), on real
files and real ``nuclei-counter`` processes: bounded memory and sizes, one sentence and exit
status 2 for what the user can fix, a run in progress that is not called damaged, and the
temporary files of a killed write cleaned up."""

import json
import os
import resource
import socket
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from helpers import EXE
from napari_nuclei_counter.core.detect.detection import detect
from napari_nuclei_counter.core.io.images import read_image
from napari_nuclei_counter.core.params import DetectionParams
from napari_nuclei_counter.core.results.tables import ImageResult
from napari_nuclei_counter.core.results.writer import write_results
from napari_nuclei_counter.core.run.lock import LOCK_NAME
from napari_nuclei_counter.core.sample import make_nuclei_image
from napari_nuclei_counter.core.scoring import matching


def cli(*args, timeout=120):
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def one_sentence(p) -> str:
    """The error line of a failed command: one line, no traceback, no "unexpected"."""
    assert "Traceback" not in p.stderr, p.stderr
    line = p.stderr.strip().splitlines()[-1]
    assert "error: " in line and "unexpected" not in line, p.stderr
    return line


@pytest.fixture
def results(tmp_path, sample_images):
    out = tmp_path / "res"
    p = cli("detect", sample_images[0].parent, "--out", out, "--workers", "0", "--quiet")
    assert p.returncode == 0, p.stderr
    return out


# ------------------------------------------------------------- C: memory and sizes

@pytest.mark.slow
def test_tune_with_a_million_truth_points_matches_sparsely_in_bounded_memory(tmp_path):
    # one BBBC021-sized field and a million points over it: one connected component of
    # thousands of candidates and most of the points (a dense matrix: 44 GiB)
    image, _ = make_nuclei_image(7, 300)
    (tmp_path / "img").mkdir()
    (tmp_path / "truth").mkdir()
    tifffile.imwrite(tmp_path / "img" / "field.tif", image)
    pts = np.random.default_rng(1).uniform(0, 1, (1_000_000, 2)) * image.shape
    np.savetxt(tmp_path / "truth" / "field.csv", pts, fmt="%.2f", delimiter=",", header="y,x",
               comments="")
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    p = cli("tune", tmp_path / "img" / "field.tif", "--truth", tmp_path / "truth",
            "--out", tmp_path / "tuned", "--workers", "1", timeout=600)
    assert p.returncode == 0, p.stderr
    assert "n_true 1000000" in p.stdout and (tmp_path / "tuned" / "preset.json").exists()
    peak_mib = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    assert peak_mib < 2048, f"tune took {peak_mib:.0f} MiB"


def test_sparse_matching_scores_every_prefix_as_the_dense_one(sample_images, monkeypatch):
    image = read_image(sample_images[0])
    coords = detect(image, DetectionParams(sigma=2, min_distance=3, threshold_abs=0)).coords
    rng = np.random.default_rng(5)
    pts = coords[rng.permutation(len(coords))[: len(coords) * 2 // 3]] + rng.normal(0, 1.5, (
        len(coords) * 2 // 3, 2))
    everywhere = lambda p: np.ones(len(p), bool)  # noqa: E731
    dense = matching.point_prefix(coords.astype(float), pts, 4.0, everywhere)
    monkeypatch.setattr(matching, "DENSE_CELLS", 0)  # every component takes the sparse way
    assert np.array_equal(matching.point_prefix(coords.astype(float), pts, 4.0, everywhere), dense)
    i_det, i_pts = matching.match_points(coords, pts, 4.0)
    assert len(i_det) == dense[-1, 0]


@pytest.mark.parametrize("argv, option", [
    (["gallery", "{res}", "--size", "20000"], "--size"),
    (["gallery", "{res}", "--size", "8"], "--size"),
    (["gallery", "{res}", "--columns", "0"], "--columns"),
    (["gallery", "{res}", "--columns", "100000"], "--columns"),
    (["gallery", "{res}", "--n", "-1"], "--n"),
    (["gallery", "{res}", "--n", "100000000"], "--n"),
    (["gallery", "{res}", "--seed", "-1"], "--seed"),
    (["gallery", "{res}", "--seed", str(2**70)], "--seed"),
    (["sample", "{tmp}/s", "--sites", "100000000"], "--sites"),
    (["sample", "{tmp}/s", "--sites", "0"], "--sites"),
    (["sample", "{tmp}/s", "--columns", "100000"], "--columns"),
    (["sample", "{tmp}/s", "--rows", "B²"], "--rows"),
    (["sample", "{tmp}/s", "--rows", "ABCDEFGHIJKLMNOP", "--columns", "47", "--sites", "100"],
     "--sites"),
    (["sample", "{tmp}/s", "--seed", "-1"], "--seed"),
    (["tune", "{plate}", "--truth", "{plate}", "--out", "{tmp}/t", "--match-radius", "1e9"],
     "--match-radius"),
    (["tune", "{plate}", "--truth", "{plate}", "--out", "{tmp}/t", "--workers", "100000"],
     "--workers"),
    (["evaluate", "{plate}", "--truth", "{plate}", "--out", "{tmp}/t", "--match-radius", "0"],
     "--match-radius"),
    (["evaluate", "{plate}", "--truth", "{plate}", "--out", "{tmp}/t", "--region", "0:inf,0:9"],
     "--region"),
    (["detect", "{plate}", "--out", "{tmp}/d", "--min-distance", "1000000000"], "--min-distance"),
])
def test_every_size_option_out_of_range_is_refused_at_once_in_one_sentence_exit_2(
        tmp_path, results, sample_images, argv, option):
    names = {"res": results, "tmp": tmp_path, "plate": sample_images[0].parent}
    argv = [a.format(**names) for a in argv]
    if argv[0] == "gallery":
        argv += ["--out", str(tmp_path / "g.png")]
    p = cli(*argv, timeout=60)
    assert p.returncode == 2, p.stderr
    assert option in one_sentence(p)
    assert not (tmp_path / "g.png").exists() and not (tmp_path / "s").exists()


def test_a_gallery_picture_beyond_the_pixel_limit_is_refused_before_drawing(tmp_path):
    out = tmp_path / "many"
    write_results(out, [ImageResult(i, f"/nowhere/img{i}.tif", coords=np.zeros((i % 7, 2), int),
                                    intensities=np.ones(i % 7)) for i in range(400)],
                  DetectionParams())
    p = cli("gallery", out, "--n", "0", "--size", "2048", "--columns", "20",
            "--out", tmp_path / "g.png", timeout=60)
    assert p.returncode == 2 and "--size" in one_sentence(p), p.stderr
    assert not (tmp_path / "g.png").exists()


# ------------------------------------------------- D: one sentence, exit status 2

def _edit_run_json(folder, change):
    path = folder / "run.json"
    run = json.loads(path.read_text())
    path.write_text(change(run) if callable(change) else change)


@pytest.mark.parametrize("damage", [
    pytest.param(lambda r: json.dumps({**r, "tables": [1, 2]}), id="tables-a-list"),
    pytest.param(lambda r: json.dumps({**r, "schema": "2"}), id="schema-a-string"),
    pytest.param(lambda r: json.dumps({**r, "parameters": [4, 6]}), id="parameters-a-list"),
    pytest.param("[" * 100_000 + "]" * 100_000, id="nested-100000-deep"),
    pytest.param("\x00\xff garbage", id="not-json"),
])
@pytest.mark.parametrize("command", ["platemap", "gallery"])
def test_a_malformed_run_json_is_one_sentence_exit_2(tmp_path, results, damage, command):
    _edit_run_json(results, damage)
    p = cli(command, results, "--out", tmp_path / "x.png")
    assert p.returncode == 2, p.stderr
    assert "run.json" in one_sentence(p)


def test_resume_over_a_malformed_run_json_is_one_sentence_exit_2(tmp_path, results,
                                                                   sample_images):
    _edit_run_json(results, "[" * 100_000 + "]" * 100_000)
    p = cli("detect", sample_images[0].parent, "--out", results, "--workers", "0", "--quiet",
            "--resume")
    assert p.returncode == 2 and "run.json" in one_sentence(p)


def test_a_damaged_wells_csv_is_one_sentence_exit_2(tmp_path, results):
    run = json.loads((results / "run.json").read_text())
    del run["schema"]  # a folder of an older version: no checksum to catch it first
    (results / "run.json").write_text(json.dumps(run))
    (results / "wells.csv").write_bytes(b'plate,well,images\n"a,b\n\x00\xff')
    p = cli("platemap", results, "--out", tmp_path / "p.png")
    assert p.returncode == 2 and "wells.csv" in one_sentence(p)


def test_resume_with_n_nuclei_1e300_in_a_partial_table_is_one_sentence_exit_2(
        tmp_path, results, sample_images):
    for name in ("images", "nuclei"):
        os.replace(results / f"{name}.csv", results / f"{name}.partial.csv")
    os.replace(results / "run.json", results / "run.partial.json")
    lines = (results / "images.partial.csv").read_text().splitlines(keepends=True)
    head = lines[0].split(",")
    cells = lines[1].split(",")
    cells[head.index("n_nuclei")] = "1e300"
    lines[1] = ",".join(cells)
    (results / "images.partial.csv").write_text("".join(lines))
    p = cli("detect", sample_images[0].parent, "--out", results, "--workers", "0", "--quiet",
            "--resume")
    assert p.returncode == 2 and "images.partial.csv" in one_sentence(p)
    p = cli("platemap", results, "--out", tmp_path / "p.png")
    assert p.returncode == 2 and "images.partial.csv" in one_sentence(p)


@pytest.mark.parametrize("host", ["this", "other"])
def test_a_lock_whose_pid_overflows_is_taken_over_and_never_stops_readers(
        tmp_path, results, sample_images, host):
    lock = {"pid": 10**30, "host": socket.gethostname() if host == "this" else "elsewhere",
            "started": "2020-01-01T00:00:00+00:00"}
    (results / LOCK_NAME).write_text(json.dumps(lock))
    p = cli("gallery", results, "--out", tmp_path / "g.png")
    assert p.returncode == 0, p.stderr
    plate = sample_images[0].parent
    p = cli("detect", plate, "--out", results, "--workers", "0", "--quiet")
    if host == "other":  # another host's process cannot be checked from here
        assert p.returncode == 2 and "--break-lock" in one_sentence(p)
        p = cli("detect", plate, "--out", results, "--workers", "0", "--quiet", "--break-lock")
    assert p.returncode == 0, p.stderr
    assert not (results / LOCK_NAME).exists()


@pytest.mark.parametrize("kind", ["nested", "dev-zero", "fifo", "huge", "folder"])
def test_a_hostile_preset_is_refused_at_once_in_one_sentence(tmp_path, sample_images, kind):
    preset = tmp_path / "preset.json"
    if kind == "nested":
        preset.write_text("[" * 30_000 + "]" * 30_000)  # small, but too deep for the parser
    elif kind == "dev-zero":
        preset = "/dev/zero"
    elif kind == "fifo":
        os.mkfifo(preset)
    elif kind == "huge":
        preset.write_text(json.dumps({"sigma": 2, "note": "x" * 10_000_000}))
    else:
        preset = tmp_path
    p = cli("detect", sample_images[0].parent, "--out", tmp_path / "out", "--preset", preset,
            timeout=30)
    assert p.returncode == 2 and "preset" in one_sentence(p)


def test_gallery_out_an_existing_folder_is_refused_in_one_sentence(tmp_path, results):
    (tmp_path / "pictures").mkdir()
    p = cli("gallery", results, "--out", tmp_path / "pictures")
    assert p.returncode == 2 and "--out" in one_sentence(p)
    assert list((tmp_path / "pictures").iterdir()) == []


# ------------------------------------------------------------------------ E: smaller

def test_platemap_in_the_first_moment_of_a_run_says_in_progress_not_damaged(tmp_path,
                                                                             results):
    folder = tmp_path / "starting"
    folder.mkdir()
    # a run that has just started: its streaming files exist, their header not yet written
    for name in ("images.partial.csv", "nuclei.partial.csv"):
        (folder / name).write_text("")
    (folder / "run.partial.json").write_text((results / "run.json").read_text())
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (folder / LOCK_NAME).write_text(json.dumps(
            {"pid": holder.pid, "host": socket.gethostname(), "started": "now"}))
        for command in ("platemap", "gallery"):
            p = cli(command, folder, "--out", tmp_path / "x.png")
            line = one_sentence(p)
            assert p.returncode == 2 and "still writing" in line and "damaged" not in line
    finally:
        holder.kill()
        holder.wait()
    p = cli("platemap", folder, "--out", tmp_path / "x.png")  # its run is gone now
    line = one_sentence(p)
    assert p.returncode == 2 and "--resume" in line and "damaged" not in line


def test_stale_part_files_of_the_tools_own_tables_are_removed_and_no_other_file(
        tmp_path, results, sample_images):
    stale = [".images.csv.k2j4h8s1.part", ".run.json.abcd_123.part",
             ".run.partial.json.zz99yy88.part", ".nuclei.parquet.q1w2e3r4.part"]
    foreign = [".notes.txt.k2j4h8s1.part", "images.csv.part", ".images.csv.part",
               ".images.csv.TOOLONG12.part", "mine.part"]
    for name in stale + foreign:
        (results / name).write_text("x")
    p = cli("detect", sample_images[0].parent, "--out", results, "--workers", "0", "--quiet")
    assert p.returncode == 0, p.stderr
    left = {f.name for f in results.iterdir()}
    assert not left & set(stale)
    assert set(foreign) <= left
