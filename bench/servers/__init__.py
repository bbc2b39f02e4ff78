"""Benchmark servers: the same responses from webframe and from raw Tornado."""
