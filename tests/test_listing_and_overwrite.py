"""Label and mask files beside the images, and a finished run in --out (issue 24, items 3 and 11).

Listings run on a copy of BBBC007's real layout (images with their ``_labels.tif``
beside them, folder names with spaces and parentheses) when ../shared/data is
present, and on the same names with generated pixels when it is not. The
command line runs as a real process.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from conftest import shared_data_dir
from helpers import EXE, PLUGIN
from napari_nuclei_counter import DetectionParams
from napari_nuclei_counter.core.io.discovery import (
    find_images,
    is_mask_name,
    list_folder,
    names_masks,
    scan_folder,
    suggest_pattern,
)
from napari_nuclei_counter.core.io.sources import list_images
from napari_nuclei_counter.core.run.pipeline import Run
from napari_nuclei_counter.core.run.resume import FinishedRunInFolder, refuse_other_finished_run
from napari_nuclei_counter.core.sample import make_nuclei_image

#: BBBC007_v1_images: the images of each folder and the label images beside them
#: (f9620 holds one label image without its image)
LAYOUT = {
    "A9": ["A9 p5d", "A9 p7d", "A9 p9d", "A9 p10d"],
    "f96 (17)": [f"17P1_POS{n:04d}_D_1UL" for n in (6, 7, 11, 13, 14)],
    "f9620": [f"20P1_POS{n:04d}_D_1UL" for n in (5, 7, 8, 10, 11)],
}
LONE_LABELS = {"f9620": ["20P1_POS0002_D_1UL"]}
#: what BBBC007's images need (8-bit, nuclei about 10 pixels across)
ARGS = ["--sigma", "2", "--min-distance", "4", "--threshold", "30", "--workers", "0", "--quiet"]
A9_NOTE = ("4 label/mask files left out (A9 p5d_labels.tif, A9 p7d_labels.tif, …); "
           "name them in --pattern to include them")


def _real_bbbc007() -> Path | None:
    root = shared_data_dir()
    folder = None if root is None else root / "bbbc007" / "BBBC007_v1_images"
    return folder if folder is not None and folder.is_dir() else None


def _generated(folder: Path) -> None:
    """BBBC007's names with generated 8-bit images and label images of their nuclei."""
    yy, xx = np.mgrid[:128, :128]
    for k, (sub, stems) in enumerate(LAYOUT.items()):
        (folder / sub).mkdir(parents=True)
        for j, stem in enumerate(stems + LONE_LABELS.get(sub, [])):
            image, centres = make_nuclei_image(10 * k + j, n_nuclei=12, shape=(128, 128),
                                               dtype=np.uint8)
            labels = np.zeros((128, 128), np.uint16)
            for n, (y, x) in enumerate(centres, 1):
                labels[(yy - y) ** 2 + (xx - x) ** 2 <= 16] = n
            if stem in stems:
                tifffile.imwrite(folder / sub / f"{stem}.tif", image)
            tifffile.imwrite(folder / sub / f"{stem}_labels.tif", labels)
            (folder / sub / f"{stem}_features.csv").write_text("label,area\n1,50\n")


@pytest.fixture
def bbbc007(tmp_path) -> Path:
    """A copy of BBBC007_v1_images (real, or its names with generated pixels)."""
    dest = tmp_path / "BBBC007 (copy)"
    real = _real_bbbc007()
    if real is not None:
        shutil.copytree(real, dest)
    else:
        _generated(dest)
    return dest


