import os

import pytest

from napari_nuclei_counter import find_images, parse_metadata
from napari_nuclei_counter.core.io.discovery import ImageMeta, natural_key

BBBC = "Week1_22123_B02_s4_w1EB868A72-19FC-46BB-BDFA-66B8966A817C.tif"


def test_parse_bbbc021_name():
    m = parse_metadata("/data/plate 1 (copy)/" + BBBC)
    assert m == ImageMeta(plate="22123", well="B02", site="s4", channel="w1")
    # a UUID that starts with digits must not leak into the channel
    m2 = parse_metadata("Week4_27481_G11_s2_w12516AC85-E2EB-45E3-8CDB-31FE6899A08E.tif")
    assert (m2.plate, m2.well, m2.site, m2.channel) == ("27481", "G11", "s2", "w1")


def test_well_is_normalised_and_unmatched_names_are_blank():
    assert parse_metadata("Week1_1_b2_s1_w1X.tif").well == "B02"
    assert parse_metadata("01_POS002_D.TIF") == ImageMeta()


def test_user_regex_with_named_groups():
    rx = r"(?P<plate>\d+)_POS(?P<site>\d+)_(?P<channel>[DFR])"
    m = parse_metadata("01_POS076_D.TIF", rx)
    assert (m.plate, m.well, m.site, m.channel) == ("01", "", "076", "D")


def test_natural_sort():
    names = ["s10", "s2", "S1"]
    assert sorted(names, key=natural_key) == ["S1", "s2", "s10"]


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "plate (1) with spaces"
    (d / "sub").mkdir(parents=True)
    for name in ["Week1_1_B02_s10_w1A.tif", "Week1_1_B02_s2_w1B.tif", "Week1_1_B02_s2_w2C.tif",
                 "Week1_1_B03_s1_w1D.TIF", "notes.txt", ".hidden_w1.tif", "sub/Week1_1_C02_s1_w1E.tif"]:
        (d / name).write_bytes(b"x")
    os.symlink(d / "Week1_1_B02_s2_w1B.tif", d / "Week1_1_B04_s1_w1link.tif")
    os.symlink(d / "missing.tif", d / "Week1_1_B05_s1_w1dangling.tif")
    return d


def test_find_images_pattern_sort_symlinks(folder):
    names = [p.name for p in find_images(folder)]
    assert names == ["Week1_1_B02_s2_w1B.tif", "Week1_1_B02_s10_w1A.tif",
                     "Week1_1_B03_s1_w1D.TIF", "Week1_1_B04_s1_w1link.tif",
                     "Week1_1_B05_s1_w1dangling.tif"]


def test_find_images_recursive_and_custom_pattern(folder):
    rec = [p.relative_to(folder).as_posix() for p in find_images(folder, recursive=True)]
    assert "sub/Week1_1_C02_s1_w1E.tif" in rec and len(rec) == 6
    assert [p.name for p in find_images(folder, "*.txt")] == ["notes.txt"]
    assert find_images(folder, "*_w9*.tif") == []


def test_find_images_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        find_images(tmp_path / "nope")
    f = tmp_path / "file.tif"
    f.write_bytes(b"")
    with pytest.raises(NotADirectoryError):
        find_images(f)
