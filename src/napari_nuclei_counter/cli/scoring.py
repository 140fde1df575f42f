"""``nuclei-counter evaluate`` and ``nuclei-counter tune``: scores against annotations.

Truth files are found by the image's stem in the ``--truth`` folder (or the
same sub-folder there, with ``--recursive``), with or without a suffix
``_labels``, ``_label``, ``_mask``, ``_masks``, with the extension ``.tif``,
``.tiff``, ``.png`` or ``.csv`` in any case, or by ``--truth-pattern``
(``'{stem}_gt.png'``). An image without truth is skipped with a warning.

Exit status (:class:`~.errors.ExitCode`): 0 every image scored, 1 some images
had no (readable) truth or failed, 2 none had truth or a usage error.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import statistics
import sys
import warnings
from pathlib import Path

from ..core.detect.detection import ENGINES
from ..core.params import DetectionParams, read_preset
from ..core.results.columns import EVALUATION
from .errors import ExitCode, UsageError, check_range
from .texts import plural

__all__ = ["add_parameter_options", "add_parsers", "find_truth", "params_from_args", "run",
           "threshold_hint"]

log = logging.getLogger("napari_nuclei_counter")

TRUTH_SUFFIXES = ("", "_labels", "_label", "_mask", "_masks")
TRUTH_EXTENSIONS = (".tif", ".tiff", ".png", ".csv")
IMAGE_EXTENSIONS = (".tif", ".tiff", ".png", ".jpg", ".jpeg")

#: bounds of the size options (README, "When things go wrong")
MIN_DISTANCE_MAX = 10_000
MATCH_RADIUS_MAX = 10_000.0
WORKERS_MAX = 1024


def threshold_value(text: str):
    """``--threshold``: a number, or an automatic method name (``otsu``, ``li``, ``triangle``)."""
    from ..core.detect.thresholds import AUTO_THRESHOLDS

    low = str(text).strip().lower()
    if low in AUTO_THRESHOLDS:
        return low
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a number nor one of {', '.join(AUTO_THRESHOLDS)}: {text!r}") from None


def add_parameter_options(p: argparse.ArgumentParser) -> None:
    """``--preset``, ``--sigma``, ``--min-distance``, ``--threshold`` (explicit ones win)."""
    d = DetectionParams()
    # no default in the namespace (SUPPRESS): only what the user typed overrides the preset,
    # and the help states the real defaults instead of "None"
    p.add_argument("--preset", default=argparse.SUPPRESS, metavar="PRESET.json",
                   help="parameters from a preset file (the dock's Save preset, or tune's "
                        "preset.json); --sigma, --min-distance, --threshold override it")
    p.add_argument("--sigma", type=float, default=argparse.SUPPRESS,
                   help=f"Gaussian blur standard deviation, in pixels (> 0); about a quarter "
                        f"of a nucleus diameter (default: {d.sigma})")
    p.add_argument("--min-distance", type=int, default=argparse.SUPPRESS,
                   help=f"minimum distance between two nuclei centres and from the image "
                        f"border, in pixels (integer >= 1) (default: {d.min_distance})")
    p.add_argument("--threshold", type=threshold_value, default=argparse.SUPPRESS,
                   help=f"a centre must be brighter than this after blurring, in the image's "
                        f"intensity units (0-65535 for 16-bit, 0-255 for 8-bit images), or "
                        f"otsu, li or triangle: computed on each smoothed image "
                        f"(default: {d.threshold_abs:g})")


def params_from_args(args) -> DetectionParams:
    """The parameters: defaults, then ``--preset``, then the explicit options.

    Raises
    ------
    UsageError
        For an unreadable preset or an invalid value (the message says which).
    """
    data = DetectionParams().to_dict()
    if getattr(args, "preset", None):
        try:
            data.update(read_preset(Path(args.preset).expanduser()).to_dict())
        except OSError as exc:
            raise UsageError(f"cannot use preset {args.preset}: {exc.strerror or exc}") from None
        except (ValueError, TypeError) as exc:
            raise UsageError(f"cannot use preset {args.preset}: {exc}") from None
    for key, opt in (("sigma", "sigma"), ("min_distance", "min_distance"),
                     ("threshold_abs", "threshold")):
        value = getattr(args, opt, None)
        if value is None:
            continue
        if isinstance(value, str):
            data["threshold_method"] = value
        else:
            data[key] = value
            if key == "threshold_abs":
                data.pop("threshold_method", None)
    try:
        params = DetectionParams.from_dict(data)
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None
    # (a sigma beyond an image is that image's row error: the detection checks it)
    check_range("--min-distance", params.min_distance, 1, MIN_DISTANCE_MAX, "pixels")
    return params


def check_scoring_options(args) -> None:
    """Refuse ``--match-radius`` and ``--workers`` outside their ranges (exit 2)."""
    radius = args.match_radius
    if radius is not None and not 0 < radius <= MATCH_RADIUS_MAX:
        raise UsageError(f"--match-radius must be more than 0 and at most "
                         f"{MATCH_RADIUS_MAX:,g} pixels, got {radius:g}")
    if getattr(args, "workers", None) is not None:
        check_range("--workers", args.workers, 0, WORKERS_MAX)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", metavar="INPUT", help="folder of images (or one image file)")
    p.add_argument("--truth", required=True, metavar="TRUTH",
                   help="folder of truth files (label, colour or binary masks; point CSVs "
                        "with y,x or axis-0,axis-1 columns), or one truth file")
    p.add_argument("--pattern", default="*",
                   help="image file-name glob, case-insensitive (default: every TIFF, PNG or "
                        "JPEG that is not itself named like a truth file)")
    p.add_argument("--recursive", action="store_true", help="also search sub-folders")
    p.add_argument("--truth-pattern", default=None, metavar="'{stem}_gt.png'",
                   help="name of an image's truth file, {stem} being the image's name "
                        "without extension")
    p.add_argument("--match-radius", type=float, default=None, metavar="PX",
                   help="points truth: largest distance of a match (default half the "
                        "nucleus diameter estimated from each image)")
    p.add_argument("--region", default=None, metavar="Y0:Y1,X0:X1",
                   help="score only this rectangle of every image (pixels, end excluded)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--channel", default=None, metavar="NAME|INDEX",
                   help="the channel of multi-channel files")
    p.add_argument("--z", default=None, metavar="max|mean|INDEX", help="for z-stacks")


def add_parsers(subparsers) -> None:
    """Add ``evaluate`` and ``tune`` to the ``nuclei-counter`` sub-command parsers."""
    ev = subparsers.add_parser(
        "evaluate", help="score detections against annotated nuclei",
        description="Detect nuclei and score them against truth: writes DIR/evaluation.csv "
                    "(one row per image) and DIR/evaluation.json (the totals) and prints the "
                    "totals last. Exit status: 0 all scored, 1 some images without truth, "
                    "2 none has truth.")
    _common(ev)
    add_parameter_options(ev)
    ev.add_argument("--engine", choices=sorted(ENGINES), default="fast",
                    help="detection engine (both give identical results)")
    tu = subparsers.add_parser(
        "tune", help="search the parameters that best fit annotated nuclei",
        description="Search sigma, min distance and threshold for the best F1 over the "
                    "annotated images: writes DIR/preset.json (Load preset in the dock, or "
                    "detect --preset) and DIR/tuning.csv (every tried set) and prints the best.")
    _common(tu)
    tu.add_argument("--workers", type=int, default=None, help="threads (default: all cores)")


def parse_region(text: str | None):
    """``'Y0:Y1,X0:X1'`` as ``(y0, y1, x0, x1)``."""
    if text is None:
        return None
    try:
        ys, xs = text.split(",")
        y0, y1 = (float(v) for v in ys.split(":"))
        x0, x1 = (float(v) for v in xs.split(":"))
    except ValueError:
        raise UsageError(f"--region must look like Y0:Y1,X0:X1 (pixels), got {text!r}") from None
    if not all(math.isfinite(v) for v in (y0, y1, x0, x1)):
        raise UsageError(f"--region must be finite numbers of pixels, got {text!r}")
    if y1 <= y0 or x1 <= x0:
        raise UsageError(f"--region: Y1 must exceed Y0 and X1 exceed X0, got {text!r}")
    return (y0, y1, x0, x1)


def _is_truth_name(path: Path) -> bool:
    stem = path.stem.lower()
    return path.suffix.lower() == ".csv" or any(stem.endswith(s) for s in TRUTH_SUFFIXES if s)


def list_images(args) -> list[Path]:
    """The images of ``INPUT`` (truth-named files and CSVs left out for the default pattern).

    The core's :func:`~napari_nuclei_counter.core.io.sources.list_images`
    (one file, or a folder's files matching ``--pattern``), one image per
    file and paths as given (not resolved), as ``evaluation.csv`` writes them.
    """
    from ..core.io.sources import list_images as core_list_images

    src = Path(args.input).expanduser()
    try:
        found = core_list_images(src, args.pattern, recursive=args.recursive, scenes=False,
                                 resolve=False)
    except (FileNotFoundError, NotADirectoryError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    paths = [Path(label) for label in found.labels]
    if found.kind == "folder" and args.pattern == "*":
        paths = [p for p in paths
                 if p.suffix.lower() in IMAGE_EXTENSIONS and not _is_truth_name(p)]
    if not paths:
        raise UsageError(f"no images matching {args.pattern!r} in {src}")
    return paths


def find_truth(image: Path, truth: Path, *, root: Path | None = None,
               pattern: str | None = None) -> Path | None:
    """The truth file of ``image`` (see the module's description), or ``None``."""
    if truth.is_file():
        return truth
    folders = [truth]
    if root is not None and image.parent != root:
        folders.insert(0, truth / image.parent.relative_to(root))
    stem = image.stem
    if pattern:
        wanted = [pattern.format(stem=stem).lower()]
    else:
        wanted = [f"{stem}{s}{e}".lower() for s in TRUTH_SUFFIXES for e in TRUTH_EXTENSIONS]
    for folder in folders:
        if not folder.is_dir():
            continue
        names = {p.name.lower(): p for p in folder.iterdir() if p.is_file()}
        for w in wanted:
            p = names.get(w)
            if p is not None and p.resolve() != image.resolve():
                return p
    return None


def _load(args, images: list[Path]):
    """``(image, path, truth or None, error)`` for each image."""
    from ..core.io.images import PlaneChoice, read_image
    from ..core.scoring.evaluate import read_truth

    truth_dir = Path(args.truth).expanduser()
    if not truth_dir.exists():
        raise UsageError(f"truth not found: {truth_dir}")
    root = Path(args.input).expanduser()
    root = root if root.is_dir() else None
    plane = PlaneChoice(args.channel, args.z)
    for path in images:
        tpath = find_truth(path, truth_dir, root=root, pattern=args.truth_pattern)
        if tpath is None:
            log.warning("no truth for %s: skipped", path.name)
            yield None, path, None, "no truth file found"
            continue
        try:
            image = read_image(path, plane=plane)
        except (OSError, ValueError, TypeError) as exc:
            yield None, path, None, f"image: {exc}"
            continue
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                truth = read_truth(tpath)
            for w in caught:
                log.warning("%s", w.message)
        except (OSError, ValueError, TypeError) as exc:
            log.warning("bad truth for %s: %s", path.name, exc)
            yield image, path, None, f"truth: {exc}"
            continue
        yield image, path, truth, ""


def threshold_hint(n: int, of: int, threshold: float, suggestion: float | None,
                   which: str = "") -> str:
    """Why ``n`` images had no nucleus: the threshold is above all they hold, and what to try.

    Parameters
    ----------
    n, of : int
        Images whose smoothed values all lie at or below ``threshold``, of how many.
    threshold : float
        The fixed threshold used.
    suggestion : float or None
        A threshold the images suggest (their Otsu threshold, rounded), if any.
    which : str, optional
        Words after "images" that say which images were counted (``' scored'``).

    Returns
    -------
    str
        One sentence, e.g. ``'29 of 29 images: the threshold 1000 is above every
        smoothed value (nothing can be found in them); try --threshold otsu or
        e.g. --threshold 37'``.
    """
    text = (f"{n} of {plural(of, 'image')}{which}: the threshold {threshold:.10g} is above "
            f"every smoothed value (nothing can be found in {'it' if n == 1 else 'them'}); "
            "try --threshold otsu")
    if suggestion is not None:
        text += f" or e.g. --threshold {suggestion:.10g}"
    return text


def _totals_line(s, n_scored: int, n_images: int) -> str:
    """The totals of a scoring; with nothing scored, no score (not a perfect one)."""
    if n_scored == 0:
        return (f"total: 0 of {plural(n_images, 'image')} scored (none has readable truth): "
                "no score")
    return (f"total: {n_scored} of {plural(n_images, 'image')} scored, n_true {s.n_true}, "
            f"n_detected {s.n_detected}, tp {s.tp}, fp {s.fp}, fn {s.fn}, precision {s.precision:.3f}, "
            f"recall {s.recall:.3f}, f1 {s.f1:.3f}, count_error {s.count_error:+d}")


def cmd_evaluate(args) -> int:
    import pandas as pd

    from ..core.detect.detection import as_grayscale_2d
    from ..core.detect.thresholds import check_threshold
    from ..core.io.discovery import parse_metadata
    from ..core.io.images import atomic_write
    from ..core.results.csvsafe import write_csv
    from ..core.results.writer import remove_stale_parts
    from ..core.scoring.evaluate import evaluate_image, total

    params = params_from_args(args)
    check_scoring_options(args)
    region = parse_region(args.region)
    images = list_images(args)
    rows, scores = [], []
    above: list[float | None] = []  # suggestions of the images whose threshold is above them
    for image, path, truth, error in _load(args, images):
        meta = parse_metadata(path).as_dict()
        row = {"path": str(path), "plate": meta["plate"], "well": meta["well"],
               "site": meta["site"], "error": error}
        if truth is not None:
            try:
                s, coords = evaluate_image(image, truth, params, engine=args.engine,
                                           match_radius=args.match_radius, region=region)
                scores.append(s)
                row.update(s.as_dict())
                if not len(coords) and params.threshold_method is None:
                    check = check_threshold(as_grayscale_2d(image), params)
                    if check.above:
                        above.append(check.suggestion)
            except (ValueError, TypeError) as exc:
                row["error"] = str(exc)
        rows.append(row)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(rows, columns=EVALUATION.names).astype(
        {c.name: c.dtype for c in EVALUATION.columns if c.kind == "count"})
    write_csv(out / EVALUATION.file, df, text=EVALUATION.text, lineterminator=os.linesep)
    t = total(scores)
    summary = {**t.as_dict(), "n_images": len(rows), "n_scored": len(scores),
               "parameters": params.to_dict(), "match_radius": args.match_radius,
               "region": args.region}
    with atomic_write(out / "evaluation.json", encoding="utf-8") as fh:
        json.dump(summary, fh, indent=2)
    remove_stale_parts(out, ("evaluation.csv", "evaluation.json"))
    _say(_totals_line(t, len(scores), len(rows)))
    if above:  # an F1 of 0 whose cause is the threshold, not the images
        suggested = [x for x in above if x is not None]
        log.warning("nothing was detected in %s", threshold_hint(
            len(above), len(scores), params.threshold_abs,
            statistics.median_low(suggested) if suggested else None, " scored"))
    if not scores:
        return ExitCode.USAGE
    return ExitCode.FAILED if len(scores) < len(rows) else ExitCode.OK


def cmd_tune(args) -> int:
    from ..core.results.writer import remove_stale_parts
    from ..core.scoring.tune import tune, write_tuning

    check_scoring_options(args)
    region = parse_region(args.region)
    images = list_images(args)
    loaded = list(_load(args, images))
    usable = [(im, tr) for im, _, tr, err in loaded if tr is not None and not err]
    if not usable:
        _say("total: no image has truth; nothing to tune")
        return ExitCode.USAGE

    def progress(done, planned):
        if sys.stderr.isatty():
            sys.stderr.write(f"\rtried {done} of about {planned} parameter sets")

    res = tune([u[0] for u in usable], [u[1] for u in usable], match_radius=args.match_radius,
               regions=[region] * len(usable), workers=args.workers or None, progress=progress)
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    preset, csv = write_tuning(res, args.out)
    remove_stale_parts(args.out, ("preset.json", "tuning.csv"))
    for params, f1 in res.runners_up[:3]:
        _say(f"runner-up: sigma {params.sigma:g}, min_distance {params.min_distance}, "
              f"threshold {params.threshold_abs:g}: f1 {f1:.3f}")
    b, s = res.best, res.score
    _say(f"wrote {preset} and {csv}")
    _say(f"best: sigma {b.sigma:g}, min_distance {b.min_distance}, threshold "
          f"{b.threshold_abs:g}; " + _totals_line(s, len(usable), len(loaded)))
    return ExitCode.FAILED if len(usable) < len(loaded) else ExitCode.OK


def _say(line: str) -> None:
    """One line of the command's report on standard output."""
    sys.stdout.write(line + "\n")


def run(args) -> int:
    """Run ``evaluate`` or ``tune`` for parsed ``args``; returns the exit status."""
    commands = {"evaluate": cmd_evaluate, "tune": cmd_tune}
    try:
        return commands[args.command](args)
    except UsageError as exc:
        sys.stderr.write(f"nuclei-counter {args.command}: error: {exc}\n")
        return ExitCode.USAGE
    except ValueError as exc:  # e.g. --channel/--z choices
        sys.stderr.write(f"nuclei-counter {args.command}: error: {exc}\n")
        return ExitCode.USAGE
