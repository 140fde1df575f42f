"""The measurements of ``bench_plate.py``: plate methods, one image, live preview, memory.

Plate methods (wall time of the whole method, ``multiprocessing.Pool``
creation included, as in the walk-through; pools use every core): the
walk-through's five (:mod:`walkthrough`) and four of ours:

====  ==============================================================
 6    ``run_batch(paths, workers=0)`` (serial, one core)
 7    ``nuclei-counter detect`` as a whole process (start-up included)
 8    ``run_batch(paths)`` process pool in this process
 9    in-memory stack through shared memory (``run_batch_arrays``)
====  ==============================================================

Only public entry points of the package are used: ``run_batch``,
``core.batch.run_batch_arrays``, ``detect``, ``load_results``, the command,
and ``core.preview.PreviewCache`` (the dock's live preview) for the preview.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile

import walkthrough
from _helpers import (
    cli_command,
    cli_detect_args,
    default_params,
    make_links,
    median_ms,
    parse_cli_summary,
    read_counts,
    read_image_seconds,
    run_monitored,
    usable_cores,
)

WALKTHROUGH = "walk-through"
OURS = "ours"


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
        The CLI's own report of each of its runs (method 7).
    """

    paths: list[str]
    stack: np.ndarray
    plate_dir: Path
    workdir: Path
    cli_runs: list[dict] = field(default_factory=list)


def ours_serial(ctx: Context) -> list:
    """Ours, serial: ``run_batch(paths, workers=0)`` in this process."""
    from napari_nuclei_counter import run_batch

    return list(run_batch(ctx.paths, default_params(), workers=0))


def ours_pool(ctx: Context) -> list:
    """Ours: ``run_batch(paths)`` with its process pool on every core."""
    from napari_nuclei_counter import run_batch

    return list(run_batch(ctx.paths, default_params()))


def ours_shared(ctx: Context) -> list:
    """Ours: ``run_batch_arrays`` on the preloaded stack (one shared-memory copy)."""
    from napari_nuclei_counter.core.run.batch import run_batch_arrays

    return list(run_batch_arrays(ctx.stack, default_params()))


