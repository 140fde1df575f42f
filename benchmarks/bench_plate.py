#!/usr/bin/env python
"""Benchmark: our nuclei counter against the walk-through's methods, side by side.

The project grew from a blog walk-through (``shared/ORIGIN.txt``) that timed
five ways of running ``gaussian`` + ``peak_local_max`` over a 240-image BBBC021
plate. This script runs those five methods *and* ours in one process, on the
same images, in one go, and prints one table. On a shared, noisy machine the
absolute times drift; the ratios measured side by side are what matter.

What is measured
----------------
Plate methods (wall time of the whole method, ``multiprocessing.Pool``
creation included, as in the walk-through; pools use every core):

====  ==============================================================
 1    walk-through: list comprehension with IO (serial)
 2    walk-through: ``mp.Pool().map`` over paths
 3    walk-through: list comprehension from memory (images preloaded)
 4    walk-through: ``mp.Pool().map`` over the in-memory images (pickled)
 5    walk-through: fork copy-on-write (global images, map over indices)
 6    ours: ``run_batch(paths, workers=0)`` (serial, one core)
 7    ours: ``nuclei-counter detect`` as a whole process (start-up included)
 8    ours: ``run_batch(paths)`` process pool in this process
 9    ours: in-memory stack through shared memory (``run_batch_arrays``)
====  ==============================================================

Every method must report the same number of nuclei per image (the CLI's are
read back from its ``images.csv``); any difference is printed as ``MISMATCH``
and the script exits with status 1. The walk-through's function is copied
with ``tifffile.imread`` in place of ``skimage.io.imread``.

Also measured, in the same run:

* **single image, one core**: the reference engine (scikit-image) against our
  fast engine on a few plate images, median of repeats, and whether the
  coordinates are identical;
* **live preview**: ``_fast.prepare`` (what a sigma/min_distance change costs)
  and ``Candidates.select`` (what a threshold-only change costs);
* **memory**: peak resident memory of the headless CLI, summed over the main
  process and its workers (psutil, polled every 50 ms), for the plate and for
  a 2,000-image folder of symbolic links; the walk-through's Pool-over-paths
  script run as a whole process is measured the same way for comparison.

Images are synthetic 1024x1280 uint16 BBBC021-named TIFFs
(:func:`napari_nuclei_counter.core.sample.write_sample_plate`), generated once
into a cache folder and reused. The plate is read once before timing, so every
method sees a warm page cache.

How to run
----------
``make bench`` runs this script. Directly::

    .venv/bin/python benchmarks/bench_plate.py --repeats 3   # full run, ~8 min
    .venv/bin/python benchmarks/bench_plate.py --quick    # 48 images, smoke test

Results go to ``benchmarks/results.png`` (bar chart) and
``benchmarks/results.json`` (every number, for the README); ``--quick`` writes
them into the work folder instead, so it never overwrites a full run.
"""

from __future__ import annotations

# Keep the imports at module level light: the walk-through child mode
# (``--walkthrough-child``) is measured for memory and must not carry our
# package, OpenCV, pandas or matplotlib. Those are imported where used.
import argparse
import csv
import json
import multiprocessing as mp
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from glob import glob
from pathlib import Path
from typing import Callable

import numpy as np
import tifffile
from skimage.feature import peak_local_max
from skimage.filters import gaussian

HERE = Path(__file__).resolve().parent
#: the walk-through's glob for BBBC021 DAPI images
WALKTHROUGH_PATTERN = "Week1_*_w1*.tif"
#: plate layouts (rows, columns, sites): 6 x 10 x 4 = 240 like BBBC021, 2 x 6 x 4 = 48
FULL_LAYOUT = ("BCDEFG", (2, 12), 4)
QUICK_LAYOUT = ("BC", (2, 8), 4)
WALKTHROUGH = "walk-through"
OURS = "ours"


# ---------------------------------------------------------------------------
# The walk-through's code (its semantics; tifffile instead of skimage.io)
# ---------------------------------------------------------------------------

def detect_nuclei(img, sigma=4, min_distance=6, threshold_abs=1000):
    """The walk-through's detector: Gaussian blur, then local maxima."""
    g = gaussian(img, sigma, preserve_range=True)
    return peak_local_max(g, min_distance, threshold_abs)


def _process_image(path):
    """Walk-through method 2's worker: read one image and detect."""
    return detect_nuclei(tifffile.imread(path))


#: the preloaded plate, for the walk-through's copy-on-write method (5)
images = None


def _process_image_memory_fix(i):
    """Walk-through method 5's worker: index into the inherited global array."""
    global images
    return detect_nuclei(images[i])


def process_images1(paths):
    """Walk-through method 1: list comprehension with IO."""
    return [detect_nuclei(tifffile.imread(p)) for p in paths]


def process_images2(paths):
    """Walk-through method 2: ``multiprocessing.Pool`` over paths."""
    with mp.Pool() as pool:
        return pool.map(_process_image, paths)


def process_images3(imgs):
    """Walk-through method 3: list comprehension over preloaded images."""
    return [detect_nuclei(img) for img in imgs]


def process_images4(imgs):
    """Walk-through method 4: ``Pool.map`` over images (each one pickled)."""
    with mp.Pool() as pool:
        return pool.map(detect_nuclei, imgs)


