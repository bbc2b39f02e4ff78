"""The connections a PostgreSQL session store keeps for its single-statement reads.

A read from asyncpg's pool pays for the pool's acquire and release (holders,
proxies, timeout contexts) and the store's ``wait_for`` task on every call.  These
connections are kept in a plain list instead: a read pops one, runs one
``fetchrow`` bounded by the statement's own timeout (asyncpg's statement cache on
the connection prepares it once) and puts it back.  Errors are the caller's to map:
asyncpg's and OSError as they come, asyncio.TimeoutError past `timeout`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["ReadConnections", "ReadConnectionsClosedError"]


class ReadConnectionsClosedError(Exception):
    """`ReadConnections.fetchrow` after `ReadConnections.close`."""


class ReadConnections:
    """Up to `size` connections from `connect`, each running one read at a time.

    A read with none idle connects a new one while there are fewer than `size`,
    else waits for one (first come, first served); all of it within `timeout`.  A
    connection whose read failed, timed out or was cancelled may be mid-statement:
    it is closed, never reused, and its place goes to the next waiting read.  One
    the server closed while it was idle is skipped.
    """

    def __init__(self, connect: Callable[[], Awaitable[Any]], size: int, timeout: float) -> None:
        self.size = size
        self.timeout = timeout
        self._connect = connect
        self._idle: list[Any] = []  # last used last
        self._count = 0  # idle, busy and connecting
        # reads waiting for a connection (None: connect one yourself)
        self._waiters: deque[asyncio.Future[Any]] = deque()
        self._closed = False

    @property
    def count(self) -> int:
        """How many connections are open or opening."""
        return self._count

    async def fetchrow(self, sql: str, args: tuple[Any, ...]) -> Any:
        """``conn.fetchrow(sql, *args)`` on a connection of these, within `timeout`."""
        idle = self._idle
        while idle:
            conn = idle.pop()
            if not conn.is_closed():
                return await self._run(conn, sql, args, self.timeout)
            self._count -= 1  # the server ended it while it was idle
        if self._closed:
            raise ReadConnectionsClosedError("the read connections are closed")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        conn = await self._wait(loop) if self._count >= self.size else None
        if conn is None:
            conn = await self._open(deadline - loop.time())
        remaining = deadline - loop.time()
        if remaining <= 0:
            self._put_back(conn)
            raise asyncio.TimeoutError()
        return await self._run(conn, sql, args, remaining)

    async def _wait(self, loop: asyncio.AbstractEventLoop) -> Any:
        waiter: asyncio.Future[Any] = loop.create_future()
        self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(waiter, self.timeout)
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                # handed over just as this read gave up: pass it on
                conn = waiter.result()
                if conn is None:
                    self._give_place()
                else:
                    self._put_back(conn)
            raise

    async def _open(self, timeout: float) -> Any:
        """Connect a new connection, counted from the start."""
        if self._closed:
            self._give_place()
            raise ReadConnectionsClosedError("the read connections are closed")
        self._count += 1
        try:
            return await asyncio.wait_for(self._connect(), timeout)
        except BaseException:
            self._count -= 1
            self._give_place()
            raise

    async def _run(self, conn: Any, sql: str, args: tuple[Any, ...], timeout: float) -> Any:
        try:
            row = await conn.fetchrow(sql, *args, timeout=timeout)
        except BaseException:
            conn.terminate()  # maybe mid-statement: never reused
            self._count -= 1
            self._give_place()
            raise
        self._put_back(conn)
        return row

    def _put_back(self, conn: Any) -> None:
        """Hand `conn` to the first waiting read, or keep it idle."""
        if self._closed:
            conn.terminate()
            self._count -= 1
            self._give_place()
            return
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._idle.append(conn)

    def _give_place(self) -> None:
        """A connection went: the first waiting read may open one instead."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def close(self) -> None:
        """Close the idle connections; busy ones close when their read ends."""
        self._closed = True
        idle, self._idle = self._idle, []
        self._count -= len(idle)
        if idle:
            await asyncio.gather(
                *(conn.close(timeout=self.timeout) for conn in idle), return_exceptions=True
            )
            for conn in idle:
                conn.terminate()  # does nothing to one that closed
        while self._waiters:
            self._give_place()  # they find the connections closed
