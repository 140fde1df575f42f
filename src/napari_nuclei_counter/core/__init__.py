"""The core: detection, discovery, batch engine, results. No Qt, no napari."""

from .batch import default_workers, read_image, run_batch
from .detection import Detections, as_grayscale_2d, detect, detect_nuclei, reference_detect
from .discovery import BBBC021_PATTERN, BBBC021_REGEX, ImageMeta, find_images, parse_metadata
from .params import BBBC021_PRESET, DetectionParams
from .results import ImageResult, Results, ResultsWriter, load_results, write_results

__all__ = [
    "BBBC021_PATTERN",
    "BBBC021_PRESET",
    "BBBC021_REGEX",
    "Detections",
    "DetectionParams",
    "ImageMeta",
    "ImageResult",
    "Results",
    "ResultsWriter",
    "as_grayscale_2d",
    "default_workers",
    "detect",
    "detect_nuclei",
    "find_images",
    "load_results",
    "parse_metadata",
    "read_image",
    "reference_detect",
    "run_batch",
    "write_results",
]
