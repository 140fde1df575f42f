"""RGB(A) files by colour (``--channel blue``) and time series, each time point an image (``--t``)."""

from __future__ import annotations

import json
import shutil

import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image

from conftest import shared_data_dir
from napari_nuclei_counter import DetectionParams, detect
from napari_nuclei_counter._reader import META_KEY, read_image_file, read_results
from napari_nuclei_counter.cli.app import main
from napari_nuclei_counter.core.io.discovery import parse_metadata
from napari_nuclei_counter.core.io.images import (
    PlaneChoice,
    describe_image,
    read_image,
    scene_path,
    split_image_name,
)
from napari_nuclei_counter.core.io.sources import list_images
from napari_nuclei_counter.core.run.pipeline import Run
from napari_nuclei_counter.core.sample import make_nuclei_image

#: for the 8-bit colour images below
P8 = DetectionParams(2.0, 5, 40.0)
#: for the 32 x 32 CZIs of napari-ndev
PCZI = DetectionParams(1.0, 2, 0.0)
PCZI_ARGS = ["--sigma", "1", "--min-distance", "2", "--threshold", "0"]


def _plane8(seed: int, n: int) -> np.ndarray:
    return (make_nuclei_image(seed, n_nuclei=n, shape=(96, 128))[0] // 50).clip(0, 255).astype(
        np.uint8)


@pytest.fixture(scope="module")
def colours():
    """Red: flat; green: a few nuclei; blue: the DAPI nuclei."""
    green, blue = _plane8(6, 8), _plane8(5, 25)
    return np.stack([np.full_like(blue, 7), green, blue], axis=-1)


# --- RGB ------------------------------------------------------------------------------------


@pytest.fixture
def rgb_files(tmp_path, colours):
    """The same picture as PNG, JPEG, RGB TIFF (pixel- and plane-interleaved) and RGBA PNG."""
    folder = tmp_path / "colour"
    folder.mkdir()
    iio.imwrite(folder / "cells.png", colours)
    iio.imwrite(folder / "cells.jpg", colours, quality=95)
    tifffile.imwrite(folder / "cells.tif", colours, photometric="rgb")
    tifffile.imwrite(folder / "planar.tif", np.moveaxis(colours, -1, 0), photometric="rgb",
                     planarconfig="separate")
    rgba = np.concatenate([colours, np.full_like(colours[..., :1], 255)], axis=-1)
    iio.imwrite(folder / "alpha.png", rgba)
    return folder


def _decoded(path) -> np.ndarray:
    """The file's pixels as Pillow decodes them (JPEG is lossy)."""
    with Image.open(path) as im:
        return np.asarray(im)


@pytest.mark.parametrize("name", ["cells.png", "cells.jpg", "cells.tif", "planar.tif",
                                  "alpha.png"])
def test_an_rgb_file_by_colour_name_or_index(rgb_files, colours, name):
    path = rgb_files / name
    pixels = colours if name.endswith((".png", ".tif")) else _decoded(path)
    for k, colour in enumerate(["red", "green", "blue"]):
        for channel in (colour, colour.upper(), str(k)):
            np.testing.assert_array_equal(read_image(path, plane=PlaneChoice(channel)),
                                          pixels[..., k])
    info = describe_image(path)
    n = 4 if name == "alpha.png" else 3
    assert info.n_channels == n
    assert info.channels == ("red", "green", "blue", "alpha")[:n]
    assert info.plane_shape == (96, 128)


def test_an_rgb_file_without_a_channel_says_to_choose_blue(rgb_files):
    message = ("an RGB colour image: choose the channel that holds the nuclei, e.g. --channel "
               "blue (red, green, blue or 0-2; in the dock, its channel list)")
    for name in ("cells.png", "cells.jpg", "cells.tif", "planar.tif"):
        with pytest.raises(ValueError) as exc:
            read_image(rgb_files / name)
        assert str(exc.value) == message
    with pytest.raises(ValueError, match=r"^an RGBA colour image: .* --channel blue \(red, "
                                         r"green, blue or 0-3;"):
        read_image(rgb_files / "alpha.png")
    with pytest.raises(ValueError, match=r"^no channel named 'DAPI': 3 channels \(red, green, "
                                         r"blue\)$"):
        read_image(rgb_files / "cells.png", plane=PlaneChoice("DAPI"))
    with pytest.raises(ValueError, match="^channel 3 does not exist: 3 channels"):
        read_image(rgb_files / "cells.png", plane=PlaneChoice("3"))


