"""Moved to :mod:`webframe.units`; this module keeps the old import path working."""

from __future__ import annotations

from .units import format_size

__all__ = ["format_size"]