def process_images5(n):
    """Walk-through method 5: fork and let workers read the global ``images``.

    The walk-through relies on the platform's default ``fork``; we ask for it
    explicitly, since newer Pythons default to ``forkserver``.
    """
    with mp.get_context("fork").Pool() as pool:
        return pool.map(_process_image_memory_fix, range(n))


def walkthrough_child(folder: str) -> int:
    """Run the walk-through's Pool-over-paths script on ``folder``; print JSON.

    Used as a separate process (``--walkthrough-child``) so that its memory
    and start-up can be measured exactly like our command line's.
    """
    paths = list_plate(Path(folder))
    t0 = time.perf_counter()
    centers = process_images2(paths)
    dt = time.perf_counter() - t0
    json.dump({"seconds": dt, "names": [os.path.basename(p) for p in paths],
               "counts": [len(c) for c in centers]}, sys.stdout)
    return 0


# ---------------------------------------------------------------------------
# Our methods
# ---------------------------------------------------------------------------

@dataclass
class Context:
    """What the plate methods work on.

    Attributes
    ----------
    paths : list of str
        The plate's images, sorted like the walk-through's ``paths``.
    stack : ndarray, shape (N, H, W)
        The same images, preloaded.
    plate_dir : Path
        Folder the command line is pointed at (holds exactly ``paths``).
    workdir : Path
        Scratch folder (command-line output).
    cli_runs : list of dict
        Filled by :func:`ours_cli`: the CLI's own report of each run.
    """

    paths: list[str]
    stack: np.ndarray
    plate_dir: Path
    workdir: Path
    cli_runs: list[dict] = field(default_factory=list)


def _params():
    from napari_nuclei_counter import DetectionParams

    return DetectionParams(sigma=4.0, min_distance=6, threshold_abs=1000.0)


def _counts_from_results(results, n: int) -> list[int | None]:
    counts: list[int | None] = [None] * n
    for r in results:
        counts[r.index] = r.count
    return counts


def ours_serial(ctx: Context) -> list:
    """Ours, serial: ``run_batch(paths, workers=0)`` in this process."""
    from napari_nuclei_counter.core.batch import run_batch

    return list(run_batch(ctx.paths, _params(), workers=0))


def ours_pool(ctx: Context) -> list:
    """Ours: ``run_batch(paths)`` with its process pool on every core."""
    from napari_nuclei_counter.core.batch import run_batch

    return list(run_batch(ctx.paths, _params()))


def ours_shared(ctx: Context) -> list:
    """Ours: ``run_batch_arrays`` on the preloaded stack (one shared-memory copy)."""
    from napari_nuclei_counter.core.batch import run_batch_arrays

    return list(run_batch_arrays(ctx.stack, _params()))


def cli_command() -> list[str]:
    """The ``nuclei-counter`` executable of this environment."""
    exe = Path(sys.executable).with_name("nuclei-counter")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("nuclei-counter")
    return [found] if found else [sys.executable, "-m", "napari_nuclei_counter.cli"]


def cli_detect_args(folder: Path, out: Path) -> list[str]:
    """Arguments for a headless CLI run with default parameters and all cores."""
    return [*cli_command(), "detect", str(folder), "--out", str(out), "--quiet"]


def parse_cli_summary(stderr: str) -> dict:
    """Read the CLI's closing line: images, nuclei, failed, seconds of the batch."""
    m = re.search(r"(\d+) images, (\d+) nuclei, (\d+) failed, ([\d.]+) s", stderr)
    if not m:
        return {}
    return {"images": int(m[1]), "nuclei": int(m[2]), "failed": int(m[3]),
            "batch_seconds": float(m[4])}


