"""The two slots of an upload's state file, and when a save must be a checkpoint.

A state file is two equal slots, each a header (JSON length, CRC-32, sequence
number) then the JSON and zero padding; a load takes the intact slot (CRC
matches) with the highest sequence number.

Most saves only record progress (a new offset, after its bytes were
``fdatasync``ed) and are not flushed themselves: a server that is killed or
restarted reads them from the page cache, and a machine crash can only lose
them, leaving an older offset, which is safe: the client's HEAD gets the lower
offset and it sends those bytes again (the data file is cut back to it). What
must never happen is that a crash leaves *no* intact slot. So a save flushed with
``fdatasync`` (a *checkpoint*) marks its slot (the top bit of the sequence
number), and every save, flushed or not, goes into the other slot than the
newest checkpoint: the checkpoint is never written over before a newer
checkpoint is on disk. Whatever a crash tears is the other slot, whose CRC then
fails, and the checkpoint is read. A file whose slots carry no mark (written
before marks existed, when every save was flushed) treats its newest slot as
the checkpoint.

Progress saves become checkpoints every :data:`CHECKPOINT_BYTES` of progress or
:data:`CHECKPOINT_SECONDS` (as this process saw them), so a machine crash costs
the client at most about that much sent again.
"""

from __future__ import annotations

import struct
import time
import zlib
from collections import OrderedDict
from typing import Final, NamedTuple

__all__ = [
    "CHECKPOINT_BYTES",
    "CHECKPOINT_SECONDS",
    "SLOT_HEADER",
    "Slot",
    "checkpoint_due",
    "forget_checkpoint",
    "newest",
    "note_checkpoint",
    "pack_slot",
    "read_slots",
    "target_slot",
]

#: a state slot's header: JSON length, CRC-32 of the JSON, sequence number.
SLOT_HEADER: Final = struct.Struct("<IIQ")
#: the sequence number's top bit: the slot was flushed when written (a checkpoint).
_SYNCED: Final = 1 << 63
#: progress saves become a checkpoint once the offset is this far past the last one...
CHECKPOINT_BYTES: Final = 256 * 1024 * 1024
#: ...or this many seconds after it.
CHECKPOINT_SECONDS: Final = 5.0
#: uploads whose last checkpoint this process remembers: id -> (monotonic time, offset).
_CHECKPOINTS: OrderedDict[str, tuple[float, int]] = OrderedDict()
_MAX_CHECKPOINTS: Final = 4096


class Slot(NamedTuple):
    """An intact slot: its position (0 or 1), sequence number, mark and JSON."""

    position: int
    seq: int
    synced: bool
    data: bytes


def pack_slot(data: bytes, seq: int, size: int, synced: bool) -> bytes:
    """One slot of ``size`` bytes: header, JSON, zero padding."""
    mark = _SYNCED if synced else 0
    body = SLOT_HEADER.pack(len(data), zlib.crc32(data), seq | mark) + data
    return body + bytes(size - len(body))


def read_slots(raw: bytes) -> list[Slot]:
    """The intact slots of a state file's bytes (none, one or two)."""
    slot = len(raw) // 2
    found: list[Slot] = []
    if slot < SLOT_HEADER.size:
        return found
    for index in (0, 1):
        start = index * slot
        length, crc, seq = SLOT_HEADER.unpack_from(raw, start)
        data = raw[start + SLOT_HEADER.size : start + SLOT_HEADER.size + length]
        if length + SLOT_HEADER.size > slot or len(data) != length or not data:
            continue
        if zlib.crc32(data) != crc:
            continue
        found.append(Slot(index, seq & ~_SYNCED, bool(seq & _SYNCED), data))
    return found


def newest(slots: list[Slot]) -> Slot | None:
    """The slot a load reads: the highest sequence number."""
    return max(slots, key=lambda s: s.seq, default=None)


def target_slot(slots: list[Slot]) -> int:
    """Where the next save goes: the other slot than the newest checkpoint (the
    newest slot when none is marked). ``slots`` must not be empty."""
    marked = [s for s in slots if s.synced]
    anchor = newest(marked) or newest(slots)
    assert anchor is not None
    return 1 - anchor.position


def checkpoint_due(upload_id: str, offset: int) -> bool:
    """True when a progress save at ``offset`` should be flushed (see the module doc)."""
    last = _CHECKPOINTS.get(upload_id)
    if last is None:
        return True
    when, at = last
    return offset - at >= CHECKPOINT_BYTES or time.monotonic() - when >= CHECKPOINT_SECONDS


def note_checkpoint(upload_id: str, offset: int) -> None:
    """Remember that the state of ``upload_id`` at ``offset`` was just flushed."""
    _CHECKPOINTS[upload_id] = (time.monotonic(), offset)
    _CHECKPOINTS.move_to_end(upload_id)
    while len(_CHECKPOINTS) > _MAX_CHECKPOINTS:
        _CHECKPOINTS.popitem(last=False)


def forget_checkpoint(upload_id: str) -> None:
    """Drop what this process remembers of ``upload_id`` (finished or removed)."""
    _CHECKPOINTS.pop(upload_id, None)