@pytest.mark.parametrize("channel", ["blue", "Blue", "2"])
def test_detect_counts_the_blue_channel_of_rgb_files(rgb_files, colours, tmp_path, channel):
    out = tmp_path / "out"
    code = main(["detect", str(rgb_files), "--pattern", "cells.*", "--channel", channel,
                 "--out", str(out), "--quiet", "--workers", "0", "--sigma", "2",
                 "--min-distance", "5", "--threshold", "40"])
    assert code == 0
    rows = pd.read_csv(out / "images.csv", keep_default_na=False)
    names = [p.rsplit("/", 1)[1] for p in rows["path"]]
    assert names == ["cells.jpg", "cells.png", "cells.tif"]
    blue = [_decoded(rgb_files / "cells.jpg")[..., 2], colours[..., 2], colours[..., 2]]
    assert list(rows["n_nuclei"]) == [detect(b, P8).count for b in blue]
    assert detect(colours[..., 2], P8).count != detect(colours[..., 1], P8).count  # not green
    run = json.loads((out / "run.json").read_text())
    assert run["channel"] == channel and run["resume_key"]["channel"] == channel


def test_detect_without_a_channel_is_a_row_error_per_rgb_file(rgb_files, tmp_path):
    out = tmp_path / "out"
    assert main(["detect", str(rgb_files), "--pattern", "*.png", "--out", str(out), "--quiet",
                 "--workers", "0"]) == 1
    rows = pd.read_csv(out / "images.csv", keep_default_na=False)
    assert [e.split(":")[0] for e in rows["error"]] == ["an RGBA colour image",
                                                       "an RGB colour image"]
    assert all("--channel blue" in e and "image[" not in e for e in rows["error"])


# --- time series ----------------------------------------------------------------------------

CZI = ("10T-4C-0Z.czi", "3T-4C-3Z.czi", "3T-4C-3Z-2pos.czi")


@pytest.fixture(scope="module")
def czi_dir():
    pytest.importorskip("bioio")
    pytest.importorskip("bioio_czi")
    root = shared_data_dir()
    folder = None if root is None else root / "czi_ndev"
    if folder is None or not all((folder / name).is_file() for name in CZI):
        pytest.skip("the CZIs of ../shared/data/czi_ndev are not present")
    return folder


def _bioio_plane(path, scene: int, t: int) -> np.ndarray:
    """DAPI (channel 3), maximum over z, of one scene and time point, read by bioio itself."""
    from bioio import BioImage

    img = BioImage(path)
    img.set_scene(scene)
    return img.get_image_data("ZYX", T=t, C=3).max(axis=0)


def test_each_time_point_and_scene_of_a_czi_is_an_image(czi_dir):
    names = {name: [split_image_name(label)[1:] for label in list_images(czi_dir / name, "*").labels]
             for name in CZI}
    assert names["10T-4C-0Z.czi"] == [(None, t) for t in range(10)]
    assert names["3T-4C-3Z.czi"] == [(None, t) for t in range(3)]
    assert names["3T-4C-3Z-2pos.czi"] == [(s, t) for s in range(2) for t in range(3)]
    labels = list_images(czi_dir / "3T-4C-3Z-2pos.czi", "*").labels
    assert [label.rsplit("/", 1)[1] for label in labels] == [
        "3T-4C-3Z-2pos.czi#0_t0", "3T-4C-3Z-2pos.czi#0_t1", "3T-4C-3Z-2pos.czi#0_t2",
        "3T-4C-3Z-2pos.czi#1_t0", "3T-4C-3Z-2pos.czi#1_t1", "3T-4C-3Z-2pos.czi#1_t2"]
    meta = parse_metadata(labels[5])
    assert (meta.scene, meta.timepoint) == ("1", "2")
    assert parse_metadata(scene_path(czi_dir / "10T-4C-0Z.czi", None, 7)).timepoint == "7"
    assert parse_metadata(scene_path(czi_dir / "10T-4C-0Z.czi", None, 7)).scene == ""
    # a file without a time axis keeps its one name
    assert list_images(czi_dir / "0T-4C-0Z.czi", "*").labels == [str(czi_dir / "0T-4C-0Z.czi")]
    # --t: one time point of each time series
    only = list_images(czi_dir, "*T-4C-*Z*.czi", t=1).labels
    assert [label.rsplit("/", 1)[1] for label in only] == [
        "0T-4C-0Z-2pos.czi#0", "0T-4C-0Z-2pos.czi#1", "0T-4C-0Z-7pos.czi#0",
        "0T-4C-0Z-7pos.czi#1", "0T-4C-0Z-7pos.czi#2", "0T-4C-0Z-7pos.czi#3",
        "0T-4C-0Z-7pos.czi#4", "0T-4C-0Z-7pos.czi#5", "0T-4C-0Z-7pos.czi#6",
        "0T-4C-0Z-snap.czi", "0T-4C-0Z.czi", "0T-4C-5Z.czi", "3T-4C-3Z-2pos.czi#0_t1",
        "3T-4C-3Z-2pos.czi#1_t1", "3T-4C-3Z.czi#t1", "10T-4C-0Z.czi#t1"]


