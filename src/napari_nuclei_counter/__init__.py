"""Find and count nuclei in DAPI images: a napari plugin, a command line, a library.

The detection is a Gaussian blur followed by local maxima (see
:func:`detect_nuclei`); everything importable from here is free of Qt and
napari, so it runs headless, in worker processes and on clusters.
"""

from ._version import __version__
from .core import (
    BBBC021_PATTERN,
    BBBC021_PRESET,
    DetectionParams,
    Detections,
    ImageResult,
    Run,
    detect,
    detect_nuclei,
    find_images,
    load_results,
    parse_metadata,
    reference_detect,
    run_batch,
)

__all__ = [
    "BBBC021_PATTERN",
    "BBBC021_PRESET",
    "Detections",
    "DetectionParams",
    "ImageResult",
    "Run",
    "__version__",
    "detect",
    "detect_nuclei",
    "find_images",
    "load_results",
    "parse_metadata",
    "reference_detect",
    "run_batch",
]