def cli(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def _names(paths) -> list[str]:
    return [Path(p).name for p in paths]


# ------------------------------------------------------------------ names
@pytest.mark.parametrize(("name", "mask"), [
    ("A9 p10d_labels.tif", True), ("A9 p10d_label.tif", True), ("img_mask.png", True),
    ("img_masks.TIFF", True), ("B02_s1_w1_Mask.tif", True), ("mask2d.tif", True),
    ("Labels.tif", True), ("cells-labels.tif", True), ("cells labels.tif", True),
    ("img.mask.tif", True), ("nuclei_labelled.tif", True),
    ("A9 p10d.tif", False), ("img2d.tif", False), ("Plabel.tif", False),
    ("unmasked.tif", False), ("Week1_22123_B02_s4_w1EB868A72-19FC.tif", False),
    ("r02c03f01p01-ch1sk1fk1fl1.tiff", False), ("17P1_POS0006_D_1UL.tif", False),
])
def test_names_read_as_masks_or_labels(name, mask):
    assert is_mask_name(name) is mask


@pytest.mark.parametrize(("pattern", "names"), [
    ("*_labels.tif", True), ("*LABEL*", True), ("*_mask*.png", True), ("*Masks*", True),
    ("*.tif", False), ("*_w1*.tif", False), ("*", False), ("*lab*", False),
])
def test_a_pattern_names_masks_when_it_says_label_or_mask(pattern, names):
    assert names_masks(pattern) is names


# ---------------------------------------------------------------- listing
def test_a_real_layout_lists_its_images_and_leaves_the_label_files_out(bbbc007):
    real = _real_bbbc007()
    if real is not None:  # the layout the constants describe is the real one
        assert sorted(p.name for p in real.glob("*/*.tif")) == sorted(
            [f"{s}{suffix}.tif" for stems in LAYOUT.values() for s in stems
             for suffix in ("", "_labels")] + [f"{s}_labels.tif" for s in LONE_LABELS["f9620"]])
    a9 = scan_folder(bbbc007 / "A9", "*.tif")
    assert _names(a9.found) == ["A9 p5d.tif", "A9 p7d.tif", "A9 p9d.tif", "A9 p10d.tif"]
    assert _names(a9.left_out) == ["A9 p5d_labels.tif", "A9 p7d_labels.tif",
                                   "A9 p9d_labels.tif", "A9 p10d_labels.tif"]
    assert a9.warnings == []
    assert a9.note() == A9_NOTE
    assert a9.note("the pattern").endswith("name them in the pattern to include them")

    everything = scan_folder(bbbc007, "*.tif", recursive=True)
    assert [p.relative_to(bbbc007).as_posix() for p in everything.found] == [
        f"{sub}/{stem}.tif" for sub, stems in LAYOUT.items() for stem in stems]
    assert len(everything.left_out) == 15
    assert everything.note().startswith("15 label/mask files left out (A9 p5d_labels.tif, ")

    # list_folder and find_images give the same images
    assert list_folder(bbbc007, "*.tif", recursive=True) == (everything.found, [])
    assert find_images(bbbc007 / "f9620", "*.TIF") == [
        bbbc007 / "f9620" / f"{stem}.tif" for stem in LAYOUT["f9620"]]


def test_a_pattern_that_names_the_label_files_lists_them(bbbc007):
    for pattern in ("*_labels.tif", "*LABELS*"):
        listing = scan_folder(bbbc007 / "f9620", pattern)
        assert _names(listing.found) == [f"{s}_labels.tif" for s in
                                         ["20P1_POS0002_D_1UL", *LAYOUT["f9620"]]]
        assert listing.left_out == [] and listing.note() == ""


def test_one_label_file_left_out_is_said_in_the_singular(tmp_path):
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((8, 8), np.uint8))
    tifffile.imwrite(tmp_path / "a_mask.tif", np.zeros((8, 8), np.uint8))
    listing = scan_folder(tmp_path, "*.tif")
    assert _names(listing.found) == ["a.tif"]
    assert listing.note() == ("1 label/mask file left out (a_mask.tif); name it in --pattern "
                              "to include it")


def test_find_images_logs_the_files_left_out(bbbc007, caplog):
    with caplog.at_level(logging.WARNING, logger="napari_nuclei_counter"):
        found = find_images(bbbc007 / "A9", "*.tif")
    assert len(found) == 4
    assert [r.getMessage() for r in caplog.records] == [A9_NOTE]


def test_the_core_listing_warns_without_calling_it_a_listing_error(bbbc007):
    found = list_images(bbbc007 / "A9", "*.tif")
    assert found.kind == "folder"
    assert _names(found.labels) == ["A9 p5d.tif", "A9 p7d.tif", "A9 p9d.tif", "A9 p10d.tif"]
    assert found.warnings == [A9_NOTE]
    assert found.errors == []  # the run's exit status stays 0


def test_the_suggested_pattern_never_counts_label_files(bbbc007, tmp_path):
    assert suggest_pattern(bbbc007 / "A9") == ("*.tif", 4)
    assert suggest_pattern(bbbc007, recursive=True) == ("*.tif", 14)
    assert suggest_pattern(bbbc007) is None  # only sub-folders at the top
    only_labels = tmp_path / "labels only"
    only_labels.mkdir()
    tifffile.imwrite(only_labels / "x_labels.tif", np.zeros((8, 8), np.uint8))
    (only_labels / "notes.txt").write_text("not an image")
    assert suggest_pattern(only_labels) is None