def read_cli_counts(out: Path) -> dict[str, int | None]:
    """Map file name to nuclei count from the CLI's ``images.csv`` (None if failed)."""
    counts = {}
    with open(out / "images.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            n = row["n_nuclei"]
            counts[os.path.basename(row["path"])] = int(n) if n and not row["error"] else None
    return counts


def ours_cli(ctx: Context) -> dict:
    """Ours: ``nuclei-counter detect`` as a separate process, start-up included."""
    out = ctx.workdir / f"cli-out-{len(ctx.paths)}"
    proc = subprocess.run(cli_detect_args(ctx.plate_dir, out), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"nuclei-counter exited with {proc.returncode}:\n{proc.stderr}")
    return {"out": out, "stderr": proc.stderr}


def counts_of(key: int, result, ctx: Context) -> list[int | None]:
    """Per-image nuclei counts, in ``ctx.paths`` order, from a method's raw result."""
    n = len(ctx.paths)
    if key <= 5:
        return [len(c) for c in result]
    if key == 7:
        by_name = read_cli_counts(result["out"])
        summary = parse_cli_summary(result["stderr"])
        seconds = _cli_image_seconds(result["out"])
        ctx.cli_runs.append({**summary, "sum_image_seconds": seconds})
        return [by_name.get(os.path.basename(p)) for p in ctx.paths]
    return _counts_from_results(result, n)


def _cli_image_seconds(out: Path) -> float:
    with open(out / "images.csv", newline="", encoding="utf-8") as fh:
        return sum(float(r["seconds"] or 0) for r in csv.DictReader(fh))


@dataclass
class Method:
    """One way of processing the plate."""

    key: int
    name: str
    group: str
    run: Callable[[Context], object]


def _set_images_global(ctx: Context):
    global images
    images = ctx.stack
    return process_images5(len(ctx.stack))


METHODS = [
    Method(1, "list comprehension with IO (serial)", WALKTHROUGH,
           lambda c: process_images1(c.paths)),
    Method(2, "Pool.map over paths", WALKTHROUGH, lambda c: process_images2(c.paths)),
    Method(3, "list comprehension from memory", WALKTHROUGH, lambda c: process_images3(c.stack)),
    Method(4, "Pool.map over pickled arrays", WALKTHROUGH, lambda c: process_images4(c.stack)),
    Method(5, "fork copy-on-write (global images)", WALKTHROUGH, _set_images_global),
    Method(6, "run_batch serial (workers=0)", OURS, ours_serial),
    Method(7, "nuclei-counter detect (whole CLI process)", OURS, ours_cli),
    Method(8, "run_batch process pool", OURS, ours_pool),
    Method(9, "run_batch_arrays (shared memory)", OURS, ours_shared),
]


# ---------------------------------------------------------------------------
# The plate
# ---------------------------------------------------------------------------

def default_workdir() -> Path:
    """``$TMPDIR/nuclei-counter-bench`` (the system temporary folder if unset)."""
    return Path(os.environ.get("TMPDIR") or tempfile.gettempdir()) / "nuclei-counter-bench"


def list_plate(folder: Path) -> list[str]:
    """The walk-through's ``paths``: DAPI images of ``folder``, sorted."""
    return sorted(glob(os.path.join(glob_escape(folder), WALKTHROUGH_PATTERN)))


def glob_escape(folder: Path) -> str:
    """Escape a folder name for :func:`glob.glob` (brackets are special)."""
    import glob as _glob

    return _glob.escape(str(folder))


def ensure_plate(folder: Path, layout: tuple, log) -> list[str]:
    """Return the plate in ``folder``, generating it if it is missing.

    A folder we generated carries ``.bench-plate.json``; it is reused when the
    layout and image count match, and regenerated otherwise. A folder without
    that marker but with images (a real BBBC021 plate, say) is used as is.
    """
    from napari_nuclei_counter.core.sample import write_sample_plate

    rows, (c0, c1), sites = layout
    spec = {"rows": rows, "columns": [c0, c1], "sites": sites, "seed": 0,
            "n": len(rows) * (c1 - c0) * sites}
    marker = folder / ".bench-plate.json"
    paths = list_plate(folder) if folder.is_dir() else []
    if marker.exists():
        if json.loads(marker.read_text()) == spec and len(paths) == spec["n"]:
            return paths
    elif paths:
        log(f"using the {len(paths)} images found in {folder} as they are")
        return paths
    log(f"writing a synthetic plate of {spec['n']} images to {folder} (once) ...")
    t0 = time.perf_counter()
    write_sample_plate(folder, rows=rows, columns=range(c0, c1), sites=sites, seed=0)
    marker.write_text(json.dumps(spec))
    log(f"  done in {time.perf_counter() - t0:.0f} s")
    return list_plate(folder)


def make_link_plate(folder: Path, targets: list[str], n: int) -> list[tuple[str, str]]:
    """Fill ``folder`` with ``n`` symbolic links to ``targets`` (cycled).

    Names are distinct BBBC021-style names on a 16 x 24 plate with up to 6
    sites per well, so the CLI's and the walk-through's globs both find them.

    Returns
    -------
    list of (link name, target path)
    """
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    rng = np.random.default_rng([2000, n])
    wells = [f"{r}{c:02d}" for r in "ABCDEFGHIJKLMNOP" for c in range(1, 25)]
    names = [(w, s) for w in wells for s in range(1, 7)]
    if n > len(names):
        raise ValueError(f"at most {len(names)} links, asked for {n}")
    links = []
    for i, (well, site) in enumerate(names[:n]):
        uid = str(uuid.UUID(bytes=rng.bytes(16), version=4)).upper()
        name = f"Week1_22123_{well}_s{site}_w1{uid}.tif"
        target = os.path.abspath(targets[i % len(targets)])
        os.symlink(target, folder / name)
        links.append((name, target))
    return links


# ---------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------

def time_plate_methods(ctx: Context, repeats: int, log) -> dict[int, dict]:
    """Run every plate method ``repeats`` times, round-robin; keep times and counts.

    Round-robin (1..9, 1..9, ...) spreads slow phases of a noisy machine over
    all methods instead of penalising one.
    """
    out = {m.key: {"seconds": [], "counts": None} for m in METHODS}
    for r in range(repeats):
        for m in METHODS:
            log(f"[{r + 1}/{repeats}] {m.key}. {m.group}: {m.name} ...", end="")
            t0 = time.perf_counter()
            raw = m.run(ctx)
            dt = time.perf_counter() - t0
            log(f" {dt:.2f} s", prefix=False)
            out[m.key]["seconds"].append(dt)
            counts = counts_of(m.key, raw, ctx)
            if m.key == 7 and ctx.cli_runs:
                ctx.cli_runs[-1]["wall_s"] = dt
            if out[m.key]["counts"] is None:
                out[m.key]["counts"] = counts
            elif counts != out[m.key]["counts"]:
                out[m.key]["counts_unstable"] = True
            del raw
    return out


def check_counts(times: dict[int, dict], names: list[str]) -> list[str]:
    """Compare every method's per-image counts with method 1's; return the errors."""
    ref = times[1]["counts"]
    errors = []
    for key, entry in times.items():
        counts = entry["counts"]
        if entry.get("counts_unstable"):
            errors.append(f"method {key}: counts differ between repeats")
        bad = [i for i, (a, b) in enumerate(zip(ref, counts)) if a != b]
        if len(counts) != len(ref):
            errors.append(f"method {key}: {len(counts)} images, method 1 had {len(ref)}")
        if bad:
            i = bad[0]
            errors.append(f"method {key}: {len(bad)} image(s) differ from method 1, first "
                          f"{names[i]}: {counts[i]} vs {ref[i]}")
        entry["counts_match"] = not bad and len(counts) == len(ref)
    return errors


def _median_ms(samples: list[float]) -> float:
    return 1000.0 * statistics.median(samples)


def bench_single_image(paths: list[str], picks: list[int], repeats: int, log) -> list[dict]:
    """Reference vs fast engine on single images, one thread, medians.

    Two ways, both reported:

    * **steady** (the headline): rounds of 2 reference calls then 5 fast
      calls on the same image, ``repeats`` rounds; each engine's median over
      its calls. Each engine runs warm, as it does image after image in a
      batch, and the rounds interleave so that drifts of a shared machine hit
      both alike.
    * **alternating**: reference, fast, reference, fast, ... Every fast call
      comes right after a reference call, whose 10 MB float64 arrays have just
      pushed the fast engine's buffers out of the CPU caches: a pessimistic
      view of the fast engine.
    """
    import cv2

    from napari_nuclei_counter import detect

    cv2.setNumThreads(1)
    p = _params()
    rows = []
    for i in picks:
        img = tifffile.imread(paths[i])
        ref = detect(img, p, engine="reference")
        fast = detect(img, p, engine="fast")
        walk = detect_nuclei(img)
        t_ref, t_fast, a_ref, a_fast = [], [], [], []
        for _ in range(repeats):
            for _ in range(2):
                t0 = time.perf_counter()
                detect(img, p, engine="reference")
                t_ref.append(time.perf_counter() - t0)
            for _ in range(5):
                t0 = time.perf_counter()
                detect(img, p, engine="fast")
                t_fast.append(time.perf_counter() - t0)
        for _ in range(repeats):
            t0 = time.perf_counter()
            detect(img, p, engine="reference")
            a_ref.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            detect(img, p, engine="fast")
            a_fast.append(time.perf_counter() - t0)
        row = {
            "image": os.path.basename(paths[i]), "nuclei": ref.count,
            "reference_ms": _median_ms(t_ref), "fast_ms": _median_ms(t_fast),
            "alternating_reference_ms": _median_ms(a_ref),
            "alternating_fast_ms": _median_ms(a_fast),
            "identical": bool(np.array_equal(ref.coords, fast.coords)
                              and np.array_equal(ref.coords, walk)),
        }
        row["speedup"] = row["reference_ms"] / row["fast_ms"]
        row["alternating_speedup"] = row["alternating_reference_ms"] / row["alternating_fast_ms"]
        log(f"single image {row['image'][:22]}...: reference {row['reference_ms']:.1f} ms, "
            f"fast {row['fast_ms']:.1f} ms ({row['speedup']:.1f}x; alternating "
            f"{row['alternating_speedup']:.1f}x)")
        rows.append(row)
    return rows


def bench_preview(path: str, thresholds: list[float], repeats: int) -> dict:
    """Time the live preview path on one image, one thread.

    Each repeat prepares fresh candidates (a sigma/min_distance change) and
    then selects every threshold in turn, like a slider being dragged. For
    comparison it also times ``prepare`` with a finite floor (the lowest
    threshold) and a one-off ``detect``.
    """
    import cv2

    from napari_nuclei_counter import detect
    from napari_nuclei_counter.core._fast import prepare

    cv2.setNumThreads(1)
    img = tifffile.imread(path)
    p = _params()
    prepare(img, 4.0, 6).select(1000.0)  # warm-up
    floor = min(thresholds)
    t_prep, t_floor, t_sel = [], [], {t: [] for t in thresholds}
    t_detect = []
    same = True
    for _ in range(repeats):
        t0 = time.perf_counter()
        cands = prepare(img, 4.0, 6)
        t_prep.append(time.perf_counter() - t0)
        for t in thresholds:
            t0 = time.perf_counter()
            coords, _ = cands.select(t)
            t_sel[t].append(time.perf_counter() - t0)
            if t == p.threshold_abs:
                same &= bool(np.array_equal(coords, detect(img, p).coords))
        t0 = time.perf_counter()
        prepare(img, 4.0, 6, floor=floor)
        t_floor.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        detect(img, p)
        t_detect.append(time.perf_counter() - t0)
    return {
        "image": os.path.basename(path), "shape": list(img.shape),
        "candidates": int(len(cands.coords)),
        "prepare_ms": _median_ms(t_prep),
        "prepare_floor": floor, "prepare_floor_ms": _median_ms(t_floor),
        "select_ms": {str(t): _median_ms(v) for t, v in t_sel.items()},
        "detect_fast_ms": _median_ms(t_detect),
        "select_matches_detect": same,
    }


def run_monitored(cmd: list[str], interval: float = 0.05, pss_every: int = 5) -> dict:
    """Run ``cmd`` and record the peak memory of it and all its descendants.

    Resident set sizes (RSS) are summed over the process tree every
    ``interval`` seconds; shared pages (forked or preloaded libraries) count
    once per process, so this overstates the machine's real use. The
    proportional set size (PSS, shared pages split between the sharers) is
    summed every ``pss_every`` polls, as it is slower to read. Where GNU
    ``/usr/bin/time`` exists, the command runs under it and its maximum RSS
    (that of the single largest process) is reported too.

    Returns
    -------
    dict
        ``wall_s``, ``peak_rss_mb``, ``peak_pss_mb``, ``largest_process_mb``
        (None without GNU time), ``max_processes``, ``returncode``,
        ``stdout``, ``stderr``.
    """
    import psutil

    gnu_time = Path("/usr/bin/time")
    use_time = gnu_time.exists()
    full = [str(gnu_time), "-v", *cmd] if use_time else cmd
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(full, stdout=out, stderr=err, text=True)
        root = psutil.Process(proc.pid)
        peak_rss = peak_pss = 0
        max_procs = 0
        polls = 0
        while proc.poll() is None:
            try:
                tree = root.children(recursive=True)
            except psutil.NoSuchProcess:
                break
            if not use_time:
                tree.append(root)
            rss = pss = 0
            for p in tree:
                try:
                    rss += p.memory_info().rss
                    if polls % pss_every == 0:
                        pss += p.memory_full_info().pss
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass
            peak_rss = max(peak_rss, rss)
            peak_pss = max(peak_pss, pss)
            max_procs = max(max_procs, len(tree))
            polls += 1
            time.sleep(interval)
        proc.wait()
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    largest = None
    if use_time:
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr)
        largest = int(m[1]) / 1024 if m else None
    return {"wall_s": wall, "peak_rss_mb": peak_rss / 2**20, "peak_pss_mb": peak_pss / 2**20,
            "largest_process_mb": largest, "max_processes": max_procs,
            "returncode": proc.returncode, "stdout": stdout, "stderr": stderr}


