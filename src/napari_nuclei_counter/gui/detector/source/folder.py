"""The folder a run can go over: folder and pattern fields, matched in a worker as you type."""

from __future__ import annotations

import logging
from pathlib import Path

from magicgui.widgets import FileEdit, Label, LineEdit
from napari.qt.threading import create_worker
from qtpy.QtCore import QObject, QTimer, Signal

from ....core.io.discovery import FolderListing, scan_folder, suggest_pattern
from ..layout import compact_file_edit, wrap_label
from ..model import DetectorModel

__all__ = ["FolderPicker"]

#: pause after the last keystroke in the folder or pattern before matching, ms
MATCH_DELAY_MS = 300

log = logging.getLogger(__name__)


def match_folder(folder: Path | None, glob: str) -> tuple[FolderListing, str]:
    """List ``folder`` with ``glob`` (the core's listing) and say what it found, in one line.

    The line gives the count, the mask and label files left out (and how to
    include them) and, when nothing matches, a pattern that would. Folders
    that cannot be listed are logged.
    """
    listing = FolderListing([])
    if folder is not None and folder.is_dir():
        try:
            listing = scan_folder(folder, glob)
        except OSError as exc:  # removed or unreadable since the check
            return listing, f"cannot list the folder ({exc.strerror or exc})"
    for warning in listing.warnings:
        log.warning("%s", warning)
    parts = [f"{_images(len(listing.found))} match"]
    if listing.left_out:
        parts.append(listing.note("the pattern"))
    hint = suggest_pattern(folder) if folder is not None and not listing.found else None
    if hint is not None:
        parts.append(f"try the pattern {hint[0]} ({_images(hint[1])})")
    return listing, "; ".join(parts)


def _images(n: int) -> str:
    return f"{n} image{'s' if n != 1 else ''}"


class FolderPicker(QObject):
    """The *folder* and *pattern* fields and the "N images match" line under them.

    The fields set ``model.folder`` and ``model.pattern`` and show them.
    Listing a folder can take seconds (network drives, 100,000 files), so the
    files are matched after a pause in typing, in a worker thread; an answer
    that a newer keystroke has replaced is dropped.

    Signals
    -------
    matched(list)
        The paths that match now (after each answer that is still current).
    """

    matched = Signal(list)

    def __init__(self, model: DetectorModel, parent=None) -> None:
        super().__init__(parent)
        self.model = model
        self.folder = FileEdit(label="folder", mode="d",
                               tooltip="Folder of images to process (not loaded into memory)")
        compact_file_edit(self.folder)
        if model.folder is not None:
            self.folder.value = model.folder
        self.pattern = LineEdit(label="pattern", value=model.pattern,
                                tooltip="File-name pattern, case-insensitive; the default is "
                                        "BBBC021's DAPI channel w1")
        self.match_label = Label(value="")
        wrap_label(self.match_label.native)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(MATCH_DELAY_MS)
        self._timer.timeout.connect(self._match_in_worker)
        self._request = 0
        self.matches: list[Path] = []  #: the files matched last
        self.folder.changed.connect(self._on_folder_field)
        self.pattern.changed.connect(self._on_pattern_field)
        model.events.folder.connect(self._on_folder)
        model.events.pattern.connect(self._on_pattern)

    @property
    def widgets(self) -> list:
        """The magicgui widgets, for the dock's form."""
        return [self.folder, self.pattern, self.match_label]

    def set_visible(self, visible: bool) -> None:
        """Show or hide the fields (they matter only for folder runs)."""
        for w in self.widgets:
            w.visible = visible
        if visible:
            self.schedule_match()

    def _on_folder_field(self, value) -> None:
        text = str(value)
        self.model.folder = Path(text) if text and text != "." else None

    def _on_pattern_field(self, value) -> None:
        self.model.pattern = str(value)

    def _on_folder(self, folder: Path | None) -> None:
        with self.folder.changed.blocked():
            self.folder.value = "" if folder is None else folder
        self.schedule_match()

    def _on_pattern(self, pattern: str) -> None:
        with self.pattern.changed.blocked():
            self.pattern.value = pattern
        self.schedule_match()

    def update_match_count(self, *_) -> int:
        """Match now, in this thread, and show the count."""
        listing, line = match_folder(self.model.folder, self.model.glob())
        self._show(listing.found, line)
        return len(listing.found)

    def schedule_match(self, *_) -> None:
        """Match after a pause, in a worker."""
        self._timer.start()

    def _match_in_worker(self) -> None:
        self._request += 1
        request = self._request
        folder, glob = self.model.folder, self.model.glob()  # read here, on the GUI thread

        def match() -> tuple[int, FolderListing, str]:
            return request, *match_folder(folder, glob)

        worker = create_worker(match)
        worker.returned.connect(self._on_matched)
        worker.start()

    def _on_matched(self, out) -> None:
        request, listing, line = out
        if request == self._request:  # a newer keystroke wins
            self._show(listing.found, line)

    def _show(self, paths: list[Path], line: str) -> None:
        self.match_label.value = line
        self.matches = paths
        self.matched.emit(paths)
