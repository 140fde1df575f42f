"""``nuclei-counter analyze`` and ``detect --layout``: treatments, percent of control, Z', IC50s.

``analyze RESULTS --layout FILE`` reads a finished results folder and a plate
layout (:func:`~napari_nuclei_counter.core.treatments.layouts.read_layout`)
and writes ``wells_annotated.csv``, ``plates.csv``, ``conditions.csv``,
``dose_response.csv`` and ``dose_response.png`` into the folder (or
``--out``), recorded in its ``run.json``. ``detect ... --layout FILE`` reads
the layout before the run (a bad layout stops it at once) and analyses the
run's tables at its end. The last line sums up the plates and their Z' and
the compounds fitted, without effect and out of range.

Exit status (:class:`~.errors.ExitCode`): 0 written (warnings, such as images
in wells the layout lacks, are on stderr); 2 for a layout that cannot be
used (duplicate wells, a concentration that is not a number, wells the
results lack: one sentence) or a results folder that is not a finished one.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import ExitCode, UsageError
from .texts import plural

__all__ = ["Treatments", "add_layout_options", "add_parser", "after_detect", "cmd_analyze",
           "prepare", "summary_line"]

#: plates named one by one in the summary line, at most
_PLATES_NAMED = 3


@dataclass(frozen=True)
class Treatments:
    """What ``--layout`` and its options read, before any table is analysed."""

    layout: object
    annotations: object
    negative: str | None
    positive: str | None


def add_layout_options(parser, *, required: bool = False) -> None:
    """``--layout``, ``--negative``, ``--positive`` and ``--annotations`` (analyze and detect)."""
    parser.add_argument("--layout", required=required, default=None, metavar="FILE",
                        help="plate layout: a CSV/TSV with one row per well (well, plate, "
                             "compound, concentration, unit, control), a per-image metadata "
                             "table such as BBBC021_v1_image.csv, a Cell Painting Gallery "
                             "barcode_platemap.csv or a wellmap .toml file"
                             + ("" if required else "; analyse the run at its end"))
    parser.add_argument("--negative", default=None, metavar="NAME",
                        help="negative-control compound (default: wells whose control is "
                             "negative, and a compound named DMSO)")
    parser.add_argument("--positive", default=None, metavar="NAME[@C]",
                        help="positive-control compound, optionally at one concentration, e.g. "
                             "taxol@0.3 (default: wells whose control is positive)")
    parser.add_argument("--annotations", default=None, metavar="FILE",
                        help="more columns per compound (and concentration), e.g. "
                             "BBBC021_v1_moa.csv for the mechanism of action 'moa'")


def add_parser(subparsers) -> None:
    """Add ``analyze`` to the ``nuclei-counter`` sub-command parsers."""
    a = subparsers.add_parser(
        "analyze", help="percent of control, Z' and dose-response curves of a results folder",
        description="Join a plate layout to a finished results folder and write "
                    "wells_annotated.csv (percent of control, robust z per well), plates.csv "
                    "(Z' per plate), conditions.csv, dose_response.csv (four-parameter "
                    "log-logistic fits, IC50s) and dose_response.png. Exit status: 0 written, "
                    "2 a layout or results folder that cannot be used.")
    a.add_argument("results", metavar="RESULTS", help="a results folder (from detect)")
    add_layout_options(a, required=True)
    a.add_argument("--out", default=None, metavar="DIR",
                   help="folder for the tables and the figure (default: RESULTS)")


def prepare(args) -> Treatments | None:
    """Read ``--layout`` and ``--annotations`` (``None`` without ``--layout``).

    Raises
    ------
    UsageError
        For a layout, annotations or ``--positive`` that cannot be used.
    """
    if args.layout is None:
        for option in ("negative", "positive", "annotations"):
            if getattr(args, option, None) is not None:
                raise UsageError(f"--{option} needs --layout")
        return None
    # pandas and the analysis load only for a layout (0.5 s of every detect otherwise)
    from ..core.treatments import LayoutError, read_annotations, read_layout
    from ..core.treatments.analysis import parse_positive

    try:
        if args.positive is not None:
            parse_positive(args.positive)
        layout = read_layout(args.layout)
        annotations = read_annotations(args.annotations) if args.annotations else None
    except LayoutError as exc:
        raise UsageError(str(exc)) from None
    return Treatments(layout, annotations, args.negative, args.positive)


def _analyse(folder: Path, treatments: Treatments, out: Path) -> str:
    """Analyse a finished results folder into ``out``; returns the summary line."""
    from ..core.results.tables import load_results
    from ..core.treatments import LayoutError, analyze, write_outputs

    if not (folder / "images.csv").is_file():
        raise UsageError(f"not a finished results folder (no images.csv): {folder}")
    results = load_results(folder, read_nuclei=False)  # a damaged folder: RunError, exit 2
    try:
        analysis = analyze(results.images, treatments.layout, negative=treatments.negative,
                           positive=treatments.positive, annotations=treatments.annotations)
    except LayoutError as exc:
        raise UsageError(str(exc)) from None
    try:
        write_outputs(analysis, out, results=folder)
    except OSError as exc:
        raise UsageError(f"cannot write the analysis into {out}: {exc.strerror or exc}") from None
    return summary_line(analysis, out)


def summary_line(analysis, out) -> str:
    """``'1 plate: Week1_22123 Z' 0.71 (excellent); 6 compounds: 4 fitted, ...; tables in OUT'``."""
    import numpy as np

    plates = analysis.plates
    n = len(plates)
    z = plates["z_prime"].to_numpy(dtype=float)
    if n <= _PLATES_NAMED:
        named = ", ".join(f"{p} Z' {v:.2f} ({plates['verdict'].iat[i]})" if np.isfinite(v)
                          else f"{p} Z' n/a (no {_missing_control(plates, i)})"
                          for i, (p, v) in enumerate(zip(plates["plate"], z, strict=True)))
        plate_text = f"{plural(n, 'plate')}: {named}"
    else:
        finite = z[np.isfinite(z)]
        counts = plates["verdict"].value_counts()
        spread = (f"Z' {finite.min():.2f} to {finite.max():.2f}" if len(finite)
                  else "Z' n/a (no controls)")
        verdicts = ", ".join(f"{counts[v]} {v}" for v in ("excellent", "usable", "unusable")
                             if v in counts)
        plate_text = f"{plural(n, 'plate')}, {spread}" + (f" ({verdicts})" if verdicts else "")
    status = analysis.dose_response["status"].value_counts()
    out_of_range = int(status.get("ic50_above_range", 0) + status.get("ic50_below_range", 0))
    compounds = (f"{plural(len(analysis.dose_response), 'compound')}: "
                 f"{int(status.get('fit', 0))} fitted, {int(status.get('no_effect', 0))} without "
                 f"effect, {out_of_range} out of range")
    if status.get("failed", 0):
        compounds += f", {int(status['failed'])} failed"
    return f"{plate_text}; {compounds}; tables in {out}"


def _missing_control(plates, i: int) -> str:
    return "negative control" if plates["n_negative"].iat[i] == 0 else "positive control"


def cmd_analyze(args) -> int:
    """``nuclei-counter analyze``."""
    folder = Path(args.results).expanduser()
    if not folder.is_dir():
        raise UsageError(f"not a folder: {folder}")
    treatments = prepare(args)
    out = Path(args.out).expanduser() if args.out else folder
    sys.stderr.write(_analyse(folder, treatments, out) + "\n")
    return ExitCode.OK


def after_detect(args, treatments: Treatments | None, code: int) -> int:
    """``detect --layout``: analyse the run's tables when it was not interrupted."""
    if treatments is None or code == ExitCode.INTERRUPTED:
        return code
    out = Path(args.out).expanduser()
    sys.stderr.write(_analyse(out, treatments, out) + "\n")
    return code
