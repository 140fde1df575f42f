"""Take the README's screenshots from a real napari window.

Run under a screen at least 1920x1080 (or ``xvfb-run -a -s "-screen 0 2000x1200x24"``)::

    python docs/screenshots.py

Writes ``docs/images/preview.png`` (tuning on the live preview),
``docs/images/dock-1280x800.png`` (a 1280x800 window, the *Detect* tab with
*Advanced* and *Are my counts right?* open), ``docs/images/run.png`` (after a
run on the sample plate), ``docs/images/dock-1920x1080.png`` (a 1920x1080
window, the *Results* tab) and ``docs/images/layout-1366x768.png`` (a
1366x768 window, the gallery and the plate map as tabs beside the detector).
"""

from __future__ import annotations

from pathlib import Path

from qtpy.QtWidgets import QApplication

from napari_nuclei_counter.core.params import DetectionParams

OUT = Path(__file__).parent / "images"


def settle(seconds: float = 0.5) -> None:
    import time

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def wait_for(cond, timeout: float = 60.0) -> None:
    import time

    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError
        QApplication.processEvents()
        time.sleep(0.02)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    import napari

    viewer = napari.Viewer(title="Nuclei counter")
    viewer.open_sample("napari-nuclei-counter", "sample_plate")
    _, widget = viewer.window.add_plugin_dock_widget("napari-nuclei-counter", "Nuclei detector")
    viewer.window.resize(1500, 950)
    widget.model.params = DetectionParams(4.0, 6, 1000.0)
    viewer.dims.set_current_step(0, 20)
    viewer.scene.camera.zoom = 1.6
    viewer.scene.camera.center = (0, 500, 640)
    wait_for(lambda: widget.preview.label.value.startswith("Preview:") and widget.preview.idle)
    settle()
    viewer.screenshot(str(OUT / "preview.png"), canvas_only=False)
    # a laptop's window, every section of the Detect tab open
    viewer.window.resize(1280, 800)
    widget.run_panel.advanced.expand(animate=False)
    widget.scoring_box.expand(animate=False)
    viewer.reset_view()
    settle(1.0)
    viewer.screenshot(str(OUT / "dock-1280x800.png"), canvas_only=False)
    widget.run_panel.advanced.collapse(animate=False)
    widget.scoring_box.collapse(animate=False)
    viewer.window.resize(1500, 950)
    viewer.scene.camera.zoom = 1.6
    viewer.scene.camera.center = (0, 500, 640)
    widget.preview.check.value = False
    widget.run_panel.start_run()
    wait_for(lambda: not widget.run_panel.running)
    viewer.dims.set_current_step(0, 14)
    widget.results_panel.table.selectRow(14)
    settle(1.0)
    viewer.screenshot(str(OUT / "run.png"), canvas_only=False)
    # a desktop's window: the Results tab, the table the dock's full height
    viewer.window.resize(1920, 1080)
    viewer.reset_view()
    settle(1.0)
    viewer.screenshot(str(OUT / "dock-1920x1080.png"), canvas_only=False)
    # a small laptop screen: the views open as tabs beside the detector
    viewer.window.resize(1366, 768)
    widget.results_panel.open_plate_map()
    widget.results_panel.open_gallery()
    settle(1.5)
    viewer.screenshot(str(OUT / "layout-1366x768.png"), canvas_only=False)
    viewer.close()


if __name__ == "__main__":
    main()
