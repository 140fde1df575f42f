"""The ``nuclei-counter`` command line (an adapter over the core; no Qt, no napari).

Exit status: 0 when every image succeeded, 1 when some images failed or
some of the input could not be listed (the tables are still written), 2
for usage and setup errors before any image ran (a missing folder, a
pattern that matches nothing, an invalid parameter, an output folder in
use or not writable, an output folder holding a complete run with other
parameters without ``--overwrite``, an unreachable scheduler), 3 for a run stopped by its
environment or an unexpected error (a lost cluster, a full disk; the
tables of what was done are kept, ``--resume`` finishes), 130 when
interrupted with Ctrl+C, SIGTERM or SIGHUP (the tables hold what was done).
Errors are one sentence; ``--debug`` shows the traceback.

A run never depends on its messages: a console that cannot be written (a
full disk behind ``2>file``, ``2>/dev/full``, a closed stream, a terminal
gone) loses the messages, never the run (:func:`entry`).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

from .._version import __version__
from ..core.detect.detection import ENGINES
from ..core.io.discovery import BBBC021_PATTERN
from ..core.io.images import PlaneChoice
from ..core.io.planes import MAX_PIXELS
from ..core.results.writer import run_command
from ..core.run.backends import default_workers, start_workers_early
from ..core.run.errors import RunError, RunStopped
from ..core.run.pipeline import PREVIOUS_RUN, Run
from ..dask_backend.choice import choose_backend
from . import analyze as cli_analyze
from . import estimate as cli_estimate
from . import scoring as cli_scoring
from .args import (
    DefaultsFormatter,
    OneLineErrorParser,
    join_negative_numbers,
    warn_unquoted_pattern,
    warn_without_effect,
)
from .errors import ExitCode, Stopped, UsageError, check_range
from .results import _cmd_gallery, _cmd_platemap, _cmd_sample
from .texts import plural

__all__ = ["main", "build_parser", "entry"]

log = logging.getLogger("napari_nuclei_counter")

#: the npe2 plugin name (napari.yaml)
PLUGIN = "napari-nuclei-counter"


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser (also used to document the options)."""
    parser = OneLineErrorParser(
        prog="nuclei-counter",
        description="Find and count nuclei in DAPI images (Gaussian blur + local maxima).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = sub.add_parser(
        "detect",
        help="detect nuclei in every matching image of a folder and write tables",
        description=(
            "Detect nuclei in every image of INPUT that matches --pattern and write "
            "images.csv (one row per image), nuclei.csv (one row per nucleus) and run.json "
            "(parameters, versions, times) into --out. Exit status: 0 all images done, "
            "1 some images failed (their rows say why) or could not be listed, 2 usage or "
            "setup error, 3 stopped by its environment (lost cluster, disk full; resumable), 130 interrupted."
        ),
        formatter_class=DefaultsFormatter,
    )
    d.add_argument("input", metavar="INPUT", help="folder of images (or one image file)")
    d.add_argument("--pattern", default=BBBC021_PATTERN,
                   help="file-name glob, case-insensitive; the default picks BBBC021's DAPI "
                        "channel w1")
    d.add_argument("--recursive", action="store_true", help="also search sub-folders")
    cli_scoring.add_parameter_options(d)  # --preset, --sigma, --min-distance, --threshold
    d.add_argument("--workers", type=int, default=None,
                   help=f"worker processes (default: all {default_workers()} cores); "
                        "0 = no worker processes, for debugging")
    d.add_argument("--out", default="nuclei-counter-results",
                   help="output folder for the tables (created if missing)")
    d.add_argument("--regex", default=None,
                   help="regular expression with named groups plate, well, site, channel to "
                        "read metadata from file names (default: the plate imagers' name "
                        "schemes the README lists, BBBC021, ImageXpress, Opera Phenix, Yokogawa, "
                        "Cellomics, IN Cell Analyzer, Incucyte: the first that fits)")
    d.add_argument("--channel", default=None, metavar="NAME|INDEX",
                   help="the channel of multi-channel files (OME-TIFF, ImageJ hyperstacks): a "
                        "0-based index, or a channel name from the file, case-insensitive; "
                        "for RGB(A) files (PNG, JPEG, TIFF) red, green or blue (DAPI: blue); "
                        "channels in separate files are chosen with --pattern")
    d.add_argument("--z", default=None, metavar="max|mean|INDEX",
                   help="for z-stacks: maximum or mean projection, or one plane (0-based); "
                        "a multi-page TIFF without axis metadata is a z-stack only with --z")
    d.add_argument("--t", default=None, metavar="INDEX",
                   help="for time series: only this time point (0-based); without it each time "
                        "point of an OME-TIFF, ND2, CZI, ... file is an image of its own, with "
                        "its index in the timepoint column")
    d.add_argument("--engine", choices=sorted(ENGINES), default="fast",
                   help="detection engine; both give identical results, 'reference' is "
                        "scikit-image and slow")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    d.add_argument("--resume", action="store_true",
                   help="finish an interrupted run in --out: skip images already done with "
                        "the same parameters, engine, --regex, --channel, --z and --t (same path, "
                        "size and modification time)")
    d.add_argument("--overwrite", action="store_true",
                   help="replace a complete run in --out made with other parameters, --regex, "
                        "--channel, --z, INPUT or --pattern (refused without it); a run with "
                        "the same ones is run again anyway")
    d.add_argument("--parquet", action="store_true",
                   help="also write images.parquet and nuclei.parquet (needs pyarrow)")
    d.add_argument("--backend", choices=["process", "dask"], default="process",
                   help="'process': worker processes on this machine; 'dask': a Dask "
                        "cluster (--scheduler ADDRESS, or a local one)")
    d.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="address of a running dask.distributed scheduler, e.g. "
                        "tcp://10.0.0.5:8786 (with --backend dask)")
    d.add_argument("--stall-timeout", type=float, default=None, metavar="SECONDS",
                   help="stop and retry workers that return no result for this long (0 = no "
                        "watchdog); default: 120 s before the first image, then the larger of "
                        "60 s and 20x the median image time")
    d.add_argument("--max-pixels", type=int, default=None, metavar="N",
                   help="refuse images with more pixels than this (height x width, times the "
                        "planes of a --z projection), checked from the file's header before "
                        f"decoding; default {MAX_PIXELS:,} (2**28); 0 = no limit")
    d.add_argument("--break-lock", action="store_true",
                   help="take over an output folder locked by a run on another host (only when "
                        "that run is gone; a stale lock of this host is taken over anyway)")
    cli_analyze.add_layout_options(d)

    gal = sub.add_parser(
        "gallery",
        help="draw a density-sorted gallery PNG of a results folder",
        description="Thumbnails of processed images with their nuclei drawn, sorted by count.",
        formatter_class=DefaultsFormatter,
    )
    gal.add_argument("results", metavar="RESULTS_DIR", help="a results folder (from detect)")
    gal.add_argument("--out", default="gallery.png", help="PNG file to write")
    gal.add_argument("--n", type=int, default=16,
                     help="number of images (a random sample); 0 = all")
    gal.add_argument("--seed", type=int, default=11, help="random seed for the sample")
    gal.add_argument("--ascending", action="store_true", help="fewest nuclei first")
    gal.add_argument("--columns", type=int, default=4, help="thumbnails per row")
    gal.add_argument("--size", type=int, default=200, help="thumbnail size in pixels")

    pm = sub.add_parser(
        "platemap",
        help="draw a plate map PNG (wells coloured by nuclei count) of a results folder",
        formatter_class=DefaultsFormatter,
    )
    pm.add_argument("results", metavar="RESULTS_DIR", help="a results folder (from detect)")
    pm.add_argument("--out", default="plate.png", help="PNG file to write")
    pm.add_argument("--value", choices=["mean", "total"], default="mean",
                    help="colour by mean nuclei per site, or total nuclei per well")
    pm.add_argument("--plate", default=None,
                    help="which plate, when the results hold several (default: the first)")

    s = sub.add_parser(
        "sample",
        help="write a synthetic BBBC021-like plate of DAPI TIFFs (for demos and tests)",
        formatter_class=DefaultsFormatter,
    )
    s.add_argument("out", metavar="OUT", help="folder to write the images into")
    s.add_argument("--rows", default="BCD", help="plate rows, one letter each")
    s.add_argument("--columns", type=int, default=4, help="plate columns, from column 2")
    s.add_argument("--sites", type=int, default=2, help="fields of view per well")
    s.add_argument("--seed", type=int, default=0, help="random seed: same seed, same images")
    g = sub.add_parser(
        "gui",
        help="open napari with the nuclei detector docked",
        description="Open napari with the nuclei detector docked (needs the [all] extra).",
    )
    g.add_argument("input", metavar="INPUT", nargs="?", default=None,
                   help="a folder of TIFFs or a results folder to open")
    g.add_argument("--sample", action="store_true",
                   help="open the synthetic BBBC021-like sample plate")
    cli_scoring.add_parsers(sub)  # evaluate, tune
    cli_estimate.add_parser(sub)
    cli_analyze.add_parser(sub)
    parser.commands = sub.choices  # for parse_args: the parser of each command
    for command in sub.choices.values():  # also after the command: detect ... --debug
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show tracebacks of errors")
    return parser


