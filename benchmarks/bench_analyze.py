"""``analyze`` on 55 plates' worth of wells: BBBC021's size (13,200 image rows).

The layout is generated in BBBC021's shape: 55 plates of 60 wells (rows B-G,
columns 2-11) with 4 sites each; per plate 6 DMSO wells (negative), 6 wells
of a positive control, and 6 compounds at 8 concentrations (113 compounds
over the screen, each on several plates). The counts per image follow a
log-logistic curve per compound with a little noise (seeded). Printed: the
seconds of :func:`~napari_nuclei_counter.core.treatments.analyze` (best of
``--repeats``) and of writing its files; the target is under 5 s.

    python benchmarks/bench_analyze.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from napari_nuclei_counter.core.treatments import analyze, read_layout, write_outputs

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    layout_table, images = make_tables()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "layout.csv"
        layout_table.to_csv(path, index=False)
        t0 = time.perf_counter()
        layout = read_layout(path)
        read_s = time.perf_counter() - t0
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            analysis = analyze(images, layout)
            times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        write_outputs(analysis, Path(tmp) / "out")
        write_s = time.perf_counter() - t0
    status = analysis.dose_response["status"].value_counts().to_dict()
    print(f"{len(images):,} image rows, {len(analysis.wells):,} wells, {len(analysis.plates)} "
          f"plates, {len(analysis.dose_response)} compounds {status}")
    print(f"read_layout {read_s:.2f} s; analyze {min(times):.2f} s (best of {args.repeats}; "
          f"target < 5 s); write_outputs {write_s:.2f} s")


if __name__ == "__main__":
    main()