def bench_memory(ctx: Context, ref_counts: list, n_links: int, walkthrough: bool,
                 log) -> tuple[list[dict], list[str]]:
    """Peak memory of our CLI (and the walk-through's script) on the plate and on links.

    Returns the rows and any count mismatches found on the way.
    """
    by_name = {os.path.basename(p): c for p, c in zip(ctx.paths, ref_counts)}
    folders = [(ctx.plate_dir, by_name)]
    if n_links:
        link_dir = ctx.workdir / f"plate-{n_links}-links"
        links = make_link_plate(link_dir, ctx.paths, n_links)
        folders.append((link_dir, {name: by_name[os.path.basename(t)] for name, t in links}))
    rows, errors = [], []
    for folder, expected in folders:
        n = len(expected)
        runs = [("ours", "nuclei-counter detect", cli_detect_args(folder, ctx.workdir /
                                                                  f"mem-out-{n}"))]
        if walkthrough:
            runs.append(("walk-through", "walk-through Pool.map script",
                         [sys.executable, str(Path(__file__).resolve()),
                          "--walkthrough-child", str(folder)]))
        for group, name, cmd in runs:
            log(f"memory: {name} on {n} images ...", end="")
            res = run_monitored(cmd)
            log(f" {res['wall_s']:.1f} s, peak {res['peak_rss_mb']:.0f} MB", prefix=False)
            if res["returncode"] != 0:
                errors.append(f"{name} on {n} images exited with {res['returncode']}: "
                              f"{res['stderr'][-2000:]}")
                continue
            if group == "ours":
                got = read_cli_counts(ctx.workdir / f"mem-out-{n}")
            else:
                child = json.loads(res["stdout"])
                got = dict(zip(child["names"], child["counts"]))
            bad = [k for k in expected if got.get(k) != expected[k]]
            if bad or len(got) != n:
                errors.append(f"{name} on {n} images: {len(bad)} count(s) differ from method 1"
                              f" (found {len(got)} images)")
            rows.append({"group": group, "what": name, "images": n,
                         **{k: res[k] for k in ("wall_s", "peak_rss_mb", "peak_pss_mb",
                                                "largest_process_mb", "max_processes")}})
    return rows, errors


