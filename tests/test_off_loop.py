"""OffLoop (engine/adapters/off_loop.py): the server's database threads keep the contract of
asyncio's run_in_executor, which they replace."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from engine.adapters.http.off_loop import OffLoop


def test_work_runs_on_its_threads_and_returns_its_result() -> None:
    pool = OffLoop(2, "test-db")

    async def main() -> list[str]:
        return list(
            await asyncio.gather(
                *(pool.run(lambda: threading.current_thread().name) for _ in range(6))
            )
        )

    names = asyncio.run(main())
    pool.close()
    assert set(names) <= {"test-db-0", "test-db-1"}


def test_an_exception_reaches_the_caller() -> None:
    pool = OffLoop(1, "test-db")

    def fails(what: str) -> None:
        raise LookupError(what)

    with pytest.raises(LookupError, match="no such session"):
        asyncio.run(pool.run(fails, "no such session"))
    pool.close()


def test_at_most_the_threads_given_run_at_once() -> None:
    pool = OffLoop(3, "test-db")
    running, most = 0, 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02)
        with lock:
            running -= 1

    async def main() -> None:
        await asyncio.gather(*(pool.run(work) for _ in range(12)))

    asyncio.run(main())
    pool.close()
    assert most == 3


def test_work_not_started_when_its_caller_is_cancelled_is_skipped() -> None:
    pool = OffLoop(1, "test-db")
    done: list[str] = []
    gate = threading.Event()

    async def main() -> None:
        first = asyncio.ensure_future(pool.run(gate.wait, 5))
        second = asyncio.ensure_future(pool.run(done.append, "second"))
        await asyncio.sleep(0.01)
        second.cancel()
        gate.set()
        await first
        with pytest.raises(asyncio.CancelledError):
            await second

    asyncio.run(main())
    pool.close()
    assert done == []


def test_close_waits_for_the_work_under_way() -> None:
    pool = OffLoop(2, "test-db")
    done: list[int] = []

    def slow(i: int) -> None:
        time.sleep(0.01)
        done.append(i)

    async def main() -> None:
        calls = [asyncio.ensure_future(pool.run(slow, i)) for i in range(4)]
        await asyncio.sleep(0)  # all four queued
        pool.close()  # as the server's lifespan does, on the loop
        await asyncio.gather(*calls)

    asyncio.run(main())
    assert sorted(done) == [0, 1, 2, 3]
