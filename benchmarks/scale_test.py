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
    The same two runs through ``napari_nuclei_counter.cli.app.main`` called in
    this process: the same pipeline without the interpreter's start-up (pool
    and cluster start-up included), same measurements.

Every image's count is also checked against its link target's count computed
here serially. The last lines give the dask/process throughput ratio and
whether it is within 15 %.

How to run
----------
::

    .venv/bin/python benchmarks/scale_test.py                # CLI, 13,200 links, both backends
    .venv/bin/python benchmarks/scale_test.py --api --n 2000
    .venv/bin/python benchmarks/scale_test.py --n 480 --targets 6  # a quick smoke run
    .venv/bin/python benchmarks/scale_test.py --backend dask --scheduler tcp://host:8786

Data, the command line, monitoring and tables come from ``_helpers.py`` (shared
with ``bench_plate.py``); only public entry points of the package are used.

Exit status: 0 when every run agreed, 1 on a count mismatch or a failed run.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from _helpers import (
    TreeMonitor,
    cli_command,
    cli_detect_args,
    default_params,
    format_table,
    make_links,
    make_targets,
    read_counts,
    usable_cores,
)

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

    def read(self, out: Path, wall: float, mon: TreeMonitor) -> Run:
        """Fill in the measurements and the counts of a finished run's tables."""
        self.wall_s, self.peak_rss_mb, self.max_procs = wall, mon.peak_rss / 2**20, mon.max_procs
        self.cpu_s = mon.cpu_seconds
        self.counts = read_counts(out)
        self.n = len(self.counts)
        self.failed = sum(c is None for c in self.counts.values())
        return self


def target_counts(targets: list[str], params) -> dict[str, int]:
    """Count every target once, serially, in this process."""
    from napari_nuclei_counter import run_batch

    return {r.path: r.count for r in run_batch(targets, params, workers=0)}


def detect_args(backend: str, folder: Path, out: Path, args) -> list[str]:
    """``detect`` arguments for one backend (and the scheduler and workers asked for)."""
    extra = ["--backend", backend]
    if backend == "dask" and args.scheduler:
        extra += ["--scheduler", args.scheduler]
    if args.workers is not None:
        extra += ["--workers", str(args.workers)]
    return cli_detect_args(folder, out, *extra)


def run_cli(backend: str, folder: Path, out: Path, args) -> Run:
    """Run ``nuclei-counter detect`` with one backend as a process, monitored."""
    cmd = [*cli_command(), *detect_args(backend, folder, out, args)]
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
    return run.read(out, wall, mon)


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


def run_api(backend: str, folder: Path, out: Path, args) -> Run:
    """Call ``cli.main(['detect', ...])`` with one backend in this process, monitored."""
    from napari_nuclei_counter.cli.app import main as cli_main

    run = Run("api", backend)
    if backend == "dask":
        try:
            import distributed  # noqa: F401
        except ImportError as exc:
            run.note = f"dask not installed ({exc})"
            return run
    with TreeMonitor(os.getpid()) as mon:
        t0 = time.perf_counter()
        try:
            code = cli_main(detect_args(backend, folder, out, args))
        except SystemExit as exc:  # a usage error
            code = exc.code
        wall = time.perf_counter() - t0
    if code not in (0, 1):
        run.note = f"cli.main returned {code}"
        return run
    return run.read(out, wall, mon)


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
                          "give different counts")
    return errors


def table(runs: list[Run], cores: int) -> str:
    """Format the runs as one text table (a failed run: its note)."""
    head = ["mode", "backend", "images", "failed", "wall s", "img/s", "img/s/core",
            "CPU ms/img", "peak RSS MB", "procs"]
    rows = [[r.mode, r.backend, str(r.n), str(r.failed), f"{r.wall_s:.2f}",
             f"{r.rate():.0f}", f"{r.rate() / cores:.0f}", f"{1000 * r.cpu_s / r.n:.2f}",
             f"{r.peak_rss_mb:.0f}", str(r.max_procs)] if r.ok
            else [r.mode, r.backend, r.note or "no images"] for r in runs]
    return format_table(head, rows, right=set(range(2, len(head))))


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


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--n", type=int, default=13_200, help="symbolic links (images) to process")
    p.add_argument("--targets", type=int, default=12, help="distinct generated images")
    p.add_argument("--backend", choices=["both", "process", "dask"], default="both")
    p.add_argument("--api", action="store_true",
                   help="call cli.main in this process instead of running the command")
    p.add_argument("--scheduler", default=None,
                   help="Dask scheduler address (default: a local cluster)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes for both backends (default: every core)")
    p.add_argument("--work-dir", default=None,
                   help="folder for images, links and tables (default: a temporary one)")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    args = p.parse_args(argv)
    if args.n < 1 or args.targets < 1:
        p.error("--n and --targets must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    params = default_params()
    cores = args.workers or usable_cores()
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
            go = run_api if args.api else run_cli
            runs.append(go(backend, work / "links", work / f"out-{backend}", args))
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
