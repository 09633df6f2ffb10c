"""`python -m benchmarks.rerank`: the command; the benchmark is phases/rerank.py."""

from __future__ import annotations

from benchmarks.phases.rerank import main

if __name__ == "__main__":
    raise SystemExit(main())
