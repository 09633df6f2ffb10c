"""`python -m benchmarks.asgi_costs`: the command; the benchmark is phases/asgi_costs.py."""

from __future__ import annotations

from benchmarks.phases.asgi_costs import main

if __name__ == "__main__":
    raise SystemExit(main())
