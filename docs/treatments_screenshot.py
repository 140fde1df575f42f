"""Take the README's screenshot of the *Treatments* tab from a real napari window.

Run under a screen at least 1280x800 (or ``xvfb-run -a -s "-screen 0 1600x1000x24"``)::

    python docs/treatments_screenshot.py

It writes a plate in BBBC021's Week1_22123 layout into a temporary folder:
the real DAPI file names of ``../shared/data/bbbc021_metadata/BBBC021_v1_image.csv``
(sites 1 and 2 of its 60 wells, 512x640 synthetic images) whose nuclei
follow a known dose-response curve per compound (one flat, one whose IC50 is
beyond the tested concentrations). It runs the detector on it, loads that
metadata table as the layout (joined by file name) with taxol at 0.3 µM as the
positive control (DMSO, the negative one, is the default) and saves
``docs/images/treatments-dock.png`` (a 1280x800 window, the *Treatments*
tab's curves) and ``docs/images/treatments-platemap.png`` (the plate map
coloured by compound beside it), and ``docs/images/dose-response.png`` (the
``dose_response.png`` the command line writes for the same analysis).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from screenshots import settle, wait_for  # docs/, the folder of this script

from napari_nuclei_counter.core.params import DetectionParams
from napari_nuclei_counter.core.sample import make_nuclei_image
from napari_nuclei_counter.core.treatments import write_outputs

OUT = Path(__file__).parent / "images"
METADATA = Path(__file__).parents[2] / "shared" / "data" / "bbbc021_metadata" / \
    "BBBC021_v1_image.csv"
PLATE = "Week1_22123"
#: nuclei per image of a negative-control well
CONTROL_NUCLEI = 90
#: per compound: (IC50 in µM, bottom in percent of control, Hill slope); None: no effect
CURVES = {"taxol": (0.01, 30, 1.2), "nocodazole": (0.05, 25, 1.0),
          "aphidicolin": (0.5, 40, 1.0), "cytochalasin B": (3.0, 50, 1.5),
          "AZ-A": None, "AZ-H": (300.0, 0, 1.0)}


def _percent(compound: str, concentration: float) -> float:
    curve = CURVES.get(compound)
    if curve is None or concentration <= 0:
        return 100.0
    ic50, bottom, hill = curve
    return bottom + (100 - bottom) / (1 + (concentration / ic50) ** hill)


def write_plate(folder: Path) -> Path:
    """Sites 1 and 2 of Week1_22123 under their real names; returns the metadata table."""
    table = pd.read_csv(METADATA)
    rows = table[(table["Image_Metadata_Plate_DAPI"] == PLATE)
                 & table["Image_FileName_DAPI"].str.contains(r"_s[12]_")]
    rng = np.random.default_rng(25)
    for k, row in enumerate(rows.itertuples()):
        percent = _percent(row.Image_Metadata_Compound, row.Image_Metadata_Concentration)
        n = int(rng.poisson(CONTROL_NUCLEI * percent / 100))
        image, _ = make_nuclei_image(np.random.default_rng([25, k]), n, (512, 640))
        tifffile.imwrite(folder / row.Image_FileName_DAPI, image, photometric="minisblack")
    return METADATA


def main() -> int:
    if not METADATA.is_file():
        raise SystemExit(f"{METADATA} is missing")
    OUT.mkdir(parents=True, exist_ok=True)
    import napari

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / PLATE
        folder.mkdir()
        layout = write_plate(folder)
        viewer = napari.Viewer(title="Nuclei counter")
        viewer.window.resize(1280, 800)
        viewer.open(str(folder), plugin="napari-nuclei-counter")
        _, widget = viewer.window.add_plugin_dock_widget("napari-nuclei-counter",
                                                         "Nuclei detector")
        widget.preview.check.value = False
        widget.model.params = DetectionParams(4.0, 6, 1000.0)
        panel = widget.treatments_panel
        panel.load_layout(layout)
        panel.positive.setEditText("taxol@0.3")  # BBBC021's table names no control
        panel.on_controls_edited()
        widget.run_panel.start_run(ask=False)
        wait_for(lambda: not widget.run_panel.running)
        wait_for(lambda: panel.treatments.analysis is not None and not panel.busy)
        # the command line's figure of the same analysis, for the README
        written = write_outputs(panel.treatments.analysis, Path(tmp) / "analysis")
        shutil.copyfile(written["dose_response.png"], OUT / "dose-response.png")
        widget.tabs.setCurrentWidget(panel)
        panel.views.setCurrentWidget(panel.curves_page)
        taxol = next(p for p in panel.panels if p.compound == "taxol")
        points = taxol.points
        panel.show_well(str(points["plate"].iloc[0]), str(points["well"].iloc[0]))
        settle(0.5)
        ratio = panel.canvas.device_pixel_ratio
        top = panel.canvas.height() - taxol.axes.get_window_extent().y1 / ratio
        panel.curves.verticalScrollBar().setValue(int(top) - 30)  # taxol's panel, its title
        viewer.reset_view()
        settle(1.5)
        viewer.screenshot(str(OUT / "treatments-dock.png"), canvas_only=False)
        plate_map = widget.results_panel.open_plate_map()
        wait_for(lambda: not plate_map.busy and len(plate_map.wells) > 0)
        plate_map.set_value("compound")
        settle(1.5)
        viewer.screenshot(str(OUT / "treatments-platemap.png"), canvas_only=False)
        viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
