"""S3-compatible storage on botocore: multipart uploads as bytes arrive, ranged reads.

Objects live in one bucket under an optional key prefix. Sinks stream in with
constant memory (:mod:`webframe.storage.s3_transfer`); the client, its errors
and clean-up after outages are in :mod:`webframe.storage.s3_client`, and how
botocore's synchronous client is awaited (worker threads) in
:mod:`webframe.storage.s3_threads`. A process killed mid-upload cannot abort
anything: give the bucket a lifecycle rule (AbortIncompleteMultipartUpload) for
that case.

Needs ``pip install 'webframe[s3]'``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from webframe.errors import ConfigurationError
from webframe.storage.base import (
    ObjectInfo,
    ObjectNotFoundError,
    ObjectReader,
    Storage,
    check_key,
    check_range,
)
from webframe.storage.s3_client import S3Client
from webframe.storage.s3_transfer import (
    META_SHA256,
    TAG_SHA256,
    EmptyReader,
    S3Reader,
    S3Sink,
    parse_time,
    total_size,
)

try:
    import botocore.exceptions
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("S3 storage needs botocore: pip install 'webframe[s3]'") from exc

__all__ = ["S3Client", "S3Sink", "S3Storage", "parse_options"]

MiB: Final = 1024 * 1024
#: S3 refuses parts below 5 MiB (except the last) and above 5 GiB.
MIN_PART_SIZE: Final = 5 * MiB
MAX_PART_SIZE: Final = 5 * 1024 * MiB
DEFAULT_PART_SIZE: Final = 8 * MiB
#: CopyObject copies at most 5 GiB; larger objects are copied part by part.
COPY_OBJECT_LIMIT: Final = 5 * 1024 * MiB
_BUCKET: Final = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP_LIKE: Final = re.compile(r"\d+\.\d+\.\d+\.\d+")
_SIZE: Final = re.compile(r"(\d+)\s*(|b|k|kb|kib|m|mb|mib|g|gb|gib)", re.IGNORECASE)
_UNIT: Final = {"": 1, "b": 1, "k": 1024, "m": MiB, "g": 1024 * MiB}


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
        self.connection = S3Client(
            bucket,
            endpoint_url=endpoint_url,
            region=self.region,
            access_key=access_key,
            secret_key=secret_key,
            session_token=session_token,
            addressing_style=addressing_style,
            max_attempts=max_attempts,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )

    async def close(self) -> None:
        await self.connection.close()

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
            modified=parse_time(answer.get("LastModified")),
            sha256=sha256,
        )

    async def _sha256(self, client: Any, name: str, answer: Mapping[str, Any]) -> str | None:
        metadata = answer.get("Metadata") or {}
        if META_SHA256 in metadata:
            return str(metadata[META_SHA256])
        if answer.get("TagCount", 1) == 0:
            return None
        try:
            tags = await client.get_object_tagging(Bucket=self.bucket, Key=name)
        except botocore.exceptions.ClientError:
            return None  # tagging not allowed or not supported: the digest is just unknown
        for tag in tags.get("TagSet", []):
            if tag.get("Key") == TAG_SHA256:
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
            return EmptyReader(info, first, stop)
        extra = {}
        if start or end is not None:
            extra["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        async with self.connection.use("reading", key) as client:
            answer = await client.get_object(Bucket=self.bucket, Key=name, **extra)
            try:
                size = total_size(answer)
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
            async with self.connection.use("reading", key) as client:
                answer = await client.head_object(Bucket=self.bucket, Key=name)
                sha256 = await self._sha256(client, name, answer)
        except ObjectNotFoundError:
            # HEAD answers a bare 404 for a missing bucket too: tell the two apart.
            await self.connection.check_bucket()
            raise
        return self._info(key, answer, int(answer.get("ContentLength", 0)), sha256)

    async def check(self) -> None:
        await self.connection.check_bucket()

    async def delete(self, key: str) -> None:
        name = self.object_name(key)
        async with self.connection.use("deleting", key) as client:
            await client.delete_object(Bucket=self.bucket, Key=name)

    async def copy(self, src: str, dst: str) -> ObjectInfo:
        source = self.object_name(src)
        target = self.object_name(dst)
        info = await self.stat(src)
        if source == target:
            return info  # S3 refuses a copy onto itself that changes nothing
        async with self.connection.use("copying", src) as client:
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
            await self.connection.abort_upload(target, upload_id)
            raise
        if info.sha256 is not None:
            await client.put_object_tagging(
                Bucket=self.bucket,
                Key=target,
                Tagging={"TagSet": [{"Key": TAG_SHA256, "Value": info.sha256}]},
            )

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
        from webframe.sendfile import content_disposition

        if not 1 <= expires <= 7 * 24 * 3600:
            raise ValueError("expires must be between 1 second and 7 days")
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self.object_name(key)}
        if filename is not None:
            params["ResponseContentDisposition"] = content_disposition(
                filename, as_attachment=as_attachment
            )
        if content_type is not None:
            params["ResponseContentType"] = content_type
        async with self.connection.use("signing a URL", key) as client:
            url: str = await client.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=int(expires)
            )
        return url
