"""Treatments (issue 25): layouts, percent of control, Z', robust z, dose-response fits, files."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from napari_nuclei_counter.core.results.tables import load_results
from napari_nuclei_counter.core.treatments import (
    LayoutError,
    analyze,
    draw_dose_response,
    read_annotations,
    read_layout,
    write_outputs,
)
from treatment_plates import (
    DMSO_MEANS,
    IMAGE_CSV,
    MOA_CSV,
    PLATE,
    TAXOL_MEANS,
    TRUTH,
    write_results_folder,
    write_week1,
)

needs_bbbc021 = pytest.mark.skipif(not IMAGE_CSV.exists(),
                                   reason="../shared/data/bbbc021_metadata not present")

#: relative tolerance of a fitted IC50 against the truth: the counts are whole nuclei
#: (rounded from the true curve), which moves the fitted midpoint by well under 5%
IC50_RTOL = 0.05


@pytest.fixture(scope="module")
def week1(tmp_path_factory):
    if not IMAGE_CSV.exists():
        pytest.skip("../shared/data/bbbc021_metadata not present")
    folder, means, table = write_week1(tmp_path_factory.mktemp("week1") / "results")
    layout = read_layout(IMAGE_CSV)
    analysis = analyze(load_results(folder).images, layout, positive="taxol@0.3",
                       annotations=read_annotations(MOA_CSV))
    return folder, means, table, analysis


# --------------------------------------------------------------------------- BBBC021's table


@needs_bbbc021
def test_bbbc021_table_is_read_as_a_per_image_layout():
    layout = read_layout(IMAGE_CSV)
    assert layout.kind == "images"
    assert len(layout.wells) == 55 * 60  # 55 plates of 60 wells
    assert len(layout.files) == 13_200 * 3  # DAPI, tubulin and actin names
    row = layout.wells[(layout.wells["plate"] == PLATE) & (layout.wells["well"] == "D05")].iloc[0]
    assert (row["compound"], row["concentration"], row["control"]) == ("taxol", 0.3, "")
    assert layout.extras == ("TableNumber", "Replicate")  # ImageNumber differs per image
    assert layout.sha256 == hashlib.sha256(IMAGE_CSV.read_bytes()).hexdigest()


def test_week1_names_join_to_the_tables_plate_and_well(week1):
    folder, means, table, a = week1
    images = load_results(folder).images
    assert set(images["plate"]) == {"150607"}  # the date the names carry as a plate
    assert set(a.images["plate"]) == {PLATE}  # the table's plate takes precedence
    assert a.warnings == []
    assert sorted(a.wells["well"]) == sorted(means)
    assert a.wells["in_layout"].all()
    by_well = a.wells.set_index("well")
    assert by_well.loc["B02", "compound"] == "DMSO"
    assert by_well.loc["C05", "compound"] == "aphidicolin"
    assert by_well.loc["C05", "concentration"] == 1.0
    assert by_well.loc["B05", "moa"] == "Actin disruptors"  # joined by compound alone
    assert by_well.loc["B05", "Replicate"] == "1"
    first = a.images.iloc[0]
    assert first["compound"] == table.loc[table["Image_FileName_DAPI"]
                                          == first["path"].rsplit("/", 1)[1],
                                          "Image_Metadata_Compound"].item()


def test_percent_of_control_and_robust_z_against_numbers_worked_out_by_hand(week1):
    _, means, _, a = week1
    neg = np.array(list(DMSO_MEANS.values()), dtype=float)
    assert neg.mean() == 200.0
    median = np.median(neg)  # 202
    mad = np.median(np.abs(neg - median))  # 3
    assert (median, mad) == (202.0, 3.0)
    by_well = a.wells.set_index("well")
    for well, mean in means.items():
        assert by_well.loc[well, "mean"] == mean
        assert by_well.loc[well, "percent_of_control"] == pytest.approx(100.0 * mean / 200.0,
                                                                        rel=1e-12)
        assert by_well.loc[well, "robust_z"] == pytest.approx((mean - 202.0) / (1.4826 * 3.0),
                                                              rel=1e-12)
    assert by_well.loc["B02", "control"] == "negative"
    assert set(by_well.index[by_well["control"] == "positive"]) == set(TAXOL_MEANS)


def test_z_prime_and_robust_z_prime_of_the_plate(week1):
    a = week1[3]
    neg = np.array(list(DMSO_MEANS.values()), dtype=float)
    pos = np.array(list(TAXOL_MEANS.values()), dtype=float)
    z = 1 - 3 * (pos.std(ddof=1) + neg.std(ddof=1)) / abs(pos.mean() - neg.mean())
    mad = lambda v: np.median(np.abs(v - np.median(v)))  # noqa: E731
    robust = 1 - 3 * 1.4826 * (mad(pos) + mad(neg)) / abs(np.median(pos) - np.median(neg))
    plate = a.plates.iloc[0]
    assert len(a.plates) == 1 and plate["plate"] == PLATE
    assert (plate["n_negative"], plate["n_positive"]) == (6, 7)
    assert plate["negative_mean"] == 200.0
    assert plate["negative_sd"] == pytest.approx(neg.std(ddof=1), rel=1e-12)
    assert plate["positive_mean"] == pytest.approx(pos.mean(), rel=1e-12)
    assert plate["z_prime"] == pytest.approx(z, rel=1e-12)
    assert plate["robust_z_prime"] == pytest.approx(robust, rel=1e-12)
    assert z > 0.5 and plate["verdict"] == "excellent"


def test_conditions_over_wells(week1):
    _, means, _, a = week1
    c = a.conditions
    assert list(c.columns[:9]) == ["compound", "concentration", "unit", "control", "n_plates",
                                   "n_wells", "n_images", "percent_of_control_mean",
                                   "percent_of_control_sd"]
    dmso = c[c["compound"] == "DMSO"].iloc[0]
    assert (dmso["control"], dmso["n_plates"], dmso["n_wells"], dmso["n_images"]) == \
        ("negative", 1, 6, 24)
    pc = np.array(list(DMSO_MEANS.values())) / 2.0
    assert dmso["percent_of_control_mean"] == pytest.approx(100.0, rel=1e-12)
    assert dmso["percent_of_control_sd"] == pytest.approx(pc.std(ddof=1), rel=1e-12)
    taxol = c[(c["compound"] == "taxol") & (c["concentration"] == 0.3)]
    assert sorted(taxol["control"]) == ["positive"]  # D05 is taxol 0.3 too: a positive well
    assert taxol["n_wells"].item() == 7
    assert len(c) == 1 + 1 + 6 * 8 - 1  # DMSO, taxol 0.3, the series but taxol's 0.3
    assert c["moa"].tolist()[0] == "DMSO"


def test_fitted_ic50s_are_within_tolerance_of_the_truth(week1):
    a = week1[3]
    dose = a.dose_response.set_index("compound")
    assert sorted(dose.index) == sorted(TRUTH)
    for compound in ("aphidicolin", "cytochalasin B", "nocodazole", "taxol"):
        ic50, hill, bottom = TRUTH[compound]
        row = dose.loc[compound]
        assert row["status"] == "fit", compound
        assert row["ic50"] == pytest.approx(ic50, rel=IC50_RTOL), compound
        assert row["ic50_low"] < row["ic50"] < row["ic50_high"]
        assert row["hill"] == pytest.approx(hill, rel=0.1), compound
        assert row["bottom"] == pytest.approx(bottom, abs=2.0), compound
        assert row["p_value"] < 1e-6
    # where the true curve crosses 50%: aphidicolin (bottom 20) at 0.3 * (50/30) = 0.5
    assert dose.loc["aphidicolin", "ic50_absolute"] == pytest.approx(0.5, rel=IC50_RTOL)
    assert dose.loc["cytochalasin B", "ic50_absolute"] == pytest.approx(1.0, rel=IC50_RTOL)
    assert dose.loc["taxol", "n_wells"] == 8 + 6  # its series and the positive wells
    flat = dose.loc["AZ-A"]
    assert flat["status"] == "no_effect" and flat["p_value"] >= 0.05
    assert np.isnan(flat["ic50"]) and flat["ic50_text"] == ""
    beyond = dose.loc["AZ-H"]
    assert beyond["status"] == "ic50_above_range"
    assert np.isnan(beyond["ic50"]) and beyond["ic50_text"] == "> 30"
    assert np.isnan(beyond["ic50_absolute"])  # never 50% within 0.01-30
    assert dose.loc["nocodazole", "moa"] == "Microtubule destabilizers"


def test_outputs_tables_figure_and_run_json(week1, tmp_path):
    folder, _, _, a = week1
    out = tmp_path / "out"
    written = write_outputs(a, out, results=folder)
    assert sorted(p.name for p in written.values()) == sorted(
        ["wells_annotated.csv", "plates.csv", "conditions.csv", "dose_response.csv",
         "dose_response.png"])
    wells = pd.read_csv(out / "wells_annotated.csv", keep_default_na=False)
    assert list(wells.columns[:10]) == ["plate", "well", "images", "total", "mean", "std",
                                        "compound", "concentration", "unit", "control"]
    assert list(wells.columns[-2:]) == ["percent_of_control", "robust_z"]
    assert len(wells) == 60
    plates = pd.read_csv(out / "plates.csv")
    assert list(plates.columns) == ["plate", "n_negative", "n_positive", "negative_mean",
                                    "negative_sd", "positive_mean", "positive_sd", "z_prime",
                                    "robust_z_prime", "verdict"]
    dose = pd.read_csv(out / "dose_response.csv", keep_default_na=False).set_index("compound")
    assert dose.loc["AZ-H", "ic50"] == "> 30"
    assert float(dose.loc["taxol", "ic50"]) == pytest.approx(0.01, rel=IC50_RTOL)
    png = (out / "dose_response.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    run = json.loads((out / "run.json").read_text())["analysis"]
    assert run["layout"] == {"file": "BBBC021_v1_image.csv", "kind": "images",
                             "sha256": hashlib.sha256(IMAGE_CSV.read_bytes()).hexdigest()}
    assert run["controls"]["positive"] == "compound taxol at 0.3"
    assert run["results"] == str(folder)
    assert run["tables"]["plates.csv"]["sha256"] == hashlib.sha256(
        (out / "plates.csv").read_bytes()).hexdigest()


def test_outputs_into_the_results_folder_keep_its_run_json(week1, tmp_path):
    folder, _, _, a = week1
    before = json.loads((folder / "run.json").read_text())
    write_outputs(a, folder)
    after = json.loads((folder / "run.json").read_text())
    assert {k: v for k, v in after.items() if k != "analysis"} == before
    assert "results" not in after["analysis"]
    load_results(folder)  # still a consistent results folder


def test_draw_dose_response_panels_map_points_to_wells(week1):
    a = week1[3]
    fig = Figure()
    panels = draw_dose_response(fig, a, compounds=["taxol", "AZ-A"])
    assert [p.compound for p in panels] == ["taxol", "AZ-A"]
    taxol = panels[0]
    assert len(taxol.points) == 14 == len(taxol.scatter.get_offsets())
    np.testing.assert_array_equal(taxol.scatter.get_offsets()[:, 0],
                                  taxol.points["concentration"])
    assert taxol.axes.get_xscale() == "log"
    assert len(taxol.axes.lines) == 3  # band centre, curve, IC50
    assert len(panels[1].axes.lines) == 1  # no effect: no curve
    x, y = a.curve("taxol")
    assert x[0] == 0.001 and x[-1] == 3.0
    assert y[0] > y[-1]
    assert a.curve("AZ-A")[0].size == 0


# --------------------------------------------------------------------------- tidy layouts


def _small_plates(folder, wells_counts: dict[tuple[str, str], int]):
    """A results folder with one image per (plate, well), named ImageXpress-style."""
    names = [(f"{plate}_{well}_s1_w1.tif", well, count)
             for (plate, well), count in wells_counts.items()]
    return load_results(write_results_folder(folder, names)).images


COUNTS = {("P1", "A01"): 100, ("P1", "A02"): 110, ("P1", "B01"): 20, ("P1", "B02"): 55,
          ("P2", "A01"): 80, ("P2", "A02"): 120, ("P2", "B01"): 10, ("P2", "B02"): 40}


def test_tidy_csv_for_every_plate_normalises_each_plate_to_its_own_controls(tmp_path):
    images = _small_plates(tmp_path / "r", COUNTS)
    layout_file = tmp_path / "layout.csv"
    layout_file.write_text("Well,Treatment,Concentration,Unit,Control,Note\n"
                           "a1,DMSO,,,negcon,solvent\nA2,DMSO,,,negative,solvent\n"
                           "b01,staurosporine,1,uM,poscon,kills\nB2,drug X,3,uM,,\n")
    layout = read_layout(layout_file)
    assert layout.kind == "table" and layout.extras == ("Note",)
    assert layout.wells["well"].tolist() == ["A01", "A02", "B01", "B02"]
    assert layout.wells["control"].tolist() == ["negative", "negative", "positive", ""]
    a = analyze(images, layout)
    w = a.wells.set_index(["plate", "well"])
    assert w.loc[("P1", "B02"), "percent_of_control"] == pytest.approx(100 * 55 / 105)
    assert w.loc[("P2", "B02"), "percent_of_control"] == pytest.approx(100 * 40 / 100)
    assert w.loc[("P1", "B01"), "Note"] == "kills"
    p = a.plates.set_index("plate")
    sd_n = np.std([100, 110], ddof=1)
    assert p.loc["P1", "negative_sd"] == pytest.approx(sd_n)
    assert np.isnan(p.loc["P1", "positive_sd"])  # one positive well: no SD, no Z'
    assert np.isnan(p.loc["P1", "z_prime"]) and p.loc["P1", "verdict"] == ""
    cond = a.conditions.set_index("compound")
    assert cond.loc["drug X", "n_plates"] == 2
    assert cond.loc["drug X", "percent_of_control_mean"] == pytest.approx(
        (100 * 55 / 105 + 40) / 2)
    assert a.dose_response.set_index("compound").loc["drug X", "status"] == "failed"


def test_tsv_with_plates_and_controls_named_on_the_command_line(tmp_path):
    images = _small_plates(tmp_path / "r", COUNTS)
    layout_file = tmp_path / "layout.tsv"
    layout_file.write_text("plate\twell\tcompound\tconcentration\n"
                           + "".join(f"{p}\t{w}\t{c}\t{x}\n" for p in ("P1", "P2")
                                     for w, c, x in (("A01", "water", "0"), ("A02", "water", "0"),
                                                     ("B01", "tox", "2"), ("B02", "tox", "1"))))
    layout = read_layout(layout_file)
    a = analyze(images, layout, negative="Water", positive="tox@2")
    w = a.wells.set_index(["plate", "well"])
    assert w.loc[("P2", "B01"), "control"] == "positive"
    assert w.loc[("P2", "B02"), "control"] == ""
    assert w.loc[("P2", "B01"), "percent_of_control"] == pytest.approx(10.0)
    assert a.controls == {"negative": "compound Water", "positive": "compound tox at 2"}


def test_cell_painting_gallery_pair(tmp_path):
    images = _small_plates(tmp_path / "r", COUNTS)
    meta = tmp_path / "platemaps"
    (meta / "platemap").mkdir(parents=True)
    (meta / "barcode_platemap.csv").write_text(
        "Assay_Plate_Barcode,Plate_Map_Name\nP1,MAP-A\nP2,MAP-A\n")
    (meta / "platemap" / "MAP-A.txt").write_text(
        "plate_map_name\twell_position\tbroad_sample\tmmoles_per_liter\tcontrol_type\tsolvent\n"
        "MAP-A\tA01\tDMSO\t0\tnegcon\tDMSO\nMAP-A\tA02\tDMSO\t0\tnegcon\tDMSO\n"
        "MAP-A\tB01\tBRD-K1\t0.01\tposcon_cp\tDMSO\nMAP-A\tB02\tBRD-K2\t0.003\ttrt\tDMSO\n")
    layout = read_layout(meta / "barcode_platemap.csv")
    assert layout.kind == "cellpainting"
    assert layout.extras == ("solvent",)
    a = analyze(images, layout)
    w = a.wells.set_index(["plate", "well"])
    assert w.loc[("P1", "B01"), "control"] == "positive"
    assert w.loc[("P1", "B02"), ["compound", "concentration", "unit"]].tolist() == \
        ["BRD-K2", 0.003, "mM"]
    assert w.loc[("P1", "B02"), "percent_of_control"] == pytest.approx(100 * 55 / 105)


def test_wellmap_toml(tmp_path):
    pytest.importorskip("wellmap")
    images = _small_plates(tmp_path / "r", {k: v for k, v in COUNTS.items() if k[0] == "P1"})
    toml = tmp_path / "layout.toml"
    toml.write_text('[expt]\nunit = "uM"\n[row.A]\ncompound = "DMSO"\ncontrol = "negative"\n'
                    '[row.B]\ncompound = "drug"\n[col.1]\nconcentration = 10\n'
                    '[col.2]\nconcentration = 1\n')
    layout = read_layout(toml)
    assert layout.kind == "wellmap"
    assert layout.wells["well"].tolist() == ["A01", "A02", "B01", "B02"]
    a = analyze(images, layout)
    w = a.wells.set_index("well")
    assert w.loc["B01", ["compound", "concentration", "unit"]].tolist() == ["drug", 10.0, "uM"]
    assert w.loc["B02", "percent_of_control"] == pytest.approx(100 * 55 / 105)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(("text", "says"), [
    ("well,compound\nA1,DMSO\na01,drug\n",
     "well A01 in layout.csv is listed more than once (lines 2, 3); each well once"),
    ("well,compound,concentration\nA01,drug,1\nB01,drug,1.5 uM\n",
     "the concentration '1.5 uM' of well B01 in layout.csv is not a number (0 or more; 1 such "
     "cell(s))"),
    ("well,compound\nA01,DMSO\nZ99x,drug\n",
     "'Z99x' on line 3 of layout.csv is not a well name (A01, B2, ... up to AF48)"),
    ("compound\nDMSO\n", "has no well column"),
    ("well,control\nA01,maybe\n", "the control 'maybe' of well A01 in layout.csv is not one of"),
])
def test_layout_errors_are_one_sentence(tmp_path, text, says):
    path = tmp_path / "layout.csv"
    path.write_text(text)
    with pytest.raises(LayoutError) as info:
        read_layout(path)
    assert says in str(info.value)
    assert "\n" not in str(info.value)


def test_wells_the_results_lack_are_an_error(tmp_path):
    images = _small_plates(tmp_path / "r", COUNTS)
    path = tmp_path / "layout.csv"
    path.write_text("well,compound\nA01,DMSO\nA02,DMSO\nH12,drug\n")
    with pytest.raises(LayoutError, match=r"^the layout layout.csv names 2 well\(s\) that the "
                                          r"results lack: H12 of plate P1, H12 of plate P2$"):
        analyze(images, read_layout(path))


def test_images_whose_well_the_layout_lacks_are_counted_in_a_warning(tmp_path):
    images = _small_plates(tmp_path / "r", COUNTS)
    path = tmp_path / "layout.csv"
    path.write_text("plate,well,compound\nP1,A01,DMSO\nP1,A02,DMSO\nP1,B01,drug\n")
    a = analyze(images, read_layout(path))
    assert a.warnings == ["5 image(s) in 5 well(s) the layout lacks are left out of the "
                          "analysis (B02 of plate P1, A01 of plate P2, A02 of plate P2, B01 of "
                          "plate P2, B02 of plate P2)"]
    assert a.wells["in_layout"].sum() == 3
    assert a.plates["plate"].tolist() == ["P1"]  # P2 has no well of the layout


def test_a_control_that_names_no_well_is_an_error(tmp_path):
    images = _small_plates(tmp_path / "r", COUNTS)
    path = tmp_path / "layout.csv"
    path.write_text("well,compound\nA01,DMSO\nA02,DMSO\nB01,drug\nB02,drug\n")
    with pytest.raises(LayoutError, match="the positive control 'taxol@0.3' names no well"):
        analyze(images, read_layout(path), positive="taxol@0.3")
    with pytest.raises(LayoutError, match="'abc' is not a number"):
        analyze(images, read_layout(path), positive="drug@abc")


# --------------------------------------------------------------------------- Week4 names


@needs_bbbc021
def test_week4_names_without_a_plate_join_by_file_name(tmp_path):
    meta = pd.read_csv(IMAGE_CSV)
    plate = meta[meta["Image_Metadata_Plate_DAPI"] == "Week4_27481"]
    names = [(n, w, 100) for n, w in zip(plate["Image_FileName_DAPI"],
                                         plate["Image_Metadata_Well_DAPI"], strict=True)]
    folder = write_results_folder(tmp_path / "r", names, "Week4/Week4_27481")
    images = load_results(folder).images
    assert set(images["plate"]) == {""}  # G10_s1_w1<UUID>.tif: no plate in the name
    a = analyze(images, read_layout(IMAGE_CSV))
    assert a.warnings == []
    assert set(a.wells["plate"]) == {"Week4_27481"}
    g10 = a.wells.set_index("well").loc["G10"]
    assert (g10["compound"], g10["concentration"]) == ("5-fluorouracil", 0.003)
    n_dmso = plate.loc[plate["Image_Metadata_Compound"] == "DMSO",
                       "Image_Metadata_Well_DAPI"].nunique()
    assert a.plates.set_index("plate").loc["Week4_27481", "n_negative"] == n_dmso
    assert (a.wells["percent_of_control"] == 100.0).all()


def test_annotations_need_a_compound_column(tmp_path):
    path = tmp_path / "moa.csv"
    path.write_text("name,moa\nx,y\n")
    with pytest.raises(LayoutError, match="have no compound column"):
        read_annotations(path)


def test_dose_response_png_has_each_panel_in_its_grid_cell(week1, tmp_path):
    from PIL import Image

    a = week1[3]
    write_outputs(a, tmp_path)
    with Image.open(tmp_path / "dose_response.png") as png:
        assert png.size == (1360, 595)  # 4 panels of 340 x 280 px a row, 2 rows, caption 35 px
        pixels = np.asarray(png.convert("RGB")).astype(int)
    red, grey, blue = (214, 39, 40), (217, 217, 217), (31, 119, 180)  # tab:red, 0.85, tab:blue

    def cell(k):
        row, column = divmod(k, 4)
        return pixels[35 + 280 * row:35 + 280 * (row + 1), 340 * column:340 * (column + 1)]

    def has(block, colour):
        return bool((block == colour).all(axis=2).any())

    order = list(a.dose_response["compound"])
    assert order == ["aphidicolin", "AZ-A", "AZ-H", "cytochalasin B", "nocodazole", "taxol"]
    for k, compound in enumerate(order):
        assert has(cell(k), blue) and has(cell(k), grey), compound  # wells, control band
        assert has(cell(k), red) == (compound != "AZ-A"), compound  # no effect: no curve
    for k in (6, 7):  # no panel: white
        assert (cell(k) == 255).all()
    assert (pixels[:35] < 128).all(axis=2).any()  # the caption's words