def ours_cli(ctx: Context) -> dict:
    """Ours: ``nuclei-counter detect`` as a separate process, start-up included."""
    out = ctx.workdir / f"cli-out-{len(ctx.paths)}"
    proc = subprocess.run([*cli_command(), *cli_detect_args(ctx.plate_dir, out)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"nuclei-counter exited with {proc.returncode}:\n{proc.stderr}")
    return {"out": out, "stderr": proc.stderr}


@dataclass
class Method:
    """One way of processing the plate."""

    key: int
    name: str
    group: str
    run: Callable[[Context], object]


def _walkthrough_method(key: int) -> Callable[[Context], list]:
    return lambda ctx: walkthrough.run_method(key, ctx.paths, ctx.stack)


METHODS = [Method(k, name, WALKTHROUGH, _walkthrough_method(k))
           for k, name in walkthrough.METHODS] + [
    Method(6, "run_batch serial (workers=0)", OURS, ours_serial),
    Method(7, "nuclei-counter detect (whole CLI process)", OURS, ours_cli),
    Method(8, "run_batch process pool", OURS, ours_pool),
    Method(9, "run_batch_arrays (shared memory)", OURS, ours_shared),
]


def counts_of(key: int, result, ctx: Context) -> list[int | None]:
    """Per-image nuclei counts, in ``ctx.paths`` order, from a method's raw result."""
    if key <= 5:
        return [len(c) for c in result]
    if key == 7:
        by_name = {os.path.basename(p): c for p, c in read_counts(result["out"]).items()}
        ctx.cli_runs.append({**parse_cli_summary(result["stderr"]),
                             "sum_image_seconds": read_image_seconds(result["out"])})
        return [by_name.get(os.path.basename(p)) for p in ctx.paths]
    counts: list[int | None] = [None] * len(ctx.paths)
    for r in result:
        counts[r.index] = r.count
    return counts


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
        bad = [i for i, (a, b) in enumerate(zip(ref, counts, strict=True)) if a != b]
        if len(counts) != len(ref):
            errors.append(f"method {key}: {len(counts)} images, method 1 had {len(ref)}")
        if bad:
            i = bad[0]
            errors.append(f"method {key}: {len(bad)} image(s) differ from method 1, first "
                          f"{names[i]}: {counts[i]} vs {ref[i]}")
        entry["counts_match"] = not bad and len(counts) == len(ref)
    return errors


def _timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def bench_single_image(paths: list[str], picks: list[int], repeats: int, log) -> list[dict]:
    """Reference vs fast engine on single images, one thread, medians.

    * **steady** (the headline): rounds of 2 reference calls then 5 fast
      calls on the same image, ``repeats`` rounds; each engine's median over
      its calls. Each engine runs warm, as image after image in a batch, and
      the rounds interleave so that drifts of a shared machine hit both alike.
    * **alternating**: reference, fast, reference, fast, ... Every fast call
      comes right after a reference call, whose 10 MB float64 arrays have just
      pushed the fast engine's buffers out of the CPU caches: pessimistic.

    "identical": the fast engine, the reference and the walk-through's
    function give the same coordinates in the same order.
    """
    from napari_nuclei_counter import detect, reference_detect

    p = default_params()
    fast = lambda img: detect(img, p, engine="fast")  # noqa: E731
    ref = lambda img: reference_detect(img, p)  # noqa: E731
    rows = []
    for i in picks:
        img = tifffile.imread(paths[i])
        r, f = ref(img), fast(img)
        t_ref, t_fast, a_ref, a_fast = [], [], [], []
        for _ in range(repeats):
            t_ref += [_timed(ref, img) for _ in range(2)]
            t_fast += [_timed(fast, img) for _ in range(5)]
        for _ in range(repeats):
            a_ref.append(_timed(ref, img))
            a_fast.append(_timed(fast, img))
        row = {
            "image": os.path.basename(paths[i]), "nuclei": r.count,
            "reference_ms": median_ms(t_ref), "fast_ms": median_ms(t_fast),
            "alternating_reference_ms": median_ms(a_ref),
            "alternating_fast_ms": median_ms(a_fast),
            "identical": bool(np.array_equal(r.coords, f.coords)
                              and np.array_equal(r.coords, walkthrough.detect_nuclei(img))),
        }
        row["speedup"] = row["reference_ms"] / row["fast_ms"]
        row["alternating_speedup"] = row["alternating_reference_ms"] / row["alternating_fast_ms"]
        log(f"single image {row['image'][:22]}...: reference {row['reference_ms']:.1f} ms, "
            f"fast {row['fast_ms']:.1f} ms ({row['speedup']:.1f}x; alternating "
            f"{row['alternating_speedup']:.1f}x)")
        rows.append(row)
    return rows


def bench_preview(path: str, thresholds: list[float], repeats: int) -> dict:
    """Time the dock's live preview (``PreviewCache``) on one image, one thread.

    Each repeat starts from an empty cache (what a sigma/min_distance change
    costs: blur and every candidate, then a selection) and then moves the
    threshold through ``thresholds``, like a slider being dragged (a selection
    from the cached candidates only). A one-off ``detect`` is timed for
    comparison, and every selection is checked against ``detect``.
    """
    from napari_nuclei_counter import DetectionParams, detect
    from napari_nuclei_counter.core.detect.preview import PreviewCache

    img = tifffile.imread(path)
    p = default_params()
    at = [DetectionParams(p.sigma, p.min_distance, t) for t in thresholds]
    cache = PreviewCache()
    cache.detect(img, p, key="warm-up")
    expected = {q.threshold_abs: detect(img, q).coords for q in at}
    t_first, t_detect, t_sel = [], [], {t: [] for t in thresholds}
    counts, same = {}, True
    for _ in range(repeats):
        cache.clear()
        t_first.append(_timed(cache.detect, img, p, "image"))
        for q in at:
            t0 = time.perf_counter()
            d = cache.detect(img, q, key="image")
            t_sel[q.threshold_abs].append(time.perf_counter() - t0)
            counts[str(q.threshold_abs)] = d.count
            same &= bool(np.array_equal(d.coords, expected[q.threshold_abs]))
        t_detect.append(_timed(detect, img, p))
    return {
        "image": os.path.basename(path), "shape": list(img.shape),
        "prepare_ms": median_ms(t_first),
        "select_ms": {str(t): median_ms(v) for t, v in t_sel.items()},
        "nuclei": counts, "detect_fast_ms": median_ms(t_detect),
        "select_matches_detect": same,
    }


def bench_memory(ctx: Context, ref_counts: list, n_links: int, walkthrough_too: bool,
                 log) -> tuple[list[dict], list[str]]:
    """Peak memory of our CLI (and the walk-through's script) on the plate and on links.

    Returns the rows and any count mismatches found on the way.
    """
    by_name = {os.path.basename(p): c for p, c in zip(ctx.paths, ref_counts, strict=True)}
    folders = [(ctx.plate_dir, by_name)]
    if n_links:
        link_dir = ctx.workdir / f"plate-{n_links}-links"
        links = make_links(link_dir, ctx.paths, n_links, seed=2000, one_week=True)
        folders.append((link_dir, {os.path.basename(link): by_name[os.path.basename(t)]
                                   for link, t in links.items()}))
    rows, errors = [], []
    for folder, expected in folders:
        n = len(expected)
        out = ctx.workdir / f"mem-out-{n}"
        runs = [(OURS, "nuclei-counter detect", [*cli_command(), *cli_detect_args(folder, out)])]
        if walkthrough_too:
            runs.append((WALKTHROUGH, "walk-through Pool.map script",
                         [sys.executable, walkthrough.__file__, str(folder)]))
        for group, name, cmd in runs:
            log(f"memory: {name} on {n} images ...", end="")
            res = run_monitored(cmd)
            log(f" {res['wall_s']:.1f} s, peak {res['peak_rss_mb']:.0f} MB", prefix=False)
            if res["returncode"] != 0:
                errors.append(f"{name} on {n} images exited with {res['returncode']}: "
                              f"{res['stderr'][-2000:]}")
                continue
            if group == OURS:
                got = {os.path.basename(p): c for p, c in read_counts(out).items()}
            else:
                child = json.loads(res["stdout"])
                got = dict(zip(child["names"], child["counts"], strict=True))
            bad = [k for k in expected if got.get(k) != expected[k]]
            if bad or len(got) != n:
                errors.append(f"{name} on {n} images: {len(bad)} count(s) differ from method 1"
                              f" (found {len(got)} images)")
            rows.append({"group": group, "what": name, "images": n,
                         **{k: res[k] for k in ("wall_s", "peak_rss_mb", "peak_pss_mb",
                                                "largest_process_mb", "max_processes")}})
    return rows, errors


def cli_breakdown(ctx: Context, rows: list[dict], startup: dict) -> dict:
    """Split the CLI's wall time into start-up, worker compute and the rest."""
    if not ctx.cli_runs or not ctx.cli_runs[0].get("batch_seconds"):
        return {}
    # the run whose wall time is the median: its own parts add up to its total
    runs = sorted(ctx.cli_runs, key=lambda r: r.get("wall_s", 0.0))
    run = runs[(len(runs) - 1) // 2]
    total = run.get("wall_s") or next(r["seconds"] for r in rows if r["key"] == 7)
    workers = min(usable_cores(), len(ctx.paths))
    compute = run["sum_image_seconds"] / workers
    return {"total_s": total, "startup_s": startup["cli_version_s"],
            "python_s": startup["python_s"], "batch_s": run["batch_seconds"],
            "workers": workers, "compute_per_worker_s": compute,
            "pool_and_tables_s": run["batch_seconds"] - compute,
            "other_s": total - startup["cli_version_s"] - run["batch_seconds"]}
