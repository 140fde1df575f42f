"""Damaged and hostile input files (issue 23, the reading side), each on real files.

Every test writes what microscopes, converters or a hostile sender write
(tifffile, imagecodecs, ome-zarr-py, plain zarr) and checks one promise,
named in the test: nothing counted wrong, nothing dropped silently, sizes
checked from headers before decoding, a plate read only inside its folder.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
import tracemalloc

import imagecodecs
import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_nuclei_counter.cli.app import main
from napari_nuclei_counter.core.io import planes
from napari_nuclei_counter.core.io.discovery import natural_key
from napari_nuclei_counter.core.io.images import PlaneChoice, read_image
from napari_nuclei_counter.core.io.sources import list_images
from napari_nuclei_counter.core.run.pipeline import Run
from napari_nuclei_counter.core.sample import make_nuclei_image

zarr = pytest.importorskip("zarr")


def _nuclei(seed: int = 1, shape=(128, 160)) -> np.ndarray:
    return make_nuclei_image(seed, n_nuclei=20, shape=shape)[0]


def _detect(args: list[str], capsys, caplog=None) -> tuple[int, str]:
    """Exit status and what the user saw (stderr, and the warnings logged in this process)."""
    if caplog is not None:
        caplog.clear()
    code = main(["detect", *args, "--workers", "0", "--quiet"])
    return code, capsys.readouterr().err + (caplog.text if caplog is not None else "")


def _rows(out) -> pd.DataFrame:
    return pd.read_csv(out / "images.csv", keep_default_na=False)


def _tif(path, image=None) -> None:
    tifffile.imwrite(path, _nuclei() if image is None else image)


# --- A2: a JPEG cut short ----------------------------------------------------------------------

def test_a_jpeg_cut_in_half_is_a_row_error_never_a_count(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    image8 = (_nuclei() // 257).astype(np.uint8)
    data = imagecodecs.jpeg8_encode(image8, level=95)
    (folder / "whole.jpg").write_bytes(data)
    (folder / "half.jpg").write_bytes(data[: len(data) // 2])
    (folder / "trailer.jpg").write_bytes(data + b"appended by some writers")
    # libjpeg decodes the half without complaint, the missing part grey
    assert imagecodecs.jpeg8_decode(data[: len(data) // 2]).shape == image8.shape
    with pytest.raises(ValueError, match="truncated"):
        read_image(folder / "half.jpg")
    assert np.array_equal(read_image(folder / "trailer.jpg"), read_image(folder / "whole.jpg"))

    code, err = _detect([str(folder), "--pattern", "*.jpg", "--out", str(tmp_path / "out")],
                        capsys)
    rows = _rows(tmp_path / "out").set_index(_rows(tmp_path / "out").path.map(
        lambda p: os.path.basename(p)))
    assert code == 1
    assert "truncated" in rows.loc["half.jpg", "error"]
    assert rows.loc["whole.jpg", "error"] == "" and rows.loc["trailer.jpg", "error"] == ""
    assert rows.loc["whole.jpg", "n_nuclei"] == rows.loc["trailer.jpg", "n_nuclei"]


# --- A3 and B: OME-Zarr plates -----------------------------------------------------------------

def _write_image(group, image) -> None:
    from ome_zarr.format import FormatV04
    from ome_zarr.writer import write_image

    write_image(image, group, axes="yx", fmt=FormatV04(), scale_factors=[])


def _write_plate(path, wells: dict[str, list[str]]) -> None:
    """An NGFF 0.4 plate; ``wells`` maps a well path to its field paths (written when plain)."""
    from ome_zarr.format import FormatV04
    from ome_zarr.writer import write_plate_metadata

    fmt = FormatV04()
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    write_plate_metadata(root, ["B", "C"], ["3", "11"], ["B/3", "C/11"], fmt=fmt, name="P")
    plate = dict(root.attrs["plate"])
    plate["wells"] = [{"path": w, "rowIndex": 0, "columnIndex": i}
                      for i, w in enumerate(wells)]
    root.attrs["plate"] = plate
    for well, fields in wells.items():
        if ".." in well or well.startswith("/"):
            continue
        group = root.require_group(well)
        group.attrs["well"] = {"images": [{"path": f} for f in fields], "version": "0.4"}
        for i, f in enumerate(fields):
            if f.isalnum():
                _write_image(group.require_group(f), _nuclei(i + 1))


def test_a_plate_well_whose_folder_is_missing_is_named_in_a_warning_and_exits_1(
        tmp_path, capsys, caplog):
    plate = tmp_path / "screen.ome.zarr"
    _write_plate(plate, {"B/3": ["0", "1"], "C/11": ["0"]})
    shutil.rmtree(plate / "C" / "11")
    found = list_images(plate, "*")
    assert len(found.labels) == 2
    assert any("C/11" in e and "missing" in e for e in found.errors)

    code, err = _detect([str(plate), "--out", str(tmp_path / "out")], capsys, caplog)
    assert code == 1
    assert "C/11" in err and "missing" in err
    assert len(_rows(tmp_path / "out")) == 2


def test_a_plate_reads_only_inside_its_own_folder(tmp_path, capsys):
    outside = tmp_path / "outside"
    _write_image(zarr.open_group(str(outside / "img"), mode="w", zarr_format=2), _nuclei(9))
    plate = tmp_path / "deep" / "er" / "screen.ome.zarr"
    _write_plate(plate, {"B/3": ["0", "../../../../outside/img", str(outside / "img")],
                         "../../../outside": ["img"]})
    found = list_images(plate, "*")
    assert [os.path.relpath(p, plate) for p in found.labels] == [os.path.join("B", "3", "0")]
    named = " ".join(found.errors)
    assert "../../../outside" in named and "../../../../outside/img" in named
    assert str(outside / "img") in named

    # an image's own metadata cannot reach out either
    field = plate / "B" / "3" / "0"
    attrs = json.loads((field / ".zattrs").read_text())
    attrs["multiscales"][0]["datasets"][0]["path"] = "../../../../../outside/img/0"
    (field / ".zattrs").write_text(json.dumps(attrs))
    with pytest.raises(ValueError, match="outside the image's folder"):
        read_image(field)

    code, err = _detect([str(plate), "--out", str(tmp_path / "out")], capsys)
    rows = _rows(tmp_path / "out")
    assert code == 1 and len(rows) == 1
    assert "outside the image's folder" in rows.error[0]
    assert not any("outside" in p for p in rows.path)


# --- A4: sub-folders that cannot be listed -------------------------------------------------------

def _deep_folder(top, depth: int = 24):
    """Folders nested deeper than PATH_MAX (4,096 bytes): made and written through dir_fd."""
    fd = os.open(top, os.O_RDONLY)
    name = "d" * 200
    try:
        for _ in range(depth):
            os.mkdir(name, dir_fd=fd)
            nxt = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        buf = io.BytesIO()
        tifffile.imwrite(buf, _nuclei(5))
        out = os.open("deep_w1.tif", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(out, buf.getvalue())
        os.close(out)
    finally:
        os.close(fd)


def test_recursive_listing_names_a_folder_too_long_to_open_and_exits_1(tmp_path, capsys,
                                                                       caplog):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    _tif(folder / "A01_s1_w1.tif")
    _tif(folder / "sub" / "A02_s1_w1.tif")
    _deep_folder(folder / "sub")
    found = list_images(folder, "*_w1*.tif", recursive=True)
    assert len(found.labels) == 2
    assert len(found.errors) == 1 and "cannot list the folder" in found.errors[0]
    assert str(folder / "sub") in found.errors[0] and "name too long" in found.errors[0]

    code, err = _detect([str(folder), "--recursive", "--out", str(tmp_path / "out")], capsys,
                        caplog)
    assert code == 1
    assert "cannot list the folder" in err and "listing problem" in err
    assert len(_rows(tmp_path / "out")) == 2


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any folder: no permission to lose")
def test_recursive_listing_names_a_folder_without_permission_and_exits_1(tmp_path, capsys,
                                                                          caplog):
    folder = tmp_path / "in"
    (folder / "locked").mkdir(parents=True)
    _tif(folder / "A01_s1_w1.tif")
    _tif(folder / "locked" / "A02_s1_w1.tif")
    (folder / "locked").chmod(0)
    try:
        code, err = _detect([str(folder), "--recursive", "--out", str(tmp_path / "out")], capsys,
                        caplog)
    finally:
        (folder / "locked").chmod(0o755)
    assert code == 1 and "locked" in err and "cannot list the folder" in err


# --- A5: a file named like a scene -----------------------------------------------------------------

def _two_scenes(path) -> None:
    with tifffile.TiffWriter(path, ome=True) as tw:
        tw.write(_nuclei(1))
        tw.write(_nuclei(2))


def test_a_file_named_like_a_scene_never_hides_that_scene(tmp_path, capsys, caplog):
    folder = tmp_path / "in"
    folder.mkdir()
    _two_scenes(folder / "a.ome.tif")
    _tif(folder / "a.ome.tif#1", _nuclei(7))
    _tif(folder / "b.ome.tif#1", _nuclei(8))  # no file b.ome.tif: a plain name
    with pytest.raises(ValueError, match="both a file and scene 1 of a.ome.tif"):
        read_image(folder / "a.ome.tif#1")
    assert read_image(folder / "b.ome.tif#1").shape == (128, 160)
    assert np.array_equal(read_image(f"{folder / 'a.ome.tif'}#0"), _nuclei(1))

    code, err = _detect([str(folder), "--pattern", "*", "--out", str(tmp_path / "out")],
                        capsys, caplog)
    rows = _rows(tmp_path / "out")
    assert code == 1 and "rename the file a.ome.tif#1" in err
    bad = rows[rows.path.str.endswith("a.ome.tif#1")]
    assert len(bad) == 2 and bad.error.str.contains("rename").all()
    good = rows[rows.path.str.endswith(("a.ome.tif#0", "b.ome.tif#1"))]
    assert len(good) == 2 and (good.error == "").all()


# --- A6: OME-XML declaring many images on one page --------------------------------------------------

def _many_images_one_page(path, n: int = 20000) -> None:
    images = "".join(
        f'<Image ID="Image:{i}"><Pixels ID="Pixels:{i}" DimensionOrder="XYCZT" Type="uint16" '
        f'SizeX="160" SizeY="128" SizeC="1" SizeZ="1" SizeT="1"><Channel ID="Channel:{i}:0" '
        f'SamplesPerPixel="1"/><TiffData IFD="0" PlaneCount="1"/></Pixels></Image>'
        for i in range(n))
    xml = ('<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/'
           f'Schemas/OME/2016-06" UUID="urn:uuid:1">{images}</OME>')
    tifffile.imwrite(path, _nuclei(3), description=xml, metadata=None)


def test_20000_ome_images_on_one_page_are_one_row_with_a_warning(tmp_path, capsys, caplog):
    folder = tmp_path / "in"
    folder.mkdir()
    _many_images_one_page(folder / "many.ome.tif")
    found = list_images(folder, "*.tif")
    assert found.labels == [str(folder / "many.ome.tif")]
    assert "20,000 images" in found.errors[0] and "19,999" in found.errors[0]
    t0 = time.perf_counter()
    code, err = _detect([str(folder), "--pattern", "*.tif", "--out", str(tmp_path / "out")],
                        capsys, caplog)
    assert time.perf_counter() - t0 < 30
    assert code == 1 and "repeat the pixels" in err
    rows = _rows(tmp_path / "out")
    assert len(rows) == 1 and rows.error[0] == ""


def test_the_scenes_of_one_ome_tiff_are_read_with_one_parse(tmp_path, monkeypatch):
    path = tmp_path / "three.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tw:
        for seed in (1, 2, 3):
            tw.write(_nuclei(seed))
    opened = []

    class Counting(tifffile.TiffFile):
        def __init__(self, *args, **kwargs):
            opened.append(args[0])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(tifffile, "TiffFile", Counting)
    for scene, seed in enumerate((1, 2, 3)):
        assert np.array_equal(read_image(f"{path}#{scene}"), _nuclei(seed))
    assert len(opened) == 1


# --- C: sizes checked from headers before decoding ---------------------------------------------

def _lying_jpeg(path, height: int = 65500, width: int = 65500) -> None:
    data = bytearray(imagecodecs.jpeg8_encode(np.zeros((16, 16), np.uint8)))
    sof = data.index(b"\xff\xc0")
    data[sof + 5: sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    path.write_bytes(bytes(data))


def _refused_cheaply(path, **kwargs) -> str:
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(ValueError, match="--max-pixels") as info:
            read_image(path, **kwargs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20, f"{peak / 2**20:.0f} MiB allocated to refuse {path.name}"
    assert time.perf_counter() - t0 < 5
    return str(info.value)


def test_a_jpeg_whose_header_claims_65500_squared_is_refused_from_its_header(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    _lying_jpeg(folder / "liar.jpg")
    assert (folder / "liar.jpg").stat().st_size < 40_000
    message = _refused_cheaply(folder / "liar.jpg")
    assert "4,290,250,000 pixels" in message and f"{planes.MAX_PIXELS:,}" in message
    imagecodecs.imwrite(folder / "good.jpg", (_nuclei() // 257).astype(np.uint8))
    code, err = _detect([str(folder), "--pattern", "*.jpg", "--out", str(tmp_path / "out")],
                        capsys)
    rows = _rows(tmp_path / "out").sort_values("path")
    assert code == 1
    assert list(rows.error.str.contains("--max-pixels")) == [False, True]


def test_a_png_decompression_bomb_is_refused_from_its_header(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(imagecodecs.png_encode(np.zeros((16500, 16500), np.uint8), level=9))
    assert path.stat().st_size < 1_000_000
    _refused_cheaply(path)


def _ome_zarr(path, shape, chunks, axes="zyx") -> None:
    """An OME-Zarr image (NGFF 0.4) whose level 0 is all fill value: a few hundred bytes."""
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    group.create_array("0", shape=shape, chunks=chunks, dtype="uint16", fill_value=0)
    group.attrs["multiscales"] = [{"version": "0.4", "axes": [
        {"name": a, "type": "space"} for a in axes], "datasets": [
        {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1] * len(axes)}]}]}]


def test_an_ome_zarr_asking_for_gigabytes_reads_one_plane_or_is_refused(tmp_path):
    big_plane = tmp_path / "plane.ome.zarr"
    _ome_zarr(big_plane, (70000, 70000), (1024, 1024), axes="yx")  # 9.1 GiB
    assert sum(f.stat().st_size for f in big_plane.rglob("*") if f.is_file()) < 2000
    _refused_cheaply(big_plane)

    stack = tmp_path / "stack.ome.zarr"
    _ome_zarr(stack, (2000, 2048, 2048), (1, 2048, 2048))  # 2,000 planes: 16 GB
    tracemalloc.start()
    try:
        plane = read_image(stack, plane=PlaneChoice(z="3"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert plane.shape == (2048, 2048) and peak < 100 * 2**20
    with pytest.raises(ValueError, match="choose --z"):
        read_image(stack)
    _refused_cheaply(stack, plane=PlaneChoice(z="max"))


def test_a_tiff_of_2000_pages_reads_one_plane_without_decoding_the_series(tmp_path, capsys):
    path = tmp_path / "in" / "pages_w1.tif"
    path.parent.mkdir()
    page = np.zeros((1024, 1024), np.uint8)
    page[500:520, 500:520] = 200
    tifffile.imwrite(path, (page for _ in range(2000)), shape=(2000, 1024, 1024),
                     dtype="uint8", compression="zstd", metadata=None, photometric="minisblack")
    assert path.stat().st_size < 2_000_000  # 2.1 GB of pixels
    tracemalloc.start()
    try:
        t0 = time.perf_counter()
        with pytest.raises(ValueError, match="2000 pages without axis metadata: choose --z"):
            read_image(path)
        plane = read_image(path, plane=PlaneChoice(z="1999"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.array_equal(plane, page) and peak < 32 * 2**20
    assert time.perf_counter() - t0 < 10
    _refused_cheaply(path, plane=PlaneChoice(z="max"))

    code, _ = _detect([str(path.parent), "--z", "7", "--out", str(tmp_path / "out")], capsys)
    assert code == 0 and _rows(tmp_path / "out").error[0] == ""


def test_max_pixels_is_a_reader_keyword_a_module_default_and_an_option(tmp_path, capsys,
                                                                       monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    _tif(folder / "A01_s1_w1.tif")  # 128 x 160 = 20,480 pixels
    assert planes.MAX_PIXELS == 2**28
    with pytest.raises(ValueError, match="20,480 pixels.*limit of 20,000.*--max-pixels"):
        read_image(folder / "A01_s1_w1.tif", max_pixels=20_000)
    assert read_image(folder / "A01_s1_w1.tif", max_pixels=20_480).shape == (128, 160)
    monkeypatch.setattr(planes, "MAX_PIXELS", 1000)
    with pytest.raises(ValueError, match="--max-pixels"):
        read_image(folder / "A01_s1_w1.tif")
    assert read_image(folder / "A01_s1_w1.tif", max_pixels=0).shape == (128, 160)
    monkeypatch.undo()

    code, _ = _detect([str(folder), "--max-pixels", "20000", "--out", str(tmp_path / "o1")],
                      capsys)
    assert code == 1 and "--max-pixels" in _rows(tmp_path / "o1").error[0]
    code, _ = _detect([str(folder), "--max-pixels", "20480", "--out", str(tmp_path / "o2")],
                      capsys)
    assert code == 0
    with pytest.raises(SystemExit) as stop:
        _detect([str(folder), "--max-pixels", "-1", "--out", str(tmp_path / "o3")], capsys)
    assert stop.value.code == 2 and "--max-pixels must be" in capsys.readouterr().err


# --- E: names, folders where files were, the output folder ---------------------------------------

def test_a_superscript_digit_in_a_name_does_not_stop_the_plate(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("²1_w1.tif", "A01_s1_w1.tif", "A01_s10_w1.tif", "A01_s2_w1.tif", "٣_w1.tif"):
        _tif(folder / name)
    # decimal digits of any script are numbers; superscripts are text
    assert sorted(["²1", "s10", "s2", "³", "٣"], key=natural_key) == ["٣", "s2", "s10", "²1", "³"]
    found = list_images(folder, "*_w1*.tif")
    assert [os.path.basename(p) for p in found.labels][1:4] == [
        "A01_s1_w1.tif", "A01_s2_w1.tif", "A01_s10_w1.tif"]
    code, _ = _detect([str(folder), "--out", str(tmp_path / "out")], capsys)
    assert code == 0 and len(_rows(tmp_path / "out")) == 5


def test_a_tif_replaced_by_a_folder_is_reported_as_a_folder(tmp_path):
    good = tmp_path / "A01_s1_w1.tif"
    _tif(good)
    gone = tmp_path / "A01_s2_w1.tif"
    gone.mkdir()
    with pytest.raises(ValueError, match="a folder where a .tif image file was listed"):
        read_image(gone)
    results = list(Run([str(good), str(gone)], workers=0))
    assert results[0].ok
    assert "a folder where a .tif image file was listed" in results[1].error
    assert "OME-Zarr" not in results[1].error


def test_out_equal_to_the_input_folder_never_reads_its_own_tables(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    for site in (1, 2):
        _tif(folder / f"A01_s{site}_w1.tif")
    for _ in range(2):  # the second run finds the first one's tables in its input
        code, _ = _detect([str(folder), "--pattern", "*", "--out", str(folder)], capsys)
        assert code == 0
        rows = _rows(folder)
        assert sorted(os.path.basename(p) for p in rows.path) == [
            "A01_s1_w1.tif", "A01_s2_w1.tif"]
    other = tmp_path / "other"
    shutil.copytree(folder, other, ignore=shutil.ignore_patterns("*.csv", "*.json"))
    sub = other / "results"
    for _ in range(2):  # an output folder inside the input, searched with --recursive
        code, _ = _detect([str(other), "--pattern", "*", "--recursive", "--out", str(sub)],
                          capsys)
        assert code == 0 and len(_rows(sub)) == 2
