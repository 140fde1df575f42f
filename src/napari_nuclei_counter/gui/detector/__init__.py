"""The detector dock: parameters, preview, source, run, results, points layer."""
