"""The Dask adapter: the scheduler's tasks on a Dask cluster.

:func:`.choice.choose_backend` picks the backend of a run (local processes
or Dask) for every front end; :mod:`.backend` is the Dask backend itself.
"""