# ----------------------------------------------------------- command line
def test_detect_with_star_tif_counts_the_images_only_and_says_so(bbbc007, tmp_path):
    out = tmp_path / "out"
    done = cli("detect", bbbc007 / "A9", "--pattern", "*.tif", "--out", out, *ARGS)
    assert done.returncode == 0, done.stderr
    assert f"WARNING: {A9_NOTE}\n" in done.stderr
    images = pd.read_csv(out / "images.csv", keep_default_na=False)
    assert _names(images["path"]) == ["A9 p5d.tif", "A9 p7d.tif", "A9 p9d.tif", "A9 p10d.tif"]
    if _real_bbbc007() is not None:  # with the masks listed, all four were out_of_focus
        assert images["qc_flags"].tolist() == ["", "", "", ""]


def test_detect_on_the_label_files_when_the_pattern_names_them(bbbc007, tmp_path):
    out = tmp_path / "out"
    done = cli("detect", bbbc007 / "A9", "--pattern", "*_labels.tif", "--out", out, *ARGS)
    assert done.returncode == 0, done.stderr
    assert "left out" not in done.stderr
    images = pd.read_csv(out / "images.csv", keep_default_na=False)
    assert _names(images["path"]) == ["A9 p5d_labels.tif", "A9 p7d_labels.tif",
                                      "A9 p9d_labels.tif", "A9 p10d_labels.tif"]


def test_no_match_suggests_a_pattern_of_images_only(bbbc007, tmp_path):
    a9 = bbbc007 / "A9"
    done = cli("detect", a9, "--out", tmp_path / "out", *ARGS)  # BBBC021's '*_w1*.tif'
    assert done.returncode == 2
    assert done.stderr == (f"nuclei-counter detect: error: no file in {a9} matches the pattern "
                           "'*_w1*.tif'; check --pattern (--pattern '*.tif' matches 4 images "
                           "there) or use --recursive\n")
    done = cli("detect", bbbc007, "--recursive", "--pattern", "*.png", "--out", tmp_path / "o",
               *ARGS)
    assert done.returncode == 2
    assert done.stderr == (f"nuclei-counter detect: error: no file in {bbbc007} (or its "
                           "sub-folders) matches the pattern '*.png'; check --pattern "
                           "(--pattern '*.tif' matches 14 images there)\n")


def test_a_folder_of_label_files_only_says_why_nothing_runs(tmp_path):
    folder = tmp_path / "masks"
    folder.mkdir()
    for k in range(3):
        tifffile.imwrite(folder / f"img{k}_masks.tif", np.zeros((8, 8), np.uint16))
    done = cli("detect", folder, "--pattern", "*.tif", "--out", tmp_path / "out", *ARGS)
    assert done.returncode == 2
    assert done.stderr == (
        "WARNING: 3 label/mask files left out (img0_masks.tif, img1_masks.tif, …); name them "
        "in --pattern to include them\n"
        f"nuclei-counter detect: error: no file in {folder} matches the pattern '*.tif'; check "
        "--pattern or use --recursive\n")


def test_evaluate_pairs_images_with_their_labels_in_the_same_folder(bbbc007, tmp_path):
    a9 = bbbc007 / "A9"
    out = tmp_path / "ev"
    done = cli("evaluate", a9, "--truth", a9, "--pattern", "*.tif", "--out", out, *ARGS[:6])
    assert done.returncode == 0, done.stderr  # every image found its truth
    rows = pd.read_csv(out / "evaluation.csv", keep_default_na=False)
    assert _names(rows["path"]) == ["A9 p5d.tif", "A9 p7d.tif", "A9 p9d.tif", "A9 p10d.tif"]
    for row in rows.itertuples():
        labels = tifffile.imread(a9 / Path(row.path).name.replace(".tif", "_labels.tif"))
        assert row.n_true == len(np.unique(labels)) - 1