def _cmd_gui(args) -> int:
    """Open napari with the dock, through napari's plugin API (the GUI is not imported here)."""
    try:
        import napari
    except ImportError as exc:
        raise UsageError(f"the GUI needs napari and Qt: pip install 'napari-nuclei-counter[all]' "
                          f"({exc})") from None
    if args.input is not None and not Path(args.input).exists():
        raise UsageError(f"not found: {args.input}")
    viewer = napari.Viewer(title="Nuclei counter")
    if args.sample:
        viewer.open_sample(PLUGIN, "sample_plate")
    if args.input is not None:
        viewer.open(str(args.input), plugin=PLUGIN)
    viewer.window.add_plugin_dock_widget(PLUGIN, "Nuclei detector")
    napari.run()
    return ExitCode.OK


def _cmd_detect(args) -> int:
    params = cli_scoring.params_from_args(args)
    if args.workers is not None:
        check_range("--workers", args.workers, 0, 1024)
    if args.stall_timeout is not None and not 0 <= args.stall_timeout <= 86_400:
        raise UsageError("--stall-timeout must be 0 (off) or a number of seconds up to 86,400, "
                         f"got {args.stall_timeout:g}")
    if args.max_pixels is not None and args.max_pixels < 0:
        raise UsageError("--max-pixels must be 0 (no limit) or a number of pixels")
    warn_without_effect(args)
    treatments = cli_analyze.prepare(args)  # a bad layout stops before any image runs
    if args.regex is not None:
        import re

        try:
            re.compile(args.regex)
        except re.error as exc:
            raise UsageError(f"--regex is not a valid regular expression: {exc}") from None
    if args.parquet:
        _require("pyarrow", "--parquet needs pyarrow: pip install pyarrow")
    if args.backend == "dask":
        _require("distributed", "--backend dask needs dask.distributed: "
                                "pip install 'napari-nuclei-counter[dask]'")
    backend = choose_backend(args.backend, workers=args.workers, scheduler=args.scheduler)
    if args.backend == "process" and args.workers != 0:
        with _hangup_ignored_by_workers():
            start_workers_early()  # workers import in parallel with the folder listing
        # the final tables need pandas (0.2 s to import): import it while the
        # workers start, when this process has nothing else to do
        threading.Thread(target=_import_table_modules, name="import-pandas", daemon=True).start()
    # Ctrl+C, SIGTERM (a batch system ending the job) and SIGHUP (the terminal
    # closed) ask the run to stop (see _StopRequest)
    stop = _StopRequest()
    bar = _Bar(disable=args.quiet)
    try:
        PlaneChoice(args.channel, args.z, args.t)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    run = Run(args.input, params, backend=backend, workers=args.workers, engine=args.engine,
              regex=args.regex, pattern=args.pattern, recursive=args.recursive, out=args.out,
              channel=args.channel, z=args.z, t=args.t,
              resume=args.resume, overwrite=args.overwrite, parquet=args.parquet,
              cancel=stop.event, progress=bar.progress,
              info={"command": run_command("cli")},
              break_lock=args.break_lock, stall_timeout=args.stall_timeout,
              max_pixels=args.max_pixels)
    try:
        run.prepare()
    except RunError as exc:
        raise UsageError(str(exc)) from None
    stop.run = run
    previous = _handle_signals(stop)
    try:  # the lock is given back however this ends (iterating to the end does it too)
        code = _run_detect(run, args, stop, bar)
    finally:
        run.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return cli_analyze.after_detect(args, treatments, code)


