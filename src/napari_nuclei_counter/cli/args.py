"""Argument chores of the command line: negative numbers as values, options without effect.

An adapter helper of :mod:`.app` (no Qt, no napari).
"""

from __future__ import annotations

import argparse
import logging
import re

__all__ = ["join_negative_numbers", "warn_without_effect"]

log = logging.getLogger("napari_nuclei_counter")

#: a number in any notation Python's ``float`` reads: -5, -1e3, -.5, -1.5E+2, -inf, -nan
_NUMBER = re.compile(r"-(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|-inf(?:inity)?|-nan", re.I)


def _value_options(parser: argparse.ArgumentParser) -> set[str]:
    """Every option string, of the parser and its sub-commands, that takes one value."""
    found = set()
    for action in parser._actions:  # argparse has no public listing of its actions
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _value_options(sub)
        elif action.option_strings and action.nargs is None:
            found.update(action.option_strings)
    return found


def join_negative_numbers(argv: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """Write ``--threshold -1e3`` as ``--threshold=-1e3``.

    argparse takes ``-1e3`` (any negative number but the plainest forms) for
    an option of its own and refuses it as a value; joined with ``=`` it is
    a value in every notation.
    """
    options = _value_options(parser)
    out, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            out.extend(argv[i:])
            break
        if (arg in options and i + 1 < len(argv) and arg.startswith("--")
                and _NUMBER.fullmatch(argv[i + 1])):
            out.append(f"{arg}={argv[i + 1]}")
            i += 2
            continue
        out.append(arg)
        i += 1
    return out


def warn_without_effect(args) -> None:
    """Warn about ``detect`` options that change nothing with the other options given."""
    dask = args.backend == "dask"
    if args.scheduler is not None and not dask:
        log.warning("--scheduler has no effect without --backend dask")
    if dask and args.scheduler is not None and args.workers is not None:
        log.warning("--workers has no effect with --scheduler (the cluster has its workers)")
    if args.workers == 0 and args.stall_timeout is not None:
        log.warning("--stall-timeout has no effect with --workers 0 (no worker process "
                    "to stop)")
    if args.break_lock and args.out is None:
        log.warning("--break-lock has no effect without --out")
