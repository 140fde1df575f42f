"""The serial backend: every task runs in the calling thread, one image at a time."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future

__all__ = ["SerialBackend"]


class SerialBackend:
    """Run tasks here, one after another (for debugging, and single images).

    A task runs when the scheduler waits for it, so a cancel takes effect
    between two images.
    """

    name = "serial"
    max_chunk = 1
    in_process = True
    shares_memory = True

    def start(self, n_items: int) -> None:
        """Nothing to start."""

    def threads(self) -> int:
        """One: this thread."""
        return 1

    def capacity(self) -> int:
        """One task at a time."""
        return 1

    def submit(self, fn: Callable, chunk: list, args: tuple) -> Future:
        """Remember the task; it runs in :meth:`wait`."""
        fut: Future = Future()
        fut.task = (fn, chunk, args)
        return fut

    def wait(self, handles: list, timeout: float) -> list:
        """Run the waiting tasks now."""
        for fut in handles:
            fn, chunk, args = fut.task
            try:
                fut.set_result(fn(chunk, *args))
            except Exception as exc:
                fut.set_exception(exc)
        return list(handles)

    def result(self, handle: Future) -> list:
        """The task's results (or its exception)."""
        return handle.result()

    def recover(self) -> None:
        """Nothing can die here."""

    def close(self) -> None:
        """Nothing to stop."""
