"""Open napari with the plugin docked (the ``nuclei-counter gui`` command)."""

from __future__ import annotations

from pathlib import Path

PLUGIN = "napari-nuclei-counter"


def open_viewer(folder: str | Path | None = None, *, sample: bool = False, show: bool = True):
    """Return a napari viewer with the detector docked and images loaded.

    Parameters
    ----------
    folder : path, optional
        A folder of TIFFs or a results folder to open.
    sample : bool, optional
        Open the synthetic sample plate (generated once into the user cache).
    show : bool, optional
        Show the window.
    """
    import napari

    viewer = napari.Viewer(title="Nuclei counter", show=show)
    if sample:
        viewer.open_sample(PLUGIN, "sample_plate")
    if folder is not None:
        viewer.open(str(folder), plugin=PLUGIN)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Nuclei detector")
    return viewer, widget


def launch(folder: str | Path | None = None, *, sample: bool = False) -> None:
    """Open the viewer and run napari's event loop until the window closes."""
    import napari

    open_viewer(folder, sample=sample)
    napari.run()
