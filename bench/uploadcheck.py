"""What the upload scenarios check after each batch: the stored files are the sources.

The source files are random bytes written once per run (:func:`make_source`). After
a batch, the demo's answers and its locker must hold exactly the sources' SHA-256s,
nothing may be left in its temporary folder, and the stored files are deleted
(:func:`verify_demo` for local storage, :func:`verify_s3` for an S3 bucket, where no
multipart upload may be left open either); :func:`verify_raw` checks the raw
Tornado server's files.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.uploadresult import Upload

CHUNK = 4 * 1024 * 1024


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def make_source(path: Path, size: int) -> str:
    """Write ``size`` random bytes to ``path``; returns their SHA-256."""
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            chunk = os.urandom(min(CHUNK, left))
            f.write(chunk)
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


def total_size(sources: list[tuple[Path, str]]) -> int:
    return sum(p.stat().st_size for p, _ in sources)


def locker_files(instance: Path, want: list[str]) -> tuple[list[Path], list[str]]:
    """The files the demo's locker holds, and a problem unless their SHA-256s are ``want``."""
    users = instance / "uploads" / "users"
    stored = [p for p in users.glob("*/*") if p.is_file()] if users.exists() else []
    got = sorted(sha256_of(p) for p in stored)
    if got == want:
        return stored, []
    return stored, [
        f"stored files do not match the sources: {len(stored)} stored, "
        f"{sum(g in want for g in got)} of {len(want)} intact"
    ]


def verify_demo(instance: Path, sources: list[tuple[Path, str]], up: Upload) -> list[str]:
    """The demo stored every file intact (response and disk), left no temp file; then
    the stored files are deleted."""
    problems: list[str] = []
    want = sorted(sha for _, sha in sources)
    answered = answered_digests(up, problems)
    if answered and sorted(answered) != want:
        problems.append("the SHA-256 the demo answered differs from the source's")
    stored, found = locker_files(instance, want)
    problems += found
    temp = instance / "uploads" / ".tmp"
    left = [p for p in temp.iterdir()] if temp.exists() else []
    if left:
        problems.append(f"{len(left)} temp file(s) left in {temp}")
    for p in stored:
        p.unlink()
    return problems


def verify_raw(sources: list[tuple[Path, str]], up: Upload) -> list[str]:
    problems, got = [], []
    for body in up.bodies:
        try:
            path = Path(json.loads(body)["path"])
        except (ValueError, KeyError, TypeError):
            problems.append(f"raw server answered {body[:200]!r}")
            continue
        digest = sha256_of(path)
        got.append(digest)
        path.unlink()
        answered = json.loads(body).get("sha256")  # the upload-sha256 twin hashes as well
        if answered is not None and answered != digest:
            problems.append(f"the raw server answered SHA-256 {answered}, its file has {digest}")
    if sorted(got) != sorted(sha for _, sha in sources):
        problems.append("the raw server's files differ from the sources")
    return problems


def answered_digests(up: Upload, problems: list[str]) -> list[str]:
    """The SHA-256s in the demo's JSON answers (``problems`` gets the unreadable ones)."""
    answered: list[str] = []
    for body in up.bodies:
        try:
            answered += [f["sha256"] for f in json.loads(body)["files"]]
        except (ValueError, KeyError, TypeError):
            problems.append(f"demo answered {body[:200]!r}")
    return answered


def verify_s3(
    client: Any, bucket: str, prefix: str, instance: Path, sources: list[tuple[Path, str]],
    up: Upload,
) -> list[str]:  # fmt: skip
    """The demo stored every file intact in ``bucket`` under ``prefix`` (its answer and
    the object, read back and hashed here), left no multipart upload open and no temp
    file; then the objects are deleted."""
    problems: list[str] = []
    want = sorted(sha for _, sha in sources)
    answered = answered_digests(up, problems)
    if answered and sorted(answered) != want:
        problems.append("the SHA-256 the demo answered differs from the source's")
    listed = client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/users/")
    keys = [o["Key"] for o in listed.get("Contents", [])]
    got = []
    for key in keys:
        h = hashlib.sha256()
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        try:
            while chunk := body.read(CHUNK):
                h.update(chunk)
        finally:
            body.close()
        got.append(h.hexdigest())
    if sorted(got) != want:
        problems.append(
            f"stored objects do not match the sources: {len(keys)} stored, "
            f"{sum(g in want for g in got)} of {len(want)} intact"
        )
    open_uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    if open_uploads:
        problems.append(f"{len(open_uploads)} multipart upload(s) left open in {bucket}")
    temp = instance / "uploads" / ".tmp"
    left = list(temp.iterdir()) if temp.exists() else []
    if left:
        problems.append(f"{len(left)} temp file(s) left in {temp}")
    for key in keys:
        client.delete_object(Bucket=bucket, Key=key)
    return problems
