"""Moved to `webframe.sessions.backends.cluster`; this module keeps the old imports working."""

from __future__ import annotations

from webframe.sessions.backends.cluster import (
    CLUSTER_PORT,
    ClusterStore,
    ClusterURL,
    parse_cluster_url,
)

__all__ = ["CLUSTER_PORT", "ClusterStore", "ClusterURL", "parse_cluster_url"]
