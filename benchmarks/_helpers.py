"""What the benchmarks share: plates, links, the command line, monitoring, machine info.

Used by ``bench_plate.py`` (and its ``walkthrough``/``measurements`` modules) and
by ``scale_test.py``. Only the package's public entry points are used
(``core.sample``, ``DetectionParams``, ``load_results``, the ``nuclei-counter``
command), so moving the package's internals does not break the benchmarks.

Module-level imports stay light (standard library and numpy): the walk-through's
script imports this module and is measured for memory.
"""

from __future__ import annotations

import glob as _glob
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
#: the walk-through's glob for BBBC021 DAPI images
WALKTHROUGH_PATTERN = "Week1_*_w1*.tif"
#: BBBC021 plate layout: rows B-G x columns 02-11 x 4 sites = 240 images
ROWS, COLUMNS, SITES = "BCDEFG", range(2, 12), 4
PER_PLATE = len(ROWS) * len(COLUMNS) * SITES


def log(msg: str, end: str = "\n", prefix: bool = True) -> None:
    """Progress to standard error (the report goes to standard output)."""
    sys.stderr.write((f"[bench] {msg}" if prefix else msg) + end)
    sys.stderr.flush()


def default_params():
    """The BBBC021 parameters every benchmark uses: sigma 4, min_distance 6, threshold 1000."""
    from napari_nuclei_counter import DetectionParams

    return DetectionParams(sigma=4.0, min_distance=6, threshold_abs=1000.0)


def usable_cores() -> int:
    """CPU cores this process may use (what the package's pools use by default)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def median_ms(samples: list[float]) -> float:
    """Median of ``samples`` (seconds), in milliseconds."""
    return 1000.0 * statistics.median(samples)


# ---------------------------------------------------------------------------
# Plates and links
# ---------------------------------------------------------------------------

def default_workdir() -> Path:
    """``$TMPDIR/nuclei-counter-bench`` (the system temporary folder if unset)."""
    return Path(os.environ.get("TMPDIR") or tempfile.gettempdir()) / "nuclei-counter-bench"


def list_plate(folder: str | Path) -> list[str]:
    """The walk-through's ``paths``: DAPI images of ``folder``, sorted."""
    return sorted(_glob.glob(os.path.join(_glob.escape(str(folder)), WALKTHROUGH_PATTERN)))


def ensure_plate(folder: Path, layout: tuple, shape=(1024, 1280)) -> list[str]:
    """Return the plate in ``folder``, generating it if it is missing.

    ``layout`` is ``(rows, (first column, last column + 1), sites)``. A folder
    we generated carries ``.bench-plate.json``; it is reused when the layout,
    shape and image count match, and regenerated otherwise. A folder without
    that marker but with images (a real BBBC021 plate, say) is used as is.
    """
    from napari_nuclei_counter.core.sample import write_sample_plate

    rows, (c0, c1), sites = layout
    spec = {"rows": rows, "columns": [c0, c1], "sites": sites, "seed": 0,
            "n": len(rows) * (c1 - c0) * sites}
    if tuple(shape) != (1024, 1280):
        spec["shape"] = list(shape)
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
    write_sample_plate(folder, rows=rows, columns=range(c0, c1), sites=sites, seed=0,
                       shape=tuple(shape))
    marker.write_text(json.dumps(spec))
    log(f"  done in {time.perf_counter() - t0:.0f} s")
    return list_plate(folder)