def test_a_time_point_reads_the_plane_bioio_reads(czi_dir):
    dapi = PlaneChoice("DAPI", "max")
    for name, scenes, times in (("10T-4C-0Z.czi", [None], 10), ("3T-4C-3Z.czi", [None], 3),
                                ("3T-4C-3Z-2pos.czi", [0, 1], 3)):
        path = czi_dir / name
        planes = []
        for s in scenes:
            for t in range(times):
                got = read_image(scene_path(path, s, t), plane=dapi)
                np.testing.assert_array_equal(got, _bioio_plane(path, s or 0, t))
                planes.append(got)
        assert len({p.tobytes() for p in planes}) == len(planes)  # every time point its own
        # the time point from PlaneChoice reads the same plane as the name's
        np.testing.assert_array_equal(read_image(path, plane=PlaneChoice("DAPI", "max", "1")),
                                      _bioio_plane(path, 0, 1))
    with pytest.raises(ValueError, match="^a time series of 10 time points: choose one with "
                                         "--t INDEX$"):
        read_image(czi_dir / "10T-4C-0Z.czi", plane=PlaneChoice("DAPI"))
    with pytest.raises(ValueError, match="^time point 10 does not exist: 10 time points, "
                                         "numbered from 0$"):
        read_image(scene_path(czi_dir / "10T-4C-0Z.czi", None, 10), plane=PlaneChoice("DAPI"))
    with pytest.raises(ValueError, match=r"^t must be a time point index \(0, 1, ...\), not "
                                         "'last'$"):
        PlaneChoice(t="last")


@pytest.fixture
def czi_plate(czi_dir, tmp_path):
    """Copies of two time-lapse CZIs named as wells B02 and B03 (ImageXpress names)."""
    folder = tmp_path / "time lapse"
    folder.mkdir()
    shutil.copy(czi_dir / "10T-4C-0Z.czi", folder / "P1_B02_s1.czi")
    shutil.copy(czi_dir / "3T-4C-3Z-2pos.czi", folder / "P1_B03_s1.czi")
    return folder


def test_detect_writes_a_row_per_time_point_and_wells_per_time_point(czi_plate, tmp_path):
    out = tmp_path / "out"
    assert main(["detect", str(czi_plate), "--pattern", "*.czi", "--channel", "DAPI", "--z",
                 "max", "--out", str(out), "--quiet", "--workers", "0", *PCZI_ARGS]) == 0
    images = pd.read_csv(out / "images.csv", keep_default_na=False,
                         dtype={"timepoint": str, "scene": str})
    b02, b03 = czi_plate / "P1_B02_s1.czi", czi_plate / "P1_B03_s1.czi"
    expected = ([(f"{b02}#t{t}", "B02", str(t), "", detect(_bioio_plane(b02, 0, t), PCZI).count)
                 for t in range(10)]
                + [(f"{b03}#{s}_t{t}", "B03", str(t), str(s),
                    detect(_bioio_plane(b03, s, t), PCZI).count)
                   for s in range(2) for t in range(3)])
    assert images[["path", "well", "timepoint", "scene", "n_nuclei"]].values.tolist() == [
        list(row) for row in expected]
    assert (images["error"] == "").all()
    wells = pd.read_csv(out / "wells.csv", keep_default_na=False, dtype={"timepoint": str})
    assert list(wells.columns[:4]) == ["plate", "well", "timepoint", "images"]
    by_time = {}
    for _, well, t, _, n in expected:
        by_time.setdefault((well, t), []).append(n)
    assert wells[["well", "timepoint", "images", "total"]].values.tolist() == [
        [well, t, len(ns), sum(ns)] for (well, t), ns in by_time.items()]
    run = json.loads((out / "run.json").read_text())
    assert "t" not in run and "t" not in run["resume_key"]


