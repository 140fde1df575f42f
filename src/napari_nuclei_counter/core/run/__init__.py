"""A run: the pipeline, the scheduler and its backends, workers, resume, the output lock, errors."""
