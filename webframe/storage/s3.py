"""S3-compatible storage on aiobotocore: multipart uploads as bytes arrive, ranged reads.

A sink holds at most one part in memory (``part_size``, 8 MiB by default): an
object smaller than one part is sent with a single PutObject when committed;
a larger one becomes a multipart upload whose parts leave as they fill, and
which is aborted if the sink is aborted, fails or is cancelled. A process
killed mid-upload cannot abort anything: give the bucket a lifecycle rule
(AbortIncompleteMultipartUpload) for that case.

Needs ``pip install 'webframe[s3]'``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import re
from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timezone
from typing import Any, Final

from webframe.errors import ConfigurationError
from webframe.storage.base import (
    READ_CHUNK,
    ObjectInfo,
    ObjectNotFoundError,
    ObjectReader,
    RangeNotSatisfiableError,
    Sink,
    Storage,
    StorageUnavailableError,
    check_key,
    check_range,
)

try:
    import aiohttp
    import botocore.exceptions
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("S3 storage needs aiobotocore: pip install 'webframe[s3]'") from exc

__all__ = ["S3Sink", "S3Storage", "parse_options"]

log = logging.getLogger("webframe.storage")

MiB: Final = 1024 * 1024
#: S3 refuses parts below 5 MiB (except the last) and above 5 GiB.
MIN_PART_SIZE: Final = 5 * MiB
MAX_PART_SIZE: Final = 5 * 1024 * MiB
DEFAULT_PART_SIZE: Final = 8 * MiB
#: CopyObject copies at most 5 GiB; larger objects are copied part by part.
COPY_OBJECT_LIMIT: Final = 5 * 1024 * MiB
#: at most this many unabortable uploads are remembered for a retry.
MAX_ORPHANS: Final = 10_000
_META_SHA256: Final = "sha256"
_TAG_SHA256: Final = "webframe-sha256"
_BUCKET: Final = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP_LIKE: Final = re.compile(r"\d+\.\d+\.\d+\.\d+")
_SIZE: Final = re.compile(r"(\d+)\s*(|b|k|kb|kib|m|mb|mib|g|gb|gib)", re.IGNORECASE)
_UNIT: Final = {"": 1, "b": 1, "k": 1024, "m": MiB, "g": 1024 * MiB}
_NOT_FOUND: Final = frozenset({"NoSuchKey", "404", "NotFound"})
_NO_BUCKET: Final = frozenset({"NoSuchBucket"})
_DENIED: Final = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "Forbidden"}
)
_NO_UPLOAD: Final = frozenset({"NoSuchUpload"})

_CONNECTION_ERRORS: Final = (
    botocore.exceptions.ConnectionError,
    botocore.exceptions.HTTPClientError,
    aiohttp.ClientError,
    OSError,
    asyncio.TimeoutError,
)

# Strong references to abort tasks started for sinks dropped without an abort.
_background: set[asyncio.Future[Any]] = set()


def _parse_size(value: str | int, setting: str, name: str) -> int:
    if isinstance(value, int):
        return value
    match = _SIZE.fullmatch(value.strip())
    if match is None:
        raise ConfigurationError(setting, f"{name}={value!r} is not a size like 8MiB or 16777216")
    return int(match.group(1)) * _UNIT[match.group(2)[:1].lower()]


def parse_options(query: Mapping[str, str], setting: str = "upload_storage") -> dict[str, Any]:
    """The :class:`S3Storage` keyword arguments given as URL query parameters."""
    options: dict[str, Any] = {}
    for name, value in query.items():
        if name == "part_size":
            options[name] = _parse_size(value, setting, name)
        elif name in ("endpoint_url", "region", "addressing_style"):
            options[name] = value
        elif name == "max_attempts":
            if not value.isdigit():
                raise ConfigurationError(setting, f"max_attempts={value!r} is not a number")
            options[name] = int(value)
        elif name in ("connect_timeout", "read_timeout"):
            try:
                options[name] = float(value)
            except ValueError:
                raise ConfigurationError(setting, f"{name}={value!r} is not a number") from None
        else:
            raise ConfigurationError(
                setting,
                f"unknown parameter {name!r}; known: part_size, endpoint_url, region, "
                "addressing_style, max_attempts, connect_timeout, read_timeout",
            )
    return options


async def _close_quietly(cm: Any) -> None:
    """Close a client's connections; a client that cannot even close is let go."""
    with contextlib.suppress(Exception):
        await cm.__aexit__(None, None, None)


