"""The fast engine against the reference, per image family and threshold, side by side.

For every real image in ``../shared/data`` (BBBC007, DSB2018, ExampleFly, the mnfinder
widefield and confocal families) and four generated BBBC021-like images, the parameters
come from the image alone (``estimate_params``: sigma and min distance from the nuclei's
diameter, the typical threshold from Li's method on the smoothed image). Each image is
detected at three thresholds: 0, low (a quarter of the typical one) and typical, with the
fast engine and the reference engine on one core (best of N runs each, the two engines in
turn so that a burst of load on a shared machine slows both), and their coordinates are compared
(the benchmark stops on any difference). Printed per family and threshold: the median
fast and reference times (ms) and the ratio reference / fast (median and worst); then the
worst ratio overall and the worst slowdown of threshold 0 against the typical threshold.

    python benchmarks/bench_engine.py [--repeats 3] [--data ../shared/data] [--family NAME]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import tifffile

from napari_nuclei_counter.core.detect.detection import detect
from napari_nuclei_counter.core.params import DetectionParams
from napari_nuclei_counter.core.sample import make_nuclei_image
from napari_nuclei_counter.core.scoring.estimate import estimate_params

REPO = Path(__file__).resolve().parents[1]


def mnfinder_family(image: Path) -> str:
    """The family of an mnfinder image, from its folder's name (``2022-03-18_RPE1/images/3.tif``)."""
    kind = image.parent.parent.name.split("_")[-1]
    return {"RPE1": "RPE1 widefield 16-bit", "U2OS": "U2OS widefield 16-bit",
            "misc": "confocal projections 8-bit"}.get(kind, kind)


def families(data: Path) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Images by family: ``{family: [(name, image), ...]}``."""
    out: dict[str, list] = defaultdict(list)
    for i in range(4):
        out["generated BBBC021-like 16-bit"].append((f"seed {i}", make_nuclei_image(i, 150)[0]))
    if not data.is_dir():
        return out
    for p in sorted((data / "bbbc007").rglob("*.tif")):
        if not p.name.endswith("_labels.tif"):
            out["BBBC007 8-bit"].append((p.name, tifffile.imread(p)))
    if (data / "dsb2018" / "img2d.tif").exists():
        out["DSB2018"].append(("img2d.tif", tifffile.imread(data / "dsb2018" / "img2d.tif")))
    for p in sorted((data / "examplefly").glob("*_D.TIF")):
        out["ExampleFly 8-bit"].append((p.name, tifffile.imread(p)))
    for p in sorted((data / "mnfinder").glob("*/*/images/*.tif")):
        out[mnfinder_family(p)].append((f"{p.parent.parent.name}/{p.name}", tifffile.imread(p)))
    return out


def one_core() -> None:
    """Pin this process to one core (both engines, or the preview, on the same one)."""
    try:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    except (AttributeError, OSError):
        pass


def estimated_images(data: Path, family_filter: str | None = None):
    """``(family, name, grayscale image, estimated parameters)`` for every image of ``families``.

    ``family_filter`` keeps the families whose name contains it (any case).
    """
    for family, images in families(data).items():
        if family_filter and family_filter.lower() not in family.lower():
            continue
        for name, image in images:
            image = image[..., 0] if image.ndim == 3 else image
            yield family, name, image, estimate_params(image).params


def best_times(fns, repeats: int) -> tuple[list[float], list]:
    """Best of ``repeats`` runs of each function, run in turn, and their results.

    Turns rather than one function's runs after the other's: a burst of load on a
    shared machine then slows both engines, not only one of them.
    """
    best, results = [np.inf] * len(fns), [None] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            results[i] = fn()
            best[i] = min(best[i], time.perf_counter() - t0)
    return best, results


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3,
                    help="best of N for each engine, the engines in turn")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--family", default=None, help="only families whose name contains this")
    args = ap.parse_args(argv)
    one_core()
    rows = []  # (family, level, name, fast s, reference s)
    for family, name, image, est in estimated_images(args.data, args.family):
        typical = est.threshold_abs
        for level, t in (("0", 0.0), ("low", typical / 4), ("typical", typical)):
            p = DetectionParams(est.sigma, est.min_distance, float(t))
            (tf, tr), (fast, ref) = best_times(
                [lambda p=p, im=image: detect(im, p, engine="fast"),
                 lambda p=p, im=image: detect(im, p, engine="reference")], args.repeats)
            if not np.array_equal(fast.coords, ref.coords):
                raise SystemExit(f"DIFFERENT coordinates: {family} {name} threshold {t} {p}")
            rows.append((family, level, name, tf, tr, p, fast.count))
    print(f"{'family':32} {'threshold':>9} {'images':>6} {'fast ms':>8} {'ref ms':>8} "
          f"{'ratio':>6} {'worst':>6}")
    by = defaultdict(list)
    for r in rows:
        by[(r[0], r[1])].append(r)
    for (family, level), rs in by.items():
        fast = statistics.median(r[3] for r in rs) * 1e3
        ref = statistics.median(r[4] for r in rs) * 1e3
        ratios = [r[4] / r[3] for r in rs]
        print(f"{family:32} {level:>9} {len(rs):6d} {fast:8.1f} {ref:8.1f} "
              f"{statistics.median(ratios):6.1f} {min(ratios):6.2f}")
    worst = min(rows, key=lambda r: r[4] / r[3])
    print(f"worst ratio reference/fast: {worst[4] / worst[3]:.2f} ({worst[0]}, {worst[2]}, "
          f"threshold {worst[5].threshold_abs:g}, sigma {worst[5].sigma:g}, "
          f"min distance {worst[5].min_distance})")
    slow = []
    for family, name in {(r[0], r[2]) for r in rows}:
        t = {r[1]: r[3] for r in rows if r[0] == family and r[2] == name}
        slow.append((t["0"] / t["typical"], family, name))
    s = max(slow)
    print(f"worst threshold-0 slowdown (fast engine, time at 0 / time at typical): "
          f"{s[0]:.1f}x ({s[1]}, {s[2]})")
    all_ratios = [r[4] / r[3] for r in rows]
    print(f"median ratio over all images and thresholds: {statistics.median(all_ratios):.1f}")


if __name__ == "__main__":
    main()
