"""Throughput benchmark for hf-runtime: `python -m benchmarks.run` (see benchmarks/run.py)."""