def _error_code(exc: botocore.exceptions.ClientError) -> tuple[str, int]:
    error = exc.response.get("Error", {})
    meta = exc.response.get("ResponseMetadata", {})
    return str(error.get("Code", "")), int(meta.get("HTTPStatusCode", 0) or 0)


def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return datetime.now(timezone.utc)


class S3Sink(Sink):
    """Buffers one part; sends PutObject for a small object, else a multipart upload."""

    def __init__(self, storage: S3Storage, key: str, content_type: str) -> None:
        super().__init__(key, content_type)
        self._storage = storage
        self._name = storage.object_name(key)
        self._part_size = storage.part_size
        self._buffer = io.BytesIO()
        self._filled = 0
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    @property
    def upload_id(self) -> str | None:
        """The multipart upload's ID once one was started (for tests and logs)."""
        return self._upload_id

    async def _write(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        while view:
            taken = view[: self._part_size - self._filled]
            self._buffer.write(taken)
            self._filled += len(taken)
            view = view[len(taken) :]
            if self._filled == self._part_size:
                await self._send_part()

    async def _send_part(self) -> None:
        """Upload the buffered bytes as the next part, then reuse the buffer."""
        storage = self._storage
        async with storage.client("uploading", self.key) as client:
            if self._upload_id is None:
                started = await client.create_multipart_upload(
                    Bucket=storage.bucket, Key=self._name, ContentType=self.content_type
                )
                self._upload_id = str(started["UploadId"])
            number = len(self._parts) + 1
            answer = await client.upload_part(
                Bucket=storage.bucket,
                Key=self._name,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=self._body(),
            )
        self._parts.append({"ETag": answer["ETag"], "PartNumber": number})
        self._buffer = io.BytesIO()
        self._filled = 0

    def _body(self) -> io.BytesIO:
        """The buffered part as a request body, rewound.

        A file object rather than bytes: aiohttp sends a BytesIO in 256 KiB slices,
        where a bytes body is first sliced and then joined to the headers -- two
        more whole copies of the part (measured: 28 MiB peak for 8 MiB parts).
        """
        self._buffer.seek(0)
        return self._buffer

    async def _commit(self) -> ObjectInfo:
        storage = self._storage
        digest = self.sha256
        if self._upload_id is None:
            async with storage.client("uploading", self.key) as client:
                answer = await client.put_object(
                    Bucket=storage.bucket,
                    Key=self._name,
                    Body=self._body(),
                    ContentType=self.content_type,
                    Metadata={_META_SHA256: digest},
                )
        else:
            if self._filled:
                await self._send_part()
            async with storage.client("uploading", self.key) as client:
                answer = await client.complete_multipart_upload(
                    Bucket=storage.bucket,
                    Key=self._name,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},
                )
            self._upload_id = None  # complete: nothing left to abort
            await self._tag_digest(digest)
        self._release()
        # The object is published: what follows must not turn it into a failure.
        try:
            info = await storage.stat(self.key)
        except StorageUnavailableError:
            info = ObjectInfo(
                key=self.key,
                size=self.size,
                etag=str(answer.get("ETag", "")).strip('"'),
                content_type=self.content_type,
                modified=datetime.now(timezone.utc),
            )
        return ObjectInfo(
            key=info.key,
            size=info.size,
            etag=info.etag,
            content_type=info.content_type,
            modified=info.modified,
            sha256=digest,
        )

    async def _tag_digest(self, digest: str) -> None:
        """Record the SHA-256 of a multipart object (known only at the end) as a tag.

        Best effort: a service without tagging still gets the object, whose stat
        then reports the digest as unknown.
        """
        storage = self._storage
        try:
            async with storage.client("tagging", self.key) as client:
                await client.put_object_tagging(
                    Bucket=storage.bucket,
                    Key=self._name,
                    Tagging={"TagSet": [{"Key": _TAG_SHA256, "Value": digest}]},
                )
        except Exception as exc:
            log.warning("could not tag %s with its SHA-256: %s", self._name, exc)

    async def _abort(self) -> None:
        self._release()
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is None:
            return
        # Shielded: a second cancellation of the caller must not leave the parts behind.
        task = asyncio.ensure_future(self._storage.abort_upload(self._name, upload_id))
        _background.add(task)
        task.add_done_callback(_background.discard)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)

    def _release(self) -> None:
        self._buffer = io.BytesIO()
        self._filled = 0

    def __del__(self) -> None:
        # Dropped while open (never committed nor aborted): abort on the loop if one runs.
        upload_id = getattr(self, "_upload_id", None)
        if getattr(self, "_state", None) != "open" or upload_id is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            log.warning("multipart upload %s of %s was abandoned", upload_id, self._name)
            return
        task = loop.create_task(self._storage.abort_upload(self._name, upload_id))
        _background.add(task)
        task.add_done_callback(_background.discard)