# ------------------------------------------------------- a finished run in --out
@pytest.fixture
def five(tmp_path) -> Path:
    """Five small generated images named ``img{k}_w1.tif``."""
    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(5):
        tifffile.imwrite(folder / f"img{k}_w1.tif",
                         make_nuclei_image(k, n_nuclei=20, shape=(96, 96))[0])
    return folder


FAST = ["--workers", "0", "--quiet"]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_other_parameters_into_a_finished_run_are_refused(five, tmp_path):
    out = tmp_path / "out"
    assert cli("detect", five, "--out", out, "--sigma", "2", *FAST).returncode == 0
    before = _files(out)
    done = cli("detect", five, "--out", out, "--sigma", "3", "--threshold", "900", *FAST)
    assert done.returncode == 2
    assert done.stderr == (
        f"nuclei-counter detect: error: {out} holds a complete run with other parameters "
        "(sigma 2 there, 3 here; threshold_abs 1000 there, 900 here): choose another --out, "
        "or add --overwrite (or --resume) to replace it\n")
    assert _files(out) == before  # nothing moved, nothing written


def test_overwrite_replaces_it(five, tmp_path):
    out = tmp_path / "out"
    assert cli("detect", five, "--out", out, "--sigma", "2", *FAST).returncode == 0
    done = cli("detect", five, "--out", out, "--sigma", "3", "--overwrite", *FAST)
    assert done.returncode == 0, done.stderr
    run = json.loads((out / "run.json").read_text())
    assert run["parameters"]["sigma"] == 3.0 and run["complete"] is True
    assert sorted(p.name for p in out.iterdir()) == ["images.csv", "nuclei.csv", "run.json",
                                                     "wells.csv"]


def test_resume_replaces_a_run_with_other_parameters_as_before(five, tmp_path):
    out = tmp_path / "out"
    assert cli("detect", five, "--out", out, "--sigma", "2", *FAST).returncode == 0
    done = cli("detect", five, "--out", out, "--sigma", "3", "--resume", *FAST)
    assert done.returncode == 0, done.stderr
    assert "used other parameters or choices: starting afresh" in done.stderr
    assert "resuming: 0 of 5 images already done" in done.stderr
    assert json.loads((out / "run.json").read_text())["parameters"]["sigma"] == 3.0


def test_overwrite_with_resume_is_said_to_have_no_effect(five, tmp_path):
    done = cli("detect", five, "--out", tmp_path / "out", "--resume", "--overwrite", *FAST)
    assert done.returncode == 0, done.stderr
    assert ("WARNING: --overwrite has no effect with --resume (which finishes a run with the "
            "same parameters in --out and replaces one with others)\n") in done.stderr


def test_the_same_command_again_runs_again(five, tmp_path):
    out = tmp_path / "out"
    assert cli("detect", five, "--out", out, *FAST).returncode == 0
    first = pd.read_csv(out / "images.csv")
    tifffile.imwrite(five / "img5_w1.tif", make_nuclei_image(5, n_nuclei=20, shape=(96, 96))[0])
    done = cli("detect", five, "--out", out, *FAST)
    assert done.returncode == 0, done.stderr
    again = pd.read_csv(out / "images.csv")
    assert _names(again["path"]) == [f"img{k}_w1.tif" for k in range(6)]  # the new image too
    assert again["n_nuclei"].tolist()[:5] == first["n_nuclei"].tolist()


def test_another_input_or_pattern_is_refused_and_the_engine_is_not(five, tmp_path):
    out = tmp_path / "out"
    assert cli("detect", five, "--out", out, *FAST).returncode == 0
    other = tmp_path / "other"
    shutil.copytree(five, other)
    done = cli("detect", other, "--out", out, *FAST)
    assert done.returncode == 2
    assert f"(input '{five}' there, '{other}' here)" in done.stderr
    done = cli("detect", five, "--out", out, "--pattern", "img[0-2]*", *FAST)
    assert done.returncode == 2
    assert "(pattern '*_w1*.tif' there, 'img[0-2]*' here)" in done.stderr
    done = cli("detect", five, "--out", out, "--pattern", "*_W1*.TIF", *FAST)
    assert done.returncode == 0, done.stderr  # the same files: patterns ignore case
    done = cli("detect", five, "--out", out, "--engine", "reference", *FAST)
    assert done.returncode == 0, done.stderr  # every engine finds the same nuclei


