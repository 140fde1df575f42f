"""``nuclei-counter analyze`` on 55 plates' worth of wells: BBBC021's size (13,200 image rows).

The layout is generated in BBBC021's shape: 55 plates of 60 wells (rows B-G,
columns 2-11) with 4 sites each; per plate 6 DMSO wells (negative), 6 wells
of a positive control, and 6 compounds at 8 concentrations (113 compounds
over the screen, each on several plates). The counts per image follow a
log-logistic curve per compound with a little noise (seeded). A real results
folder is written with the project's own writer (``images.csv``,
``nuclei.csv`` with one row per nucleus, ``wells.csv``, ``run.json``), then
timed, each the best of ``--repeats``: the whole command run in this process
(``nuclei-counter analyze RESULTS --layout layout.csv --out OUT``: read,
analyse, write the tables and ``dose_response.png``; the target is under 5 s)
and its parts: reading (the results folder and the layout),
:func:`~napari_nuclei_counter.core.treatments.analyze`, the four tables and
the figure.

    python benchmarks/bench_analyze.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from napari_nuclei_counter.cli.app import main as cli_main
from napari_nuclei_counter.core.io.discovery import ImageMeta
from napari_nuclei_counter.core.params import DetectionParams
from napari_nuclei_counter.core.results.tables import ImageResult, load_results
from napari_nuclei_counter.core.results.writer import write_results
from napari_nuclei_counter.core.treatments import analyze, outputs, read_layout, write_outputs

PLATES = 55
ROWS = "BCDEFG"
COLUMNS = range(2, 12)
SITES = 4
COMPOUNDS = 113
CONCENTRATIONS = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
CONTROLS = {"negative": ("B02", "C02", "D02", "E11", "F11", "G11"),
            "positive": ("B11", "C11", "D11", "E02", "F02", "G02")}


def make_tables(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(layout, images)``: a tidy layout with a plate column and an images table."""
    rng = np.random.default_rng(seed)
    wells = [f"{r}{c:02d}" for r in ROWS for c in COLUMNS]
    series = [w for w in wells if w not in CONTROLS["negative"] + CONTROLS["positive"]]
    ic50 = 10 ** rng.uniform(-2.5, 1.5, COMPOUNDS)
    layout, images = [], []
    for p in range(PLATES):
        plate = f"Week{p // 10 + 1}_{22000 + p}"
        for k, well in enumerate(series):
            compound = (6 * p + k // 8) % COMPOUNDS
            conc = CONCENTRATIONS[k % 8]
            layout.append((plate, well, f"compound-{compound:03d}", conc, "uM", ""))
        for role, ws in CONTROLS.items():
            for well in ws:
                layout.append((plate, well, "DMSO" if role == "negative" else "taxol",
                               0.0 if role == "negative" else 0.3, "uM", role))
    layout = pd.DataFrame(layout, columns=["plate", "well", "compound", "concentration", "unit",
                                           "control"])
    for plate, well, compound, conc, _, role in layout.itertuples(index=False):
        if role == "negative":
            mean = 200.0
        elif role == "positive":
            mean = 30.0
        else:
            mean = 200.0 / (1 + (conc / ic50[int(compound[-3:])]))
        for s, n in enumerate(rng.poisson(mean, SITES)):
            images.append((f"/data/{plate}/{plate}_{well}_s{s + 1}_w1.tif", plate, well,
                           f"s{s + 1}", int(n), ""))
    images = pd.DataFrame(images, columns=["path", "plate", "well", "site", "n_nuclei", "error"])
    images["n_nuclei"] = images["n_nuclei"].astype("Int64")
    return layout, images


def write_folder(folder: Path, images: pd.DataFrame) -> Path:
    """A finished results folder of ``images``: each image with its count of nuclei."""
    meta = [ImageMeta(plate=plate, well=well, site=site, channel="w1")
            for plate, well, site in zip(images["plate"], images["well"], images["site"],
                                         strict=True)]
    results = [ImageResult(index=i, path=path, meta=m, coords=np.zeros((int(n), 2), np.intp),
                           intensities=np.full(int(n), 2000.0), seconds=0.01, threshold=1000.0)
               for i, (path, m, n) in enumerate(zip(images["path"], meta, images["n_nuclei"],
                                                    strict=True))]
    return write_results(folder, results, DetectionParams())


def best(repeats: int, run) -> tuple[float, object]:
    """The fewest seconds ``run()`` took in ``repeats`` tries, and its last result."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - t0)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    layout_table, images = make_tables()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        layout_path = tmp / "layout.csv"
        layout_table.to_csv(layout_path, index=False)
        folder = write_folder(tmp / "results", images)
        out = tmp / "out"
        argv = ["analyze", str(folder), "--layout", str(layout_path), "--out", str(out)]
        logging.getLogger("napari_nuclei_counter").setLevel(logging.ERROR)
        with contextlib.redirect_stderr(io.StringIO()) as said:
            whole, code = best(args.repeats, lambda: cli_main(argv))
        if code != 0:
            raise SystemExit(f"nuclei-counter analyze exited {code}: {said.getvalue()}")
        read_s, (results, layout) = best(args.repeats, lambda: (
            load_results(folder, read_nuclei=False), read_layout(layout_path)))
        analyze_s, analysis = best(args.repeats, lambda: analyze(results.images, layout))
        figure_s, _ = best(args.repeats, lambda: outputs._write_png(tmp / "figure.png", analysis))
        write_s, _ = best(args.repeats, lambda: write_outputs(analysis, tmp / "parts"))
        png = (out / "dose_response.png").stat().st_size
    status = analysis.dose_response["status"].value_counts().to_dict()
    print(f"{len(images):,} image rows ({int(images['n_nuclei'].sum()):,} nuclei), "
          f"{len(analysis.wells):,} wells, {len(analysis.plates)} plates, "
          f"{len(analysis.dose_response)} compounds {status}; dose_response.png {png:,} bytes")
    print(f"nuclei-counter analyze, in-process: {whole:.2f} s (best of {args.repeats}; "
          "target < 5 s)")
    print(f"  read {read_s:.2f} s; analyze {analyze_s:.2f} s; tables {write_s - figure_s:.2f} s; "
          f"figure {figure_s:.2f} s")


if __name__ == "__main__":
    main()
