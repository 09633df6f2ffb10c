"""`python -m benchmarks.onnx_fusion`: the command; the benchmark is phases/onnx_fusion.py."""

from __future__ import annotations

from benchmarks.phases.onnx_fusion import main

if __name__ == "__main__":
    raise SystemExit(main())
