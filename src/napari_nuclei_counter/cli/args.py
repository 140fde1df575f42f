"""Argument chores of the command line: negative numbers as values, options without effect,
one-line usage errors, help without "(default: None)", patterns the shell expanded.

An adapter helper of :mod:`.app` (no Qt, no napari).
"""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path

__all__ = ["DefaultsFormatter", "OneLineErrorParser", "join_negative_numbers",
           "warn_unquoted_pattern", "warn_without_effect"]

log = logging.getLogger("napari_nuclei_counter")

#: a number in any notation Python's ``float`` reads: -5, -1e3, -.5, -1.5E+2, -inf, -nan
_NUMBER = re.compile(r"-(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|-inf(?:inity)?|-nan", re.I)


class OneLineErrorParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line and a pointer to ``--help``.

    argparse prints the whole usage block before the error; for a typo in an
    option that block (a dozen lines for ``detect``) hides the one line that
    matters. Sub-command parsers are of the same class (argparse makes them
    of their parent's class).
    """

    def error(self, message: str):
        """Print ``PROG: error: MESSAGE; see PROG --help`` and exit with status 2."""
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help with each option's default, except a ``None`` default.

    A ``None`` default means "not set": the option's help says what happens
    then (``default: all cores``), and ``(default: None)`` would only repeat
    it less clearly.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None:
            return action.help or ""
        return super()._get_help_string(action)


#: characters that make a file-name glob a pattern rather than a name
_WILDCARDS = frozenset("*?[")


def warn_unquoted_pattern(pattern: str) -> bool:
    """Warn when ``--pattern`` looks like a glob the shell expanded before the command ran.

    ``--pattern *_w1*.tif`` unquoted, run in a folder holding one matching
    file, reaches the command as that file's name: the run would silently
    process that one image. A pattern without a wildcard that names a file
    of the current folder is most likely that; the run goes on.

    Parameters
    ----------
    pattern : str
        The ``--pattern`` value as the command received it.

    Returns
    -------
    bool
        Whether the warning was given.
    """
    if _WILDCARDS & set(pattern) or "/" in pattern or "\\" in pattern:
        return False
    try:
        named_file = (Path.cwd() / pattern).is_file()
    except (OSError, ValueError):  # a deleted current folder, a NUL in the name
        return False
    if not named_file:
        return False
    log.warning("--pattern %r has no wildcard and is the name of a file in the current folder: "
                "if you typed a pattern such as *_w1*.tif without quotes, the shell replaced it "
                "with this file's name and only files named %r are processed; quote the "
                "pattern: --pattern '*_w1*.tif'", pattern, pattern)
    return True


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
    if args.overwrite and args.resume:
        log.warning("--overwrite has no effect with --resume (which finishes a run with the same "
                    "parameters in --out and replaces one with others)")
