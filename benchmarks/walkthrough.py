#!/usr/bin/env python
"""The published walk-through's five methods, as it wrote them.

The project grew from a blog walk-through (its text: ``shared/ORIGIN.txt``)
that ran ``gaussian`` + ``peak_local_max`` over a 240-image BBBC021 plate in
five ways. Its code is copied here with one change: ``tifffile.imread`` in
place of ``skimage.io.imread`` (same arrays for these TIFFs).

====  ==============================================================
 1    list comprehension with IO (serial)
 2    ``mp.Pool().map`` over paths
 3    list comprehension from memory (images preloaded)
 4    ``mp.Pool().map`` over the in-memory images (each one pickled)
 5    fork copy-on-write (global ``images``, map over indices)
====  ==============================================================

Run as a script, ``python benchmarks/walkthrough.py FOLDER`` runs method 2 on
``FOLDER`` and prints JSON (seconds, names, counts): ``bench_plate.py``
measures that process's memory and start-up exactly like our command line's.
So this module imports neither our package nor pandas, OpenCV or matplotlib.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import sys
import time

import tifffile
from skimage.feature import peak_local_max
from skimage.filters import gaussian

from _helpers import list_plate

#: (key, name) of each method, in the walk-through's order
METHODS = [
    (1, "list comprehension with IO (serial)"),
    (2, "Pool.map over paths"),
    (3, "list comprehension from memory"),
    (4, "Pool.map over pickled arrays"),
    (5, "fork copy-on-write (global images)"),
]


def detect_nuclei(img, sigma=4, min_distance=6, threshold_abs=1000):
    """The walk-through's detector: Gaussian blur, then local maxima."""
    g = gaussian(img, sigma, preserve_range=True)
    return peak_local_max(g, min_distance, threshold_abs)


def _process_image(path):
    """Method 2's worker: read one image and detect."""
    return detect_nuclei(tifffile.imread(path))


#: the preloaded plate, for the copy-on-write method (5)
images = None


def _process_image_memory_fix(i):
    """Method 5's worker: index into the inherited global array."""
    global images
    return detect_nuclei(images[i])


def process_images1(paths):
    """Method 1: list comprehension with IO."""
    return [detect_nuclei(tifffile.imread(p)) for p in paths]


def process_images2(paths):
    """Method 2: ``multiprocessing.Pool`` over paths."""
    with mp.Pool() as pool:
        return pool.map(_process_image, paths)


def process_images3(imgs):
    """Method 3: list comprehension over preloaded images."""
    return [detect_nuclei(img) for img in imgs]


def process_images4(imgs):
    """Method 4: ``Pool.map`` over images (each one pickled)."""
    with mp.Pool() as pool:
        return pool.map(detect_nuclei, imgs)


def process_images5(n):
    """Method 5: fork and let workers read the global ``images``.

    The walk-through relies on the platform's default ``fork``; we ask for it
    explicitly, since newer Pythons default to ``forkserver``.
    """
    with mp.get_context("fork").Pool() as pool:
        return pool.map(_process_image_memory_fix, range(n))


def run_method(key: int, paths: list[str], stack) -> list:
    """Run method ``key`` (1-5) on the plate (``paths``, and ``stack`` preloaded).

    Returns the walk-through's result: one ``(N, 2)`` array of centres per image.
    """
    global images
    if key == 1:
        return process_images1(paths)
    if key == 2:
        return process_images2(paths)
    if key == 3:
        return process_images3(stack)
    if key == 4:
        return process_images4(stack)
    if key == 5:
        images = stack
        try:
            return process_images5(len(stack))
        finally:
            images = None
    raise ValueError(f"the walk-through has methods 1-5, not {key!r}")


def main(argv=None) -> int:
    """Run method 2 on a folder; print seconds, file names and counts as JSON."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write(__doc__.split("\n\n")[0] + "\nusage: walkthrough.py FOLDER\n")
        return 2
    paths = list_plate(args[0])
    t0 = time.perf_counter()
    centers = process_images2(paths)
    dt = time.perf_counter() - t0
    json.dump({"seconds": dt, "names": [os.path.basename(p) for p in paths],
               "counts": [len(c) for c in centers]}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