def _run_detect(run: Run, args, stop: _StopRequest, bar: _Bar) -> int:
    """Iterate a prepared run with a progress bar; say how it went; return the exit status."""
    if args.resume:
        sys.stderr.write(f"resuming: {len(run.done)} of {plural(run.n_images, 'image')} "
                         "already done\n")
    bar.start(run.n_images, initial=len(run.done))
    results = iter(run)
    try:
        for _ in results:
            pass
    except KeyboardInterrupt:
        stop.event.set()
    except RunStopped as exc:
        bar.close()
        raise Stopped(str(exc)) from exc
    except RunError as exc:  # e.g. an unreachable scheduler: before any image ran
        bar.close()
        raise UsageError(str(exc)) from exc
    finally:
        results.close()  # after a second Ctrl+C: the tables are written now
        bar.close()
    s = run.summary
    if s.cancelled:
        sys.stderr.write(_stopped_message(s, stop.signal_name()) + "\n")
        return ExitCode.INTERRUPTED
    sys.stderr.write(
        f"{plural(s.n_done, 'image')}, {plural(s.n_nuclei, 'nucleus')}, {s.n_failed} failed, "
        f"{s.seconds:.1f} s ({s.n_new / max(s.seconds, 1e-9):.1f} images/s); tables in {s.out}\n"
    )
    if s.threshold_above and run.params.threshold_method is None:  # the exit stays 0
        which = " processed by this run" if run.done else ""
        log.warning("%s", cli_scoring.threshold_hint(s.threshold_above, s.n_new,
                                                     run.params.threshold_abs,
                                                     run.suggest_threshold(), which))
    if run.listing_errors:  # named as warnings before the run; the exit says it too
        sys.stderr.write(f"{len(run.listing_errors)} listing problem(s) (see the warnings "
                         "above): some images of the input were not read\n")
    return ExitCode.FAILED if s.n_failed or run.listing_errors else ExitCode.OK