class S3Reader(ObjectReader):
    """Streams the body of one GetObject answer."""

    def __init__(self, body: Any, info: ObjectInfo, start: int, end: int, key: str) -> None:
        super().__init__(info, start, end)
        self._body = body
        self._key = key

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._body is None:
            return
        try:
            remaining = self.length
            while remaining > 0:
                try:
                    chunk = await self._body.read(min(READ_CHUNK, remaining))
                except _CONNECTION_ERRORS as exc:
                    raise StorageUnavailableError(
                        f"The file storage stopped answering while {self._key!r} was read."
                    ) from exc
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        if self._body is not None:
            body, self._body = self._body, None
            body.close()


class _ClientContext:
    """``async with storage.client(...)``: a live client; storage errors become 4xx/5xx."""

    def __init__(self, storage: S3Storage, action: str, key: str | None) -> None:
        self._storage = storage
        self._action = action
        self._key = key
        self._client: Any = None

    async def __aenter__(self) -> Any:
        self._client = await self._storage._get_client(self._action)
        return self._client

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            self._storage._retry_orphans()
            return
        if not isinstance(exc, Exception):
            return
        if isinstance(exc, _CONNECTION_ERRORS):
            # The pool may hold dead sockets: the next call starts with a new client.
            self._storage._retire_client(self._client)
        error = self._storage.translate(exc, self._action, self._key)
        if error is not exc:
            raise error from exc


