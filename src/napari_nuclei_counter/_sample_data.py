"""npe2 sample data: the synthetic BBBC021-like plate and one real nuclei image."""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

from .core.io.discovery import find_images
from .core.sample import write_sample_plate

__all__ = ["make_real_sample", "make_sample_plate", "sample_plate_folder"]

#: suggested parameters for the shipped 8-bit BBBC007 image
REAL_SAMPLE_PARAMS = {"sigma": 3.5, "min_distance": 6, "threshold_abs": 20.0}


def sample_plate_folder() -> Path:
    """Where the sample plate's TIFFs live (generated once, then reused).

    ``$NUCLEI_COUNTER_SAMPLE_DIR`` when set, otherwise the user cache folder.
    """
    env = os.environ.get("NUCLEI_COUNTER_SAMPLE_DIR")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("napari-nuclei-counter")) / "sample-plate"


def make_sample_plate() -> list[tuple]:
    """The synthetic plate (24 BBBC021-named 1024x1280 DAPI images) as a lazy stack.

    The files are written once into :func:`sample_plate_folder`, so batch runs
    read real files and the plate/well/site metadata comes from their names.
    """
    from ._reader import stack_layer_data

    folder = sample_plate_folder()
    paths = find_images(folder) if folder.is_dir() else []
    if len(paths) != 24:
        paths = write_sample_plate(folder)
    return [stack_layer_data(paths, name="sample plate")]


def make_real_sample() -> list[tuple]:
    """One real nuclei image: BBBC007 A9 p7d (Drosophila Kc167, 8-bit, CC0)."""
    import tifffile

    path = files("napari_nuclei_counter") / "data" / "bbbc007_A9_p7d.tif"
    with path.open("rb") as fh:
        image = tifffile.imread(fh)
    meta = {"nuclei_counter": {"suggested_params": REAL_SAMPLE_PARAMS,
                               "source": "BBBC007v1, A9 p7d (CC0)"}}
    return [(image, {"name": "BBBC007 A9 p7d", "metadata": meta, "colormap": "gray"}, "image")]
