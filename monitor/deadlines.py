"""Bounds on what can get stuck: blocking work in a thread nobody waits for at exit, and an exit deadline.

``in_thread`` runs a blocking call in a daemon thread with a deadline. Unlike ``asyncio.to_thread``
(whose pool ``asyncio.run`` joins at the end, and the interpreter again at exit), a call that never
returns (an ``open()`` of a FIFO nobody writes to) cannot keep the process from exiting.
``ExitDeadline`` ends the process from a timer thread when a shutdown overruns, whatever holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class Stuck(Exception):
    """A call in a thread did not return in time (the thread is left behind, as a daemon)."""


class ThreadedCalls:
    """Runs calls in daemon threads with a deadline, and counts the calls that are still stuck."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.stuck = 0

    async def run(self, call: Callable[[], T], deadline: float) -> T:
        """``call()`` in a new daemon thread; raises Stuck after ``deadline`` s (the call runs on)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def settle(result: T | None, error: BaseException | None) -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)  # type: ignore[arg-type]  # T when there is no error

        def work() -> None:
            result: T | None = None
            error: BaseException | None = None
            try:
                result = call()
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task, which decides
                error = exc
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                loop.call_soon_threadsafe(settle, result, error)

        threading.Thread(target=work, name=self.name, daemon=True).start()
        try:
            return await asyncio.wait_for(asyncio.shield(future), deadline)
        except TimeoutError:
            self.stuck += 1
            future.add_done_callback(self._unstuck)
            raise Stuck(f"{self.name} did not finish within {deadline:g}s") from None

    def _unstuck(self, future: asyncio.Future[Any]) -> None:
        self.stuck -= 1
        if not future.cancelled():
            future.exception()  # retrieved: a late failure of an abandoned call is not an error


class ExitDeadline:
    """Once armed, ends the process with ``code`` after ``seconds`` unless disarmed first."""

    def __init__(self, seconds: float, code: int = 1) -> None:
        self.seconds = seconds
        self.code = code
        self._timer: threading.Timer | None = None

    def arm(self) -> None:
        if self._timer is None:
            self._timer = threading.Timer(self.seconds, self._expire)
            self._timer.daemon = True
            self._timer.start()

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        # No logging here: the main thread may hold the logging lock; write to the fd directly.
        message = (
            f"callback-monitor: error: shutdown did not finish within {self.seconds:g}s; "
            f"exiting with status {self.code}\n"
        )
        with contextlib.suppress(OSError):
            os.write(2, message.encode())
        os._exit(self.code)
