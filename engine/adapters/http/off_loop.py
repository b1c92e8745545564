"""Blocking work (the database, an action) run off the event loop, on a few threads of our own.

``loop.run_in_executor`` goes through ``concurrent.futures``: a future with its own lock and
condition, a work item, a semaphore for the idle threads, and that future chained to an
asyncio one by callbacks, all in Python: about 30 µs of CPU a call, measured beside a
step's 250 µs. Here a call is a tuple on a queue and one ``call_soon_threadsafe`` back with
the result: about 10 µs. Same contract: the work runs on one of ``threads`` threads, its
result or exception comes back to the awaiting coroutine, work not yet started when its
caller is cancelled is skipped, and :meth:`OffLoop.close` waits for the work under way.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]


class OffLoop:
    """Up to ``threads`` threads named ``name-N``, started as work comes and none is free."""

    def __init__(self, threads: int, name: str) -> None:
        self._most = threads
        self._name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0  # threads waiting for a job (read and written on the loop and threads)
        self._lock = threading.Lock()

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            if self._idle <= 0 and len(self._threads) < self._most:
                self._start()
            else:
                self._idle -= 1  # this job is theirs: the next one starts a thread if need be
        self._jobs.put((loop, future, work, args))
        return await future

    def close(self) -> None:
        """Wait for the work under way and queued, then end the threads."""
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join()
        self._threads.clear()

    def _start(self) -> None:
        thread = threading.Thread(
            target=self._serve, name=f"{self._name}-{len(self._threads)}", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            loop, future, work, args = job
            if not future.cancelled():  # its caller went away before it started
                try:
                    outcome: tuple[Any, BaseException | None] = (work(*args), None)
                except BaseException as err:  # as concurrent.futures: the caller gets it
                    outcome = (None, err)
                with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                    loop.call_soon_threadsafe(_settle, future, *outcome)
            del job, future, work, args
            with self._lock:
                self._idle += 1


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)
