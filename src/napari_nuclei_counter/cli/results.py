"""The command line's result commands: ``gallery``, ``platemap`` and ``sample``.

They may read a folder that a run is still writing into (they say so) and
refuse a folder whose tables do not belong together (``load_results`` checks
it with :func:`~napari_nuclei_counter.core.results.integrity.check_folder`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from .errors import ExitCode, UsageError


def _cmd_sample(args) -> int:
    from ..core.sample import write_sample_plate

    if args.columns < 1 or args.sites < 1 or not args.rows.isalpha():
        raise UsageError("--rows must be letters, --columns and --sites at least 1")
    paths = write_sample_plate(args.out, rows=args.rows.upper(),
                               columns=range(2, 2 + args.columns), sites=args.sites,
                               seed=args.seed)
    sys.stderr.write(f"wrote {len(paths)} images to {args.out}\n")
    return ExitCode.OK


def _results_dir(path: str) -> Path:
    folder = Path(path).expanduser()
    if not ((folder / "images.csv").exists() or (folder / "images.partial.csv").exists()):
        raise UsageError(f"not a results folder (no images.csv): {folder}")
    return folder  # load_results checks it as a whole (a mixed set: exit 2)


def _cmd_gallery(args) -> int:
    from ..core.render.gallery import gallery_from_results
    from ..core.render.pictures import save_png

    folder = _results_dir(args.results)
    if args.columns < 1 or args.size < 16:
        raise UsageError("--columns must be at least 1 and --size at least 16")
    picture = gallery_from_results(folder, n=args.n, seed=args.seed, ascending=args.ascending,
                                   size=args.size, columns=args.columns)
    save_png(picture, args.out)
    sys.stderr.write(f"wrote {args.out}\n")
    return ExitCode.OK


def _cmd_platemap(args) -> int:
    from ..core.render.pictures import render_plate_map, save_png
    from ..core.results.tables import load_results

    res = load_results(_results_dir(args.results))
    wells = res.wells
    if wells is None or not len(wells):
        raise UsageError("no well names in this results folder (file names without wells?)")
    if args.plate is not None and args.plate not in set(wells["plate"]):
        raise UsageError(f"no plate {args.plate!r}; plates: {', '.join(sorted(set(wells['plate'])))}")
    save_png(render_plate_map(wells, value=args.value, plate=args.plate), args.out)
    sys.stderr.write(f"wrote {args.out}\n")
    return ExitCode.OK
