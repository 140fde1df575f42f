"""The views of a run's results: the gallery and the plate map docks."""
