#!/usr/bin/env python
"""Scale test: the process-pool backend against the Dask backend on a large folder.

A BBBC021-sized run (55 plates x 240 DAPI images = 13,200 images) without
13,200 real files: a few small images are generated once and a folder of N
symbolic links with distinct BBBC021-style names points at them. What is
measured is the machinery around detection (listing, scheduling, result
transfer, tables, memory), not detection itself.

Modes
-----
CLI (default)
    ``nuclei-counter detect LINKS --backend process`` and ``--backend dask``
    run as separate processes (start-up included). Wall time, images/s,
    images/s per core, the CPU time of the whole process tree per image
    (user + system; less sensitive than wall time to other work on a shared
    machine) and the peak resident memory summed over the process tree
    (psutil, polled every 100 ms) are recorded, and the two runs'
    ``images.csv`` must give the same count for every image. When the CLI
    has no ``--backend dask`` yet, the row says so.
``--api``
    ``run_batch(paths)`` against ``run_batch_dask(paths)`` called in this
    process (cluster/pool start-up included; "first s" is the time to the
    first result), same measurements.

Every image's count is also checked against its link target's count computed
here serially. The last lines give the dask/process throughput ratio and
whether it is within 15 %.

How to run
----------
::

    .venv/bin/python benchmarks/scale_test.py                # CLI, 13,200 links, both backends
    .venv/bin/python benchmarks/scale_test.py --api --n 2000
    .venv/bin/python benchmarks/scale_test.py --backend dask --scheduler tcp://host:8786

Exit status: 0 when every run agreed, 1 on a count mismatch or a failed run.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: BBBC021 plate layout: rows B-G x columns 02-11 x 4 sites = 240 images
ROWS, COLUMNS, SITES = "BCDEFG", range(2, 12), 4
PER_PLATE = len(ROWS) * len(COLUMNS) * SITES
TOLERANCE = 0.15
NOT_IN_CLI = "dask backend not available in CLI"


@dataclass
class Run:
    """One measured run."""

    mode: str
    backend: str
    n: int = 0
    failed: int = 0
    wall_s: float = float("nan")
    first_s: float = float("nan")
    peak_rss_mb: float = float("nan")
    cpu_s: float = float("nan")
    max_procs: int = 0
    counts: dict = field(default_factory=dict)  # path -> count (None when failed)
    note: str = ""

    @property
    def ok(self) -> bool:
        return not self.note and self.n > 0

    def rate(self) -> float:
        return self.n / self.wall_s if self.ok else float("nan")


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------

def make_targets(folder: Path, n_images: int) -> list[str]:
    """Write ``n_images`` small (256 x 320) generated images, reused between runs."""
    from napari_nuclei_counter.core.sample import write_sample_plate

    cols = max(1, -(-n_images // 3))
    paths = write_sample_plate(folder, rows="BCD", columns=range(2, 2 + cols), sites=1,
                               seed=7, shape=(256, 320))
    return [str(p) for p in paths[:n_images]]


def link_names(n: int) -> list[str]:
    """``n`` distinct BBBC021-style DAPI names: 240 per plate, as many plates as needed."""
    rng = np.random.default_rng([2026, n])
    names = []
    for k in range(-(-n // PER_PLATE)):
        week, plate = 1 + k // 5, 22123 + k
        for row in ROWS:
            for col in COLUMNS:
                for site in range(1, SITES + 1):
                    uid = str(uuid.UUID(bytes=rng.bytes(16), version=4)).upper()
                    names.append(f"Week{week}_{plate}_{row}{col:02d}_s{site}_w1{uid}.tif")
    return names[:n]


def make_links(folder: Path, targets: list[str], n: int) -> dict[str, str]:
    """Fill ``folder`` with ``n`` links to ``targets`` (cycled); return link -> target."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    links = {}
    for i, name in enumerate(link_names(n)):
        link = folder / name
        os.symlink(os.path.abspath(targets[i % len(targets)]), link)
        links[str(link)] = targets[i % len(targets)]
    return links


def target_counts(targets: list[str], params) -> dict[str, int]:
    """Count every target once, serially, in this process."""
    from napari_nuclei_counter.core.batch import run_batch

    return {r.path: r.count for r in run_batch(targets, params, workers=0)}


# ---------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------

