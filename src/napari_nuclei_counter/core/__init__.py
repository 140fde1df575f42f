"""The core: detection, discovery, the run pipeline, results. No Qt, no napari."""

from .detect.detection import Detections, as_grayscale_2d, detect, detect_nuclei, reference_detect
from .io.discovery import BBBC021_PATTERN, BBBC021_REGEX, ImageMeta, find_images, parse_metadata
from .io.images import read_image
from .params import BBBC021_PRESET, DetectionParams
from .results.tables import ImageResult, Results, load_results
from .results.writer import ResultsWriter, write_results
from .run.batch import default_workers, run_batch, run_batch_arrays
from .run.pipeline import Run, RunError, RunSummary

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
