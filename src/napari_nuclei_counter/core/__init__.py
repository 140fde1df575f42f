"""The core: detection, discovery, the run pipeline, results. No Qt, no napari."""

from .batch import default_workers, run_batch, run_batch_arrays
from .detection import Detections, as_grayscale_2d, detect, detect_nuclei, reference_detect
from .discovery import BBBC021_PATTERN, BBBC021_REGEX, ImageMeta, find_images, parse_metadata
from .io import read_image
from .params import BBBC021_PRESET, DetectionParams
from .results import ImageResult, Results, load_results
from .run import Run, RunError, RunSummary
from .writer import ResultsWriter, write_results

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
    "Run",
    "RunError",
    "RunSummary",
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
    "run_batch_arrays",
    "write_results",
]
