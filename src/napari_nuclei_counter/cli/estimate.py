"""``nuclei-counter estimate``: parameters suggested from the images alone.

The command line's *Estimate from image* (the dock's button): for each image
of ``INPUT`` matching ``--pattern``, and for the set, the typical nucleus
diameter and the sigma, min distance and threshold derived from it
(:func:`~napari_nuclei_counter.core.scoring.estimate.estimate_params`). With
``--out`` the set's parameters are written as a preset that ``detect
--preset`` and the dock's *Load preset* read.

Exit status (:class:`~.errors.ExitCode`): 0 every image read, 1 some images
could not be read (the set is estimated from the others), 2 none could be
read or a usage error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..core.io.discovery import BBBC021_PATTERN
from .errors import ExitCode, UsageError
from .texts import plural

__all__ = ["add_parser", "cmd_estimate"]


def add_parser(subparsers) -> None:
    """Add ``estimate`` to the ``nuclei-counter`` sub-command parsers."""
    e = subparsers.add_parser(
        "estimate", help="suggest sigma, min distance and threshold from the images alone",
        description="Estimate the typical nucleus diameter of every image of INPUT that "
                    "matches --pattern, and the sigma, min distance and threshold derived "
                    "from it, per image and for the set; --out writes the set's parameters "
                    "as a preset for detect --preset (or the dock's Load preset). A "
                    "suggestion: score it against a few annotated nuclei (evaluate) when you "
                    "can. Exit status: 0 all images read, 1 some could not be read, 2 none.")
    e.add_argument("input", metavar="INPUT", help="folder of images (or one image file)")
    e.add_argument("--pattern", default=BBBC021_PATTERN,
                   help=f"file-name glob, case-insensitive, as for detect (default: "
                        f"{BBBC021_PATTERN}, BBBC021's DAPI channel w1)")
    e.add_argument("--recursive", action="store_true", help="also search sub-folders")
    e.add_argument("--out", default=None, metavar="PRESET.json",
                   help="write the set's parameters to this preset file (default: only print "
                        "them)")
    e.add_argument("--method", choices=["otsu", "log"], default="otsu",
                   help="how the diameter is measured: 'otsu' (bright regions, fast) or 'log' "
                        "(a blob scale search, slower, not fooled by touching nuclei) "
                        "(default: otsu)")
    e.add_argument("--channel", default=None, metavar="NAME|INDEX",
                   help="the channel of multi-channel files")
    e.add_argument("--z", default=None, metavar="max|mean|INDEX", help="for z-stacks")


def _line(name: str, est) -> str:
    p = est.params
    return (f"{name}: diameter {est.diameter:.1f}, sigma {p.sigma:g}, min_distance "
            f"{p.min_distance}, threshold {p.threshold_abs:g}")


def _say(line: str) -> None:
    """One line of the command's report on standard output."""
    sys.stdout.write(line + "\n")


def cmd_estimate(args: argparse.Namespace) -> int:
    """Run ``estimate`` for parsed ``args``; return the exit status.

    Raises
    ------
    UsageError
        For an input without images, a bad ``--channel``/``--z``, no readable
        image, or a preset that cannot be written.
    """
    from ..core.io.images import PlaneChoice, atomic_write, read_image
    from ..core.scoring.estimate import estimate_params
    from .scoring import list_images

    try:
        plane = PlaneChoice(args.channel, args.z)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    paths = list_images(args)
    images, n_failed = [], 0
    for path in paths:
        try:
            image = read_image(path, plane=plane)
            est = estimate_params([image], method=args.method)
        except (OSError, ValueError, TypeError) as exc:
            n_failed += 1
            sys.stderr.write(f"failed: {path}: {exc}\n")
            continue
        images.append(image)
        _say(_line(path.name, est))
    if not images:
        raise UsageError(f"none of the {plural(len(paths), 'image')} could be read")
    est = estimate_params(images, method=args.method)
    _say(_line(f"set of {plural(len(images), 'image')}", est))
    if args.out is not None:
        out = Path(args.out).expanduser()
        try:
            with atomic_write(out, encoding="utf-8") as fh:
                fh.write(est.params.to_json() + "\n")
        except OSError as exc:
            raise UsageError(f"cannot write the preset {out}: {exc.strerror or exc}") from None
        _say(f"wrote {out} (use it with: detect --preset {out})")
    return ExitCode.FAILED if n_failed else ExitCode.OK
