"""Running the dock's source: Run/Cancel, the worker thread and the progress line."""
