"""Observability shared by every layer: the per-request context, log formatting, metrics.

A leaf package: it imports nothing else of hf_runtime, so protocols, the runtime and backends
may all use it without creating a dependency between them.
"""
