"""The connection to an S3-compatible service: one botocore client, awaited.

botocore's own synchronous client, its calls run in a pool of worker threads as
large as its connection pool (:mod:`webframe.storage.s3_threads`): the client
the AWS SDK for Python itself is built on, with no second HTTP stack. Failures
come out as the framework's errors (503 down/bucket missing/credentials, 404,
416). A client that met a connection failure is not handed out again, and
multipart uploads an outage kept from being aborted are aborted once the
service answers again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
from typing import Any, Final

from webframe.storage.base import (
    ObjectNotFoundError,
    RangeNotSatisfiableError,
    StorageUnavailableError,
    in_background,
)

try:
    import botocore.config
    import botocore.exceptions
    import botocore.session
    import urllib3.exceptions

    from webframe.storage.s3_models import release_freed_memory, slim_loader
    from webframe.storage.s3_threads import AsyncS3, in_thread, stop_retries_once_abandoned
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("S3 storage needs botocore: pip install 'webframe[s3]'") from exc

__all__ = ["CONNECTION_ERRORS", "S3Client", "close_quietly", "in_background"]

log = logging.getLogger("webframe.storage")

#: at most this many unabortable uploads are remembered for a retry.
MAX_ORPHANS: Final = 10_000
_NOT_FOUND: Final = frozenset({"NoSuchKey", "404", "NotFound"})
_NO_BUCKET: Final = frozenset({"NoSuchBucket"})
_DENIED: Final = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "Forbidden"}
)
_NO_UPLOAD: Final = frozenset({"NoSuchUpload"})

#: failures to reach the service (as opposed to answers from it).
CONNECTION_ERRORS: Final = (
    botocore.exceptions.ConnectionError,
    botocore.exceptions.HTTPClientError,
    botocore.exceptions.IncompleteReadError,  # a body cut short
    urllib3.exceptions.HTTPError,
    OSError,
    asyncio.TimeoutError,
)


#: worker threads (and pooled connections) per client: as many calls at once.
MAX_POOL_CONNECTIONS: Final = 10


async def close_quietly(client: Any) -> None:
    """Close a botocore client's connections; a client that cannot even close is let go."""
    with contextlib.suppress(Exception):
        client.close()


def _error_code(exc: botocore.exceptions.ClientError) -> tuple[str, int]:
    error = exc.response.get("Error", {})
    meta = exc.response.get("ResponseMetadata", {})
    return str(error.get("Code", "")), int(meta.get("HTTPStatusCode", 0) or 0)


class _Use:
    """``async with connection.use(...) as client``: errors leave translated."""

    def __init__(self, connection: S3Client, action: str, key: str | None) -> None:
        self._connection = connection
        self._action = action
        self._key = key
        self._client: AsyncS3 | None = None

    async def __aenter__(self) -> AsyncS3:
        self._client = await self._connection.get(self._action)
        return self._client

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            self._connection.retry_orphans()
            return
        if not isinstance(exc, Exception):
            return
        if isinstance(exc, CONNECTION_ERRORS):
            # The pool may hold dead sockets: the next call starts with a new client.
            self._connection.retire(self._client)
        error = self._connection.translate(exc, self._action, self._key)
        if error is not exc:
            raise error from exc


