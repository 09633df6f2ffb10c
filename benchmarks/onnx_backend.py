"""`python -m benchmarks.onnx_backend`: the command; the benchmark is phases/onnx_backend.py."""

from __future__ import annotations

from benchmarks.phases.onnx_backend import main

if __name__ == "__main__":
    raise SystemExit(main())