class TreeMonitor:
    """Poll the summed RSS of a process and its descendants every ``interval`` s."""

    def __init__(self, pid: int, interval: float = 0.1):
        import psutil

        self._root = psutil.Process(pid)
        self._interval = interval
        self._stop = threading.Event()
        self.peak_rss = 0
        self.max_procs = 0
        self._cpu: dict[int, float] = {}  # pid -> last seen user + system time
        self._cpu0 = 0.0
        self._thread = threading.Thread(target=self._poll, daemon=True)

    @property
    def cpu_seconds(self) -> float:
        """CPU time used by the tree while monitored (to the last poll)."""
        return sum(self._cpu.values()) - self._cpu0

    def __enter__(self) -> "TreeMonitor":
        self.sample()
        self._cpu0 = sum(self._cpu.values())
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self._interval)

    def sample(self) -> None:
        """Take one sample now."""
        import psutil

        try:
            tree = [self._root, *self._root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        rss = 0
        for p in tree:
            try:
                rss += p.memory_info().rss
                t = p.cpu_times()
                self._cpu[p.pid] = t.user + t.system
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        self.peak_rss = max(self.peak_rss, rss)
        self.max_procs = max(self.max_procs, len(tree))


# ---------------------------------------------------------------------------
# CLI runs
# ---------------------------------------------------------------------------

def cli_command() -> list[str]:
    """The ``nuclei-counter`` of this environment (``python -m`` as a fallback)."""
    exe = Path(sys.executable).with_name("nuclei-counter")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("nuclei-counter")
    return [found] if found else [sys.executable, "-m", "napari_nuclei_counter.cli"]


def run_cli(backend: str, folder: Path, out: Path, args) -> Run:
    """Run ``nuclei-counter detect`` with one backend, monitored; read its images.csv."""
    cmd = [*cli_command(), "detect", str(folder), "--out", str(out), "--quiet",
           "--backend", backend]
    if backend == "dask" and args.scheduler:
        cmd += ["--scheduler", args.scheduler]
    if args.workers is not None:
        cmd += ["--workers", str(args.workers)]
    run = Run("cli", backend)
    proc, wall, mon = _monitored(cmd)
    if proc.returncode not in (0, 1) and "--backend" in proc.stderr and backend == "process":
        # a CLI from before the backends: the process pool is all it has
        cmd = [c for c in cmd if c not in ("--backend", "process")]
        proc, wall, mon = _monitored(cmd)
    if proc.returncode not in (0, 1):
        unknown = "--backend" in proc.stderr or "--scheduler" in proc.stderr
        run.note = (NOT_IN_CLI if backend == "dask" and unknown
                    else f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}")
        return run
    run.wall_s, run.peak_rss_mb, run.max_procs = wall, mon.peak_rss / 2**20, mon.max_procs
    run.cpu_s = mon.cpu_seconds
    run.counts = read_counts(out / "images.csv")
    run.n = len(run.counts)
    run.failed = sum(c is None for c in run.counts.values())
    return run


def _monitored(cmd: list[str]):
    with tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, text=True)
        with TreeMonitor(proc.pid) as mon:
            proc.wait()
        wall = time.perf_counter() - t0
        err.seek(0)
        proc.stderr = err.read()
    return proc, wall, mon


def read_counts(table: Path) -> dict:
    """``path -> n_nuclei`` (``None`` for failed images) from an ``images.csv``."""
    with open(table, newline="") as fh:
        return {row["path"]: (None if row["error"] else int(row["n_nuclei"]))
                for row in csv.DictReader(fh)}


# ---------------------------------------------------------------------------
# API runs
# ---------------------------------------------------------------------------

def run_api(backend: str, paths: list[str], params, args) -> Run:
    """Call ``run_batch`` or ``run_batch_dask`` here, monitored."""
    from napari_nuclei_counter.core.batch import run_batch

    run = Run("api", backend)
    if backend == "dask":
        try:
            from napari_nuclei_counter._dask import run_batch_dask
            import distributed  # noqa: F401
        except ImportError as exc:
            run.note = f"dask not installed ({exc})"
            return run
        gen = run_batch_dask(paths, params, scheduler=args.scheduler, n_workers=args.workers,
                             chunksize=args.chunksize)
    else:
        gen = run_batch(paths, params, workers=args.workers, chunksize=args.chunksize)
    with TreeMonitor(os.getpid()) as mon:
        t0 = time.perf_counter()
        for r in gen:
            if not run.counts:
                run.first_s = time.perf_counter() - t0
            run.counts[r.path] = r.count
        run.wall_s = time.perf_counter() - t0
    run.peak_rss_mb, run.max_procs = mon.peak_rss / 2**20, mon.max_procs
    run.cpu_s = mon.cpu_seconds
    run.n = len(run.counts)
    run.failed = sum(c is None for c in run.counts.values())
    return run


# ---------------------------------------------------------------------------
# Checks and report
# ---------------------------------------------------------------------------

