"""The command line's result commands: ``gallery``, ``platemap`` and ``sample``.

They may read a folder that a run is still writing into (they say so) and
refuse a folder whose tables do not belong together (``load_results`` checks
it with :func:`~napari_nuclei_counter.core.results.integrity.check_folder`).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from .errors import SEED_MAX, ExitCode, Stopped, UsageError, check_range
from .texts import plural

#: bounds of the size options (README, "When things go wrong")
GALLERY_N_MAX = 10_000
GALLERY_SIZE = (16, 2048)
GALLERY_COLUMNS_MAX = 100
SAMPLE_COLUMNS_MAX = 47  # plate columns 2 to 48: a 1536-well plate
SAMPLE_SITES_MAX = 100
SAMPLE_IMAGES_MAX = 10_000


def _cmd_sample(args) -> int:
    from ..core.sample import write_sample_plate

    if not re.fullmatch(r"[A-Za-z]{1,26}", args.rows):
        raise UsageError(f"--rows must be 1 to 26 letters A-Z, one per plate row, got {args.rows!r}")
    check_range("--columns", args.columns, 1, SAMPLE_COLUMNS_MAX)
    check_range("--sites", args.sites, 1, SAMPLE_SITES_MAX)
    check_range("--seed", args.seed, 0, SEED_MAX)
    n_images = len(args.rows) * args.columns * args.sites
    if n_images > SAMPLE_IMAGES_MAX:
        raise UsageError(f"--rows x --columns x --sites make {n_images:,} images; the sample "
                         f"plate holds at most {SAMPLE_IMAGES_MAX:,}")
    out = Path(args.out).expanduser()
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} is a file, not a folder; choose another OUT")
    try:
        paths = write_sample_plate(out, rows=args.rows.upper(),
                                   columns=range(2, 2 + args.columns), sites=args.sites,
                                   seed=args.seed)
    except OSError as exc:
        raise UsageError(f"cannot write the sample plate into {out}: "
                         f"{exc.strerror or exc}") from None
    sys.stderr.write(f"wrote {plural(len(paths), 'image')} to {args.out}\n")
    return ExitCode.OK


def _results_dir(path: str) -> Path:
    folder = Path(path).expanduser()
    if not ((folder / "images.csv").exists() or (folder / "images.partial.csv").exists()):
        raise UsageError(f"not a results folder (no images.csv): {folder}")
    return folder  # load_results checks it as a whole (a mixed set: exit 2)


def _cmd_gallery(args) -> int:
    from ..core.render.gallery import GalleryTooLarge, gallery_from_results

    check_range("--n", args.n, 0, GALLERY_N_MAX, "images (0: all)")
    check_range("--size", args.size, *GALLERY_SIZE, "pixels")
    check_range("--columns", args.columns, 1, GALLERY_COLUMNS_MAX)
    check_range("--seed", args.seed, 0, SEED_MAX)
    out = _picture_path(args.out)
    folder = _results_dir(args.results)
    try:
        picture = gallery_from_results(folder, n=args.n, seed=args.seed,
                                       ascending=args.ascending, size=args.size,
                                       columns=args.columns)
    except GalleryTooLarge as exc:
        raise UsageError(f"{exc}; choose a smaller --n, --size or --columns") from None
    except ValueError as exc:  # e.g. no image processed successfully
        raise UsageError(str(exc)) from None
    _save(picture, out)
    sys.stderr.write(f"wrote {args.out}\n")
    return ExitCode.OK


def _cmd_platemap(args) -> int:
    from ..core.render.pictures import render_plate_map
    from ..core.results.tables import load_results

    out = _picture_path(args.out)
    res = load_results(_results_dir(args.results))
    wells = res.wells
    if wells is None or not len(wells):
        raise UsageError("no well names in this results folder (file names without wells?)")
    if args.plate is not None and args.plate not in set(wells["plate"]):
        raise UsageError(f"no plate {args.plate!r}; plates: {', '.join(sorted(set(wells['plate'])))}")
    _save(render_plate_map(wells, value=args.value, plate=args.plate), out)
    sys.stderr.write(f"wrote {args.out}\n")
    return ExitCode.OK


def _picture_path(path: str) -> Path:
    """``--out`` of a picture: refused at once when it is a folder or its folder is missing."""
    out = Path(path).expanduser()
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; give the name of a PNG file to write")
    if not out.parent.is_dir():
        raise UsageError(f"--out {out}: the folder {out.parent} does not exist")
    return out


def _save(picture, out: Path) -> None:
    """Write the PNG; a folder that cannot be written is a setup error (exit 2)."""
    import errno

    from ..core.render.pictures import save_png

    try:
        save_png(picture, out)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO):
            raise Stopped(f"cannot write {out}: {exc.strerror or exc}") from None
        raise UsageError(f"cannot write {out}: {exc.strerror or exc}") from None
