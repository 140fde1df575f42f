"""The gallery's filter bar: nuclei range, sort order, well, quality-control flag and compound.

:class:`GalleryFilters` holds the controls and their state and says when the
person changed one; which images pass is decided by
:func:`~napari_nuclei_counter.core.render.gallery.gallery_order`, from these values
(and, for the compound, by the treatments model's images of that compound).
"""

from __future__ import annotations

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QSpinBox, QVBoxLayout, QWidget

from ...core.detect.qc import FLAGS
from ...core.render.gallery import ANY_FLAG, FLAGGED
from ...core.results.wells import well_sort_key
from .shared import blocked_signals

__all__ = ["ALL_COMPOUNDS", "ALL_WELLS", "GalleryFilters"]

ALL_WELLS = "all wells"
ALL_COMPOUNDS = "all compounds"


class GalleryFilters(QWidget):
    """Rows of controls: ``nuclei [min] to [max] [ascending]``, ``well [..] QC [..]`` and,
    once a plate layout names compounds, ``compound [..]``.

    Attributes
    ----------
    ascending : QCheckBox
    min_count, max_count : QSpinBox
        A maximum at the largest count of the run means "no upper limit"
        (it then follows the largest count as results arrive).
    well_combo, qc_combo, compound_combo : QComboBox
    """

    #: the person changed the order, the count range or the QC filter (``'sort'``,
    #: ``'count'`` or ``'qc'``)
    changed = Signal(str)
    #: the person picked a well in the combo (``None``: all wells)
    well_picked = Signal(object)
    #: the person picked a compound in the combo (``None``: all compounds)
    compound_picked = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._top = 0  # largest count of the run
        self._open_max = True  # the maximum count is "no limit"
        self._wells: list[str] = []
        self._build()
        self.ascending.toggled.connect(self.on_sort_changed)
        self.min_count.valueChanged.connect(self.on_count_changed)
        self.max_count.valueChanged.connect(self.on_count_changed)
        self.well_combo.currentIndexChanged.connect(self.on_well_changed)
        self.qc_combo.currentIndexChanged.connect(self.on_qc_changed)
        self.compound_combo.currentIndexChanged.connect(self.on_compound_changed)

    def _build(self) -> None:
        self.ascending = QCheckBox("ascending")
        self.ascending.setToolTip("Fewest nuclei first (default: most nuclei first)")
        self.min_count = QSpinBox()
        self.max_count = QSpinBox()
        for spin, tip in ((self.min_count, "Show images with at least this many nuclei"),
                          (self.max_count, "Show images with at most this many nuclei "
                                           "(the largest count: no upper limit)")):
            spin.setRange(0, 0)
            spin.setToolTip(tip)
            spin.setKeyboardTracking(False)
        self.well_combo = QComboBox()
        self.well_combo.addItem(ALL_WELLS, None)
        self.well_combo.setToolTip("Show the images of one well (also set by the plate map)")
        self.qc_combo = QComboBox()
        choices = [(ANY_FLAG, "Do not filter on quality flags"),
                   (FLAGGED, "Images with any quality flag"), *FLAGS.items()]
        for name, meaning in choices:
            self.qc_combo.addItem(name, name)
            self.qc_combo.setItemData(self.qc_combo.count() - 1, meaning,
                                      Qt.ItemDataRole.ToolTipRole)
        self.qc_combo.setToolTip("Show only the images with a quality-control flag")
        self.compound_combo = QComboBox()
        self.compound_combo.addItem(ALL_COMPOUNDS, None)
        self.compound_combo.setToolTip("Show the images of the wells that received one compound "
                                       "(from the plate layout of the Treatments tab)")
        self.compound_label = QLabel("compound")

        row1 = QHBoxLayout()
        row1.addWidget(QLabel("nuclei"))
        row1.addWidget(self.min_count)
        row1.addWidget(QLabel("to"))
        row1.addWidget(self.max_count)
        row1.addStretch(1)
        row1.addWidget(self.ascending)
        row2 = QHBoxLayout()
        row2.addWidget(QLabel("well"))
        row2.addWidget(self.well_combo, 1)
        row2.addWidget(QLabel("QC"))
        row2.addWidget(self.qc_combo, 1)
        row3 = QHBoxLayout()
        row3.addWidget(self.compound_label)
        row3.addWidget(self.compound_combo, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row1)
        layout.addLayout(row2)
        layout.addLayout(row3)
        self.compound_label.setVisible(False)
        self.compound_combo.setVisible(False)

    # ---------------------------------------------------------------- values
    def count_range(self) -> tuple[int, int | None]:
        """``(min, max)`` nuclei shown; ``max`` is ``None`` when there is no upper limit."""
        return self.min_count.value(), (None if self._open_max else self.max_count.value())

    def well(self) -> str | None:
        """The well shown, ``None`` for all wells."""
        return self.well_combo.currentData()

    def qc(self) -> str:
        """The QC filter: ``'any'``, ``'flagged'`` or one name of ``core.qc.FLAGS``."""
        return self.qc_combo.currentData() or ANY_FLAG

    def compound(self) -> str | None:
        """The compound shown, ``None`` for all compounds."""
        return self.compound_combo.currentData()

    # ------------------------------------------------------------ set by code
    def set_count_range(self, low: int = 0, high: int | None = None) -> None:
        """Show ``low <= count <= high`` (``None``: no upper limit); emits nothing."""
        low = max(0, int(low))
        top = max(self._top, low, int(high) if high is not None else 0)
        self._open_max = high is None
        with blocked_signals(self.min_count, self.max_count):
            self.min_count.setMaximum(top)
            self.max_count.setMaximum(top)
            self.min_count.setValue(low)
            self.max_count.setValue(top if high is None else max(int(high), 0))

    def set_qc(self, name: str) -> None:
        """Filter on QC flags: ``'any'``, ``'flagged'`` or a flag name (emits ``changed``)."""
        i = self.qc_combo.findData(name)
        if i < 0:
            raise ValueError(f"unknown QC filter {name!r}; use 'any', 'flagged' or one of "
                             f"{list(FLAGS)}")
        self.qc_combo.setCurrentIndex(i)

    def show_well(self, well: str | None) -> None:
        """Put ``well`` in the combo (added if new); emits nothing."""
        i = self.well_combo.findData(well) if well is not None else 0
        with blocked_signals(self.well_combo):
            if i < 0:
                self.well_combo.addItem(well, well)
                i = self.well_combo.count() - 1
            self.well_combo.setCurrentIndex(i)

    def set_wells(self, wells) -> None:
        """Offer these wells (in plate order), keeping the one shown; emits nothing."""
        selected = self.well()
        wells = set(wells)
        if selected:
            wells.add(selected)
        wells = sorted(wells, key=well_sort_key)
        if wells == self._wells:
            return
        self._wells = wells
        with blocked_signals(self.well_combo):
            self.well_combo.clear()
            self.well_combo.addItem(ALL_WELLS, None)
            for w in wells:
                self.well_combo.addItem(w, w)
            self.well_combo.setCurrentIndex(max(0, self.well_combo.findData(selected))
                                            if selected else 0)

    def set_compounds(self, compounds, shown: str | None) -> None:
        """Offer these compounds (the combo shows only when there are some) with ``shown``
        picked (``None``: all); emits nothing."""
        compounds = list(compounds)
        with blocked_signals(self.compound_combo):
            self.compound_combo.clear()
            self.compound_combo.addItem(ALL_COMPOUNDS, None)
            for c in compounds:
                self.compound_combo.addItem(c, c)
            self.compound_combo.setCurrentIndex(max(0, self.compound_combo.findData(shown))
                                                if shown is not None else 0)
        self.compound_label.setVisible(bool(compounds))
        self.compound_combo.setVisible(bool(compounds))

    def forget_wells(self) -> None:
        """A new run: the wells are offered again from scratch at the next :meth:`set_wells`."""
        self._wells = []

    def set_top(self, top: int) -> None:
        """Let the spin boxes reach the largest count; an open maximum follows it."""
        self._top = top
        with blocked_signals(self.min_count, self.max_count):
            if self._open_max:
                new_max = max(top, self.min_count.value())
                self.max_count.setMaximum(new_max)
                self.max_count.setValue(new_max)
            else:
                new_max = max(top, self.max_count.value(), self.min_count.value())
                self.max_count.setMaximum(new_max)
            self.min_count.setMaximum(new_max)

    # ------------------------------------------------------------ set by hand
    def on_sort_changed(self, *_) -> None:
        """The ascending box was toggled."""
        self.changed.emit("sort")

    def on_count_changed(self, *_) -> None:
        """A count spin box changed (a maximum at the largest count means no limit)."""
        self._open_max = self.max_count.value() >= self.max_count.maximum()
        self.changed.emit("count")

    def on_well_changed(self, _i: int = 0) -> None:
        """The well combo changed."""
        self.well_picked.emit(self.well())

    def on_qc_changed(self, _i: int = 0) -> None:
        """The QC combo changed."""
        self.changed.emit("qc")

    def on_compound_changed(self, _i: int = 0) -> None:
        """The compound combo changed."""
        self.compound_picked.emit(self.compound())