def test_t_restricts_the_run_to_one_time_point_and_is_in_the_resume_key(czi_plate, tmp_path):
    def args(out):
        return ["detect", str(czi_plate), "--pattern", "*.czi", "--channel", "DAPI", "--z",
                "max", "--out", str(out), "--quiet", "--workers", "0", *PCZI_ARGS]

    out = tmp_path / "out"
    assert main([*args(out), "--t", "2"]) == 0
    images = pd.read_csv(out / "images.csv", keep_default_na=False,
                         dtype={"timepoint": str, "scene": str})
    b02, b03 = czi_plate / "P1_B02_s1.czi", czi_plate / "P1_B03_s1.czi"
    assert images[["path", "timepoint", "n_nuclei"]].values.tolist() == [
        [f"{b02}#t2", "2", detect(_bioio_plane(b02, 0, 2), PCZI).count],
        [f"{b03}#0_t2", "2", detect(_bioio_plane(b03, 0, 2), PCZI).count],
        [f"{b03}#1_t2", "2", detect(_bioio_plane(b03, 1, 2), PCZI).count]]
    run = json.loads((out / "run.json").read_text())
    assert run["t"] == "2" and run["resume_key"]["t"] == "2"
    again = Run(czi_plate, PCZI, pattern="*.czi", channel="DAPI", z="max", t=2, out=out,
                resume=True)
    again.prepare()
    assert again.done == {0, 1, 2}
    again.close()
    # a time point that B03's file does not have: its rows say so, B02's is counted
    out5 = tmp_path / "out5"
    assert main([*args(out5), "--t", "5"]) == 1
    rows = pd.read_csv(out5 / "images.csv", keep_default_na=False, dtype={"n_nuclei": str})
    assert rows["error"].tolist() == [
        "", "time point 5 does not exist: 3 time points, numbered from 0",
        "time point 5 does not exist: 3 time points, numbered from 0"]
    assert rows["n_nuclei"].tolist() == [str(detect(_bioio_plane(b02, 0, 5), PCZI).count), "", ""]


def test_a_bad_t_is_a_usage_error(czi_plate, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["detect", str(czi_plate), "--t", "last"])
    assert exc.value.code == 2
    assert "t must be a time point index" in capsys.readouterr().err


def test_ome_tiff_and_imagej_time_series(tmp_path):
    frames = np.stack([make_nuclei_image(40 + t, n_nuclei=20 + 10 * t, shape=(64, 80))[0]
                       for t in range(3)])
    ome = tmp_path / "movie.ome.tif"
    tifffile.imwrite(ome, frames, metadata={"axes": "TYX"})
    labels = list_images(ome, "*").labels
    assert labels == [f"{ome}#t{t}" for t in range(3)]
    for t, label in enumerate(labels):
        np.testing.assert_array_equal(read_image(label), frames[t])
    # a file named like one of the time points beside it: both are refused, saying why
    twin = tmp_path / "movie.ome.tif#t1"
    tifffile.imwrite(twin, frames[0])
    found = list_images(ome, "*")
    assert found.errors == ["the name movie.ome.tif#t1 is both a file and time point 1 of "
                            "movie.ome.tif: rename the file movie.ome.tif#t1 (a name ending in # "
                            "and a number is a scene's or a time point's)"]
    with pytest.raises(ValueError, match="is both a file and time point 1 of movie.ome.tif"):
        read_image(twin)
    twin.unlink()
    ij = tmp_path / "movie.tif"
    tifffile.imwrite(ij, frames, imagej=True, metadata={"axes": "TYX"})
    np.testing.assert_array_equal(read_image(ij, plane=PlaneChoice(t="2")), frames[2])
    with pytest.raises(ValueError, match="^a time series of 3 time points: choose one with "
                                         "--t INDEX$"):
        read_image(ij)
    P = DetectionParams(2.0, 4, 1000.0)
    run = Run(ome, P, workers=0)
    counts = [r.count for r in sorted(run, key=lambda r: r.index)]
    assert counts == [detect(f, P).count for f in frames]
    # an ImageJ file's time points are not listed (plain TIFFs are not opened to list them):
    # --t reads its time point, and the results folder reads it again
    out = tmp_path / "out"
    assert main(["detect", str(ij), "--t", "1", "--out", str(out), "--quiet", "--workers", "0",
                 "--sigma", "2", "--min-distance", "4", "--threshold", "1000"]) == 0
    images = pd.read_csv(out / "images.csv", keep_default_na=False)
    assert images[["path", "n_nuclei"]].values.tolist() == [[str(ij), detect(frames[1], P).count]]
    stack, _ = read_results(str(out))
    np.testing.assert_array_equal(np.asarray(stack[0][0]), frames[1])


