"""Connecting to a Dask cluster for one run: a given client, a scheduler address, or a local cluster.

An adapter over the core, used by :mod:`.backend`; Dask is imported only when a
run connects. Closing never raises, the caller's logs stay free of
``distributed``'s INFO chatter, and the nannies' environment variables do not
stay behind in this process.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager

from ..core.run.backends import default_workers, no_main_reimport

__all__ = ["connect"]

#: how long to try to reach a scheduler, s
CONNECT_SECONDS = 10
#: how long closing a client or cluster may take (a scheduler may be gone), s
CLOSE_SECONDS = 5

log = logging.getLogger(__name__)


@contextmanager
def connect(scheduler, client, n_workers, threads_per_worker):
    """Yield a client: the caller's, one for ``scheduler``, or one of a new local cluster."""
    if client is not None:
        yield client
        return
    import distributed  # noqa: F401  (sets up its loggers, which _quiet_logs overrides)

    with _quiet_logs(), _own_client(scheduler, n_workers, threads_per_worker) as own:
        yield own


@contextmanager
def _own_client(scheduler, n_workers, threads_per_worker):
    """A client of ``scheduler``, or of a new local cluster; both closed on exit."""
    from distributed import Client

    if scheduler is not None:
        try:
            own = Client(scheduler, set_as_default=False, timeout=CONNECT_SECONDS)
        except (TimeoutError, OSError) as exc:
            raise ConnectionError(
                f"cannot reach the Dask scheduler at {scheduler} within {CONNECT_SECONDS} s "
                f"({type(exc).__name__}); check the address and that it is running") from None
        with _closing(own):
            yield own
        return
    with _environ_kept():
        cluster = _local_cluster(n_workers, threads_per_worker)
        with _closing(cluster):
            own = Client(cluster, set_as_default=False)
            with _closing(own):
                yield own


@contextmanager
def _environ_kept():
    """Restore the variables that nannies write into this process's environment.

    A nanny sets ``distributed.nanny.pre-spawn-environ`` (``OMP_NUM_THREADS=1``,
    ``MALLOC_TRIM_THRESHOLD_``, ...) in ``os.environ`` before it starts a
    worker; left there, they would reach every process started later, such
    as the core's process-pool workers.
    """
    import dask

    keys = set(dask.config.get("distributed.nanny.pre-spawn-environ", {})) | {"PYTHONHASHSEED"}
    saved = {key: os.environ.get(key) for key in keys}
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def _quiet_logs(level: int = logging.WARNING):
    """Keep ``distributed``'s INFO chatter (cluster start, connections) out of our logs.

    ``distributed`` sets its logger to INFO and lets records reach the root
    logger, so a command line that shows warnings would show every worker
    starting and stopping. The previous level is restored on exit.
    """
    logger = logging.getLogger("distributed")
    old = logger.level
    if logger.getEffectiveLevel() < level:
        logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(old)


@contextmanager
def _closing(thing):
    """Close a client or cluster on exit, logging (not raising) a failure to close."""
    try:
        yield thing
    finally:
        # closing a client whose scheduler is gone makes distributed and tornado
        # log tracebacks of failed reconnections: the run already said what happened
        loggers = [logging.getLogger(n) for n in ("distributed", "tornado", "asyncio")]
        levels = [lg.level for lg in loggers]
        for lg in loggers:
            lg.setLevel(logging.CRITICAL)
        try:
            thing.close(timeout=CLOSE_SECONDS)
        except Exception as exc:  # a half-dead cluster must not hide the real error
            log.warning("could not close %s cleanly: %s", type(thing).__name__, exc)
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)


def _local_cluster(n_workers: int | None, threads_per_worker: int):
    """Start a quiet ``LocalCluster`` of worker processes on this machine."""
    import dask
    from distributed import LocalCluster

    n = n_workers or default_workers()
    t0 = time.perf_counter()
    # the workers' statistical profiler samples every thread every 10 ms: a
    # dashboard feature that costs CPU per image here, and there is no dashboard
    with no_main_reimport(), dask.config.set({"distributed.worker.profile.enabled": False}):
        cluster = LocalCluster(n_workers=n, threads_per_worker=threads_per_worker,
                               processes=True, dashboard_address=None,
                               silence_logs=logging.WARNING,
                               # no dashboard; its HTTP server (health checks) on a
                               # free local port, not 8787, which may be taken
                               scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
    log.info("local Dask cluster of %d workers started in %.1f s",
             n, time.perf_counter() - t0)
    return cluster
