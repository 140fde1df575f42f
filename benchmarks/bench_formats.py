#!/usr/bin/env python
"""Benchmark: the whole plate from compressed TIFFs, as microscopes and Fiji write them.

The 240-image synthetic plate of ``bench_plate.py`` (1024x1280, uint16) is
re-encoded once per compression (uncompressed, LZW with and without the
horizontal predictor, zstd, deflate with predictor) into the work folder.
For each, one process decodes every image once (one thread, as in a worker)
and ``nuclei-counter detect`` runs the plate headless with its defaults; the
table shows the decode time per image, the batch's images/s as the command
line reports it, and whether every count equals the uncompressed plate's.
Runs alternate between formats (``--repeats`` rounds) so that machine noise
falls on all of them alike.

Run::

    .venv/bin/python benchmarks/bench_formats.py              # 240 images, 3 rounds
    .venv/bin/python benchmarks/bench_formats.py --images 48 --repeats 1
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import tifffile

from _helpers import (
    cli_command,
    cli_detect_args,
    default_workdir,
    ensure_plate,
    format_table,
    log,
    machine_info,
    parse_cli_summary,
    read_counts,
)

VARIANTS = {
    "uncompressed": {},
    "LZW": {"compression": "lzw"},
    "LZW + predictor": {"compression": "lzw", "predictor": True},
    "zstd": {"compression": "zstd"},
    "deflate + predictor": {"compression": "zlib", "predictor": True},
}


def write_variant(paths: list[str], folder: Path, kwargs: dict) -> list[Path]:
    """The plate's images re-encoded with ``kwargs`` (kept when already there)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for p in paths:
        target = folder / Path(p).name
        if not target.exists():
            tifffile.imwrite(target, tifffile.imread(p), photometric="minisblack", **kwargs)
        out.append(target)
    return out


def decode_ms(paths: list[Path]) -> float:
    """Median time to decode one image with the core's reader (one thread)."""
    from napari_nuclei_counter.core.io.images import read_image

    times = []
    for p in paths:
        t0 = time.perf_counter()
        read_image(p, reuse_buffer=True)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", type=Path, default=default_workdir())
    p.add_argument("--images", type=int, default=240, help="images of the plate (<= 240)")
    p.add_argument("--repeats", type=int, default=3, help="rounds over all formats")
    args = p.parse_args(argv)

    plate = ensure_plate(args.workdir / "plate-240", ("BCDEFG", (2, 12), 4))[: args.images]
    folders = {}
    for name, kwargs in VARIANTS.items():
        slug = name.replace(" + ", "-").replace(" ", "-").lower()
        log(f"writing the {name} plate ...")
        files = write_variant(plate, args.workdir / f"formats-{slug}", kwargs)
        folders[name] = (files[0].parent, decode_ms(files),
                         sum(f.stat().st_size for f in files) / 2**20)
    speeds = {name: [] for name in VARIANTS}
    counts = {}
    for r in range(args.repeats):
        for name, (folder, _, _) in folders.items():
            out = args.workdir / f"formats-out-{r}-{name.replace(' ', '')}"
            done = subprocess.run([*cli_command(), *cli_detect_args(folder, out, "--pattern",
                                                                    "*_w1*.tif")],
                                  capture_output=True, text=True)
            summary = parse_cli_summary(done.stderr)
            if done.returncode != 0 or not summary:
                log(f"{name}: the command failed ({done.returncode}): {done.stderr[-500:]}")
                return 1
            speeds[name].append(summary["images"] / summary["batch_seconds"])
            counts[name] = sorted(read_counts(out).items())
            counts[name] = [(Path(k).name, v) for k, v in counts[name]]
    base = counts["uncompressed"]
    rows = []
    for name, (_, ms, mib) in folders.items():
        same = "yes" if counts[name] == base else "MISMATCH"
        rows.append([name, f"{mib:.0f}", f"{ms:.1f}", f"{statistics.median(speeds[name]):.1f}",
                     same])
    info = machine_info()
    sys.stdout.write(f"{len(plate)} images of 1024x1280 uint16, {info['usable_cores']} cores, "
                     f"median of {args.repeats} runs each (alternating)\n")
    sys.stdout.write(format_table(["TIFF compression", "MiB", "decode ms/image",
                                   "detect images/s", "same counts"], rows,
                                  right={1, 2, 3}) + "\n")
    return 0 if all(r[-1] == "yes" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
