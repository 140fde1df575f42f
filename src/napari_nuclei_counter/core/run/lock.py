"""An exclusive lock on an output folder: one run writes into a folder at a time.

The lock is a file, ``nuclei-counter.lock``, created with ``O_CREAT | O_EXCL``
(atomic on local file systems and on NFSv3+), holding the holder's pid, host,
process start time and command as JSON. A lock file rather than ``fcntl``
locks or the ``filelock`` package, because its content tells a second run
*who* holds the folder (a plain sentence for the user), a lock left by a
killed run can be recognised as stale (same host, pid gone or reused), and
it works the same on the shared file systems of clusters, where ``flock`` is
often not honoured across hosts.

Rules:

- a second run into the folder is refused (:class:`~.errors.FolderLocked`);
- a lock of this host whose process is gone (or whose pid now belongs to a
  process started later) is stale: it is taken over with a warning, so
  ``--resume`` after ``kill -9`` just works;
- another host's lock cannot be checked from here: it is taken over only
  with ``break_lock=True`` (``--break-lock``);
- readers (gallery, plate map, the napari reader) may read a locked folder;
  :func:`lock_holder` tells them a run is still going.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

from .errors import FolderLocked, RunError

__all__ = ["LOCK_NAME", "OutputLock", "describe_holder", "lock_holder"]

log = logging.getLogger(__name__)

#: the lock file's name inside an output folder
LOCK_NAME = "nuclei-counter.lock"


def _start_ticks(pid: int) -> int | None:
    """A process's start time in clock ticks since boot (Linux), to tell reused pids apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat[stat.rindex(")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


#: the largest process id a system gives (Linux: at most 2**22; a signed 32-bit pid_t)
_PID_MAX = 2**31 - 1


def _alive(pid: int, ticks: int | None) -> bool:
    """Whether ``pid`` is still the process that took the lock (never for an impossible pid)."""
    if not 0 < pid <= _PID_MAX:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # another user's process: alive
        return True
    now = _start_ticks(pid)
    return ticks is None or now is None or now == ticks


def lock_holder(folder) -> dict | None:
    """The holder recorded in ``folder``'s lock file, or ``None`` when it is not locked.

    Returns
    -------
    dict or None
        ``pid``, ``host``, ``started``, ``command`` (an unreadable lock file
        gives ``{}``); ``stale`` is ``True`` when the holder is known to be gone.
    """
    path = Path(folder) / LOCK_NAME
    try:
        info = _read_lock(path)
    except FileNotFoundError:
        return None
    if not info:
        return {}
    same_host = info.get("host") == socket.gethostname()
    try:
        pid = int(info.get("pid", 0))
    except (TypeError, ValueError, OverflowError):  # OverflowError: a pid of inf
        pid = 0
    info["stale"] = bool(same_host and not _alive(pid, info.get("ticks")))
    return info


#: the largest lock file read (a lock holds a few hundred bytes)
_LOCK_MAX_BYTES = 64 * 1024


def _read_lock(path: Path) -> dict:
    """A lock file's content; ``{}`` when it is not a small JSON object.

    Raises
    ------
    FileNotFoundError
        When there is no lock file.
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read(_LOCK_MAX_BYTES + 1)
    except FileNotFoundError:
        raise
    except OSError:
        return {}
    if len(data) > _LOCK_MAX_BYTES:
        return {}
    try:
        info = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return {}
    return info if isinstance(info, dict) else {}


def describe_holder(info: dict) -> str:
    """``'pid 123 on host h, since 2024-...'`` for messages."""
    if not info.get("pid"):
        return "an unknown process (unreadable lock file)"
    return (f"pid {info.get('pid')} on host {info.get('host', '?')}, "
            f"since {info.get('started', '?')}")


class OutputLock:
    """Hold the lock on one output folder (see the module's docstring).

    Parameters
    ----------
    folder : path
        The output folder; created when missing.
    break_lock : bool, optional
        Take over a lock of another host (whose process cannot be checked).

    Raises
    ------
    FolderLocked
        From :meth:`acquire`, when another live run holds the folder.
    RunError
        When the folder cannot be created or written (a file of that name, no
        permission, a read-only file system).
    """

    def __init__(self, folder, *, break_lock: bool = False):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.break_lock = break_lock
        self._token: str | None = None

    def acquire(self) -> OutputLock:
        """Take the lock (idempotent); see the class for what is refused."""
        if self._token is not None:
            return self
        _make_folder(self.folder)
        for _ in range(3):  # a stale lock removed, then a race with another taker
            if self._create():
                return self
            info = lock_holder(self.folder)
            if info is None:
                continue  # released meanwhile: try again
            if info.get("stale"):
                log.warning("taking over the lock of a run that is gone (%s) in %s",
                            describe_holder(info), self.folder)
            elif self.break_lock:
                log.warning("breaking the lock of %s in %s (--break-lock)",
                            describe_holder(info), self.folder)
            elif info.get("host") not in (None, socket.gethostname()):
                raise FolderLocked(
                    f"the output folder {self.folder} is locked by a run on another host "
                    f"({describe_holder(info)}); if that run is gone, pass --break-lock")
            elif not info:
                raise FolderLocked(
                    f"the output folder {self.folder} has an unreadable lock file "
                    f"({self.path.name}); if no run is using it, pass --break-lock")
            else:
                raise FolderLocked(
                    f"the output folder {self.folder} is in use by another run "
                    f"({describe_holder(info)}); wait for it to finish or choose another --out")
            self._remove_if(info)
        raise FolderLocked(f"the output folder {self.folder} is being taken by another run; "
                           "try again")

    def _create(self) -> bool:
        token = uuid.uuid4().hex
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": datetime.now(UTC).isoformat(timespec="seconds"),
                "ticks": _start_ticks(os.getpid()), "token": token,
                "command": " ".join(sys.argv)}
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        except OSError as exc:
            raise RunError(f"cannot write into the output folder {self.folder}: "
                           f"{exc.strerror or exc}") from None
        try:
            os.write(fd, json.dumps(info).encode())
            os.fsync(fd)
        except OSError as exc:
            os.close(fd)
            self.path.unlink(missing_ok=True)
            raise RunError(f"cannot write into the output folder {self.folder}: "
                           f"{exc.strerror or exc}") from None
        os.close(fd)
        self._token = token
        return True

    def _remove_if(self, info: dict) -> None:
        """Remove the lock file if it still holds ``info`` (not a newer holder's)."""
        aside = self.path.with_name(f"{LOCK_NAME}.{uuid.uuid4().hex}")
        try:
            os.rename(self.path, aside)  # atomic: only one taker moves a given file
        except FileNotFoundError:
            return
        try:
            moved = _read_lock(aside)
        except FileNotFoundError:
            moved = {}
        if info and moved.get("token") != info.get("token"):
            # a new holder's lock got moved (it took over between our read and
            # rename): put it back, unless yet another lock exists by now
            try:
                os.link(aside, self.path)
            except OSError:
                pass
        aside.unlink(missing_ok=True)

    def release(self) -> None:
        """Give the lock back (only if this object still holds it; never raises)."""
        token, self._token = self._token, None
        if token is None:
            return
        try:
            if _read_lock(self.path).get("token") == token:
                self.path.unlink()
        except OSError as exc:
            log.debug("lock of %s already gone: %s", self.folder, exc)

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _make_folder(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise RunError(f"the output folder {folder} is a file, not a folder; choose another --out")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"cannot create the output folder {folder}: "
                       f"{exc.strerror or exc}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise RunError(f"the output folder {folder} is not writable (permission denied)")
