"""ReadConnections (the PostgreSQL store's read connections) against fake connections:
reads beyond `size` wait their turn, a read that gives up passes its turn on, a
connection that failed is replaced, and nothing waits past the timeout."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from webframe.sessions.backends.postgresql_readers import (
    ReadConnections,
    ReadConnectionsClosedError,
)


class FakeConnection:
    """Answers ``fetchrow`` with its own number once `gate` is set."""

    def __init__(self, number: int, gate: asyncio.Event) -> None:
        self.number = number
        self.gate = gate
        self.busy = False
        self.closed = False
        self.fail_next = False

    def is_closed(self) -> bool:
        return self.closed

    def terminate(self) -> None:
        self.closed = True

    async def close(self, timeout: float | None = None) -> None:
        self.closed = True

    async def fetchrow(self, sql: str, *args: Any, timeout: float) -> Any:
        assert not self.busy and not self.closed, "one read at a time, never after close"
        self.busy = True
        try:
            await asyncio.wait_for(self.gate.wait(), timeout)
            if self.fail_next:
                raise OSError("connection reset")
            return (self.number, sql, args)
        finally:
            self.busy = False


class Factory:
    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.made: list[FakeConnection] = []
        self.refuse = False

    async def connect(self) -> FakeConnection:
        await asyncio.sleep(0)
        if self.refuse:
            raise ConnectionRefusedError("refused")
        conn = FakeConnection(len(self.made), self.gate)
        self.made.append(conn)
        return conn


def run(main: Any) -> None:
    asyncio.run(asyncio.wait_for(main(), 10))


def test_reads_beyond_size_wait_and_reuse_the_connections() -> None:
    async def main() -> None:
        factory = Factory()
        readers = ReadConnections(factory.connect, 2, timeout=5)
        reads = [asyncio.ensure_future(readers.fetchrow("q", (n,))) for n in range(10)]
        await asyncio.sleep(0.05)
        assert len(factory.made) == 2 and readers.count == 2
        factory.gate.set()
        rows = await asyncio.gather(*reads)
        assert [row[2] for row in rows] == [(n,) for n in range(10)]
        assert {row[0] for row in rows} == {0, 1} and len(factory.made) == 2
        await readers.close()
        assert all(conn.closed for conn in factory.made) and readers.count == 0
        with pytest.raises(ReadConnectionsClosedError):
            await readers.fetchrow("q", ())

    run(main)


def test_a_waiting_read_that_gives_up_passes_its_turn_on() -> None:
    async def main() -> None:
        factory = Factory()
        readers = ReadConnections(factory.connect, 1, timeout=5)
        first = asyncio.ensure_future(readers.fetchrow("q", (1,)))
        await asyncio.sleep(0.01)
        quitter = asyncio.ensure_future(readers.fetchrow("q", (2,)))
        patient = asyncio.ensure_future(readers.fetchrow("q", (3,)))
        await asyncio.sleep(0.01)
        quitter.cancel()
        factory.gate.set()
        assert (await first)[2] == (1,)
        assert (await patient)[2] == (3,)
        with pytest.raises(asyncio.CancelledError):
            await quitter
        assert readers.count == 1 and len(factory.made) == 1

    run(main)


def test_a_failed_connection_is_closed_and_its_place_goes_to_a_waiting_read() -> None:
    async def main() -> None:
        factory = Factory()
        readers = ReadConnections(factory.connect, 1, timeout=5)
        failing = asyncio.ensure_future(readers.fetchrow("q", (1,)))
        await asyncio.sleep(0.01)
        waiting = asyncio.ensure_future(readers.fetchrow("q", (2,)))
        await asyncio.sleep(0.01)
        factory.made[0].fail_next = True
        factory.gate.set()
        with pytest.raises(OSError, match="reset"):
            await failing
        row = await waiting
        assert row[0] == 1 and row[2] == (2,)  # on a new connection
        assert factory.made[0].closed and readers.count == 1

    run(main)


def test_waiting_reads_end_within_the_timeout_and_fail_fast_when_connecting_fails() -> None:
    async def main() -> None:
        factory = Factory()
        readers = ReadConnections(factory.connect, 1, timeout=0.2)
        loop = asyncio.get_running_loop()
        started = loop.time()
        results = await asyncio.gather(
            *(readers.fetchrow("q", (n,)) for n in range(3)), return_exceptions=True
        )
        assert all(isinstance(r, asyncio.TimeoutError) for r in results)
        assert loop.time() - started < 0.2 + 0.15
        assert readers.count == 0  # the timed-out connection was closed
        factory.refuse = True
        started = loop.time()
        results = await asyncio.gather(
            *(readers.fetchrow("q", (n,)) for n in range(5)), return_exceptions=True
        )
        assert all(isinstance(r, ConnectionRefusedError) for r in results)
        assert loop.time() - started < 0.1  # each waiting read tries and fails at once
        assert readers.count == 0

    run(main)
