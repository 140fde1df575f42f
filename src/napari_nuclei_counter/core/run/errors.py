"""The errors a run raises, by who must act: the user before it starts, or its environment.

- :class:`RunError` (a ``ValueError``): the run cannot start as asked, e.g. a
  missing folder, no matching file, an output folder in use
  (:class:`FolderLocked`). Nothing ran; the command line exits with 2.
- :class:`RunStopped` (a ``RuntimeError``): the run started but its
  environment stopped it: a lost Dask cluster, a full disk, an output folder
  that cannot be written. The tables of what was done are kept (or, when
  they cannot be written, the streaming files are, for ``--resume``); the
  command line exits with 3.
- :class:`BackendLost`: raised by a backend whose workers are gone for good
  (the scheduler turns it into :class:`RunStopped`).
"""

from __future__ import annotations

__all__ = ["BackendLost", "FolderLocked", "RunError", "RunStopped"]


class RunError(ValueError):
    """A run that cannot start: a missing folder, no matching file, bad options."""


class FolderLocked(RunError):
    """The output folder is used by another run (see :mod:`.lock`)."""


class RunStopped(RuntimeError):
    """A run stopped by its environment (lost cluster, disk full); what was done is kept."""


class BackendLost(Exception):
    """The backend lost its workers for good (a scheduler gone, no worker left)."""


def environment_error(exc: OSError, out) -> Exception:
    """A plain-words error for an ``OSError`` met while writing a run's files into ``out``.

    A full disk or quota (``ENOSPC``, ``EDQUOT``) and an I/O error stop the
    run (:class:`RunStopped`); a folder that cannot be written
    (``EACCES``, ``EPERM``, ``EROFS``) cannot run at all (:class:`RunError`).
    Other errors are returned as they are.
    """
    import errno

    where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return RunStopped(f"the disk holding {out} is full{where}; the tables of what was done "
                          "are kept (or the streaming files, for --resume): free some space and "
                          "run the same command again with --resume")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return RunError(f"cannot write into the output folder {out}: {exc.strerror}{where}")
    if exc.errno == errno.EIO:
        return RunStopped(f"an input/output error writing into {out}{where}: {exc.strerror}; "
                          "check the disk, then run again with --resume")
    return exc