def cli_startup(repeats: int = 3) -> dict:
    """Median wall time of ``python -c pass`` and of ``nuclei-counter --version``.

    ``--version`` imports everything the CLI imports and exits before any work:
    it is the interpreter start-up plus import cost of every CLI run.
    """
    def med(cmd):
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            subprocess.run(cmd, capture_output=True, check=True)
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts)

    return {"python_s": med([sys.executable, "-c", "pass"]),
            "cli_version_s": med([*cli_command(), "--version"])}


# ---------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------

def format_table(headers: list[str], rows: list[list], right: set[int] = frozenset()) -> str:
    """Format rows as aligned text columns; column indices in ``right`` align right."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(r, widths))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *[line(r) for r in cells[1:]]])


def faster(ratio: float, than: str, digits: int = 2) -> str:
    """Word a speed-up: ``'3.10x faster than X'``, ``'1.25x slower than X'``.

    Within 5 % of 1 it says ``'about as fast as X'``.
    """
    if abs(ratio - 1) < 0.05:
        return f"about as fast as {than}"
    if ratio >= 1:
        return f"{ratio:.{digits}f}x faster than {than}"
    return f"{1 / ratio:.{digits}f}x slower than {than}"


def machine_info() -> dict:
    """Cores, CPU model, load and library versions, for the header and the JSON."""
    import cv2
    import scipy
    import skimage

    import napari_nuclei_counter
    from napari_nuclei_counter.core.batch import default_workers

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu_count": os.cpu_count(), "usable_cores": default_workers(), "cpu_model": model,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(), "python": platform.python_version(),
        "start_method": mp.get_start_method(),
        "versions": {"napari-nuclei-counter": napari_nuclei_counter.__version__,
                     "numpy": np.__version__, "scipy": scipy.__version__,
                     "scikit-image": skimage.__version__, "opencv": cv2.__version__,
                     "tifffile": tifffile.__version__},
    }


def method_rows(times: dict[int, dict], n_images: int) -> list[dict]:
    """One summary dict per plate method: median time and ratios to methods 1 and 2."""
    t1 = statistics.median(times[1]["seconds"])
    t2 = statistics.median(times[2]["seconds"])
    rows = []
    for m in METHODS:
        t = statistics.median(times[m.key]["seconds"])
        rows.append({"key": m.key, "name": m.name, "group": m.group, "seconds": t,
                     "all_seconds": times[m.key]["seconds"], "images_per_s": n_images / t,
                     "speedup_vs_1": t1 / t, "speedup_vs_2": t2 / t,
                     "counts_match": times[m.key]["counts_match"]})
    return rows


def print_report(info: dict, n: int, rows: list[dict], cli: dict, single: list[dict],
                 preview: dict, memory: list[dict], repeats: int) -> None:
    """Print the header, the plate table and the three side measurements."""
    print()
    print(f"Machine: {info['cpu_count']} cores ({info['usable_cores']} usable), "
          f"{info['cpu_model']}; load average {info['load_average']}")
    v = info["versions"]
    print(f"Python {info['python']} ({info['start_method']}), numpy {v['numpy']}, "
          f"scipy {v['scipy']}, scikit-image {v['scikit-image']}, opencv {v['opencv']}")
    print(f"Plate: {n} images of 1024x1280 uint16; pools use all {info['cpu_count']} cores; "
          f"median of {repeats} run(s) each")
    print("Speed-up = time of method 1 (or 2) / time of the method; higher is faster.")
    print()
    table = [[r["key"], r["group"], r["name"], f"{r['seconds']:.2f}",
              f"{r['images_per_s']:.1f}", f"{r['speedup_vs_1']:.2f}x",
              f"{r['speedup_vs_2']:.2f}x", "ok" if r["counts_match"] else "MISMATCH"]
             for r in rows]
    print(format_table(["#", "who", "method", "wall s", "img/s", "vs 1 (serial)",
                        "vs 2 (Pool)", "counts"], table, right={0, 3, 4, 5, 6}))
    headline = next(r for r in rows if r["key"] == 7)
    print()
    print(f"HEADLINE: `nuclei-counter detect` (whole process) vs walk-through Pool over paths: "
          f"{faster(headline['speedup_vs_2'], 'method 2')} "
          f"({headline['seconds']:.2f} s vs {rows[1]['seconds']:.2f} s)")
    if cli:
        print(f"  where the CLI's {cli['total_s']:.2f} s go: interpreter + imports "
              f"{cli['startup_s']:.2f} s (python alone {cli['python_s']:.2f} s); batch "
              f"{cli['batch_s']:.2f} s, of which detection+reading in workers "
              f"{cli['compute_per_worker_s']:.2f} s/worker and pool start, IPC, tables "
              f"{cli['pool_and_tables_s']:.2f} s; exit/other {cli['other_s']:.2f} s")

    print()
    print("Single image, one thread (median ms, each engine warm; identical = same "
          "coordinates, same order; alternating = each fast call right after a reference call):")
    print(format_table(
        ["image", "nuclei", "reference ms", "fast ms", "speed-up", "alternating", "identical"],
        [[s["image"][:40], s["nuclei"], f"{s['reference_ms']:.1f}", f"{s['fast_ms']:.1f}",
          f"{s['speedup']:.1f}x", f"{s.get('alternating_speedup', float('nan')):.1f}x",
          "yes" if s["identical"] else "NO"] for s in single],
        right={1, 2, 3, 4, 5}))

    print()
    print(f"Live preview, one thread, {preview['image'][:40]} ({preview['candidates']} "
          f"candidates; median ms):")
    prow = [["prepare(img, 4.0, 6)  (sigma / min_distance change)",
             f"{preview['prepare_ms']:.1f}"]]
    prow += [[f"select({float(t):g})  (threshold change)", f"{ms:.2f}"]
             for t, ms in preview["select_ms"].items()]
    prow.append([f"prepare(img, 4.0, 6, floor={preview['prepare_floor']:g})  (for comparison)",
                 f"{preview['prepare_floor_ms']:.1f}"])
    prow.append(["detect(img) fast  (for comparison)", f"{preview['detect_fast_ms']:.1f}"])
    print(format_table(["step", "ms"], prow, right={1}))
    if not preview["select_matches_detect"]:
        print("MISMATCH: select(1000) differs from detect()")

    if memory:
        print()
        print("Memory, whole process trees (peak RSS summed over main + workers, polled "
              "every 50 ms; PSS sampled every 250 ms; largest single process by GNU time):")
        print(format_table(
            ["who", "what", "images", "wall s", "peak RSS sum MB", "peak PSS sum MB",
             "largest process MB", "processes"],
            [[m["group"], m["what"], m["images"], f"{m['wall_s']:.1f}",
              f"{m['peak_rss_mb']:.0f}", f"{m['peak_pss_mb']:.0f}",
              "-" if m["largest_process_mb"] is None else f"{m['largest_process_mb']:.0f}",
              m["max_processes"]] for m in memory],
            right={2, 3, 4, 5, 6, 7}))


def cli_breakdown(ctx: Context, rows: list[dict], startup: dict) -> dict:
    """Split the CLI's wall time into start-up, worker compute and the rest."""
    if not ctx.cli_runs or not ctx.cli_runs[0]:
        return {}
    # the run whose wall time is the median: its own parts add up to its total
    runs = sorted(ctx.cli_runs, key=lambda r: r.get("wall_s", 0.0))
    run = runs[(len(runs) - 1) // 2]
    total = run.get("wall_s") or next(r["seconds"] for r in rows if r["key"] == 7)
    from napari_nuclei_counter.core.batch import default_workers

    workers = min(default_workers(), len(ctx.paths))
    compute = run["sum_image_seconds"] / workers
    return {"total_s": total, "startup_s": startup["cli_version_s"],
            "python_s": startup["python_s"], "batch_s": run["batch_seconds"],
            "workers": workers, "compute_per_worker_s": compute,
            "pool_and_tables_s": run["batch_seconds"] - compute,
            "other_s": total - startup["cli_version_s"] - run["batch_seconds"]}


def plot_chart(rows: list[dict], info: dict, n: int, path: Path) -> None:
    """Bar chart of wall time per method, like the walk-through's results chart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {WALKTHROUGH: "#e6862e", OURS: "#2f6fb3"}
    fig, ax = plt.subplots(figsize=(11, 6), dpi=110)
    ys = np.arange(len(rows))[::-1]
    secs = [r["seconds"] for r in rows]
    bars = ax.barh(ys, secs, color=[colours[r["group"]] for r in rows], height=0.65)
    for bar, r in zip(bars, rows):
        if r["key"] == 7:
            bar.set_edgecolor("black")
            bar.set_linewidth(2)
    xmax = max(secs)
    for y, r in zip(ys, rows):
        label = "baseline" if r["key"] == 1 else faster(r["speedup_vs_1"], "1", digits=1)
        ax.text(r["seconds"] + xmax * 0.01, y, f"{r['seconds']:.2f} s  ({label})",
                va="center", fontsize=9)
    ax.set_yticks(ys)
    ax.set_yticklabels([f"{r['key']}. {r['name']}" for r in rows], fontsize=9)
    ax.set_xlim(0, xmax * 1.38)
    ax.set_xlabel("wall time for the whole plate, seconds (lower is better)")
    ax.set_title(f"Nuclei detection on {n} images (1024x1280 uint16), "
                 f"{info['cpu_count']} cores ({info['cpu_model']})", fontsize=11)
    from matplotlib.patches import Patch

    headline = rows[6]
    ax.legend(handles=[Patch(color=colours[WALKTHROUGH], label="walk-through (skimage)"),
                       Patch(color=colours[OURS], label="napari-nuclei-counter"),
                       Patch(facecolor="white", edgecolor="black", linewidth=2,
                             label="CLI, whole process: "
                                   + faster(headline["speedup_vs_2"], "method 2", digits=1))],
              loc="lower right", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 48 images, fewer repeats, no 2000-image memory run; "
                        "results go to the work folder")
    p.add_argument("--workdir", type=Path, default=default_workdir(),
                   help="cache and scratch folder (plate, links, CLI output)")
    p.add_argument("--plate", type=Path, default=None,
                   help="plate folder (default: WORKDIR/plate-240, or plate-48 with --quick); "
                        "generated when it holds no images")
    p.add_argument("--repeats", type=int, default=1, help="runs of each plate method")
    p.add_argument("--single-repeats", type=int, default=None,
                   help="repeats per single-image timing (default 7, 3 with --quick)")
    p.add_argument("--preview-repeats", type=int, default=None,
                   help="repeats of the live-preview timings (default 20, 5 with --quick)")
    p.add_argument("--memory-images", type=int, default=2000,
                   help="size of the symbolic-link folder for the memory run (0: skip)")
    p.add_argument("--skip-memory", action="store_true", help="skip all memory runs")
    p.add_argument("--skip-walkthrough-memory", action="store_true",
                   help="measure only our CLI's memory, not the walk-through script's")
    p.add_argument("--out-png", type=Path, default=None,
                   help="bar chart (default benchmarks/results.png)")
    p.add_argument("--out-json", type=Path, default=None,
                   help="all numbers (default benchmarks/results.json)")
    p.add_argument("--replot", type=Path, metavar="JSON",
                   help="only redraw the chart (--out-png) from a results JSON of an earlier run")
    p.add_argument("--walkthrough-child", metavar="FOLDER", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    q = args.quick
    args.layout = QUICK_LAYOUT if q else FULL_LAYOUT
    args.single_repeats = args.single_repeats or (3 if q else 7)
    args.preview_repeats = args.preview_repeats or (5 if q else 20)
    if q:
        args.memory_images = 0
    suffix = "-quick" if q else ""
    base = args.workdir if q else HERE
    args.out_png = args.out_png or base / f"results{suffix}.png"
    args.out_json = args.out_json or base / f"results{suffix}.json"
    n = len(args.layout[0]) * (args.layout[1][1] - args.layout[1][0]) * args.layout[2]
    args.plate = args.plate or args.workdir / f"plate-{n}"
    return args


def _log(msg: str, end: str = "\n", prefix: bool = True) -> None:
    sys.stderr.write((f"[bench] {msg}" if prefix else msg) + end)
    sys.stderr.flush()


def main(argv=None) -> int:
    """Run every measurement, print the report, write the JSON and the chart."""
    args = parse_args(argv)
    if args.walkthrough_child:
        return walkthrough_child(args.walkthrough_child)
    if args.replot:
        data = json.loads(args.replot.read_text())
        plot_chart(data["methods"], data["machine"], data["n_images"], args.out_png)
        print(f"chart: {args.out_png}")
        return 0
    import cv2

    # serial methods run on one core; our pools set one thread per worker themselves
    cv2.setNumThreads(1)
    args.workdir.mkdir(parents=True, exist_ok=True)
    info = machine_info()
    paths = ensure_plate(args.plate, args.layout, _log)
    n = len(paths)
    _log(f"{n} images in {args.plate}; preloading them (this also warms the page cache)")
    t0 = time.perf_counter()
    stack = np.asarray([tifffile.imread(p) for p in paths])
    _log(f"  read {stack.nbytes / 2**20:.0f} MB in {time.perf_counter() - t0:.1f} s")
    ctx = Context(paths, stack, args.plate, args.workdir)

    times = time_plate_methods(ctx, args.repeats, _log)
    errors = check_counts(times, [os.path.basename(p) for p in paths])
    rows = method_rows(times, n)
    startup = cli_startup()
    cli = cli_breakdown(ctx, rows, startup)

    ref_counts = times[1]["counts"]
    picks = sorted({int(i) for i in np.linspace(0, n - 1, 4)})
    single = bench_single_image(paths, picks, args.single_repeats, _log)
    errors += [f"single image {s['image']}: fast and reference coordinates differ"
               for s in single if not s["identical"]]
    densest = int(np.argmax(ref_counts))
    _log(f"live preview on {os.path.basename(paths[densest])} ({ref_counts[densest]} nuclei)")
    preview = bench_preview(paths[densest], [500.0, 1000.0, 2000.0, 4000.0],
                            args.preview_repeats)
    if not preview["select_matches_detect"]:
        errors.append("live preview: select(1000) differs from detect()")

    memory = []
    if not args.skip_memory:
        memory, mem_errors = bench_memory(ctx, ref_counts, args.memory_images,
                                          not args.skip_walkthrough_memory, _log)
        errors += mem_errors

    print_report(info, n, rows, cli, single, preview, memory, args.repeats)
    write_json(args.out_json, info, n, args, rows, cli, startup, single, preview, memory,
               errors)
    plot_chart(rows, info, n, args.out_png)
    print()
    print(f"chart: {args.out_png}\nnumbers: {args.out_json}")
    if errors:
        for e in errors:
            print(f"MISMATCH: {e}", file=sys.stderr)
        return 1
    return 0


def write_json(path: Path, info, n, args, rows, cli, startup, single, preview, memory,
               errors) -> None:
    """Write every number of the run to ``path``."""
    data = {
        "machine": info, "n_images": n, "plate": str(args.plate), "repeats": args.repeats,
        "parameters": {"sigma": 4.0, "min_distance": 6, "threshold_abs": 1000.0},
        "methods": rows,
        "headline": {"cli_vs_walkthrough_pool": rows[6]["speedup_vs_2"],
                     "cli_vs_walkthrough_serial": rows[6]["speedup_vs_1"]},
        "cli_breakdown": cli, "startup": startup, "single_image": single,
        "preview": preview, "memory": memory, "errors": errors,
        "notes": [
            "times are wall seconds on a shared machine; compare ratios, not absolutes",
            "the forkserver of our in-process pool persists within the benchmark process: "
            "method 8 pays its start on the first run, method 9 does not",
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


if __name__ == "__main__":
    sys.exit(main())