def test_a_run_that_did_not_finish_is_not_protected(five, tmp_path):
    out = tmp_path / "out"
    assert cli("detect", five, "--out", out, "--sigma", "2", *FAST).returncode == 0
    run = json.loads((out / "run.json").read_text())
    run["complete"] = False  # as a run cancelled with Ctrl+C writes it
    (out / "run.json").write_text(json.dumps(run))
    done = cli("detect", five, "--out", out, "--sigma", "3", *FAST)
    assert done.returncode == 0, done.stderr


def test_a_run_whose_every_image_failed_is_not_protected(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(2):
        (folder / f"img{k}_w1.tif").write_bytes(b"not a TIFF")
    out = tmp_path / "out"
    assert cli("detect", folder, "--out", out, "--sigma", "2", *FAST).returncode == 1
    done = cli("detect", folder, "--out", out, "--sigma", "3", *FAST)
    assert done.returncode == 1  # the images fail again; the run is not refused
    assert "holds a complete run" not in done.stderr
    assert json.loads((out / "run.json").read_text())["parameters"]["sigma"] == 3.0


def test_a_run_that_found_nothing_is_not_protected(five, tmp_path):
    out = tmp_path / "out"
    done = cli("detect", five, "--out", out, "--threshold", "70000", *FAST)
    assert done.returncode == 0 and "--threshold otsu" in done.stderr
    assert json.loads((out / "run.json").read_text())["n_nuclei"] == 0
    done = cli("detect", five, "--out", out, "--threshold", "otsu", *FAST)  # the advice
    assert done.returncode == 0, done.stderr
    assert "holds a complete run" not in done.stderr
    assert json.loads((out / "run.json").read_text())["parameters"]["threshold_method"] == "otsu"
    # a run that found nuclei is protected again
    done = cli("detect", five, "--out", out, "--threshold", "900", *FAST)
    assert done.returncode == 2 and "holds a complete run" in done.stderr


def test_the_core_refusal_names_a_channel_and_the_python_api_replaces_by_default(five, tmp_path):
    out = tmp_path / "out"
    params = DetectionParams(2.0, 4, 500.0)
    list(Run(five, params, workers=0, pattern="*.tif", out=out))
    key = {"engine": "fast", "regex": None, "channel": "1", "z": None}
    with pytest.raises(FinishedRunInFolder, match=r"\(channel none there, '1' here\)"):
        refuse_other_finished_run(out, params, key=key)
    key["channel"] = None
    refuse_other_finished_run(out, params, key=key)  # the same run: no error
    with pytest.raises(FinishedRunInFolder, match=r"\(min_distance 4 there, 6 here\)"):
        refuse_other_finished_run(out, DetectionParams(2.0, 6, 500.0), key=key)
    # what the dock and library callers do: replace, as before
    list(Run(five, DetectionParams(3.0, 4, 500.0), workers=0, pattern="*.tif", out=out))
    assert json.loads((out / "run.json").read_text())["parameters"]["sigma"] == 3.0
    with pytest.raises(FinishedRunInFolder):
        Run(five, params, workers=0, pattern="*.tif", out=out, overwrite=False).prepare()


# ------------------------------------------------------------------ the dock
@pytest.mark.gui
def test_the_dock_folder_line_says_what_was_left_out(make_napari_viewer, qtbot, bbbc007):
    pytest.importorskip("napari")
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Nuclei detector")
    widget.source_panel.source.value = "folder"
    picker = widget.source_panel.folder_picker
    picker.pattern.value = "*.tif"
    picker.folder.value = bbbc007 / "A9"
    assert widget.source_panel.update_match_count() == 4
    assert picker.match_label.value == (
        "4 images match; 4 label/mask files left out (A9 p5d_labels.tif, A9 p7d_labels.tif, "
        "…); name them in the pattern to include them")
    assert _names(picker.matches) == ["A9 p5d.tif", "A9 p7d.tif", "A9 p9d.tif", "A9 p10d.tif"]
    picker.pattern.value = "*_labels.tif"
    qtbot.waitUntil(lambda: picker.match_label.value == "4 images match", timeout=10000)
    assert _names(picker.matches)[0] == "A9 p5d_labels.tif"
    picker.pattern.value = "*.png"
    qtbot.waitUntil(lambda: picker.match_label.value.startswith("0 images"), timeout=10000)
    assert picker.match_label.value == "0 images match; try the pattern *.tif (4 images)"