class S3Storage(Storage):
    """Objects in one bucket of an S3-compatible service, under an optional key prefix."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        session_token: str | None = None,
        part_size: int = DEFAULT_PART_SIZE,
        addressing_style: str | None = None,
        max_attempts: int = 3,
        connect_timeout: float = 3.0,
        read_timeout: float = 30.0,
        setting: str = "upload_storage",
    ) -> None:
        if not _BUCKET.fullmatch(bucket) or ".." in bucket or _IP_LIKE.fullmatch(bucket):
            raise ConfigurationError(
                setting,
                f"{bucket!r} is not a valid bucket name (3-63 lowercase letters, digits, "
                "'-' and '.', starting and ending with a letter or digit)",
            )
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise ConfigurationError(
                setting, f"part_size={part_size} must be between 5 MiB and 5 GiB"
            )
        if (access_key is None) != (secret_key is None):
            raise ConfigurationError(
                setting, "set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither"
            )
        if addressing_style not in (None, "auto", "path", "virtual"):
            raise ConfigurationError(setting, "addressing_style must be auto, path or virtual")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.part_size = part_size
        self.endpoint_url = endpoint_url
        self.region = region or "us-east-1"
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.copy_object_limit = COPY_OBJECT_LIMIT
        self._credentials = (access_key, secret_key, session_token)
        self._config = AioConfig(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": max_attempts, "mode": "standard"},
            # A custom endpoint (MinIO, SeaweedFS, a proxy) rarely has bucket DNS names.
            s3={"addressing_style": addressing_style or ("path" if endpoint_url else "auto")},
            signature_version="s3v4",
            # SHA-256 is computed by the sink; no second checksum over every byte.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self._session = get_session()
        self._client: Any = None
        self._client_cm: Any = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._lock = asyncio.Lock()
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self._retired: dict[Any, asyncio.TimerHandle] = {}
        self._retire_after = read_timeout + connect_timeout
        #: multipart uploads an outage kept us from aborting: upload ID -> object name.
        self._orphans: dict[str, str] = {}
        self._orphan_task: asyncio.Future[None] | None = None

    # -- the client ----------------------------------------------------------

    def client(self, action: str, key: str | None = None) -> _ClientContext:
        """``async with storage.client("reading", key) as c``: errors come out translated."""
        return _ClientContext(self, action, key)

    async def _get_client(self, action: str) -> Any:
        loop = asyncio.get_running_loop()
        if self._client is not None and self._client_loop is loop:
            return self._client
        if self._lock_loop is not loop:
            # A client belongs to the loop it was made on (aiohttp); so does the lock.
            self._client = self._client_cm = None
            self._lock, self._lock_loop = asyncio.Lock(), loop
        async with self._lock:  # concurrent first calls share one new client
            if self._client is not None and self._client_loop is loop:
                return self._client
            access_key, secret_key, token = self._credentials
            cm = self._session.create_client(
                "s3",
                endpoint_url=self.endpoint_url,
                region_name=self.region,
                aws_access_key_id=access_key,
                aws_secret_access_key=secret_key,
                aws_session_token=token,
                config=self._config,
            )
            try:
                client = await cm.__aenter__()
            except Exception as exc:
                raise self.translate(exc, action, None) from exc
            self._client, self._client_cm, self._client_loop = client, cm, loop
            return client

    def _retire_client(self, client: Any) -> None:
        """Stop handing out ``client`` (it met a connection failure); close it a bit later.

        Not at once: other requests may still be using it. They finish or time out
        within ``read_timeout``, then its connections are closed.
        """
        if client is None or client is not self._client:
            return  # already retired by a request that failed at the same time
        cm, self._client, self._client_cm = self._client_cm, None, None
        loop = asyncio.get_running_loop()
        self._retired[cm] = loop.call_later(self._retire_after, self._close_retired, cm)

    def _close_retired(self, cm: Any) -> None:
        self._retired.pop(cm, None)
        task = asyncio.ensure_future(_close_quietly(cm))
        _background.add(task)
        task.add_done_callback(_background.discard)

    async def close(self) -> None:
        if self._orphans and self._client_loop is asyncio.get_running_loop():
            if self._orphan_task is not None:
                await asyncio.wait([self._orphan_task])
            for upload_id, name in list(self._orphans.items()):
                if not await self.abort_upload(name, upload_id):
                    break  # still down: the bucket's lifecycle rule is the last resort
        retired, self._retired = self._retired, {}
        cm, self._client, self._client_cm = self._client_cm, None, None
        if self._client_loop is asyncio.get_running_loop():
            for old, handle in retired.items():
                handle.cancel()
                await _close_quietly(old)
            if cm is not None:
                await _close_quietly(cm)
        self._client_loop = None

    def translate(self, exc: Exception, action: str, key: str | None) -> Exception:
        """The framework error for a botocore/aiohttp failure while ``action`` on ``key``."""
        where = self.endpoint_url or "AWS S3"
        if isinstance(exc, botocore.exceptions.ClientError):
            code, status = _error_code(exc)
            if code in _NO_BUCKET:
                return StorageUnavailableError(
                    f"The bucket {self.bucket!r} does not exist at {where}; create it or fix "
                    "the upload_storage setting."
                )
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
        if isinstance(exc, _CONNECTION_ERRORS):
            return StorageUnavailableError(
                f"The file storage at {where} cannot be reached while {action}; try again shortly."
            )
        return exc

    # -- keys ----------------------------------------------------------------

    def object_name(self, key: str) -> str:
        """The S3 key that holds ``key`` (the prefix, then the validated key)."""
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _info(
        self, key: str, answer: Mapping[str, Any], size: int, sha256: str | None
    ) -> ObjectInfo:
        return ObjectInfo(
            key=key,
            size=size,
            etag=str(answer.get("ETag", "")).strip('"'),
            content_type=str(answer.get("ContentType") or "application/octet-stream"),
            modified=_parse_time(answer.get("LastModified")),
            sha256=sha256,
        )

    async def _sha256(self, client: Any, name: str, answer: Mapping[str, Any]) -> str | None:
        metadata = answer.get("Metadata") or {}
        if _META_SHA256 in metadata:
            return str(metadata[_META_SHA256])
        if answer.get("TagCount", 1) == 0:
            return None
        try:
            tags = await client.get_object_tagging(Bucket=self.bucket, Key=name)
        except botocore.exceptions.ClientError:
            return None  # tagging not allowed or not supported: the digest is just unknown
        for tag in tags.get("TagSet", []):
            if tag.get("Key") == _TAG_SHA256:
                return str(tag.get("Value"))
        return None

    # -- the interface -------------------------------------------------------

    async def open_sink(
        self, key: str, *, content_type: str, size_hint: int | None = None
    ) -> S3Sink:
        check_key(key)
        return S3Sink(self, key, content_type)

    async def open_read(self, key: str, start: int = 0, end: int | None = None) -> ObjectReader:
        name = self.object_name(key)
        if start < 0 or (end is not None and end <= start):
            info = await self.stat(key)  # empty or inverted range: no body to fetch
            first, stop = check_range(start, end, info.size)
            return _EmptyReader(info, first, stop)
        extra = {}
        if start or end is not None:
            extra["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        async with self.client("reading", key) as client:
            answer = await client.get_object(Bucket=self.bucket, Key=name, **extra)
            try:
                size = _total_size(answer)
                sha256 = await self._sha256(client, name, answer)
            except BaseException:
                answer["Body"].close()
                raise
        info = self._info(key, answer, size, sha256)
        first = start
        stop = size if end is None else min(end, size)
        return S3Reader(answer["Body"], info, first, stop, key)

    async def stat(self, key: str) -> ObjectInfo:
        name = self.object_name(key)
        try:
            async with self.client("reading", key) as client:
                answer = await client.head_object(Bucket=self.bucket, Key=name)
                sha256 = await self._sha256(client, name, answer)
        except ObjectNotFoundError:
            # HEAD answers a bare 404 for a missing bucket too: tell the two apart.
            await self._check_bucket()
            raise
        return self._info(key, answer, int(answer.get("ContentLength", 0)), sha256)

    async def check(self) -> None:
        await self._check_bucket()

    async def _check_bucket(self) -> None:
        """Raise 503 if the bucket itself is missing."""
        try:
            async with self.client("checking the bucket", None) as client:
                await client.head_bucket(Bucket=self.bucket)
        except ObjectNotFoundError:
            raise StorageUnavailableError(
                f"The bucket {self.bucket!r} does not exist at "
                f"{self.endpoint_url or 'AWS S3'}; create it or fix the upload_storage setting."
            ) from None

    async def delete(self, key: str) -> None:
        name = self.object_name(key)
        async with self.client("deleting", key) as client:
            await client.delete_object(Bucket=self.bucket, Key=name)

    async def copy(self, src: str, dst: str) -> ObjectInfo:
        source = self.object_name(src)
        target = self.object_name(dst)
        info = await self.stat(src)
        if source == target:
            return info  # S3 refuses a copy onto itself that changes nothing
        async with self.client("copying", src) as client:
            if info.size <= self.copy_object_limit:
                await client.copy_object(
                    Bucket=self.bucket,
                    Key=target,
                    CopySource={"Bucket": self.bucket, "Key": source},
                    MetadataDirective="COPY",
                    TaggingDirective="COPY",
                )
            else:
                await self._copy_in_parts(client, source, target, info)
        copied = await self.stat(dst)
        if copied.sha256 is None and info.sha256 is not None:
            # Not every service copies tags; the content is the same, so is its digest.
            copied = ObjectInfo(
                copied.key,
                copied.size,
                copied.etag,
                copied.content_type,
                copied.modified,
                info.sha256,
            )
        return copied

    async def _copy_in_parts(self, client: Any, source: str, target: str, info: ObjectInfo) -> None:
        """UploadPartCopy for objects too large for one CopyObject (still server-side)."""
        started = await client.create_multipart_upload(
            Bucket=self.bucket, Key=target, ContentType=info.content_type
        )
        upload_id = str(started["UploadId"])
        try:
            parts = []
            step = self.copy_object_limit
            for number, first in enumerate(range(0, info.size, step), start=1):
                last = min(first + step, info.size) - 1
                answer = await client.upload_part_copy(
                    Bucket=self.bucket,
                    Key=target,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource={"Bucket": self.bucket, "Key": source},
                    CopySourceRange=f"bytes={first}-{last}",
                )
                parts.append({"ETag": answer["CopyPartResult"]["ETag"], "PartNumber": number})
            await client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=target,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            await self.abort_upload(target, upload_id)
            raise
        if info.sha256 is not None:
            await client.put_object_tagging(
                Bucket=self.bucket,
                Key=target,
                Tagging={"TagSet": [{"Key": _TAG_SHA256, "Value": info.sha256}]},
            )

    async def abort_upload(self, name: str, upload_id: str) -> bool:
        """Abort one multipart upload; False (logged, remembered) if the service is unreachable.

        Uploads that could not be aborted are retried after the next request that
        reaches the service, so a short outage leaves no orphan parts behind.
        """
        try:
            async with self.client("aborting an upload", name) as client:
                await client.abort_multipart_upload(
                    Bucket=self.bucket, Key=name, UploadId=upload_id
                )
        except ObjectNotFoundError:
            pass  # already gone
        except Exception as exc:
            if len(self._orphans) < MAX_ORPHANS:
                self._orphans[upload_id] = name
            log.warning(
                "could not abort multipart upload %s of %s in %s (%s); retrying once the "
                "storage answers again",
                upload_id,
                name,
                self.bucket,
                exc,
            )
            return False
        self._orphans.pop(upload_id, None)
        return True

    def _retry_orphans(self) -> None:
        """After a request that reached the service: abort what an outage left open."""
        if not self._orphans or self._orphan_task is not None:
            return

        async def retry() -> None:
            try:
                for upload_id, name in list(self._orphans.items()):
                    if not await self.abort_upload(name, upload_id):
                        break  # down again: the next success retries
            finally:
                self._orphan_task = None

        self._orphan_task = task = asyncio.ensure_future(retry())
        _background.add(task)
        task.add_done_callback(_background.discard)

    @property
    def supports_presigned_urls(self) -> bool:
        return True

    async def presigned_url(
        self,
        key: str,
        expires: int = 300,
        *,
        filename: str | None = None,
        content_type: str | None = None,
        as_attachment: bool = True,
    ) -> str:
        from webframe.files import content_disposition

        if not 1 <= expires <= 7 * 24 * 3600:
            raise ValueError("expires must be between 1 second and 7 days")
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self.object_name(key)}
        if filename is not None:
            params["ResponseContentDisposition"] = content_disposition(
                filename, as_attachment=as_attachment
            )
        if content_type is not None:
            params["ResponseContentType"] = content_type
        async with self.client("signing a URL", key) as client:
            url: str = await client.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=int(expires)
            )
        return url


class _EmptyReader(ObjectReader):
    """A zero-length range: nothing to fetch."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        return
        yield b""  # pragma: no cover - makes this an async generator

    async def aclose(self) -> None:
        return None


def _total_size(answer: Mapping[str, Any]) -> int:
    """The whole object's size from a GetObject answer (ranged or not)."""
    content_range = answer.get("ContentRange")
    if content_range:
        total = str(content_range).rpartition("/")[2]
        if total.isdigit():
            return int(total)
    return int(answer.get("ContentLength", 0))
