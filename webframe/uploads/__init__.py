"""Streaming uploads: request bodies parsed as they arrive, file parts into part sinks.

Subclass :class:`UploadHandler`; the body is parsed while it arrives (constant
memory), every limit in :class:`UploadLimits` is enforced as it streams, fields are
readable with ``get_body_argument`` and files are in ``self.uploads``. Any failure or
disconnect removes the request's temp files.

The package, one concern a module: ``handler`` (UploadHandler), ``multipart`` (the
decoder: bytes in, part events out, no I/O), ``receiver`` and ``raw`` (events or a raw
body -> fields and files, limits, clean-up), ``sinks`` (the part-sink interface and
factory), ``tempfile`` (the local sink), ``stored`` (sinks into a storage),
``policy`` (limits, type sniffing and checks), ``files`` (UploadedFile).
"""

from __future__ import annotations

from webframe.errors import UploadError

from .files import UploadedFile
from .handler import UploadHandler, upload_error
from .multipart import MultipartDecoder, boundary_from_content_type
from .policy import UploadLimits, sniff_type
from .raw import RawBodyReceiver
from .receiver import MultipartReceiver
from .stored import StoredUpload

__all__ = [
    "MultipartDecoder",
    "MultipartReceiver",
    "RawBodyReceiver",
    "StoredUpload",
    "UploadError",
    "UploadHandler",
    "UploadLimits",
    "UploadedFile",
    "boundary_from_content_type",
    "sniff_type",
    "upload_error",
]
