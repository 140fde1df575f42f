"""The command line's exit statuses and the errors that end a command with one.

One table for every sub-command (README, "When things go wrong"):

==== ================================================================================
code meaning
==== ================================================================================
0    every image succeeded (``evaluate``, ``tune``: every image was scored)
1    some images failed, their rows say why (``evaluate``, ``tune``: some had no
     readable truth); the tables are written
2    a usage or setup error before any image ran (a missing folder, a pattern that
     matches nothing, an invalid parameter, an output folder in use or not
     writable, an unreachable scheduler, a damaged results folder;
     ``evaluate``, ``tune``: no image had truth)
3    the run was stopped by its environment (a lost cluster, a full disk) or an
     unexpected error; the tables of what was done are kept, ``--resume`` finishes
130  interrupted with Ctrl+C, SIGTERM or SIGHUP; the tables hold what was done
==== ================================================================================
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["SEED_MAX", "ExitCode", "Stopped", "UsageError", "check_range"]

#: the largest ``--seed`` (numpy seeds are non-negative; 32 bits are plenty)
SEED_MAX = 2**32 - 1


class ExitCode(IntEnum):
    """Exit statuses of ``nuclei-counter`` (see the module's table)."""

    OK = 0
    FAILED = 1
    USAGE = 2
    STOPPED = 3
    INTERRUPTED = 130


class UsageError(Exception):
    """A usage or setup error, before any image ran: exit status 2, one sentence."""


class Stopped(Exception):
    """A run stopped by its environment (what was done is kept): exit status 3."""


def check_range(option: str, value, low, high, unit: str = "") -> None:
    """Refuse ``value`` of ``option`` outside ``[low, high]`` with one sentence (exit 2).

    Every size option of the command line is bounded, so that a typo such as
    ``--size 20000`` is refused at once instead of filling the memory.

    Raises
    ------
    UsageError
        Naming the option, its range and the value given.
    """
    ok = value is not None and low <= value <= high  # False for NaN
    if not ok:
        unit = f" {unit}" if unit else ""
        raise UsageError(f"{option} must be between {low:,} and {high:,}{unit}, got {value}")
