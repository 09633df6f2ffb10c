"""`python -m benchmarks.structured`: the command; the benchmark is phases/structured.py."""

from __future__ import annotations

from benchmarks.phases.structured import main

if __name__ == "__main__":
    raise SystemExit(main())