def _import_table_modules() -> None:
    import importlib

    for name in ("pandas", "napari_nuclei_counter.core.results.wells"):
        try:
            importlib.import_module(name)
        except Exception:  # only a warm-up; the real import reports errors
            log.debug("warm-up import of %s failed", name, exc_info=True)


def _require(module: str, message: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise UsageError(message)


#: the signals that ask a run to stop: Ctrl+C, a batch system ending the job, the terminal closed
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                     if hasattr(signal, name))


@contextmanager
def _hangup_ignored_by_workers():
    """Worker processes started inside this block ignore SIGHUP.

    A closed terminal sends SIGHUP to the whole process group: the workers
    must not die of it (their server and multiprocessing's resource tracker
    would report lost workers); this process stops the run and its workers.
    The workers' process server is started here, and every worker is forked
    from it with its dispositions. SIGINT the workers ignore themselves;
    SIGTERM they must not ignore, it is how a pool stops them.
    """
    if not hasattr(signal, "SIGHUP"):
        yield
        return
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # an ignored signal survives exec
    try:
        yield
    finally:
        signal.signal(signal.SIGHUP, before)


def _handle_signals(stop: _StopRequest) -> dict:
    """Install ``stop`` for :data:`STOP_SIGNALS`; return the handlers it replaced.

    A signal ignored when the command started stays ignored: ``nohup`` (SIGHUP),
    a background job of a script (SIGINT).
    """
    previous = {}
    for sig in STOP_SIGNALS:
        if signal.getsignal(sig) is signal.SIG_IGN:
            continue
        previous[sig] = signal.signal(sig, stop)
    return previous


