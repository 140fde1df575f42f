"""One results store per napari viewer, for every dock of this plugin in it.

The detector dock fills the store, the gallery and the plate map show it;
each asks :func:`store_for` with the viewer napari gave it, so a view docked
from the plugin menu (napari passes only the viewer) finds the detector's
results without searching the viewer's docks. The plate layout loaded on the
detector's *Treatments* tab is shared the same way (:func:`treatments_for`):
the plate map colours wells by compound and the gallery filters by compound.

Keys. Plugins get the viewer wrapped in napari's ``PublicOnlyProxy`` (a
``wrapt.ObjectProxy``), the detector and a view may get different proxies of
the same viewer, and tests pass the viewer itself. A proxy forwards
``hash()`` to the viewer, and napari's viewer hashes as its ``id()``; so the
key is ``hash(viewer)``, the same for the viewer and all its proxies and
different for two live viewers. (Equality is no key: two viewers in the same
state compare equal.)

Lifetime. The registry holds a store weakly: it lives as long as a dock (or
anyone else) holds it, and its entry goes with it; the docks die with their
window. The entry also goes when the viewer itself is collected (a
``weakref.finalize`` on the viewer that :func:`napari.current_viewer`
returns, when that is the viewer asking, as it is when napari docks a
widget), so a new viewer that gets the old one's ``id()`` starts with a new
store. :func:`release` drops an entry at once.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING

from ..core.results.store import ResultsStore
from .treatments.model import TreatmentsModel

if TYPE_CHECKING:
    import napari

__all__ = ["DETECTOR", "PLUGIN", "release", "store_for", "treatments_for"]

#: npe2 names of this plugin and of its detector widget (``napari.yaml``)
PLUGIN = "napari-nuclei-counter"
DETECTOR = "Nuclei detector"

_lock = threading.RLock()
_stores: weakref.WeakValueDictionary[int, ResultsStore] = weakref.WeakValueDictionary()
_treatments: weakref.WeakValueDictionary[int, TreatmentsModel] = weakref.WeakValueDictionary()
_watched: set[int] = set()  # keys whose viewer has a finalizer


def _key(viewer) -> int:
    return hash(viewer)


def _forget(key: int) -> None:
    with _lock:  # a finalizer: runs when the viewer is collected, on any thread
        _stores.pop(key, None)
        _treatments.pop(key, None)
        _watched.discard(key)


def _watch(viewer, key: int) -> None:
    """Forget ``key`` when the viewer behind ``viewer`` is collected, if it can be seen."""
    if key in _watched:
        return
    try:
        import napari

        current = napari.current_viewer()
    except Exception:  # no napari application: nothing to watch
        return
    if current is not None and hash(current) == key:
        weakref.finalize(current, _forget, key)
        _watched.add(key)


def store_for(viewer: napari.viewer.Viewer, *, dock_detector: bool = False) -> ResultsStore:
    """The results store of a viewer: made on the first request, the same one afterwards.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer, or napari's plugin proxy of it.
    dock_detector : bool, optional
        When the viewer has no store yet, dock the "Nuclei detector" first
        (through napari's plugin API), so that someone fills the store. The
        gallery and the plate map ask for this when napari docks them alone.

    Returns
    -------
    ResultsStore
        The same object for the viewer and every proxy of it, while it lives.
    """
    key = _key(viewer)
    with _lock:
        store = _stores.get(key)
    if store is None and dock_detector:
        viewer.window.add_plugin_dock_widget(PLUGIN, DETECTOR)  # asks store_for itself
        with _lock:
            store = _stores.get(key)
    with _lock:
        if store is None:
            store = _stores.get(key)  # another thread may have made it meanwhile
        if store is None:
            store = ResultsStore()
            _stores[key] = store
        _watch(viewer, key)
    return store


def treatments_for(viewer: napari.viewer.Viewer,
                   store: ResultsStore | None = None) -> TreatmentsModel:
    """The plate layout and its analysis of a viewer's results: one model per viewer.

    Made on the first request with the viewer's store (:func:`store_for`),
    the same one afterwards while someone holds it, like the store.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer, or napari's plugin proxy of it.
    store : ResultsStore, optional
        The results a view shows; when it is not the viewer's store, the
        view gets a model of its own for it (no layout loaded).

    Returns
    -------
    TreatmentsModel
    """
    key = _key(viewer)
    viewer_store = store_for(viewer)
    if store is not None and store is not viewer_store:
        return TreatmentsModel(store)
    with _lock:
        model = _treatments.get(key)
        if model is None or model.store is not viewer_store:
            model = TreatmentsModel(viewer_store)
            _treatments[key] = model
    return model


def release(viewer: napari.viewer.Viewer) -> ResultsStore | None:
    """Forget a viewer's store (the next :func:`store_for` makes a new one).

    Returns
    -------
    ResultsStore or None
        The store that was registered, if any; whoever holds it keeps it.
    """
    with _lock:
        _treatments.pop(_key(viewer), None)
        return _stores.pop(_key(viewer), None)
