"""The napari reader on real microscope files: channels as layers, PNG folders, OME-Zarr plates."""

from __future__ import annotations

import imagecodecs
import numpy as np
import pytest
import tifffile

from helpers import PLUGIN
from napari_nuclei_counter._reader import META_KEY, napari_get_reader, read_image_file
from napari_nuclei_counter.core.sample import make_nuclei_image


@pytest.fixture(scope="module")
def dapi():
    return make_nuclei_image(41, n_nuclei=40, shape=(96, 128))[0]


@pytest.fixture
def two_channel_file(tmp_path, dapi):
    path = tmp_path / "cells.ome.tif"
    tifffile.imwrite(path, np.stack([np.full_like(dapi, 300), dapi]),
                     metadata={"axes": "CYX", "Channel": {"Name": ["Tubulin", "DAPI"]}},
                     compression="lzw")
    return path


def test_a_multi_channel_file_is_one_layer_per_channel(two_channel_file, dapi):
    assert napari_get_reader(str(two_channel_file)) is read_image_file
    [(data, kwargs, kind)] = read_image_file(str(two_channel_file))
    assert kind == "image" and data.shape == (2, 96, 128)
    assert kwargs["channel_axis"] == 0 and kwargs["name"] == ["Tubulin", "DAPI"]
    np.testing.assert_array_equal(data[1], dapi)


def test_a_z_stack_keeps_its_planes_as_a_slider(tmp_path, dapi):
    path = tmp_path / "stack.ome.tif"
    tifffile.imwrite(path, np.stack([dapi, dapi // 2, dapi // 3]), metadata={"axes": "ZYX"})
    [(data, kwargs, _)] = read_image_file(str(path))
    assert data.shape == (3, 96, 128) and "channel_axis" not in kwargs


def test_a_folder_of_16_bit_pngs_is_one_stack(tmp_path, dapi):
    for i in range(3):
        (tmp_path / f"field{i}.png").write_bytes(imagecodecs.png_encode(dapi + i))
    reader = napari_get_reader(str(tmp_path))
    [(stack, kwargs, _)] = reader(str(tmp_path))
    assert stack.shape == (3, 96, 128) and stack.dtype == np.uint16
    np.testing.assert_array_equal(np.asarray(stack[2]), dapi + 2)
    assert [p.rsplit("/", 1)[1] for p in kwargs["metadata"][META_KEY]["paths"]] == [
        "field0.png", "field1.png", "field2.png"]


def test_a_folder_of_two_channel_files_gives_a_stack_per_channel(tmp_path, dapi):
    for i in range(2):
        tifffile.imwrite(tmp_path / f"A0{i + 1}_s1.ome.tif", np.stack([np.full_like(dapi, 9), dapi]),
                         metadata={"axes": "CYX", "Channel": {"Name": ["Tubulin", "DAPI"]}})
    layers = napari_get_reader(str(tmp_path))(str(tmp_path))
    assert [kw["name"] for _, kw, _ in layers] == [f"{tmp_path.name} [Tubulin]",
                                                    f"{tmp_path.name} [DAPI]"]
    stack, kwargs, _ = layers[1]
    assert kwargs["metadata"][META_KEY]["channel"] == "1"
    assert kwargs["metadata"][META_KEY]["channel_name"] == "DAPI"
    np.testing.assert_array_equal(np.asarray(stack[0]), dapi)


def test_an_ome_zarr_plate_opens_as_stacks_of_its_fields(tmp_path):
    pytest.importorskip("ome_zarr")
    from test_plates import write_plate

    path = tmp_path / "screen7.ome.zarr"
    dapi = write_plate(path)
    layers = napari_get_reader(str(path))(str(path))
    assert [kw["name"] for _, kw, _ in layers] == ["screen7 [Tubulin]", "screen7 [DAPI]"]
    stack, kwargs, _ = layers[1]
    assert stack.shape == (5, 128, 160)
    np.testing.assert_array_equal(np.asarray(stack[4]), dapi["C/11/2"])
    assert [m["well"] for m in kwargs["metadata"][META_KEY]["meta"]] == ["B03"] * 2 + ["C11"] * 3


@pytest.mark.gui
def test_napari_opens_a_two_channel_file_as_two_layers(make_napari_viewer_proxy, two_channel_file):
    viewer = make_napari_viewer_proxy()
    viewer.open(str(two_channel_file), plugin=PLUGIN)
    assert [layer.name for layer in viewer.layers] == ["Tubulin", "DAPI"]
    assert viewer.layers["DAPI"].data.shape == (96, 128)


def test_thumbnails_read_multi_channel_files_with_the_runs_choice(two_channel_file, dapi):
    from napari_nuclei_counter.core.io.images import PlaneChoice
    from napari_nuclei_counter.core.render.gallery import image_thumbnail, load_plane

    np.testing.assert_array_equal(load_plane(str(two_channel_file), None, 0, PlaneChoice("DAPI")),
                                  dapi)
    tile = image_thumbnail(str(two_channel_file), None, 0, np.array([[10, 10]]), 64,
                           plane=PlaneChoice("DAPI"))
    assert tile.shape[:2] == (48, 64) and tile.ndim == 3
    with pytest.raises(ValueError, match=r"2 channels \(Tubulin, DAPI\)"):
        load_plane(str(two_channel_file), None, 0)