class _StopRequest:
    """Signal handler of a run: stop it, and never interrupt the writing of its tables.

    The first signal (Ctrl+C, SIGTERM or SIGHUP) sets :attr:`event`, the
    run's ``cancel``: the run stops within a fraction of a second and writes
    the tables of what was done. A second Ctrl+C raises ``KeyboardInterrupt``
    to stop waiting at once (e.g. for an image in progress), except while the
    run writes a row or its final tables (``Run.writing``): an exception there
    would leave them half-written, so the signal is only noted, and the run,
    already stopping, finishes its tables. SIGTERM and SIGHUP never raise.
    """

    def __init__(self) -> None:
        self.event = threading.Event()
        self.run: Run | None = None
        self.first: int | None = None  #: the signal that stopped the run
        self._noted = False

    def __call__(self, signum, frame) -> None:
        first = self.first is None
        if first:
            self.first = signum
        self.event.set()
        if first or signum != signal.SIGINT:
            return
        if self.run is not None and self.run.writing:
            self._note("still writing the tables of what was done; they are complete in a "
                       "moment\n")
            return
        raise KeyboardInterrupt

    def _note(self, text: str) -> None:
        # os.write: the interrupted code may be inside a write to sys.stderr,
        # and a text stream cannot be re-entered
        if self._noted:
            return
        self._noted = True
        try:
            os.write(2, text.encode())
        except OSError:
            pass

    def signal_name(self) -> str:
        """``'Ctrl+C'``, ``'SIGTERM'``, ...: what stopped the run."""
        if self.first is None or self.first == signal.SIGINT:
            return "Ctrl+C"
        return signal.Signals(self.first).name


def _stopped_message(s, by: str) -> str:
    """What a stopped run left in its folder, claiming only what happened."""
    done = f"interrupted ({by}): {s.n_done} of {plural(s.n_images, 'image')} done"
    if s.tables_written:
        return f"{done}; tables written to {s.out}; --resume finishes the run"
    earlier = s.out / PREVIOUS_RUN
    kept = (f"; the earlier run's tables are in {earlier}"
            if (earlier / "run.json").exists() or (earlier / "images.csv").exists() else "")
    return (f"{done}; stopped while it wrote the final tables, which are not written: {s.out} "
            "holds the streaming files (*.partial.csv) of what was done; run the same command "
            f"again with --resume to finish{kept}")


