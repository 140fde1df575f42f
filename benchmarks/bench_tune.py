"""Time the whole parameter search (``core.tune.tune``) on 4 generated 1024x1024 images.

Targets (issue 15): <= 10 s with label truth, <= 30 s with point truth, on 2 cores.
The images come from ``core.sample.make_nuclei_image`` (300 nuclei each, known centres);
label truth draws a disk of radius 7 around each centre, point truth is the centres.

    python benchmarks/bench_tune.py [--images 4] [--size 1024] [--nuclei 300] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from napari_nuclei_counter.core.sample import make_nuclei_image
from napari_nuclei_counter.core.scoring.evaluate import Truth
from napari_nuclei_counter.core.scoring.tune import tune


def _disks(centres, shape, radius=7):
    lab = np.zeros(shape, np.int32)
    r = int(np.ceil(radius))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    inside = yy**2 + xx**2 <= radius**2
    for k, (y, x) in enumerate(np.round(centres).astype(int)):
        ys, xs = yy[inside] + y, xx[inside] + x
        ok = (ys >= 0) & (ys < shape[0]) & (xs >= 0) & (xs < shape[1])
        lab[ys[ok], xs[ok]] = k + 1
    return lab


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--nuclei", type=int, default=300)
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args(argv)
    shape = (args.size, args.size)
    made = [make_nuclei_image(s, args.nuclei, shape) for s in range(args.images)]
    images, centres = zip(*made, strict=True)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{args.images} images {shape[0]}x{shape[1]}, {args.nuclei} nuclei each, "
          f"{cores} usable cores, workers {args.workers or cores}")
    tune(images[:1], [Truth(points=centres[0])], sigmas=[2], min_distances=[3], refine=False,
         match_radius=5)  # warm-up: imports, OpenCV dispatch
    for kind, target in (("labels", 10.0), ("points", 30.0)):
        truths = [Truth(labels=_disks(c, shape)) if kind == "labels" else Truth(points=c)
                  for c in centres]
        t0 = time.perf_counter()
        res = tune(images, truths, workers=args.workers)
        dt = time.perf_counter() - t0
        print(f"{kind:6s} truth: whole search {dt:5.2f} s (target <= {target:.0f} s) "
              f"{len(res.table)} sets, best {res.best.to_dict()} F1 {res.score.f1:.3f}")


if __name__ == "__main__":
    main()
