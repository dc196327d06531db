"""The model thread of `rag serve` (rag/serve/batching.py): calls queued together run as one batch."""

from __future__ import annotations

import threading
import time

import pytest

from rag.serve.batching import ModelWorker


def test_calls_queued_while_the_worker_is_busy_run_as_one_batch_in_order() -> None:
    worker = ModelWorker()
    release = threading.Event()
    seen: list[list[int]] = []

    def square(items: list[int]) -> list[int]:
        seen.append(list(items))
        if items == [0]:
            release.wait(10)  # the first call holds the worker while the others queue
        return [i * i for i in items]

    results: dict[int, int] = {}

    def call(i: int) -> None:
        results[i] = worker.submit(square, i)

    first = threading.Thread(target=call, args=(0,))
    first.start()
    while not seen:
        time.sleep(0.01)
    others = [threading.Thread(target=call, args=(i,)) for i in range(1, 6)]
    for t in others:
        t.start()
        time.sleep(0.02)  # queued in this order
    release.set()
    for t in [first, *others]:
        t.join(10)
    worker.close()
    assert results == {i: i * i for i in range(6)}
    assert seen == [[0], [1, 2, 3, 4, 5]]
    assert (worker.calls, worker.items) == (2, 6)


def test_kinds_are_batched_apart_and_an_error_reaches_every_caller_of_its_batch() -> None:
    worker = ModelWorker(max_batch=2)
    release = threading.Event()

    def hold(items: list[str]) -> list[str]:
        release.wait(10)
        return items

    def fail(items: list[str]) -> list[str]:
        raise ValueError(f"bad batch of {len(items)}")

    def upper(items: list[str]) -> list[str]:
        return [s.upper() for s in items]

    out: dict[str, object] = {}

    def call(key: str, run: object, item: str) -> None:
        try:
            out[key] = worker.submit(run, item)  # type: ignore[arg-type]
        except ValueError as exc:
            out[key] = exc

    blocker = threading.Thread(target=call, args=("hold", hold, "x"))
    blocker.start()
    time.sleep(0.1)
    threads = [threading.Thread(target=call, args=(f"f{i}", fail, "y")) for i in range(3)]
    threads += [threading.Thread(target=call, args=(f"u{i}", upper, f"w{i}")) for i in range(2)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    release.set()
    for t in [blocker, *threads]:
        t.join(10)
    worker.close()
    assert out["hold"] == "x" and out["u0"] == "W0" and out["u1"] == "W1"
    errors = [out[f"f{i}"] for i in range(3)]
    assert all(isinstance(e, ValueError) for e in errors)
    assert sorted(str(e) for e in errors) == ["bad batch of 1", "bad batch of 2", "bad batch of 2"]  # max_batch


def test_a_batch_returning_the_wrong_number_of_results_is_an_error_not_a_mix_up() -> None:
    worker = ModelWorker()
    with pytest.raises(RuntimeError, match="returned 0 results"):
        worker.submit(lambda items: [], 1)
    worker.close()