class _Bar:
    """The progress bar of ``detect`` (tqdm on stderr), and the run's ``progress`` callback."""

    def __init__(self, disable: bool) -> None:
        self.disable = disable
        self._bar = None

    def start(self, total: int, initial: int = 0) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=total, initial=initial, unit="img", desc="detecting",
                         file=sys.stderr, disable=self.disable, dynamic_ncols=True,
                         smoothing=0.1)

    def progress(self, result, done: int, total: int) -> None:
        """``Run(progress=...)``: one image done; a failed one is named."""
        self._bar.update(1)
        if not result.ok:
            self._bar.write(f"failed: {result.path}: {result.error}", file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _quiet_cluster_internals(record: logging.LogRecord) -> bool:
    """Drop Dask's and Tornado's own error reports (reconnection tracebacks and the like).

    When a cluster goes away, distributed logs every failed reconnection with a
    traceback; the run itself says in one sentence what happened and what to do
    (exit 3). ``--debug`` shows them.
    """
    return not (record.name.split(".")[0] in ("distributed", "tornado")
                and (record.levelno >= logging.ERROR or record.exc_info))


def parse_args(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse ``argv``; an unknown option is refused by its command's parser, in one line.

    argparse reports the unknown options of a sub-command from the main
    parser (``see nuclei-counter --help``); here the sub-command reports them,
    with the nearest known option (``--thresold``: did you mean
    ``--threshold``?) and its own ``--help``.
    """
    import difflib

    args, extra = parser.parse_known_args(argv)
    if not extra:
        return args
    command = parser.commands.get(getattr(args, "command", None), parser)
    known = [o for a in command._actions for o in a.option_strings]  # no public listing
    hints = []
    for arg in extra:
        if arg.startswith("--"):
            near = difflib.get_close_matches(arg.split("=")[0], known, n=1)
            if near:
                hints.append(f"did you mean {near[0]}?")
    hint = f" ({'; '.join(hints)})" if hints else ""
    command.error(f"unrecognized arguments: {' '.join(extra)}{hint}")
    raise AssertionError("unreachable: error() exits")  # pragma: no cover


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(parser, join_negative_numbers(argv, parser))
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(levelname)s: %(message)s")
    if not args.debug:
        for handler in logging.getLogger().handlers:
            handler.addFilter(_quiet_cluster_internals)
    commands = {"detect": _cmd_detect, "sample": _cmd_sample, "gui": _cmd_gui,
                "gallery": _cmd_gallery, "platemap": _cmd_platemap,
                "evaluate": cli_scoring.run, "tune": cli_scoring.run,
                "estimate": cli_estimate.cmd_estimate, "analyze": cli_analyze.cmd_analyze}
    prefix = f"nuclei-counter {args.command}: error: "
    if getattr(args, "pattern", None):
        warn_unquoted_pattern(args.pattern)
    try:
        return commands[args.command](args)
    except UsageError as exc:
        if args.debug:
            log.exception("traceback")
        parser.exit(ExitCode.USAGE, f"{prefix}{exc}\n")
    except RunError as exc:  # e.g. a damaged or inconsistent results folder
        if args.debug:
            log.exception("traceback")
        parser.exit(ExitCode.USAGE, f"{prefix}{exc}\n")
    except Stopped as exc:
        if args.debug:
            log.exception("traceback")
        parser.exit(ExitCode.STOPPED, f"{prefix}{exc}\n")
    except KeyboardInterrupt:  # before a run started (a run handles its own)
        parser.exit(ExitCode.INTERRUPTED, f"{prefix}interrupted (Ctrl+C)\n")
    except Exception as exc:  # one sentence, the traceback with --debug
        if args.debug:
            raise
        parser.exit(ExitCode.STOPPED, f"{prefix}unexpected {type(exc).__name__}: {exc} "
                                  "(run with --debug for the traceback)\n")


def entry() -> None:
    """The ``nuclei-counter`` program: run :func:`main`, then exit at once.

    Tearing the interpreter down after a run (freeing every module and array,
    unloading OpenCV, pandas and their libraries) takes about 0.15 s, as long
    as the command's own start-up. By then every table is written, closed and
    renamed, so the batch commands flush the console and leave with
    ``os._exit``. ``gui`` exits the ordinary way, for Qt and napari.
    """
    _console_never_stops_the_run()
    code = main()
    if sys.argv[1:2] == ["gui"]:
        sys.exit(code)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe: nothing left to say
            pass
    os._exit(code)


class _TolerantStream:
    """A console stream whose write errors are dropped: a run never depends on its messages."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except (OSError, ValueError):  # full, closed, broken: the message is lost, not the run
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except (OSError, ValueError):
            pass

    def isatty(self) -> bool:
        try:
            return self._stream.isatty()
        except (OSError, ValueError):
            return False

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _console_never_stops_the_run() -> None:
    """Make stdout and stderr safe to write whatever they are connected to.

    A standard stream closed when the command started (``2>&-``) is opened
    on the null device: otherwise the next file opened (a table) would take
    its number, and messages would be written into it. Then ``sys.stdout``
    and ``sys.stderr`` drop their write errors (a full disk, ``/dev/full``,
    a terminal gone): the run goes on, writes its tables and exits with its
    own status.
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    for name, fd in (("stdout", 1), ("stderr", 2)):
        stream = getattr(sys, name)
        if stream is None:  # closed at start-up: Python made no stream for it
            stream = open(fd, "w", buffering=1, encoding="utf-8", errors="backslashreplace",
                          closefd=False)
        if not isinstance(stream, _TolerantStream):
            setattr(sys, name, _TolerantStream(stream))


if __name__ == "__main__":  # pragma: no cover
    entry()
