"""`python -m benchmarks.prefix_cache`: the command; the benchmark is phases/prefix_cache.py."""

from __future__ import annotations

from benchmarks.phases.prefix_cache import main

if __name__ == "__main__":
    raise SystemExit(main())
