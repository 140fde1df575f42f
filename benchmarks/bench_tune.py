"""Time the whole parameter search (``core.tune.tune``) on 4 generated 1024x1024 images.

Targets (issue 15): <= 10 s with label truth, <= 30 s with point truth, on 2 cores.
The images come from ``core.sample.make_nuclei_image`` (300 nuclei each, known centres);
label truth draws a disk of radius 7 around each centre, point truth is the centres.

With ``--data`` (``../shared/data``), also whole ``nuclei-counter tune`` commands (start-up
included) on the four largest images of every annotated real family there, with their
label masks (issue 22: <= 10 s each): wall time, the best parameters and their F1.

    python benchmarks/bench_tune.py [--images 4] [--size 1024] [--nuclei 300] [--workers N]
                                    [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import tifffile

sys.path.insert(0, str(Path(__file__).parent))

from bench_engine import mnfinder_family
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
    ap.add_argument("--data", type=Path, default=None,
                    help="also time whole tune commands on every annotated family here")
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

    if args.data is not None:
        real_families(args.data)


def annotated_families(data: Path) -> dict[str, list[tuple[Path, Path]]]:
    """``{family: [(image, label mask), ...]}`` for the real images with one label per nucleus."""
    out: dict[str, list] = defaultdict(list)
    for p in sorted((data / "bbbc007").rglob("*_labels.tif")):
        image = p.with_name(p.name.replace("_labels", ""))
        if image.exists():
            out["BBBC007 8-bit"].append((image, p))
    for p in sorted((data / "mnfinder").glob("*/*/images/*.tif")):
        mask = p.parent.parent / "nucleus_masks" / f"{p.stem}.png"
        if mask.exists():
            out[mnfinder_family(p)].append((p, mask))
    return out


def real_families(data: Path) -> None:
    """Whole ``nuclei-counter tune`` commands on the four largest images of each family."""
    exe = Path(sys.executable).with_name("nuclei-counter")
    for family, pairs in annotated_families(data).items():
        sizes = [tifffile.TiffFile(image).pages[0].shape[:2] for image, _ in pairs]
        largest = sorted(range(len(pairs)), key=lambda i: -sizes[i][0] * sizes[i][1])[:4]
        with tempfile.TemporaryDirectory() as tmp:
            images, truth = Path(tmp, "images"), Path(tmp, "truth")
            images.mkdir()
            truth.mkdir()
            for k, i in enumerate(largest):
                image, mask = pairs[i]
                (images / f"{k}{image.suffix}").symlink_to(image.resolve())
                (truth / f"{k}{mask.suffix}").symlink_to(mask.resolve())
            t0 = time.perf_counter()
            run = subprocess.run([str(exe), "tune", str(images), "--truth", str(truth),
                                  "--truth-pattern", "{stem}" + pairs[largest[0]][1].suffix,
                                  "--out", str(Path(tmp, "out"))],
                                 capture_output=True, text=True)
            dt = time.perf_counter() - t0
        shown = ", ".join(f"{sizes[i][0]}x{sizes[i][1]}" for i in largest)
        best = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr[-300:]
        print(f"{family:28s} {len(largest)} images ({shown}): tune {dt:5.2f} s "
              f"(target <= 10 s), exit {run.returncode}: {best}")


if __name__ == "__main__":
    main()
