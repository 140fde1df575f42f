"""One backend choice for every front end, and one ``command`` entry of ``run.json``."""

from __future__ import annotations

import sys

import pytest

from napari_nuclei_counter.core.results.writer import WIDGET_COMMAND, run_command
from napari_nuclei_counter.core.run.backends import ProcessBackend, SerialBackend
from napari_nuclei_counter.dask_backend.choice import choose_backend


@pytest.mark.parametrize("kind", ["process", "local processes", "Local Processes"])
def test_local_processes(kind):
    b = choose_backend(kind, workers=3, nice=10)
    assert isinstance(b, ProcessBackend) and b.nice == 10


@pytest.mark.parametrize("kind", ["process", "serial"])
def test_no_workers_or_serial_runs_in_this_process(kind):
    workers = 0 if kind == "process" else None
    assert isinstance(choose_backend(kind, workers=workers), SerialBackend)


def test_dask_backend_is_made_without_connecting():
    pytest.importorskip("distributed")
    from napari_nuclei_counter.dask_backend.backend import DaskBackend

    b = choose_backend("Dask", workers=0, scheduler="tcp://127.0.0.1:1")
    assert isinstance(b, DaskBackend)
    assert b.scheduler == "tcp://127.0.0.1:1" and b.n_workers is None
    assert choose_backend("dask", workers=2).n_workers == 2


def test_unknown_kind_names_the_choices():
    with pytest.raises(ValueError, match="'dask'"):
        choose_backend("threads")


def test_run_command(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/usr/bin/nuclei-counter", "detect", "in", "--out", "o"])
    assert run_command() == "nuclei-counter detect in --out o"
    assert run_command("cli", ["tune", "x"]) == "nuclei-counter tune x"
    assert run_command("widget") == WIDGET_COMMAND == "napari-nuclei-counter widget"
    with pytest.raises(ValueError):
        run_command("gui")
