"""OME-Zarr (NGFF) plates and images: fields from the plate metadata, channel choice, resume.

The plates are written with ome-zarr-py (NGFF 0.5 on Zarr v3, and 0.4 on Zarr v2), as
acquisition and conversion tools write them: wells ``{row}/{column}``, fields listed in
each well's metadata, a pyramid of which only the full-resolution level is counted.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from napari_nuclei_counter import DetectionParams, detect
from napari_nuclei_counter.cli.app import main
from napari_nuclei_counter.core.io.discovery import ImageMeta, parse_metadata
from napari_nuclei_counter.core.io.images import PlaneChoice, read_image
from napari_nuclei_counter.core.io.plates import plate_fields
from napari_nuclei_counter.core.sample import make_nuclei_image

zarr = pytest.importorskip("zarr")
writer = pytest.importorskip("ome_zarr.writer")
ome_format = pytest.importorskip("ome_zarr.format")

P = DetectionParams(4.0, 6, 1000.0)
WELLS = {"B/3": 2, "C/11": 3}  # well path -> number of fields
CHANNELS = [{"label": name, "color": colour, "active": True,
             "window": {"start": 0, "end": 65535, "min": 0, "max": 65535}}
            for name, colour in (("Tubulin", "00FF00"), ("DAPI", "0000FF"))]


def _dapi(seed: int) -> np.ndarray:
    return make_nuclei_image(seed, n_nuclei=25 + 5 * seed, shape=(128, 160))[0]


def write_plate(path, version: str = "0.5") -> dict:
    """A 2-well plate (B03: 2 fields, C11: 3), 2 channels (Tubulin, DAPI); returns DAPI by field."""
    fmt = ome_format.FormatV05() if version == "0.5" else ome_format.FormatV04()
    root = zarr.open_group(str(path), mode="w", zarr_format=3 if version == "0.5" else 2)
    writer.write_plate_metadata(root, ["B", "C"], ["3", "11"], list(WELLS), fmt=fmt,
                                name="Screen 7")
    dapi, seed = {}, 0
    for well, n in WELLS.items():
        row, col = well.split("/")
        group = root.require_group(row).require_group(col)
        writer.write_well_metadata(group, [str(f) for f in range(n)], fmt=fmt)
        for f in range(n):
            seed += 1
            image = _dapi(seed)
            stack = np.stack([np.full_like(image, 250), image])
            writer.write_image(stack, group.require_group(str(f)), axes="cyx", fmt=fmt,
                               scale_factors=[2], omero={"channels": CHANNELS})
            dapi[f"{well}/{f}"] = image
    return dapi


@pytest.fixture(params=["0.5", "0.4"])
def plate(request, tmp_path):
    path = tmp_path / "screen7.ome.zarr"
    return path, write_plate(path, request.param)


def test_fields_come_from_the_plate_metadata(plate):
    path, dapi = plate
    fields = plate_fields(path)
    assert [str(f.relative_to(path)) for f in fields] == list(dapi)
    assert parse_metadata(fields[3]) == ImageMeta("Screen 7", "C11", "1")
    np.testing.assert_array_equal(read_image(fields[0], plane=PlaneChoice("DAPI")), dapi["B/3/0"])
    with pytest.raises(ValueError, match=r"^2 channels \(Tubulin, DAPI\): choose one"):
        read_image(fields[0])


def test_detect_a_plate_with_a_channel_choice(plate, tmp_path):
    path, dapi = plate
    out = tmp_path / "out"
    assert main(["detect", str(path), "--channel", "DAPI", "--sigma", "4", "--min-distance", "6",
                 "--threshold", "1000", "--out", str(out), "--quiet", "--workers", "0"]) == 0
    images = pd.read_csv(out / "images.csv", keep_default_na=False, dtype=str)
    assert list(images["well"]) == ["B03", "B03", "C11", "C11", "C11"]
    assert list(images["site"]) == ["0", "1", "0", "1", "2"]
    assert set(images["plate"]) == {"Screen 7"}
    expected = [len(detect(img, P, engine="reference")[0]) for img in dapi.values()]
    assert images["n_nuclei"].astype(int).tolist() == expected
    wells = pd.read_csv(out / "wells.csv")
    assert wells["images"].tolist() == [2, 3]
    assert wells["total"].tolist() == [sum(expected[:2]), sum(expected[2:])]
    run = json.loads((out / "run.json").read_text())
    assert run["names"] == "OME-Zarr plate" and run["channel"] == "DAPI"
    # the gallery and the plate map read the plate's fields again with the run's channel
    assert main(["gallery", str(out), "--out", str(tmp_path / "g.png")]) == 0
    assert main(["platemap", str(out), "--out", str(tmp_path / "m.png")]) == 0
    assert (tmp_path / "g.png").stat().st_size > 0 and (tmp_path / "m.png").stat().st_size > 0
    # resume: nothing to redo, the same rows
    before = (out / "nuclei.csv").read_text()
    assert main(["detect", str(path), "--channel", "DAPI", "--sigma", "4", "--min-distance", "6",
                 "--threshold", "1000", "--out", str(out), "--quiet", "--workers", "0",
                 "--resume"]) == 0
    assert (out / "nuclei.csv").read_text() == before


def test_a_plate_without_a_channel_choice_fails_each_field_clearly(plate, tmp_path):
    path, _ = plate
    out = tmp_path / "out"
    assert main(["detect", str(path), "--out", str(out), "--quiet", "--workers", "0"]) == 1
    errors = set(pd.read_csv(out / "images.csv", keep_default_na=False)["error"])
    assert errors == {"2 channels (Tubulin, DAPI): choose one with --channel"}


def test_ome_zarr_images_in_a_folder(tmp_path):
    images = {}
    for i in range(2):
        image = _dapi(10 + i)
        writer.write_image(image, zarr.open_group(str(tmp_path / f"well{i}_w1.ome.zarr"), mode="w"),
                           axes="yx", scale_factors=[2])
        images[i] = image
    out = tmp_path / "out"
    assert main(["detect", str(tmp_path), "--pattern", "*.ome.zarr", "--sigma", "4",
                 "--min-distance", "6", "--threshold", "1000", "--out", str(out), "--quiet",
                 "--workers", "0"]) == 0
    counts = pd.read_csv(out / "images.csv")["n_nuclei"].tolist()
    assert counts == [len(detect(images[i], P, engine="reference")[0]) for i in range(2)]
