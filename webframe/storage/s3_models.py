"""Leaner botocore data for the S3 client: what a server process keeps for its lifetime.

botocore loads three JSON documents when a client is made, and keeps them: the
endpoint table of every AWS service in every partition (``endpoints.json``: 6.7
MiB of Python objects), the S3 API model (``service-2.json``: 3.2 MiB, most of it
documentation strings) and S3's endpoint rule set (1.3 MiB). An S3 client needs
the table's partitions (regions, DNS suffixes) and its ``s3`` and ``sts``
entries, and never reads the API model's documentation (it is only used to build
docstrings). :class:`SlimJSONFileLoader` reads those documents without the rest:
the endpoint table is walked member by member, so the other services' entries
are parsed one at a time and dropped at once instead of all being built first;
``documentation`` strings are emptied as the model is parsed. Plain dicts (not
botocore's ``OrderedDict``) hold the result: same order, half the size.

:func:`slim_loader` gives a botocore ``Loader`` using it (honouring
``AWS_DATA_PATH`` like botocore's own); :func:`release_freed_memory` hands the
memory freed after a client is made back to the operating system.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gzip
import json
import os
import re
from collections.abc import Callable
from typing import Any, Final

import botocore.loaders

__all__ = ["KEEP_SERVICES", "SlimJSONFileLoader", "release_freed_memory", "slim_endpoints"]

#: the endpoint table entries an S3 client may use (sts: role credentials).
KEEP_SERVICES: Final = frozenset({"s3", "sts"})
_WHITESPACE: Final = re.compile(r"[ \t\n\r]*")
_SKIP: Final = object()
_OPENERS: Final[tuple[tuple[str, Callable[..., Any]], ...]] = (
    (".json", open),
    (".json.gz", gzip.open),
)


def _without_docs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Emptied, not removed: some of botocore reads param["documentation"].
    return {k: "" if k == "documentation" else v for k, v in pairs}


class _Walker:
    """Parses the endpoint table, descending only as far as the services' names."""

    def __init__(self, text: str, keep: frozenset[str]) -> None:
        self.text = text
        self.keep = keep
        self.decoder = json.JSONDecoder()

    def skip(self, i: int) -> int:
        match = _WHITESPACE.match(self.text, i)
        assert match is not None  # the pattern matches the empty string
        return match.end()

    def expect(self, i: int, char: str) -> int:
        i = self.skip(i)
        if self.text[i : i + 1] != char:
            raise ValueError(f"endpoint data: expected {char!r} at offset {i}")
        return self.skip(i + 1)

    def value(self, i: int) -> tuple[Any, int]:
        return self.decoder.raw_decode(self.text, self.skip(i))

    def obj(self, i: int, member: Callable[[str, int], tuple[Any, int]]) -> tuple[Any, int]:
        i = self.expect(i, "{")
        result: dict[str, Any] = {}
        if self.text[i : i + 1] == "}":
            return result, i + 1
        while True:
            key, i = self.decoder.raw_decode(self.text, i)
            value, i = member(key, self.expect(i, ":"))
            if value is not _SKIP:
                result[key] = value
            i = self.skip(i)
            if self.text[i : i + 1] == "}":
                return result, i + 1
            i = self.expect(i, ",")

    def array(self, i: int, item: Callable[[int], tuple[Any, int]]) -> tuple[Any, int]:
        i = self.expect(i, "[")
        result: list[Any] = []
        if self.text[i : i + 1] == "]":
            return result, i + 1
        while True:
            value, i = item(i)
            result.append(value)
            i = self.skip(i)
            if self.text[i : i + 1] == "]":
                return result, i + 1
            i = self.expect(i, ",")

    def top(self, key: str, i: int) -> tuple[Any, int]:
        if key == "partitions":
            return self.array(i, lambda j: self.obj(j, self.partition))
        return self.value(i)

    def partition(self, key: str, i: int) -> tuple[Any, int]:
        if key == "services":
            return self.obj(i, self.service)
        return self.value(i)

    def service(self, key: str, i: int) -> tuple[Any, int]:
        value, i = self.value(i)
        return (value if key in self.keep else _SKIP), i


def slim_endpoints(text: str, keep: frozenset[str] = KEEP_SERVICES) -> dict[str, Any]:
    """The endpoint table in ``text`` with only the ``keep`` services in each partition."""
    walker = _Walker(text, keep)
    result, end = walker.obj(0, walker.top)
    if walker.skip(end) != len(text):
        raise ValueError("endpoint data: extra data after the document")
    return dict(result)


class SlimJSONFileLoader(botocore.loaders.JSONFileLoader):  # type: ignore[misc]
    """botocore's JSON loader, keeping less (see the module docstring)."""

    def load_file(self, file_path: str) -> Any:
        for ext, opener in _OPENERS:
            full_path = file_path + ext
            if not os.path.isfile(full_path):
                continue
            with opener(full_path, "rb") as fp:
                text = fp.read().decode("utf-8")
            name = os.path.basename(file_path)
            if name == "endpoints":
                return slim_endpoints(text)
            if name.startswith("service-2"):
                return json.loads(text, object_pairs_hook=_without_docs)
            return json.loads(text)
        return None


def slim_loader(data_path: str | None) -> botocore.loaders.Loader:
    """A botocore data loader for ``data_path`` (``AWS_DATA_PATH``) reading slim data."""
    loader = botocore.loaders.create_loader(data_path)
    loader.file_loader = SlimJSONFileLoader()
    return loader


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    # Looked up once: find_library runs ldconfig (milliseconds).
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return trim


def release_freed_memory() -> None:
    """Give freed heap pages back to the operating system, where the C library can
    (glibc's ``malloc_trim``): after a client is made (the JSON parsed for it) and
    after each uploaded part (the slices it was sent in)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
