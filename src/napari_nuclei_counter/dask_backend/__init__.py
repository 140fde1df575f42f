"""The Dask adapter: the scheduler's tasks on a Dask cluster."""
