"""Multi-channel files and z-stacks: one channel or a projection chosen, clear errors otherwise."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_nuclei_counter import DetectionParams, detect
from napari_nuclei_counter.cli.app import main
from napari_nuclei_counter.core.io.images import PlaneChoice, read_image
from napari_nuclei_counter.core.run.pipeline import Run
from napari_nuclei_counter.core.sample import make_nuclei_image

P = DetectionParams(4.0, 6, 1000.0)


@pytest.fixture(scope="module")
def dapi():
    return make_nuclei_image(31, n_nuclei=80, shape=(256, 320))[0]


@pytest.fixture
def two_channels(tmp_path, dapi):
    """A 2-channel OME-TIFF (Tubulin, DAPI) and the same as an ImageJ hyperstack."""
    tubulin = np.full_like(dapi, 300)
    stack = np.stack([tubulin, dapi])
    ome = tmp_path / "cells_w1.ome.tif"
    tifffile.imwrite(ome, stack, metadata={"axes": "CYX", "Channel": {"Name": ["Tubulin", "DAPI"]}},
                     compression="zlib")
    ij = tmp_path / "cells_ij_w1.tif"
    tifffile.imwrite(ij, stack, imagej=True, metadata={"axes": "CYX", "Labels": ["Tubulin", "DAPI"]})
    return ome, ij


@pytest.mark.parametrize("channel", ["DAPI", "dapi", "1"])
def test_a_channel_by_name_or_index(two_channels, dapi, channel):
    for path in two_channels:
        np.testing.assert_array_equal(read_image(path, plane=PlaneChoice(channel)), dapi)


def test_without_a_choice_the_error_lists_the_channels(two_channels):
    for path in two_channels:
        with pytest.raises(ValueError, match=r"^2 channels \(Tubulin, DAPI\): choose one with "
                                             r"--channel$"):
            read_image(path)
    with pytest.raises(ValueError, match=r"no channel named 'GFP': 2 channels \(Tubulin, DAPI\)"):
        read_image(two_channels[0], plane=PlaneChoice("GFP"))
    with pytest.raises(ValueError, match="channel 2 does not exist"):
        read_image(two_channels[0], plane=PlaneChoice("2"))


def test_z_stacks_project_or_pick_a_plane(tmp_path, dapi):
    planes = np.stack([dapi // 2, dapi, dapi // 3]).astype(np.uint16)
    z = tmp_path / "stack_w1.ome.tif"
    tifffile.imwrite(z, planes, metadata={"axes": "ZYX"})
    np.testing.assert_array_equal(read_image(z, plane=PlaneChoice(z="max")), planes.max(0))
    np.testing.assert_allclose(read_image(z, plane=PlaneChoice(z="mean")), planes.mean(0))
    np.testing.assert_array_equal(read_image(z, plane=PlaneChoice(z="1")), dapi)
    with pytest.raises(ValueError, match="a z-stack of 3 planes: choose --z max"):
        read_image(z)
    pages = tmp_path / "pages_w1.tif"
    with tifffile.TiffWriter(pages) as tw:  # plain pages, no axis metadata
        for p in planes:
            tw.write(p, metadata=None, contiguous=False)
    with pytest.raises(ValueError, match="3 pages without axis metadata: choose --z"):
        read_image(pages)
    np.testing.assert_array_equal(read_image(pages, plane=PlaneChoice(z="max")), planes.max(0))
    with pytest.raises(ValueError, match="z must be 'max', 'mean' or a plane index"):
        PlaneChoice(z="median")


def test_z_and_channel_together(tmp_path, dapi):
    zc = np.stack([np.stack([np.zeros_like(dapi), dapi // (k + 1)]) for k in range(3)])
    path = tmp_path / "zc_w1.ome.tif"
    tifffile.imwrite(path, zc, metadata={"axes": "ZCYX", "Channel": {"Name": ["GFP", "DAPI"]}})
    np.testing.assert_array_equal(read_image(path, plane=PlaneChoice("DAPI", "max")), dapi)


def test_command_line_channel_goes_into_rows_run_json_and_resume_key(two_channels, tmp_path, dapi):
    folder = two_channels[0].parent
    out = tmp_path / "out"
    # without --channel: every multi-channel file is a row error that says what to do
    assert main(["detect", str(folder), "--out", str(out), "--quiet", "--workers", "0"]) == 1
    rows = pd.read_csv(out / "images.csv", keep_default_na=False)
    assert set(rows["error"]) == {"2 channels (Tubulin, DAPI): choose one with --channel"}
    assert main(["detect", str(folder), "--out", str(out), "--quiet", "--channel", "DAPI"]) == 0
    rows = pd.read_csv(out / "images.csv", keep_default_na=False)
    assert list(rows["n_nuclei"]) == [detect(dapi, P).count] * 2
    run = json.loads((out / "run.json").read_text())
    assert run["channel"] == "DAPI" and run["z"] is None
    assert run["resume_key"]["channel"] == "DAPI"
    # a resume with another channel does not keep the DAPI rows
    assert main(["detect", str(folder), "--out", str(out), "--quiet", "--channel", "0",
                 "--resume"]) == 0
    rows = pd.read_csv(out / "images.csv", keep_default_na=False)
    assert list(rows["n_nuclei"]) == [0, 0]  # Tubulin: flat, no nuclei
    again = Run(folder, P, out=out, resume=True, channel="0")
    again.prepare()
    assert again.done == {0, 1}  # the same choice: everything is done


def test_a_bad_z_is_a_usage_error(two_channels, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["detect", str(two_channels[0].parent), "--z", "middle"])
    assert exc.value.code == 2
    assert "z must be 'max', 'mean' or a plane index" in capsys.readouterr().err
