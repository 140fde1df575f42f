"""``nuclei-counter evaluate`` and ``tune`` through a parser built like the CLI's."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_nuclei_counter.cli.scoring import add_parsers, find_truth, run
from napari_nuclei_counter.core.params import DetectionParams
from napari_nuclei_counter.core.sample import make_nuclei_image

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BBBC007 = DATA / "bbbc007" / "BBBC007_v1_images"


def cli(argv) -> int:
    parser = argparse.ArgumentParser(prog="nuclei-counter")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parsers(sub)
    return run(parser.parse_args([str(a) for a in argv]))


def last_line(capsys) -> str:
    return capsys.readouterr().out.strip().splitlines()[-1]


@pytest.fixture
def plate(tmp_path):
    """Three generated images; truth: points CSV, a label TIFF, and none for the third."""
    imgs, truth = tmp_path / "imgs", tmp_path / "truth"
    imgs.mkdir()
    truth.mkdir()
    centres = []
    for k in range(3):
        img, c = make_nuclei_image(20 + k, 30, (300, 300))
        tifffile.imwrite(imgs / f"img{k}.tif", img)
        centres.append(c)
    pd.DataFrame({"axis-0": centres[0][:, 0], "axis-1": centres[0][:, 1]}).to_csv(
        truth / "img0.CSV", index=False)
    yy, xx = np.mgrid[:300, :300]
    lab = np.zeros((300, 300), np.uint16)
    for i, (y, x) in enumerate(centres[1]):
        lab[(yy - y) ** 2 + (xx - x) ** 2 <= 36] = i + 1
    tifffile.imwrite(truth / "img1_masks.TIFF", lab)
    return imgs, truth, centres


def test_evaluate_writes_rows_totals_and_exit_1_when_some_lack_truth(plate, tmp_path, capsys):
    imgs, truth, centres = plate
    out = tmp_path / "ev"
    assert cli(["evaluate", imgs, "--truth", truth, "--out", out, "--threshold", "1000"]) == 1
    line = last_line(capsys)
    assert line.startswith("total: 2 of 3 images scored")
    df = pd.read_csv(out / "evaluation.csv", keep_default_na=False)
    assert list(df.columns) == ["path", "plate", "well", "site", "n_true", "n_detected", "tp",
                                "fp", "fn", "precision", "recall", "f1", "count_error", "error"]
    assert df["n_true"][:2].astype(int).tolist() == [30, 30] and df["error"][2] == "no truth file found"
    summary = json.loads((out / "evaluation.json").read_text())
    assert summary["n_true"] == 60 and summary["n_scored"] == 2
    assert summary["tp"] == int(df["tp"][:2].astype(int).sum())
    assert f"f1 {summary['f1']:.3f}" in line


def test_no_truth_at_all_is_exit_2(plate, tmp_path, capsys):
    imgs, _, _ = plate
    empty = tmp_path / "none"
    empty.mkdir()
    assert cli(["evaluate", imgs, "--truth", empty, "--out", tmp_path / "o"]) == 2
    assert last_line(capsys).startswith("total: 0 of 3 images scored")


def test_tune_then_evaluate_with_the_preset_and_an_override(plate, tmp_path, capsys):
    imgs, truth, _ = plate
    out = tmp_path / "tuned"
    assert cli(["tune", imgs, "--truth", truth, "--out", out]) == 1  # img2 has no truth
    assert last_line(capsys).startswith("best: sigma")
    preset = DetectionParams.from_json((out / "preset.json").read_text())
    table = pd.read_csv(out / "tuning.csv")
    assert len(table) >= 16
    ev = tmp_path / "ev"
    cli(["evaluate", imgs, "--truth", truth, "--out", ev, "--preset", out / "preset.json"])
    summary = json.loads((ev / "evaluation.json").read_text())
    # a separate detection with the preset scores what the search said it would
    assert summary["parameters"] == preset.to_dict()
    assert [summary[k] for k in ("tp", "fp", "fn")] == table.loc[0, ["tp", "fp", "fn"]].tolist()
    assert summary["f1"] >= table["f1"].max() - 1e-12
    cli(["evaluate", imgs, "--truth", truth, "--out", ev, "--preset", out / "preset.json",
         "--sigma", "7.5"])
    summary = json.loads((ev / "evaluation.json").read_text())
    assert summary["parameters"]["sigma"] == 7.5
    assert summary["parameters"]["min_distance"] == preset.min_distance


def test_truth_pattern_region_and_bad_truth(plate, tmp_path, capsys):
    imgs, truth, centres = plate
    gt = tmp_path / "gt"
    gt.mkdir()
    shutil.copy(truth / "img0.CSV", gt / "img0_gt.csv")
    tifffile.imwrite(gt / "img1_gt.csv.tif", np.ones((10, 10), np.uint8))
    out = tmp_path / "o"
    assert cli(["evaluate", imgs, "--truth", gt, "--truth-pattern", "{stem}_gt.csv",
                "--out", out, "--region", "0:150,0:300", "--match-radius", "5"]) == 1
    df = pd.read_csv(out / "evaluation.csv", keep_default_na=False)
    assert int(df["n_true"][0]) == int((centres[0][:, 0] < 150).sum())
    # a label image of the wrong size: a clear error in its row
    tifffile.imwrite(gt / "img1_gt.csv", np.ones((10, 10), np.uint8))
    wrong = tmp_path / "w"
    wrong.mkdir()
    tifffile.imwrite(wrong / "img1_labels.tif", np.ones((10, 10), np.uint16) * 3)
    assert cli(["evaluate", imgs / "img1.tif", "--truth", wrong, "--out", out]) == 2
    assert "10x10 but the image is 300x300" in pd.read_csv(out / "evaluation.csv")["error"][0]
    assert cli(["evaluate", imgs, "--truth", truth, "--out", out, "--region", "5,6"]) == 2
    assert "Y0:Y1,X0:X1" in capsys.readouterr().err


def test_find_truth_suffixes_and_case(tmp_path):
    img = tmp_path / "a" / "X p1.tif"
    img.parent.mkdir()
    img.write_bytes(b"")
    (tmp_path / "a" / "X p1_Labels.PNG").write_bytes(b"")
    assert find_truth(img, tmp_path / "a").name == "X p1_Labels.PNG"
    assert find_truth(img, tmp_path) is None
    assert find_truth(img, tmp_path, root=tmp_path).name == "X p1_Labels.PNG"


needs_data = pytest.mark.skipif(not BBBC007.is_dir(), reason="no ../shared/data")


@needs_data
def test_bbbc007_labels_found_by_their_suffix_and_scored(tmp_path, capsys):
    out = tmp_path / "bbbc"
    code = cli(["evaluate", BBBC007, "--truth", BBBC007, "--recursive", "--out", out,
                "--sigma", "4", "--min-distance", "7", "--threshold", "12"])
    assert code == 0, capsys.readouterr()
    df = pd.read_csv(out / "evaluation.csv", keep_default_na=False)
    assert len(df) == 14 and (df["error"] == "").all()  # 20P1_POS0002 has labels only
    for row in df.itertuples():
        lab = tifffile.imread(Path(row.path).with_name(Path(row.path).stem + "_labels.tif"))
        assert row.n_true == len(np.unique(lab)) - 1
    assert json.loads((out / "evaluation.json").read_text())["f1"] > 0.8


def test_automatic_threshold_option(plate, tmp_path):
    imgs, truth, _ = plate
    out = tmp_path / "auto"
    cli(["evaluate", imgs, "--truth", truth, "--out", out, "--threshold", "Li"])
    params = json.loads((out / "evaluation.json").read_text())["parameters"]
    assert params["threshold_method"] == "li"
    with pytest.raises(SystemExit):
        cli(["evaluate", imgs, "--truth", truth, "--out", out, "--threshold", "mean"])


def test_the_command_line_wires_evaluate_tune_and_detect_preset(tmp_path):
    """Through ``nuclei-counter`` itself: a preset file, explicit options over it, automatic thresholds."""
    import json

    import tifffile

    from napari_nuclei_counter.cli.app import main
    from napari_nuclei_counter.core.sample import make_nuclei_image

    tifffile.imwrite(tmp_path / "a_w1.tif", make_nuclei_image(3, n_nuclei=30, shape=(128, 128))[0])
    preset = tmp_path / "preset.json"
    preset.write_text(json.dumps({"sigma": 2.5, "min_distance": 5, "threshold_abs": 700.0}))
    out = tmp_path / "out"
    assert main(["detect", str(tmp_path), "--preset", str(preset), "--min-distance", "4",
                 "--out", str(out), "--quiet", "--workers", "0"]) == 0
    params = json.loads((out / "run.json").read_text())["parameters"]
    assert (params["sigma"], params["min_distance"], params["threshold_abs"]) == (2.5, 4, 700.0)
    out2 = tmp_path / "out2"
    assert main(["detect", str(tmp_path), "--threshold", "otsu", "--out", str(out2), "--quiet",
                 "--workers", "0"]) == 0
    assert json.loads((out2 / "run.json").read_text())["parameters"]["threshold_method"] == "otsu"
    with pytest.raises(SystemExit) as stop:
        main(["evaluate", "--help"])
    assert stop.value.code == 0


def test_evaluation_csv_escapes_formula_like_names(tmp_path):
    """A name that a spreadsheet would run as a formula is written as text, read back exactly."""
    from napari_nuclei_counter.core.results.csvsafe import decode_columns

    imgs, truth = tmp_path / "imgs", tmp_path / "truth"
    imgs.mkdir()
    truth.mkdir()
    img, centres = make_nuclei_image(5, 30, (200, 200))
    names = ["=1+1.tif", "@SUM(A1).tif"]
    for name in names:
        tifffile.imwrite(imgs / name, img)
        stem = name[:-4]
        pd.DataFrame({"y": centres[:, 0], "x": centres[:, 1]}).to_csv(truth / f"{stem}.csv",
                                                                       index=False)
    out = tmp_path / "o"
    assert cli(["evaluate", imgs, "--truth", truth, "--out", out, "--threshold", "1000"]) == 0
    raw = pd.read_csv(out / "evaluation.csv", keep_default_na=False, dtype=str)
    assert not raw["path"].str.startswith(("=", "@")).any()
    back = decode_columns(raw.copy())
    assert sorted(Path(p).name for p in back["path"]) == sorted(names)


def test_evaluate_lists_images_with_the_core_and_keeps_paths_as_given(plate, tmp_path,
                                                                      monkeypatch):
    imgs, truth, _ = plate
    monkeypatch.chdir(imgs.parent)
    out = tmp_path / "rel"
    assert cli(["evaluate", imgs.name, "--truth", truth, "--out", out]) == 1
    df = pd.read_csv(out / "evaluation.csv", keep_default_na=False)
    assert df["path"].tolist() == [str(Path(imgs.name) / f"img{k}.tif") for k in range(3)]
    assert cli(["evaluate", "no-such-folder", "--truth", truth, "--out", out]) == 2
