"""File names of plate imagers other than BBBC021 give plate, well, site and channel.

Each name is written as a public source shows it (found with the project's search tool):
- ImageXpress: ezstitcher's docs (``docs/source/appendices/microscope_formats.rst``,
  ``A01_s1_w1.tif``) and CellProfiler pipelines' regex ``^(?P<Plate>.*)_(?P<Well>[A-P][0-9]{2})_s``;
  the prefixed form ``MyPlate_D05_s3_w1<UUID>.tif`` is the issue's.
- Opera Phenix / Operetta: ezstitcher's Opera Phenix notes (``r03c04f144p05-ch3sk1fk1fl1.tiff``)
  and MoBIE's ``HCSPattern`` (``r01c01f04p01-ch1sk1fk1fl1.tiff``).
- Yokogawa CV7000/CV8000: a CV7000 file-name template ``{}_{}_T0001F{}L01A01Z01C{}.tif`` and the
  glob ``*_???_T????F???L??A??Z??C??.tif`` in public converters.
- Thermo Cellomics: a Cellomics-screen module's docstring (``'A01f00d0'``: well A01, field 0,
  channel 0); the prefix before it is the plate, as the instrument writes it.
- IN Cell Analyzer: a public IC6000 parser's comment (``20180328_TestAbs_G - 8(fld 4 wv Red -
  Cy5).tif``); the short form ``B - 03(fld 1 wv ...)`` is the issue's.
- Incucyte: MoBIE's ``HCSPattern`` (``MiaPaCa2-PhaseOriginal_A2_1_03d06h40m.tif``).
"""

from __future__ import annotations

import json

import pytest

from napari_nuclei_counter.core.io.discovery import ImageMeta, name_scheme, parse_metadata

NAMES = [
    ("Week1_22123_B02_s4_w1EB868A72-19FC-46BB-BDFA-66B8966A817C.tif", "BBBC021",
     ImageMeta("22123", "B02", "s4", "w1")),
    ("MyPlate_D05_s3_w12516AC85-E2EB-45E3-8CDB-31FE6899A08E.tif", "ImageXpress",
     ImageMeta("MyPlate", "D05", "s3", "w1")),
    ("A01_s1_w1.tif", "ImageXpress", ImageMeta("", "A01", "s1", "w1")),
    ("r02c03f01p01-ch1sk1fk1fl1.tiff", "Opera Phenix", ImageMeta("", "B03", "f01", "ch1", "01")),
    ("r03c04f144p05-ch3sk1fk1fl1.tiff", "Opera Phenix",
     ImageMeta("", "C04", "f144", "ch3", "05")),
    ("AssayPlate_Greiner_655090_C04_T0001F002L01A01Z01C01.tif", "Yokogawa CV7000",
     ImageMeta("AssayPlate_Greiner_655090", "C04", "F002", "C01", "01", "0001")),
    ("AS_09125_050118150001_A01f00d0.TIF", "Cellomics",
     ImageMeta("AS_09125_050118150001", "A01", "f00", "d0")),
    ("20180328_TestAbs_G - 8(fld 4 wv Red - Cy5).tif", "IN Cell Analyzer",
     ImageMeta("20180328_TestAbs", "G08", "fld 4", "Red - Cy5")),
    ("B - 03(fld 1 wv DAPI - DAPI).tif", "IN Cell Analyzer",
     ImageMeta("", "B03", "fld 1", "DAPI - DAPI")),
    ("MiaPaCa2-PhaseOriginal_A2_1_03d06h40m.tif", "Incucyte",
     ImageMeta("MiaPaCa2-PhaseOriginal", "A02", "1", "")),
]


@pytest.mark.parametrize("name, scheme, meta", NAMES, ids=[n[1] + ":" + n[0][:12] for n in NAMES])
def test_imager_names_give_their_metadata(name, scheme, meta):
    assert name_scheme(name) == scheme
    assert parse_metadata("/data/a plate (1)/" + name) == meta


@pytest.mark.parametrize("name", ["01_POS002_D.TIF", "img2d.tif", "A9 p7d.tif"])
def test_other_names_stay_blank(name):
    assert name_scheme(name) == "" and parse_metadata(name) == ImageMeta()


def test_a_user_regex_wins_over_the_schemes():
    rx = r"(?P<well>[A-H]\d+)-(?P<site>\d+)"
    assert parse_metadata("r02c03f01p01-ch1sk1fk1fl1.tiff", rx) == ImageMeta()
    assert parse_metadata("x_B4-7.tif", rx) == ImageMeta("", "B04", "7", "")


def test_the_scheme_used_goes_into_run_json(tmp_path):
    import numpy as np
    import tifffile

    from napari_nuclei_counter.cli.app import main

    for row, col in ((2, 3), (2, 4)):
        tifffile.imwrite(tmp_path / f"r{row:02d}c{col:02d}f01p01-ch1sk1fk1fl1.tiff",
                         np.zeros((64, 64), np.uint16))
    out = tmp_path / "out"
    assert main(["detect", str(tmp_path), "--pattern", "*-ch1*.tiff", "--out", str(out),
                 "--quiet", "--workers", "0"]) == 0
    assert json.loads((out / "run.json").read_text())["names"] == "Opera Phenix"
    wells = (out / "images.csv").read_text()
    assert ",B03,f01,ch1,01,,," in wells and ",B04,f01,ch1,01,,," in wells


def test_plane_time_point_and_scene_get_columns_of_their_own():
    meta = parse_metadata("/d/AssayPlate_Greiner_655090_C04_T0003F002L01A01Z02C01.tif#4")
    assert (meta.plane, meta.timepoint, meta.scene) == ("02", "0003", "4")
    assert meta.as_dict() == {"plate": "AssayPlate_Greiner_655090", "well": "C04", "site": "F002",
                              "channel": "C01", "plane": "02", "timepoint": "0003", "scene": "4"}


def test_wells_csv_keeps_time_points_apart(tmp_path):
    import numpy as np
    import pandas as pd
    import tifffile

    from napari_nuclei_counter.cli.app import main
    from napari_nuclei_counter.core.results.wells import plate_map_values
    from napari_nuclei_counter.core.sample import make_nuclei_image

    counts = {}
    for t, n in ((1, 10), (2, 30)):
        for field in (1, 2):
            image, centres = make_nuclei_image(t * 10 + field, n_nuclei=n + field, shape=(160, 160))
            name = f"Screen_C04_T{t:04d}F{field:03d}L01A01Z01C01.tif"
            tifffile.imwrite(tmp_path / name, image)
    out = tmp_path / "out"
    assert main(["detect", str(tmp_path), "--pattern", "*C01.tif", "--out", str(out), "--quiet",
                 "--workers", "0", "--sigma", "2", "--min-distance", "4",
                 "--threshold", "500"]) == 0
    images = pd.read_csv(out / "images.csv", keep_default_na=False, dtype={"timepoint": str})
    wells = pd.read_csv(out / "wells.csv", keep_default_na=False, dtype={"timepoint": str})
    assert list(wells.columns[:4]) == ["plate", "well", "timepoint", "images"]
    assert wells[["well", "timepoint", "images"]].values.tolist() == [["C04", "0001", 2],
                                                                     ["C04", "0002", 2]]
    for t in ("0001", "0002"):
        counts[t] = int(images.loc[images["timepoint"] == t, "n_nuclei"].sum())
    assert wells["total"].tolist() == [counts["0001"], counts["0002"]]
    assert counts["0002"] > counts["0001"]
    grid = plate_map_values(wells, value="total")  # the first time point
    assert np.nanmax(grid) == counts["0001"]
