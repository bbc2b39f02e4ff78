"""Running a coroutine at once, up to its first suspension, and only then in a Task.

Plain asyncio (no Tornado names): :mod:`webframe.server.tornado_impl` uses it to run
a handler's ``_execute`` without a Task when the handler does not suspend.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Coroutine, Generator
from typing import Any

#: asyncio's own bookkeeping of the running task (what ``current_task()`` reads).
_enter_task: Any = getattr(asyncio.tasks, "_enter_task", None)
_leave_task: Any = getattr(asyncio.tasks, "_leave_task", None)
#: Python 3.11: create_task(context=...) and Task.cancelling(), which the fast path needs.
CAN_RUN_EAGERLY = (
    sys.version_info >= (3, 11) and _enter_task is not None and _leave_task is not None
)


def log_failure(future: asyncio.Future[None]) -> None:
    """Done callback: a failure reaches the loop's exception handler (as Tornado's)."""
    if not future.cancelled():
        future.result()


class Resume(Coroutine[Any, Any, None]):
    """The rest of a coroutine after its first suspension, as a Task's coroutine: the
    first step hands the Task what the coroutine is waiting for; every later step, and
    any exception the Task throws (a cancellation, even before the first step), goes to
    the coroutine."""

    __slots__ = ("_cancel", "_coro", "_pending", "_started")

    def __init__(
        self, coro: Coroutine[Any, Any, None], pending: Any, cancel: list[Any] | None
    ) -> None:
        self._coro = coro
        self._pending = pending
        self._cancel = cancel
        self._started = False

    def send(self, value: Any) -> Any:
        if self._started:
            return self._coro.send(value)
        self._started = True
        pending, self._pending = self._pending, None
        if self._cancel is not None:
            # Cancelled before it had a Task: as if cancelled while running in one.
            task = asyncio.current_task()
            if task is not None:
                task.cancel(*self._cancel)
        return pending

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        self._started = True
        self._pending = None
        if val is None and tb is None:
            return self._coro.throw(typ)
        return self._coro.throw(typ, val, tb)  # pragma: no cover - the 3-argument form

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, None, None]:  # pragma: no cover - Task steps it
        raise TypeError("run by a Task, not awaited")


class HandlerTask:
    """What ``asyncio.current_task()`` is in a handler that has not suspended yet.

    It stands for the Task the handler goes on in if it suspends: ``cancel()`` made
    before then cancels that Task as soon as it exists (so the handler gets Tornado's
    500 and ends cancelled); once the Task exists every call goes to it.
    """

    __slots__ = ("_cancel", "_done", "_task")

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._cancel: list[Any] | None = None
        self._done = False

    def took_over(self, task: asyncio.Task[None]) -> None:
        """The handler suspended: ``task`` runs the rest of it."""
        self._task = task

    def ended(self) -> None:
        """The handler ended before it suspended (it never gets a Task)."""
        self._done = True

    @property
    def cancel_args(self) -> list[Any] | None:
        """The arguments of a ``cancel()`` made before the Task existed, else None."""
        return self._cancel

    def cancel(self, msg: Any = None) -> bool:
        """Cancel the handler (at its first suspension, as for a running Task)."""
        if self._task is not None:
            return self._task.cancel(msg)
        if self._done:
            return False
        self._cancel = [msg]
        return True

    def cancelling(self) -> int:
        """Pending cancellation requests (``Task.cancelling``)."""
        if self._task is not None:
            return int(self._task.cancelling())  # type: ignore[attr-defined]
        return 1 if self._cancel is not None else 0

    def uncancel(self) -> int:
        """Take back a cancellation request (``Task.uncancel``; ``asyncio.timeout``)."""
        if self._task is not None:
            return int(self._task.uncancel())  # type: ignore[attr-defined]
        self._cancel = None
        return 0

    def cancelled(self) -> bool:
        """Whether the handler ended cancelled."""
        return self._task is not None and self._task.cancelled()

    def done(self) -> bool:
        """Whether the handler has ended."""
        return self._task.done() if self._task is not None else self._done

    def __getattr__(self, name: str) -> Any:
        task = self._task
        if task is None:
            raise AttributeError(f"{name}: the handler has not suspended, it has no Task yet")
        return getattr(task, name)


def _first_step(
    loop: asyncio.AbstractEventLoop, stand_in: HandlerTask, coro: Coroutine[Any, Any, None]
) -> Any:
    _enter_task(loop, stand_in)
    try:
        return coro.send(None)
    finally:
        _leave_task(loop, stand_in)


def run_eagerly(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` now, up to its first suspension, then hand the rest to a Task.

    As in a Task of its own, it runs in a copy of the context (a ContextVar it sets
    ends with it) and ``current_task()`` is its own (a :class:`HandlerTask`, the Task
    once it suspends). An exception escaping it ends in a future whose failure the
    loop logs; ``KeyboardInterrupt`` and ``SystemExit`` propagate.
    """
    context = contextvars.copy_context()
    stand_in = HandlerTask()
    try:
        pending = context.run(_first_step, loop, stand_in, coro)
    except StopIteration:
        stand_in.ended()
        return
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        stand_in.ended()
        failed: asyncio.Future[None] = loop.create_future()
        failed.set_exception(exc)
        failed.add_done_callback(log_failure)
        return
    resume = Resume(coro, pending, stand_in.cancel_args)
    task = loop.create_task(resume, context=context)  # type: ignore[call-arg]
    stand_in.took_over(task)
    task.add_done_callback(log_failure)
