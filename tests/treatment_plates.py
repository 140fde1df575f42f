"""Results folders of treated plates with known counts, for the treatments tests.

A real results folder (written by the project's own writer, so ``run.json``
checksums the tables) whose images carry real BBBC021 file names of plate
``Week1_22123`` and whose nuclei per image follow known curves per compound:
AZ-A is flat, AZ-H's IC50 (100) is beyond its highest concentration (30),
the others fall with a known IC50. Each well's four sites hold ``m - 3, m -
1, m + 1, m + 3`` nuclei (``m`` each when ``m < 3``), so a well's mean is
exactly ``m``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from napari_nuclei_counter.core.io.discovery import ImageMeta, parse_metadata
from napari_nuclei_counter.core.params import DetectionParams
from napari_nuclei_counter.core.results.tables import ImageResult
from napari_nuclei_counter.core.results.writer import write_results

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "bbbc021_metadata"
IMAGE_CSV = DATA / "BBBC021_v1_image.csv"
MOA_CSV = DATA / "BBBC021_v1_moa.csv"
PLATE = "Week1_22123"

#: compound -> (IC50, hill, bottom) of its true curve (top 100); None: flat
TRUTH = {"AZ-A": None, "AZ-H": (100.0, 1.2, 0.0), "aphidicolin": (0.3, 1.0, 20.0),
         "cytochalasin B": (1.0, 2.0, 0.0), "nocodazole": (0.03, 1.5, 0.0),
         "taxol": (0.01, 1.0, 10.0)}

#: the negative-control (DMSO) wells' means, in the table's order of wells: mean 200
DMSO_MEANS = {"B02": 190, "C02": 196, "D02": 200, "E11": 204, "F11": 206, "G11": 204}

#: the positive-control (taxol 0.3) wells' means
TAXOL_MEANS = {"B11": 24, "C11": 26, "D05": 25, "D11": 27, "E02": 25, "F02": 26, "G02": 27}

#: AZ-A (flat) wells' means: 200 plus these, by concentration from low to high
AZ_A_OFFSETS = (3, -2, 1, -3, 2, -1, 2, -2)


def true_percent(compound: str, concentration: float) -> float:
    """The true curve of a compound, in percent of control."""
    ic50, hill, bottom = TRUTH[compound]
    return bottom + (100.0 - bottom) / (1.0 + (concentration / ic50) ** hill)


def week1_table() -> pd.DataFrame:
    """BBBC021's metadata rows of plate Week1_22123 (240 images)."""
    meta = pd.read_csv(IMAGE_CSV)
    return meta[meta["Image_Metadata_Plate_DAPI"] == PLATE].reset_index(drop=True)


def well_means(table: pd.DataFrame) -> dict[str, int]:
    """The mean nuclei per image of every well of the plate (whole numbers)."""
    wells = table.drop_duplicates("Image_Metadata_Well_DAPI")
    az_a = sorted(wells.loc[wells["Image_Metadata_Compound"] == "AZ-A",
                            "Image_Metadata_Concentration"])
    means = {}
    for well, compound, conc in zip(wells["Image_Metadata_Well_DAPI"],
                                    wells["Image_Metadata_Compound"],
                                    wells["Image_Metadata_Concentration"], strict=True):
        if well in DMSO_MEANS:
            means[well] = DMSO_MEANS[well]
        elif well in TAXOL_MEANS:
            means[well] = TAXOL_MEANS[well]
        elif compound == "AZ-A":
            means[well] = 200 + AZ_A_OFFSETS[az_a.index(conc)]
        else:
            means[well] = int(round(2.0 * true_percent(compound, conc)))
    return means


def site_counts(mean: int) -> list[int]:
    """Four sites whose mean is ``mean``."""
    return [mean - 3, mean - 1, mean + 1, mean + 3] if mean >= 3 else [mean] * 4


def write_results_folder(folder: Path, names: list[tuple[str, str, int]],
                         subfolder: str = "") -> Path:
    """A finished results folder: one image per ``(file name, well, count)``.

    The images' plate, well and site are read from their names as a run
    does (``well`` is used when the name gives none); each image gets
    ``count`` nuclei.
    """
    results = []
    for i, (name, well, count) in enumerate(names):
        meta = parse_metadata(name)
        if not meta.well:
            meta = ImageMeta(plate=meta.plate, well=well, site=meta.site, channel=meta.channel)
        coords = np.stack([np.arange(count), np.arange(count)], axis=1).astype(np.intp)
        path = str(Path("/data") / subfolder / name)
        results.append(ImageResult(index=i, path=path, meta=meta, coords=coords,
                                   intensities=np.full(count, 2000.0), seconds=0.01,
                                   threshold=1000.0))
    return write_results(folder, results, DetectionParams())


def write_week1(folder: Path) -> tuple[Path, dict[str, int], pd.DataFrame]:
    """Week1_22123 under its real names, counts per :func:`well_means`.

    Returns the folder, the wells' means and the plate's metadata rows.
    """
    table = week1_table()
    means = well_means(table)
    names = []
    for well, group in table.groupby("Image_Metadata_Well_DAPI", sort=False):
        for name, count in zip(sorted(group["Image_FileName_DAPI"]), site_counts(means[well]),
                               strict=True):
            names.append((name, well, count))
    return write_results_folder(folder, names, "Week1/Week1_22123"), means, table