def make_targets(folder: Path, n_images: int, shape=(256, 320)) -> list[str]:
    """Write ``n_images`` small generated images (link targets), reused between runs."""
    from napari_nuclei_counter.core.sample import write_sample_plate

    cols = max(1, -(-n_images // 3))
    paths = write_sample_plate(folder, rows="BCD", columns=range(2, 2 + cols), sites=1,
                               seed=7, shape=shape)
    return [str(p) for p in paths[:n_images]]


def link_names(n: int, *, seed: int = 2026, one_week: bool = False) -> list[str]:
    """``n`` distinct BBBC021-style DAPI names: 240 per plate, as many plates as needed.

    Plates are numbered from 22123, five per week (``one_week``: all in
    ``Week1``, so that the walk-through's ``Week1_*_w1*.tif`` finds them all).
    """
    rng = np.random.default_rng([seed, n])
    names = []
    for k in range(-(-n // PER_PLATE)):
        week, plate = (1 if one_week else 1 + k // 5), 22123 + k
        for row in ROWS:
            for col in COLUMNS:
                for site in range(1, SITES + 1):
                    uid = str(uuid.UUID(bytes=rng.bytes(16), version=4)).upper()
                    names.append(f"Week{week}_{plate}_{row}{col:02d}_s{site}_w1{uid}.tif")
    return names[:n]


def make_links(folder: Path, targets: list[str], n: int, **names) -> dict[str, str]:
    """Fill ``folder`` with ``n`` symbolic links to ``targets`` (cycled).

    Keyword arguments go to :func:`link_names`. Returns link path -> target path.
    """
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    links = {}
    for i, name in enumerate(link_names(n, **names)):
        target = targets[i % len(targets)]
        link = folder / name
        os.symlink(os.path.abspath(target), link)
        links[str(link)] = target
    return links


# ---------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------

def cli_command() -> list[str]:
    """The ``nuclei-counter`` executable of this environment (``python -m`` as a fallback)."""
    exe = Path(sys.executable).with_name("nuclei-counter")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("nuclei-counter")
    return [found] if found else [sys.executable, "-m", "napari_nuclei_counter.cli.app"]


def cli_detect_args(folder: Path, out: Path, *extra: str) -> list[str]:
    """Arguments (without the program) of a headless ``detect`` with default parameters."""
    return ["detect", str(folder), "--out", str(out), "--quiet", *extra]


def parse_cli_summary(stderr: str) -> dict:
    """Read the CLI's closing line: images, nuclei, failed, seconds of the batch."""
    m = re.search(r"(\d+) images, (\d+) nuclei, (\d+) failed, ([\d.]+) s", stderr)
    if not m:
        return {}
    return {"images": int(m[1]), "nuclei": int(m[2]), "failed": int(m[3]),
            "batch_seconds": float(m[4])}


def read_counts(out: Path) -> dict[str, int | None]:
    """Image path -> nuclei count (None when failed), from a results folder."""
    import pandas as pd

    from napari_nuclei_counter import load_results

    images = load_results(out).images
    return {str(p): (None if err or pd.isna(n) else int(n))
            for p, n, err in zip(images["path"], images["n_nuclei"], images["error"].fillna(""), strict=True)}


def read_image_seconds(out: Path) -> float:
    """Sum of the per-image ``seconds`` of a results folder (worker compute time)."""
    from napari_nuclei_counter import load_results

    images = load_results(out).images
    return float(images["seconds"].fillna(0).sum()) if "seconds" in images else float("nan")


# ---------------------------------------------------------------------------
# Monitoring a process tree
# ---------------------------------------------------------------------------

class TreeMonitor:
    """Poll a process and its descendants every ``interval`` s, in a thread.

    Records the peak of the resident set sizes (RSS) summed over the tree
    (shared pages count once per process, so this overstates the machine's
    use), every ``pss_every``-th poll the summed proportional set size (PSS,
    shared pages split between sharers; 0: never), the most processes seen and
    the CPU time (user + system) the tree used while monitored.
    """

    def __init__(self, pid: int, interval: float = 0.1, *, pss_every: int = 0,
                 skip_root: bool = False):
        import psutil

        self._root = psutil.Process(pid)
        self._interval, self._pss_every, self._skip_root = interval, pss_every, skip_root
        self._stop = threading.Event()
        self.peak_rss = self.peak_pss = self.max_procs = self._polls = 0
        self._cpu: dict[int, float] = {}  # pid -> last seen user + system time
        self._cpu0 = 0.0
        self._thread = threading.Thread(target=self._poll, daemon=True)

    @property
    def cpu_seconds(self) -> float:
        """CPU time used by the tree while monitored (to the last poll)."""
        return sum(self._cpu.values()) - self._cpu0

    def __enter__(self) -> TreeMonitor:
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
            tree = self._root.children(recursive=True)
        except psutil.NoSuchProcess:
            return
        if not self._skip_root:
            tree.append(self._root)
        with_pss = self._pss_every and self._polls % self._pss_every == 0
        rss = pss = 0
        for p in tree:
            try:
                rss += p.memory_info().rss
                if with_pss:
                    pss += p.memory_full_info().pss
                t = p.cpu_times()
                self._cpu[p.pid] = t.user + t.system
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        self._polls += 1
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_pss = max(self.peak_pss, pss)
        self.max_procs = max(self.max_procs, len(tree))


def run_monitored(cmd: list[str], interval: float = 0.05, pss_every: int = 5) -> dict:
    """Run ``cmd`` to its end under a :class:`TreeMonitor`.

    Where GNU ``/usr/bin/time`` exists the command runs under it, its own
    process is left out of the sums, and its maximum RSS (that of the single
    largest process) is reported too.

    Returns
    -------
    dict
        ``wall_s``, ``peak_rss_mb``, ``peak_pss_mb``, ``cpu_s``,
        ``largest_process_mb`` (None without GNU time), ``max_processes``,
        ``returncode``, ``stdout``, ``stderr``.
    """
    gnu_time = Path("/usr/bin/time")
    use_time = gnu_time.exists()
    full = [str(gnu_time), "-v", *cmd] if use_time else cmd
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(full, stdout=out, stderr=err, text=True)
        with TreeMonitor(proc.pid, interval, pss_every=pss_every, skip_root=use_time) as mon:
            proc.wait()
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    largest = None
    if use_time:
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr)
        largest = int(m[1]) / 1024 if m else None
    return {"wall_s": wall, "peak_rss_mb": mon.peak_rss / 2**20,
            "peak_pss_mb": mon.peak_pss / 2**20, "cpu_s": mon.cpu_seconds,
            "largest_process_mb": largest, "max_processes": mon.max_procs,
            "returncode": proc.returncode, "stdout": stdout, "stderr": stderr}


# ---------------------------------------------------------------------------
# Machine and formatting
# ---------------------------------------------------------------------------

def machine_info() -> dict:
    """Cores, CPU model, load and library versions, for report headers and JSON."""
    import multiprocessing as mp

    import cv2
    import scipy
    import skimage
    import tifffile

    import napari_nuclei_counter

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            model = next((line.split(":", 1)[1].strip() for line in fh
                          if line.startswith("model name")), model)
    except OSError:
        pass
    return {
        "cpu_count": os.cpu_count(), "usable_cores": usable_cores(), "cpu_model": model,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(), "python": platform.python_version(),
        "start_method": mp.get_start_method(),
        "versions": {"napari-nuclei-counter": napari_nuclei_counter.__version__,
                     "numpy": np.__version__, "scipy": scipy.__version__,
                     "scikit-image": skimage.__version__, "opencv": cv2.__version__,
                     "tifffile": tifffile.__version__},
    }


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


def format_table(headers: list[str], rows: list[list], right=frozenset()) -> str:
    """Format rows as aligned text columns; column indices in ``right`` align right.

    A row shorter than the header is a note: its last cell may run past its column.
    """
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells if len(r) == len(headers))
              for i in range(len(headers))]

    def line(r):
        return "  ".join(c.rjust(w) if i in right and len(r) == len(headers) else c.ljust(w)
                         for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip()

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