class S3Client:
    """Hands out a live botocore client (awaited) for one bucket; see the module docstring."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None,
        region: str,
        access_key: str | None,
        secret_key: str | None,
        session_token: str | None,
        addressing_style: str | None,
        max_attempts: int,
        connect_timeout: float,
        read_timeout: float,
    ) -> None:
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self.region = region
        self._credentials = (access_key, secret_key, session_token)
        self._config = botocore.config.Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": max_attempts, "mode": "standard"},
            max_pool_connections=MAX_POOL_CONNECTIONS,
            # A custom endpoint (MinIO, SeaweedFS, a proxy) rarely has bucket DNS names.
            s3={"addressing_style": addressing_style or ("path" if endpoint_url else "auto")},
            signature_version="s3v4",
            # SHA-256 is computed by the sink; no second checksum over every byte.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self.session = botocore.session.get_session()
        # Less of botocore's data kept for the process's lifetime (s3_models).
        self.session.register_component(
            "data_loader", slim_loader(self.session.get_config_variable("data_path"))
        )
        #: the client handed out now (None before the first call or after a failure).
        self.current: AsyncS3 | None = None
        #: the threads its calls run in (made with the first client, ended by close()).
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = asyncio.Lock()
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        #: botocore clients that met a failure, waiting to be closed: client -> timer.
        self.retired: dict[Any, asyncio.TimerHandle] = {}
        self.retire_after = read_timeout + connect_timeout
        #: multipart uploads an outage kept us from aborting: upload ID -> object name.
        self.orphans: dict[str, str] = {}
        self._orphan_task: asyncio.Future[Any] | None = None

    @property
    def where(self) -> str:
        return self.endpoint_url or "AWS S3"

    def use(self, action: str, key: str | None = None) -> _Use:
        """``async with connection.use("reading", key) as client``; errors come out translated."""
        return _Use(self, action, key)

    async def get(self, action: str) -> AsyncS3:
        """The client, made on first use (in a worker thread: botocore reads its data)."""
        current = self.current
        if current is not None:
            return current
        loop = asyncio.get_running_loop()
        if self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop  # a lock belongs to its loop
        async with self._lock:  # concurrent first calls share one new client
            if self.current is not None:
                return self.current
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    MAX_POOL_CONNECTIONS, thread_name_prefix="webframe-s3"
                )
            try:
                raw = await in_thread(self._executor, self._create)
            except Exception as exc:
                raise self.translate(exc, action, None) from exc
            self.current = AsyncS3(raw, self._executor)
            return self.current

    def _create(self) -> Any:
        access_key, secret_key, token = self._credentials
        raw = self.session.create_client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            aws_session_token=token,
            config=self._config,
        )
        raw.meta.events.register_first("needs-retry.s3", stop_retries_once_abandoned)
        release_freed_memory()  # what parsing botocore's data left behind
        return raw

    def retire(self, client: AsyncS3 | None) -> None:
        """Stop handing out ``client`` (it met a connection failure); close it a bit later.

        Not at once: other requests may still be using it. They finish or time out
        within ``read_timeout``, then its connections are closed.
        """
        if client is None or client is not self.current:
            return  # already retired by a request that failed at the same time
        self.current = None
        loop = asyncio.get_running_loop()
        raw = client.raw
        self.retired[raw] = loop.call_later(self.retire_after, self._close_retired, raw)

    def _close_retired(self, raw: Any) -> None:
        self.retired.pop(raw, None)
        in_background(close_quietly(raw))

    async def close(self) -> None:
        """Abort what is left to abort (if the service answers), then close every client."""
        if self.orphans:
            if self._orphan_task is not None:
                await asyncio.wait([self._orphan_task])
            for upload_id, name in list(self.orphans.items()):
                if not await self.abort_upload(name, upload_id):
                    break  # still down: the bucket's lifecycle rule is the last resort
        retired, self.retired = self.retired, {}
        current, self.current = self.current, None
        for old, handle in retired.items():
            handle.cancel()
            await close_quietly(old)
        if current is not None:
            await close_quietly(current.raw)
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False)  # idle threads end; a new client makes new ones

    def translate(self, exc: Exception, action: str, key: str | None) -> Exception:
        """The framework error for a botocore/urllib3 failure while ``action`` on ``key``."""
        where = self.where
        if isinstance(exc, botocore.exceptions.ClientError):
            code, status = _error_code(exc)
            if code in _NO_BUCKET:
                return self.no_bucket()
            if code in _NOT_FOUND or (status == 404 and code not in _NO_UPLOAD):
                return ObjectNotFoundError(f"No file is stored under {key!r}.")
            if code == "InvalidRange" or status == 416:
                return RangeNotSatisfiableError(
                    f"The requested byte range is outside the file {key!r}."
                )
            if code in _DENIED or status == 403:
                return StorageUnavailableError(
                    f"The file storage at {where} refused our credentials while {action} "
                    f"({code}); check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY."
                )
            return StorageUnavailableError(
                f"The file storage at {where} failed while {action} ({code or status}); "
                "try again shortly."
            )
        if isinstance(exc, botocore.exceptions.NoCredentialsError):
            return StorageUnavailableError(
                "No credentials for the file storage: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY."
            )
        if isinstance(exc, CONNECTION_ERRORS):
            return StorageUnavailableError(
                f"The file storage at {where} cannot be reached while {action}; try again shortly."
            )
        return exc

    def no_bucket(self) -> StorageUnavailableError:
        return StorageUnavailableError(
            f"The bucket {self.bucket!r} does not exist at {self.where}; create it or fix "
            "the upload_storage setting."
        )

    async def check_bucket(self) -> None:
        """Raise 503 if the service is unreachable or the bucket itself is missing."""
        try:
            async with self.use("checking the bucket") as client:
                await client.head_bucket(Bucket=self.bucket)
        except ObjectNotFoundError:
            raise self.no_bucket() from None

    async def abort_upload(self, name: str, upload_id: str) -> bool:
        """Abort one multipart upload; False (logged, remembered) if the service is unreachable.

        Uploads that could not be aborted are retried after the next request that
        reaches the service, so a short outage leaves no orphan parts behind.
        """
        try:
            async with self.use("aborting an upload", name) as client:
                await client.abort_multipart_upload(
                    Bucket=self.bucket, Key=name, UploadId=upload_id
                )
        except ObjectNotFoundError:
            pass  # already gone
        except Exception as exc:
            if len(self.orphans) < MAX_ORPHANS:
                self.orphans[upload_id] = name
            log.warning(
                "could not abort multipart upload %s of %s in %s (%s); retrying once the "
                "storage answers again",
                upload_id,
                name,
                self.bucket,
                exc,
            )
            return False
        self.orphans.pop(upload_id, None)
        return True

    def retry_orphans(self) -> None:
        """After a request that reached the service: abort what an outage left open."""
        if not self.orphans or self._orphan_task is not None:
            return

        async def retry() -> None:
            try:
                for upload_id, name in list(self.orphans.items()):
                    if not await self.abort_upload(name, upload_id):
                        break  # down again: the next success retries
            finally:
                self._orphan_task = None

        self._orphan_task = in_background(retry())
