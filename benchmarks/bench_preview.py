"""The live preview's computation at any slider position, on every image family, one core.

For every image of ``bench_engine.families`` (``../shared/data`` and four generated
BBBC021-like images), at the parameters estimated from the image and at the slider
corners (sigma 1 and 10 pixels, min distance 2 and 15), the dock's ``PreviewCache``
is timed as the dock uses it: a sigma or min-distance change (every candidate found
again, then the threshold applied), then a threshold change (a prefix of the cached
candidates), at thresholds 0, a quarter of the estimated one and the estimated one.
Each figure is the best of N fresh caches. Printed per family: the median and worst
of each; then the worst overall, against the aims of issue 22 (a sigma or min-distance
change <= 50 ms median on 1024x1280, a threshold change <= 16 ms, none over 200 ms).
The window adds its drawing on top of these (``bench_gui.py``).

    python benchmarks/bench_preview.py [--repeats 2] [--data ../shared/data] [--family NAME]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_engine import REPO, estimated_images, one_core
from napari_nuclei_counter.core.detect.preview import PreviewCache
from napari_nuclei_counter.core.params import DetectionParams


def time_preview(image, sigma: float, d: int, threshold: float, repeats: int
                 ) -> tuple[float, float]:
    """Best ``(sigma/d change, threshold change)`` times in seconds over fresh caches."""
    change, move = float("inf"), float("inf")
    for _ in range(repeats):
        cache = PreviewCache()
        t0 = time.perf_counter()
        cache.detect(image, DetectionParams(sigma, d, threshold), key=0)
        t1 = time.perf_counter()
        cache.detect(image, DetectionParams(sigma, d, threshold * 1.01 + 0.5), key=0)
        t2 = time.perf_counter()
        change, move = min(change, t1 - t0), min(move, t2 - t1)
    return change, move


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2, help="best of N fresh caches")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--family", default=None, help="only families whose name contains this")
    args = ap.parse_args(argv)
    one_core()
    rows = []  # (family, name, shape, sigma, d, threshold, change s, move s)
    for family, name, image, est in estimated_images(args.data, args.family):
        settings = {(est.sigma, est.min_distance), (1.0, 2), (1.0, 15), (10.0, 2), (10.0, 15)}
        for sigma, d in sorted(settings):
            for t in (0.0, est.threshold_abs / 4, est.threshold_abs):
                change, move = time_preview(image, sigma, d, float(t), args.repeats)
                rows.append((family, name, image.shape, sigma, d, t, change, move))
    print(f"{'family':32} {'settings':>8} {'change ms':>18} {'threshold ms':>18}")
    print(f"{'':32} {'':>8} {'median':>9}{'worst':>9} {'median':>9}{'worst':>9}")
    by = defaultdict(list)
    for r in rows:
        by[r[0]].append(r)
    for family, rs in by.items():
        ch = [r[6] * 1e3 for r in rs]
        mv = [r[7] * 1e3 for r in rs]
        print(f"{family:32} {len(rs):8d} {statistics.median(ch):9.1f}{max(ch):9.1f} "
              f"{statistics.median(mv):9.2f}{max(mv):9.2f}")
    big = [r for r in rows if r[2] == (1024, 1280)]
    if big:
        print(f"1024x1280, every setting: sigma/min-distance change median "
              f"{statistics.median(r[6] for r in big) * 1e3:.1f} ms (aim 50), threshold change "
              f"median {statistics.median(r[7] for r in big) * 1e3:.2f} ms (aim 16)")
    worst = max(rows, key=lambda r: max(r[6], r[7]))
    print(f"slowest slider change: {max(worst[6], worst[7]) * 1e3:.0f} ms (aim 200): {worst[0]}, "
          f"{worst[1]}, sigma {worst[3]:g}, min distance {worst[4]}, threshold {worst[5]:g}")


if __name__ == "__main__":
    main()