# --- the napari reader and the dock -----------------------------------------------------------


def test_the_reader_shows_time_as_a_slider(czi_dir, make_napari_viewer):
    viewer = make_napari_viewer()
    for data, kwargs, kind in read_image_file(str(czi_dir / "10T-4C-0Z.czi")):
        viewer._add_layer_from_data(data, kwargs, kind)
    assert [layer.name for layer in viewer.layers] == ["AF647", "AF568", "AF488", "DAPI"]
    assert viewer.dims.axis_labels == ("t", "y", "x")
    assert viewer.dims.nsteps == (10, 32, 32)
    viewer.dims.set_point(0, 7)
    np.testing.assert_array_equal(viewer.layers["DAPI"]._slice.image.raw,
                                  _bioio_plane(czi_dir / "10T-4C-0Z.czi", 0, 7))
    viewer.layers.clear()
    for data, kwargs, kind in read_image_file(str(czi_dir / "3T-4C-3Z.czi")):
        viewer._add_layer_from_data(data, kwargs, kind)
    assert viewer.dims.axis_labels == ("t", "z", "y", "x")
    assert viewer.dims.nsteps == (3, 3, 32, 32)


def test_the_reader_shows_a_results_folder_of_time_points(czi_plate, tmp_path):
    out = tmp_path / "out"
    assert main(["detect", str(czi_plate / "P1_B03_s1.czi"), "--channel", "DAPI", "--z", "max",
                 "--out", str(out), "--quiet", "--workers", "0", *PCZI_ARGS]) == 0
    stack, points = read_results(str(out))
    data, kwargs, _ = stack
    b03 = czi_plate / "P1_B03_s1.czi"
    assert kwargs["metadata"][META_KEY]["paths"] == [f"{b03}#{s}_t{t}" for s in range(2)
                                                     for t in range(3)]
    assert data.shape == (6, 32, 32)
    for i, (s, t) in enumerate((s, t) for s in range(2) for t in range(3)):
        np.testing.assert_array_equal(np.asarray(data[i]), _bioio_plane(b03, s, t))
    coords = points[0]
    counts = [detect(_bioio_plane(b03, s, t), PCZI).count for s in range(2) for t in range(3)]
    assert np.bincount(coords[:, 0].astype(int), minlength=6).tolist() == counts


def test_a_folder_of_rgb_files_opens_as_red_green_blue_layers(rgb_files, colours):
    from napari_nuclei_counter._reader import stack_layers

    layers = stack_layers([rgb_files / "cells.png", rgb_files / "alpha.png"], "colour")
    assert [(kw["name"], kw["colormap"]) for _, kw, _ in layers] == [
        ("colour [red]", "red"), ("colour [green]", "green"), ("colour [blue]", "blue")]
    for k, (data, _, _) in enumerate(layers):
        np.testing.assert_array_equal(np.asarray(data[1]), colours[..., k])


@pytest.mark.gui
def test_the_dock_offers_red_green_blue_and_counts_blue(make_napari_viewer, qtbot, rgb_files,
                                                       colours):
    pytest.importorskip("qtpy")
    from test_dock_folder import _folder_dock, _shown

    viewer = make_napari_viewer()
    widget = _folder_dock(viewer, rgb_files, pattern="cells.png")
    widget.model.params = P8
    channels = widget.source_panel.channels
    qtbot.waitUntil(lambda: _shown(channels.channel, widget), timeout=15000)
    combo = channels.channel.native
    assert [combo.itemText(i) for i in range(combo.count())] == ["0: red", "1: green", "2: blue"]
    assert channels.channel.value == 2 and channels.choice() == (2, None)  # DAPI is blue
    qtbot.waitUntil(lambda: "folder preview" in viewer.layers, timeout=15000)
    np.testing.assert_array_equal(viewer.layers["folder preview"].data, colours[..., 2])
    widget.run_panel.start_run()
    qtbot.waitUntil(lambda: widget.settled, timeout=60000)
    assert widget.store.results[0].count == detect(colours[..., 2], P8).count
