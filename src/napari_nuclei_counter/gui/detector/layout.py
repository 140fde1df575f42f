"""Qt helpers that keep the dock narrow and short: a scrolling page, compact rows.

A dock as wide as its widest row takes that width from napari's canvas, and
a dock as tall as all its rows makes the window taller than a laptop's
screen. These helpers let the rows shrink where they can (combo boxes of
long layer names, long file names, sentences) and let a page scroll where
it cannot.
"""

from __future__ import annotations

from qtpy.QtCore import QEvent, QObject, QSize, Qt
from qtpy.QtWidgets import QComboBox, QFrame, QGridLayout, QLabel, QScrollArea, QSizePolicy
from superqt import QCollapsible

__all__ = ["ElidedText", "FitWidthScrollArea", "button_grid", "collapsible", "compact_combo",
           "compact_file_edit", "wrap_label"]

#: characters a combo box of layer or channel names is sized for; longer names are elided
COMBO_CHARS = 8


class FitWidthScrollArea(QScrollArea):
    """A page that scrolls up and down, never sideways, and is never narrower than its rows.

    ``QScrollArea``'s own minimum width ignores its page, so a narrow dock
    would clip the page's rows; this one asks for the page's minimum width
    (plus the scroll bar) and as little height as a few rows.

    Parameters
    ----------
    page : QWidget
        The widget that scrolls; its minimum width is followed as rows show and hide.
    """

    #: the least height the page shows, px
    MIN_HEIGHT = 120

    def __init__(self, page, parent=None) -> None:
        super().__init__(parent)
        self.setWidget(page)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        page.installEventFilter(self)

    def minimumSizeHint(self) -> QSize:
        """The page's minimum width, the vertical scroll bar's, and :attr:`MIN_HEIGHT`."""
        page = self.widget()
        width = page.minimumSizeHint().width() if page is not None else 0
        width += self.verticalScrollBar().sizeHint().width() + 2 * self.frameWidth()
        return QSize(width, self.MIN_HEIGHT)

    def sizeHint(self) -> QSize:
        """The minimum width, and the page's whole height."""
        page = self.widget()
        height = page.sizeHint().height() if page is not None else self.MIN_HEIGHT
        return QSize(self.minimumSizeHint().width(), height)

    def eventFilter(self, obj, event) -> bool:
        """A row of the page showed, hid or changed size: so may this area's minimum width."""
        if obj is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self.updateGeometry()
        return super().eventFilter(obj, event)


def collapsible(title: str, content=None) -> QCollapsible:
    """A section that opens and closes under its title, without margins of its own."""
    box = QCollapsible(title, expandedIcon="▾", collapsedIcon="▸")
    box.layout().setContentsMargins(0, 0, 0, 0)
    if content is not None:
        box.addWidget(content)
    return box


def compact_file_edit(edit) -> None:
    """Name a magicgui ``FileEdit``'s button *Browse…* (shorter than *Choose directory*)."""
    edit.choose_btn.text = "Browse…"
    edit.choose_btn.tooltip = "Choose a folder"


def compact_combo(combo: QComboBox, chars: int = COMBO_CHARS) -> None:
    """Size ``combo`` for ``chars`` characters, not for its longest item (that one is elided)."""
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(chars)


def wrap_label(label: QLabel) -> None:
    """Let a sentence wrap onto more lines instead of widening the dock."""
    label.setWordWrap(True)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)


def button_grid(buttons, columns: int = 2) -> QGridLayout:
    """The buttons in rows of ``columns`` (four buttons in one row are wider than the dock)."""
    grid = QGridLayout()
    grid.setContentsMargins(0, 0, 0, 0)
    for i, button in enumerate(buttons):
        grid.addWidget(button, i // columns, i % columns)
    return grid


class ElidedText(QObject):
    """Show a text in a label, elided in the middle to the label's width (full text as tooltip).

    A file name without spaces cannot wrap; elided, it no longer sets the
    dock's minimum width.

    Parameters
    ----------
    label : QLabel
    """

    def __init__(self, label: QLabel) -> None:
        super().__init__(label)
        self.label = label
        self.full = label.text()
        label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        label.setMinimumWidth(0)
        label.installEventFilter(self)

    def set_text(self, text: str) -> None:
        """Show ``text`` (elided if the label is too narrow for it)."""
        self.full = str(text)
        self.label.setToolTip(self.full)
        self._elide()

    def _elide(self) -> None:
        width = max(self.label.contentsRect().width(), 0)
        metrics = self.label.fontMetrics()
        self.label.setText(metrics.elidedText(self.full, Qt.TextElideMode.ElideMiddle, width)
                           if width else self.full)

    def eventFilter(self, obj, event) -> bool:
        """Elide again when the label is resized."""
        if obj is self.label and event.type() == QEvent.Type.Resize:
            self._elide()
        return False
