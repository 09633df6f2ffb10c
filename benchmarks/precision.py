"""`python -m benchmarks.precision`: the command; the benchmark is phases/precision.py."""

from __future__ import annotations

from benchmarks.phases.precision import main

if __name__ == "__main__":
    raise SystemExit(main())
