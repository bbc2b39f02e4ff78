"""botocore's synchronous S3 client, awaited: every call runs in a worker thread.

The boto3/s3transfer way of doing S3 I/O concurrently, with an ``await`` on top:
:class:`AsyncS3` wraps a botocore client so that ``await client.put_object(...)``
runs the call in a :class:`~concurrent.futures.ThreadPoolExecutor` as large as the
client's connection pool, and the event loop goes on meanwhile. Streams stay
streams: a GetObject body is read in bounded chunks, each ``read(n)`` in the pool
(:class:`AsyncBody`); paginators fetch one page per pool call
(:class:`AsyncPaginator`); a request body given as :class:`PartBody` is read from
its file by the thread that sends it, a slice at a time.

Cancellation. A thread cannot be stopped, so a call whose awaiting task is
cancelled (client gone, 413, shutdown) returns -- raising ``CancelledError`` --
only once its thread is done with it: whatever the caller does next (abort the
multipart upload, close the part's file) comes after the request has ended. A
:class:`PartBody` being sent is told to stop (:meth:`PartBody.abandon`): its next
read raises, the request fails half-sent, and botocore does not retry it, so
that wait is short and the service never gets the rest of the part. Besides,
``abort_multipart_upload`` first waits for every call still running on the same
upload ID, whichever task made it, so that no part lands after the abort.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
from collections.abc import AsyncIterator, Callable
from typing import Any, BinaryIO, Final, TypeVar

__all__ = [
    "AsyncBody",
    "AsyncPaginator",
    "AsyncS3",
    "PartBody",
    "TransferAbandoned",
    "in_thread",
    "stop_retries_once_abandoned",
]

T = TypeVar("T")
_DONE: Final = object()


class TransferAbandoned(Exception):
    """A request body was abandoned (its caller was cancelled) while being sent."""


async def _settle(future: asyncio.Future[Any]) -> None:
    """Wait until ``future`` is done, whatever cancellations arrive meanwhile."""
    while not future.done():
        try:
            await asyncio.wait([future])
        except asyncio.CancelledError:
            continue  # the caller's cancellation is raised by in_thread once this ends


async def in_thread(
    executor: concurrent.futures.Executor,
    function: Callable[..., T],
    *args: Any,
    body: Any = None,
    **kwargs: Any,
) -> T:
    """``function(*args, **kwargs)`` in ``executor``; see the module docstring on cancels.

    ``body``: the call's request body, abandoned if the caller is cancelled.
    """
    work = executor.submit(function, *args, **kwargs)
    future = asyncio.wrap_future(work)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        if not work.cancel():  # already running: it ends before the caller goes on
            if isinstance(body, PartBody):
                body.abandon()
            await _settle(future)
        if future.done() and not future.cancelled():
            future.exception()  # retrieved: the caller was cancelled, not failed
        raise


def stop_retries_once_abandoned(request_dict: dict[str, Any], **kwargs: Any) -> None:
    """botocore ``needs-retry`` hook: a request whose body was abandoned is not sent again.

    (botocore wraps what the body's ``read`` raised in a retryable HTTPClientError.)
    """
    body = request_dict.get("body")
    if isinstance(body, PartBody) and body.abandoned:
        raise TransferAbandoned("the request's body was abandoned")


class AsyncS3:
    """A botocore S3 client whose operations are awaited; see the module docstring.

    ``client.<operation>(**params)`` gives an awaitable, as with aiobotocore. The
    botocore client itself is :attr:`raw`.
    """

    def __init__(self, raw: Any, executor: concurrent.futures.Executor) -> None:
        self.raw = raw
        self.executor = executor
        #: calls running on a multipart upload, by its UploadId.
        self._running: dict[str, set[asyncio.Future[Any]]] = {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        method = getattr(self.raw, name)

        async def operation(*args: Any, **params: Any) -> Any:
            return await self.call(name, method, *args, **params)

        return operation

    async def call(self, name: str, method: Callable[..., Any], *args: Any, **params: Any) -> Any:
        """Run ``method`` (the botocore operation ``name``) in the pool."""
        upload_id = params.get("UploadId")
        body = params.get("Body")
        if upload_id is None:
            answer = await in_thread(self.executor, method, *args, body=body, **params)
        else:
            if name == "abort_multipart_upload":
                await self.settled(upload_id)
            answer = await self._tracked(upload_id, method, *args, **params)
        if name == "get_object" and "Body" in answer:
            answer["Body"] = AsyncBody(answer["Body"], self.executor)
        return answer

    async def _tracked(
        self, upload_id: str, method: Callable[..., Any], *args: Any, **params: Any
    ) -> Any:
        done = asyncio.get_running_loop().create_future()
        running = self._running.setdefault(upload_id, set())
        running.add(done)
        try:
            return await in_thread(self.executor, method, *args, body=params.get("Body"), **params)
        finally:
            # in_thread returns (or raises) only once the thread is done with the call.
            done.set_result(None)
            running.discard(done)
            if not running:
                self._running.pop(upload_id, None)

    async def settled(self, upload_id: str) -> None:
        """Wait until no call on the multipart upload ``upload_id`` is running."""
        while running := self._running.get(upload_id):
            await _settle(next(iter(running)))

    def get_paginator(self, name: str) -> AsyncPaginator:
        return AsyncPaginator(self.raw.get_paginator(name), self.executor)


class AsyncBody:
    """A GetObject body read in the pool, ``n`` bytes at a time (never more)."""

    def __init__(self, raw: Any, executor: concurrent.futures.Executor) -> None:
        self.raw = raw
        self._executor = executor

    async def read(self, size: int | None = None) -> bytes:
        """Up to ``size`` bytes (all that is left if None: only for small objects)."""
        data: bytes = await in_thread(self._executor, self.raw.read, size)
        return data

    def close(self) -> None:
        """Release the connection (dropped, if the body was not read to its end)."""
        self.raw.close()

    async def __aenter__(self) -> AsyncBody:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        self.close()


class AsyncPaginator:
    """A botocore paginator whose pages are fetched in the pool, one at a time."""

    def __init__(self, raw: Any, executor: concurrent.futures.Executor) -> None:
        self.raw = raw
        self._executor = executor

    async def paginate(self, **params: Any) -> AsyncIterator[dict[str, Any]]:
        pages = iter(self.raw.paginate(**params))
        while True:
            page = await in_thread(self._executor, next, pages, _DONE)
            if page is _DONE:
                return
            yield page


class PartBody:
    """The first ``length`` bytes of a part's file, as the sending thread reads them.

    botocore wants ``read``/``seek``/``tell`` (the length, the payload's SHA-256,
    a rewind before a retry); urllib3 then reads it block by block while sending.
    No read returns more than ``SLICE`` bytes, so botocore's hashing loop does not
    allocate 1 MiB at a time. The file stays the caller's (``close`` does nothing).
    Once :meth:`abandon` is called, reads raise :class:`TransferAbandoned`.
    """

    SLICE: Final = 256 * 1024

    def __init__(self, file: BinaryIO, length: int) -> None:
        self._file = file
        self._length = length
        self._position = 0
        self.abandoned = False

    def abandon(self) -> None:
        """Make the sending thread's next read fail (its caller was cancelled)."""
        self.abandoned = True

    def read(self, size: int | None = -1) -> bytes:
        if self.abandoned:
            raise TransferAbandoned("the request's body was abandoned")
        left = self._length - self._position
        if size is None or size < 0:
            size = left
        self._file.seek(self._position)
        data = self._file.read(min(size, left, self.SLICE))
        self._position += len(data)
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._length}[whence]
        self._position = min(max(base + offset, 0), self._length)
        return self._position

    def tell(self) -> int:
        return self._position

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        """Nothing to do: the caller owns the file."""
