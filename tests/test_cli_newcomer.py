"""A newcomer's command line (issue 24, items 8, 9, 10, 13), in a real subprocess."""

import json
import re
import subprocess

import pytest

from helpers import EXE
from napari_nuclei_counter.core.params import read_preset
from napari_nuclei_counter.core.sample import write_sample_plate

COMMANDS = ("detect", "gallery", "platemap", "sample", "gui", "evaluate", "tune", "estimate")


def run(*args, cwd=None):
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


@pytest.fixture
def two_images(tmp_path):
    return write_sample_plate(tmp_path / "imgs", rows="B", columns=range(2, 4), sites=1,
                              seed=1, shape=(256, 320))


LINE = re.compile(r"^(?P<name>.+): diameter (?P<d>[\d.]+), sigma (?P<sigma>[\d.]+), "
                  r"min_distance (?P<md>\d+), threshold (?P<thr>[-\d.e+]+)$")


def test_estimate_prints_each_image_and_the_set_and_detect_reads_its_preset(two_images,
                                                                           tmp_path):
    folder = two_images[0].parent
    preset = tmp_path / "preset.json"
    p = run("estimate", folder, "--out", preset)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    per_image = [LINE.match(line) for line in lines[:2]]
    assert all(per_image), lines
    assert {m["name"] for m in per_image} == {path.name for path in two_images}
    for m in per_image:
        assert 3 <= float(m["d"]) <= 40 and float(m["sigma"]) > 0 and int(m["md"]) >= 1
    the_set = LINE.match(lines[2])
    assert the_set and the_set["name"] == "set of 2 images", lines
    assert lines[3].startswith(f"wrote {preset}") and "detect --preset" in lines[3]
    params = read_preset(preset)
    assert params.sigma == float(the_set["sigma"])
    assert params.min_distance == int(the_set["md"])
    assert params.threshold_abs == float(the_set["thr"])

    out = tmp_path / "res"
    d = run("detect", folder, "--preset", preset, "--out", out, "--workers", 0, "--quiet")
    assert d.returncode == 0, d.stderr
    assert json.loads((out / "run.json").read_text())["parameters"] == params.to_dict()


def test_estimate_of_one_image_says_image_and_without_out_writes_nothing(two_images,
                                                                        tmp_path):
    p = run("estimate", two_images[0], cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[-1].startswith("set of 1 image: diameter ")
    assert "wrote" not in p.stdout and not list(tmp_path.glob("*.json"))


def test_estimate_of_a_folder_without_matches_is_a_usage_error(tmp_path):
    (tmp_path / "empty").mkdir()
    p = run("estimate", tmp_path / "empty")
    assert p.returncode == 2 and p.stderr.startswith("nuclei-counter estimate: error: ")


def test_evaluate_with_nothing_scored_prints_no_score(two_images, tmp_path):
    (tmp_path / "truth").mkdir()
    p = run("evaluate", two_images[0].parent, "--truth", tmp_path / "truth",
            "--out", tmp_path / "ev", "--pattern", "*.tif")
    assert p.returncode == 2, p.stderr
    last = p.stdout.splitlines()[-1]
    assert last == "total: 0 of 2 images scored (none has readable truth): no score"
    for word in ("precision", "recall", "f1"):
        assert word not in p.stdout


def test_a_pattern_the_shell_expanded_is_named_and_the_run_goes_on(two_images, tmp_path):
    folder = two_images[0].parent
    name = two_images[0].name  # what `--pattern *_w1*.tif` becomes with one match here
    p = run("detect", ".", "--pattern", name, "--out", tmp_path / "r1", "--workers", 0,
            "--quiet", cwd=folder)
    assert p.returncode == 0, p.stderr
    warning = [line for line in p.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warning) == 1 and name in warning[0] and "quote" in warning[0]
    assert "1 image, " in p.stderr  # and the run went on, on that one image

    quoted = run("detect", ".", "--pattern", "*_w1*.tif", "--out", tmp_path / "r2",
                 "--workers", 0, "--quiet", cwd=folder)
    assert quoted.returncode == 0 and "WARNING" not in quoted.stderr, quoted.stderr
    assert "2 images, " in quoted.stderr
    elsewhere = run("detect", folder, "--pattern", name, "--out", tmp_path / "r3",
                    "--workers", 0, "--quiet", cwd=tmp_path)  # no such file here: no warning
    assert elsewhere.returncode == 0 and "WARNING" not in elsewhere.stderr


def test_counts_of_one_are_singular(two_images, tmp_path):
    p = run("detect", two_images[0], "--out", tmp_path / "res", "--workers", 0, "--quiet")
    assert p.returncode == 0, p.stderr
    assert re.match(r"1 image, \d+ nuclei, 0 failed", p.stderr.splitlines()[-1])
    s = run("sample", tmp_path / "one", "--rows", "B", "--columns", 1, "--sites", 1)
    assert s.returncode == 0 and s.stderr.strip() == f"wrote 1 image to {tmp_path / 'one'}"


def test_help_has_no_default_none_and_regex_names_every_imager():
    for command in COMMANDS:
        out = run(command, "--help").stdout
        assert "(default: None)" not in " ".join(out.split()), command
    regex_help = " ".join(run("detect", "--help").stdout.split())
    assert "BBBC021 template" not in regex_help
    for imager in ("README", "BBBC021", "ImageXpress", "Opera Phenix", "Yokogawa", "Cellomics",
                   "IN Cell Analyzer", "Incucyte"):
        assert imager in regex_help
    assert "(default: 4.0)" in regex_help  # real defaults are still shown


@pytest.mark.parametrize("args, says", [
    (("detect", "x", "--thresold", "3"), "did you mean --threshold?"),
    (("detect", "x", "--threshold", "abc"), "argument --threshold"),
    (("evaluate", "x", "--truth", "t", "--out", "o", "--sigam", "2"), "did you mean --sigma?"),
    (("detetc", "x"), "invalid choice"),
])
def test_a_typo_is_one_line_and_points_to_help(args, says):
    p = run(*args)
    assert p.returncode == 2
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and "usage:" not in p.stderr, p.stderr
    assert says in lines[0] and lines[0].endswith("--help")
    command = "detect" if args[0] == "detetc" else args[0]
    if args[0] != "detetc":
        assert lines[0].startswith(f"nuclei-counter {command}: error: ")
        assert lines[0].endswith(f"see nuclei-counter {command} --help")
