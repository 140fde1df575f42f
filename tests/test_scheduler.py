"""The one scheduler under every backend: task sizes, suspects, cancel, a dead worker."""

from __future__ import annotations

import threading

import pytest

from napari_nuclei_counter.core.results.tables import ImageResult
from napari_nuclei_counter.core.run.backends import SerialBackend
from napari_nuclei_counter.core.run.scheduler import Chunker, WorkerDied, schedule


def _sizes(work: Chunker, threads: int) -> list[int]:
    out = []
    while work:
        chunk, _ = work.next_chunk(threads)
        out.append(len(chunk))
    return out


@pytest.mark.parametrize("n, size, workers", [(240, 8, 2), (7, 8, 2), (1, 1, 1), (100, 3, 16),
                                              (1000, 8, 4)])
def test_tasks_shrink_towards_the_end_and_cover_every_image_once(n, size, workers):
    work = Chunker(list(range(n)), chunksize=size)
    tasks = []
    while work:
        tasks.append(work.next_chunk(workers)[0])
    assert [i for t in tasks for i in t] == list(range(n))  # in order, each once
    sizes = [len(t) for t in tasks]
    assert max(sizes) <= size and min(sizes) >= 1
    assert sizes == sorted(sizes, reverse=True)  # guided: never growing
    assert sizes[-min(n, 2 * workers):] == [1] * min(n, 2 * workers)  # the tail is single images
    if n >= 8 * size * workers:
        assert sizes[0] == size  # full tasks while there is plenty of work


def test_automatic_tasks_grow_to_about_half_a_second_of_work():
    work = Chunker([(i, f"img{i}.tif") for i in range(10_000)], max_chunk=256)
    assert len(work.next_chunk(threads=2)[0]) == 1  # nothing timed yet: the first results soon
    for i in range(4):
        work.observe(ImageResult(i, "x", seconds=0.01))
    assert len(work.next_chunk(threads=2)[0]) == 50  # 0.5 s / 10 ms
    for i in range(400):
        work.observe(ImageResult(i, "x", seconds=0.0001))
    assert len(work.next_chunk(threads=2)[0]) == 256  # the backend's largest task
    tail = Chunker([(i, "p") for i in range(40)], max_chunk=256)
    tail.observe(ImageResult(0, "x", seconds=0.0001))
    assert len(tail.next_chunk(threads=4)[0]) == 2  # 40 images / (4 x 4 threads)
    failed = Chunker([(i, "p") for i in range(40)], max_chunk=256)
    failed.observe(ImageResult(0, "x", seconds=5.0, error="bad"))
    assert len(failed.next_chunk(threads=1)[0]) == 1  # failures say nothing about time


class _Dying(SerialBackend):
    """A serial backend whose 'workers' die on some images (one death per task)."""

    name = "dying"

    def __init__(self, deadly: set[str], max_chunk: int = 4):
        self.deadly = deadly
        self.max_chunk = max_chunk
        self.recovered = 0
        self.closed = False

    def capacity(self) -> int:
        return 3

    def result(self, handle):
        fn, chunk, args = handle.task
        if any(label in self.deadly for _, label in chunk):
            raise WorkerDied("boom")
        return super().result(handle)

    def recover(self) -> None:
        self.recovered += 1

    def close(self) -> None:
        self.closed = True


def _task(chunk):
    return [ImageResult(i, label, seconds=0.01) for i, label in chunk]


def _failed(item, message):
    return ImageResult(item[0], item[1], error=message)


def test_suspects_are_retried_alone_and_only_the_culprit_fails():
    items = [(i, f"img{i}") for i in range(20)]
    backend = _Dying({"img7"})
    got = {r.index: r for r in schedule(items, _task, (), backend, failed=_failed, chunksize=4)}
    assert sorted(got) == list(range(20))  # every image once
    assert [i for i, r in got.items() if not r.ok] == [7]
    assert "died every time it processed this image" in got[7].error
    assert backend.recovered >= 1 and backend.closed


def test_cancel_stops_between_tasks_and_closes_the_backend():
    cancel = threading.Event()
    backend = _Dying(set())
    items = [(i, f"img{i}") for i in range(100)]
    got = []
    for r in schedule(items, _task, (), backend, failed=_failed, chunksize=1, cancel=cancel):
        got.append(r)
        if len(got) == 5:
            cancel.set()
    assert 5 <= len(got) < 100
    assert backend.closed


def test_an_error_in_a_task_fails_its_images_not_the_run():
    def task(chunk):
        if any(i == 3 for i, _ in chunk):
            raise RuntimeError("cannot pickle")
        return _task(chunk)

    items = [(i, f"img{i}") for i in range(6)]
    got = {r.index: r for r in schedule(items, task, (), SerialBackend(), failed=_failed)}
    assert sorted(got) == list(range(6))
    assert got[3].error == "worker failed: RuntimeError: cannot pickle"
    assert all(got[i].ok for i in (0, 1, 2, 4, 5))


class _PoolLike(_Dying):
    """Like a process pool: tasks finish one at a time, and one death breaks every task in flight."""

    def wait(self, handles, timeout):
        first = handles[0]
        if getattr(first, "poisoned", False):
            return [first]
        done = super().wait([first], timeout)
        if any(label in self.deadly for _, label in first.task[1]):
            for h in handles:  # the pool is broken: everything in flight is lost
                h.poisoned = True
        return done

    def result(self, handle):
        if getattr(handle, "poisoned", False):
            raise WorkerDied("pool broken")
        return super().result(handle)


def test_with_a_pool_that_breaks_whole_only_the_culprits_fail():
    items = [(i, f"img{i}") for i in range(40)]
    got = {r.index: r for r in schedule(items, _task, (), _PoolLike({"img3", "img13"}),
                                        failed=_failed, chunksize=4)}
    assert sorted(got) == list(range(40))
    assert sorted(i for i, r in got.items() if not r.ok) == [3, 13]


def test_workers_that_never_start_fail_the_run_quickly_with_the_reason():
    backend = _Dying({f"img{i}" for i in range(1000)})  # every task dies
    items = [(i, f"img{i}") for i in range(1000)]
    got = list(schedule(items, _task, (), backend, failed=_failed, chunksize=4))
    assert len(got) == 1000 and not any(r.ok for r in got)
    assert backend.recovered <= 5  # not one new pool per image
    assert sum("could not be started" in r.error for r in got) >= 990