def check(runs: list[Run], links: dict[str, str], expected: dict[str, int]) -> list[str]:
    """Every complete run must give each link its target's count; runs must agree."""
    want = {link: expected[target] for link, target in links.items()}
    errors = []
    for run in runs:
        if not run.ok:
            continue
        bad = [p for p in want if run.counts.get(p, "missing") != want[p]]
        if bad or len(run.counts) != len(want):
            p = bad[0] if bad else "-"
            errors.append(f"{run.mode}/{run.backend}: {len(bad)} image(s) differ from the "
                          f"serial counts (first {Path(p).name}: {run.counts.get(p)} vs "
                          f"{want.get(p)}); {len(run.counts)} of {len(want)} images reported")
    good = [r for r in runs if r.ok]
    for r in good[1:]:
        if r.counts != good[0].counts:
            errors.append(f"{r.mode}/{r.backend} and {good[0].mode}/{good[0].backend} "
                          "give different images.csv counts")
    return errors


def table(runs: list[Run], cores: int) -> str:
    """Format the runs as one text table."""
    head = ["mode", "backend", "images", "failed", "wall s", "first s", "img/s",
            "img/s/core", "CPU ms/img", "peak RSS MB", "procs"]
    rows = [head]
    for r in runs:
        if not r.ok:
            rows.append([r.mode, r.backend, r.note or "no images", *[""] * (len(head) - 3)])
            continue
        rows.append([r.mode, r.backend, str(r.n), str(r.failed), f"{r.wall_s:.2f}",
                     "-" if r.first_s != r.first_s else f"{r.first_s:.2f}",
                     f"{r.rate():.0f}", f"{r.rate() / cores:.0f}",
                     f"{1000 * r.cpu_s / r.n:.2f}", f"{r.peak_rss_mb:.0f}",
                     str(r.max_procs)])
    widths = [max(len(row[i]) for row in rows if len(row[i]) < 40) for i in range(len(head))]
    lines = []
    for row in rows:
        cells = [c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def ratio_lines(runs: list[Run]) -> list[str]:
    """The dask/process throughput ratio per mode, and whether it is within 15 %."""
    out = []
    for mode in ("cli", "api"):
        by = {r.backend: r for r in runs if r.mode == mode and r.ok}
        if "dask" in by and "process" in by:
            ratio = by["dask"].rate() / by["process"].rate()
            verdict = "within" if abs(ratio - 1.0) <= TOLERANCE else "NOT within"
            out.append(f"{mode}: dask/process throughput = {ratio:.2f} "
                       f"({verdict} {TOLERANCE:.0%})")
    return out


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--n", type=int, default=13_200, help="symbolic links (images) to process")
    p.add_argument("--targets", type=int, default=12, help="distinct generated images")
    p.add_argument("--backend", choices=["both", "process", "dask"], default="both")
    p.add_argument("--api", action="store_true",
                   help="call run_batch / run_batch_dask in this process instead of the CLI")
    p.add_argument("--scheduler", default=None,
                   help="Dask scheduler address (default: a local cluster)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes for both backends (default: every core)")
    p.add_argument("--chunksize", type=int, default=None, help="images per task (API mode)")
    p.add_argument("--work-dir", default=None,
                   help="folder for images, links and tables (default: a temporary one)")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    from napari_nuclei_counter.core.batch import default_workers
    from napari_nuclei_counter.core.params import DetectionParams

    params = DetectionParams()
    cores = args.workers or default_workers()
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="nuclei-scale-"))
    backends = ["process", "dask"] if args.backend == "both" else [args.backend]
    try:
        t0 = time.perf_counter()
        targets = make_targets(work / "targets", args.targets)
        links = make_links(work / "links", targets, args.n)
        expected = target_counts(targets, params)
        sys.stderr.write(f"{len(links)} links to {len(targets)} images in {work} "
                         f"({time.perf_counter() - t0:.1f} s)\n")
        runs = []
        # in this process the process pool's forkserver outlives its run and would
        # count in the Dask run's memory: run Dask first
        for backend in (backends[::-1] if args.api else backends):
            sys.stderr.write(f"running {'api' if args.api else 'cli'}/{backend} ...\n")
            if args.api:
                runs.append(run_api(backend, list(links), params, args))
            else:
                runs.append(run_cli(backend, work / "links", work / f"out-{backend}", args))
        runs.sort(key=lambda r: backends.index(r.backend))
        errors = check(runs, links, expected)
        print(f"{len(links)} images (links to {len(targets)} generated 256x320 uint16 "
              f"images), {cores} cores, Python {sys.version.split()[0]}")
        print(table(runs, cores))
        for line in ratio_lines(runs):
            print(line)
        for err in errors:
            print("MISMATCH:", err)
        print("counts: identical across runs and equal to the serial counts"
              if not errors else "counts: MISMATCH")
        failed_runs = [r for r in runs if not r.ok and r.note != NOT_IN_CLI]
        return 1 if errors or failed_runs else 0
    finally:
        if not args.keep and not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
