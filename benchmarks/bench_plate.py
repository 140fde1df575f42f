#!/usr/bin/env python
"""Benchmark: our nuclei counter against the walk-through's methods, side by side.

The project grew from a blog walk-through (``shared/ORIGIN.txt``) that timed
five ways of running ``gaussian`` + ``peak_local_max`` over a 240-image BBBC021
plate. This script runs those five methods *and* ours in one process, on the
same images, in one go, and prints one table. On a shared, noisy machine the
absolute times drift; the ratios measured side by side are what matter.

The benchmark is three modules: ``_helpers.py`` (plates, links, the command
line, process monitoring, machine info, text tables; shared with
``scale_test.py``), ``walkthrough.py`` (the walk-through's five methods, as it
wrote them) and ``measurements.py`` (our four methods and the measurements);
this file runs them and writes the report.

What is measured
----------------
* **the plate**: methods 1-5 (walk-through) and 6-9 (ours), see
  ``measurements.py``. Every method must report the same number of nuclei per
  image (the CLI's are read back from its tables); any difference is printed
  as ``MISMATCH`` and the script exits with status 1;
* **single image, one core**: the reference engine (scikit-image) against our
  fast engine on a few plate images, and whether the coordinates are identical;
* **live preview**: the dock's preview cache after a sigma/min_distance change
  and after a threshold-only change;
* **memory**: peak resident memory of the headless CLI, summed over the main
  process and its workers (psutil, polled every 50 ms), for the plate and for
  a 2,000-image folder of symbolic links; the walk-through's Pool-over-paths
  script run as a whole process is measured the same way for comparison.

Images are synthetic 1024x1280 uint16 BBBC021-named TIFFs
(``napari_nuclei_counter.core.sample.write_sample_plate``), generated once
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

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from _helpers import (
    HERE,
    cli_startup,
    default_workdir,
    ensure_plate,
    faster,
    format_table,
    list_plate,
    log,
    machine_info,
    make_links,
)

#: plate layouts (rows, columns, sites): 6 x 10 x 4 = 240 like BBBC021, 2 x 6 x 4 = 48
FULL_LAYOUT = ("BCDEFG", (2, 12), 4)
QUICK_LAYOUT = ("BC", (2, 8), 4)


def method_rows(times: dict[int, dict], n_images: int) -> list[dict]:
    """One summary dict per plate method: median time and ratios to methods 1 and 2."""
    from measurements import METHODS

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
                 preview: dict, memory: list[dict], repeats: int, shape) -> None:
    """Print the header, the plate table and the three side measurements."""
    print()
    print(f"Machine: {info['cpu_count']} cores ({info['usable_cores']} usable), "
          f"{info['cpu_model']}; load average {info['load_average']}")
    v = info["versions"]
    print(f"Python {info['python']} ({info['start_method']}), numpy {v['numpy']}, "
          f"scipy {v['scipy']}, scikit-image {v['scikit-image']}, opencv {v['opencv']}")
    print(f"Plate: {n} images of {shape[0]}x{shape[1]} uint16; pools use all "
          f"{info['cpu_count']} cores; median of {repeats} run(s) each")
    print("Speed-up = time of method 1 (or 2) / time of the method; higher is faster.")
    print()
    table = [[r["key"], r["group"], r["name"], f"{r['seconds']:.2f}",
              f"{r['images_per_s']:.1f}", f"{r['speedup_vs_1']:.2f}x",
              f"{r['speedup_vs_2']:.2f}x", "ok" if r["counts_match"] else "MISMATCH"]
             for r in rows]
    print(format_table(["#", "who", "method", "wall s", "img/s", "vs 1 (serial)",
                        "vs 2 (Pool)", "counts"], table, right={0, 3, 4, 5, 6}))
    headline = next(r for r in rows if r["key"] == 7)
    pool = next(r for r in rows if r["key"] == 2)
    print()
    print(f"HEADLINE: `nuclei-counter detect` (whole process) vs walk-through Pool over paths: "
          f"{faster(headline['speedup_vs_2'], 'method 2')} "
          f"({headline['seconds']:.2f} s vs {pool['seconds']:.2f} s)")
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
          f"{s['speedup']:.1f}x", f"{s['alternating_speedup']:.1f}x",
          "yes" if s["identical"] else "NO"] for s in single],
        right={1, 2, 3, 4, 5}))

    print()
    print(f"Live preview (the dock's PreviewCache), one thread, {preview['image'][:40]} "
          f"(median ms):")
    prow = [["new sigma / min_distance: blur, candidates, select(1000)", "",
             f"{preview['prepare_ms']:.1f}"]]
    prow += [[f"threshold moved to {float(t):g}: select from the cache",
              preview["nuclei"][t], f"{ms:.2f}"] for t, ms in preview["select_ms"].items()]
    prow.append(["detect(img) fast  (for comparison)", "", f"{preview['detect_fast_ms']:.1f}"])
    print(format_table(["step", "nuclei", "ms"], prow, right={1, 2}))
    if not preview["select_matches_detect"]:
        print("MISMATCH: the preview differs from detect()")

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


def plot_chart(rows: list[dict], info: dict, n: int, path: Path, shape=(1024, 1280)) -> None:
    """Bar chart of wall time per method, like the walk-through's results chart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    colours = {"walk-through": "#e6862e", "ours": "#2f6fb3"}
    fig, ax = plt.subplots(figsize=(11, 6), dpi=110)
    ys = np.arange(len(rows))[::-1]
    secs = [r["seconds"] for r in rows]
    bars = ax.barh(ys, secs, color=[colours[r["group"]] for r in rows], height=0.65)
    for bar, r in zip(bars, rows, strict=True):
        if r["key"] == 7:
            bar.set_edgecolor("black")
            bar.set_linewidth(2)
    xmax = max(secs)
    for y, r in zip(ys, rows, strict=True):
        label = "baseline" if r["key"] == 1 else faster(r["speedup_vs_1"], "1", digits=1)
        ax.text(r["seconds"] + xmax * 0.01, y, f"{r['seconds']:.2f} s  ({label})",
                va="center", fontsize=9)
    ax.set_yticks(ys)
    ax.set_yticklabels([f"{r['key']}. {r['name']}" for r in rows], fontsize=9)
    ax.set_xlim(0, xmax * 1.38)
    ax.set_xlabel("wall time for the whole plate, seconds (lower is better)")
    ax.set_title(f"Nuclei detection on {n} images ({shape[0]}x{shape[1]} uint16), "
                 f"{info['cpu_count']} cores ({info['cpu_model']})", fontsize=11)
    headline = next(r for r in rows if r["key"] == 7)
    ax.legend(handles=[Patch(color=colours["walk-through"], label="walk-through (skimage)"),
                       Patch(color=colours["ours"], label="napari-nuclei-counter"),
                       Patch(facecolor="white", edgecolor="black", linewidth=2,
                             label="CLI, whole process: "
                                   + faster(headline["speedup_vs_2"], "method 2", digits=1))],
              loc="lower right", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def write_json(path: Path, info, n, args, rows, cli, startup, single, preview, memory,
               errors) -> None:
    """Write every number of the run to ``path``."""
    headline = next(r for r in rows if r["key"] == 7)
    data = {
        "machine": info, "n_images": n, "plate": str(args.plate), "repeats": args.repeats,
        "shape": list(args.shape),
        "parameters": {"sigma": 4.0, "min_distance": 6, "threshold_abs": 1000.0},
        "methods": rows,
        "headline": {"cli_vs_walkthrough_pool": headline["speedup_vs_2"],
                     "cli_vs_walkthrough_serial": headline["speedup_vs_1"]},
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
    p.add_argument("--images", type=int, default=None, metavar="N",
                   help="use only the first N images of the plate (a smaller smoke test)")
    p.add_argument("--shape", type=int, nargs=2, default=(1024, 1280), metavar=("H", "W"),
                   help="image shape of a generated plate (smaller: a faster smoke test)")
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
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    if args.images is not None and args.images < 2:
        p.error("--images must be at least 2")
    q = args.quick
    small = q or args.images is not None or tuple(args.shape) != (1024, 1280)
    args.layout = QUICK_LAYOUT if q else FULL_LAYOUT
    args.single_repeats = args.single_repeats or (3 if q else 7)
    args.preview_repeats = args.preview_repeats or (5 if q else 20)
    if q:
        args.memory_images = 0
    # anything but a full run writes into the work folder, never over the published one
    suffix = "-quick" if small else ""
    base = args.workdir if small else HERE
    args.out_png = args.out_png or base / f"results{suffix}.png"
    args.out_json = args.out_json or base / f"results{suffix}.json"
    n = len(args.layout[0]) * (args.layout[1][1] - args.layout[1][0]) * args.layout[2]
    shape = "" if tuple(args.shape) == (1024, 1280) else f"-{args.shape[0]}x{args.shape[1]}"
    args.plate = args.plate or args.workdir / f"plate-{n}{shape}"
    return args


def main(argv=None) -> int:
    """Run every measurement, print the report, write the JSON and the chart."""
    args = parse_args(argv)
    if args.replot:
        data = json.loads(args.replot.read_text())
        plot_chart(data["methods"], data["machine"], data["n_images"], args.out_png,
                   data.get("shape", (1024, 1280)))
        print(f"chart: {args.out_png}")
        return 0
    import cv2
    import tifffile

    import measurements as M

    # serial methods run on one core; our pools set one thread per worker themselves
    cv2.setNumThreads(1)
    args.workdir.mkdir(parents=True, exist_ok=True)
    info = machine_info()
    paths = ensure_plate(args.plate, args.layout, shape=args.shape)
    plate_dir = args.plate
    if args.images is not None and args.images < len(paths):
        # the CLI is pointed at a folder: give it one holding exactly these images
        plate_dir = args.workdir / f"plate-{args.images}-of-{args.plate.name}"
        make_links(plate_dir, paths, args.images, one_week=True)
        paths = list_plate(plate_dir)
    n = len(paths)
    log(f"{n} images in {plate_dir}; preloading them (this also warms the page cache)")
    t0 = time.perf_counter()
    stack = np.asarray([tifffile.imread(p) for p in paths])
    log(f"  read {stack.nbytes / 2**20:.0f} MB in {time.perf_counter() - t0:.1f} s")
    ctx = M.Context(paths, stack, plate_dir, args.workdir)

    times = M.time_plate_methods(ctx, args.repeats, log)
    errors = M.check_counts(times, [os.path.basename(p) for p in paths])
    rows = method_rows(times, n)
    startup = cli_startup()
    cli = M.cli_breakdown(ctx, rows, startup)

    ref_counts = times[1]["counts"]
    picks = sorted({int(i) for i in np.linspace(0, n - 1, 4)})
    single = M.bench_single_image(paths, picks, args.single_repeats, log)
    errors += [f"single image {s['image']}: fast and reference coordinates differ"
               for s in single if not s["identical"]]
    densest = int(np.argmax(ref_counts))
    log(f"live preview on {os.path.basename(paths[densest])} ({ref_counts[densest]} nuclei)")
    preview = M.bench_preview(paths[densest], [500.0, 1000.0, 2000.0, 4000.0],
                              args.preview_repeats)
    if not preview["select_matches_detect"]:
        errors.append("live preview: the preview cache differs from detect()")

    memory = []
    if not args.skip_memory:
        memory, mem_errors = M.bench_memory(ctx, ref_counts, args.memory_images,
                                            not args.skip_walkthrough_memory, log)
        errors += mem_errors

    print_report(info, n, rows, cli, single, preview, memory, args.repeats, stack.shape[1:])
    write_json(args.out_json, info, n, args, rows, cli, startup, single, preview, memory,
               errors)
    plot_chart(rows, info, n, args.out_png, stack.shape[1:])
    print()
    print(f"chart: {args.out_png}\nnumbers: {args.out_json}")
    if errors:
        for e in errors:
            print(f"MISMATCH: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
