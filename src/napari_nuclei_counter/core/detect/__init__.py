"""Detection: the reference, the exact fast engine, thresholds, the preview cache, image quality."""
