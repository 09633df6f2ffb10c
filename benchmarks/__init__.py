"""hf-runtime's benchmarks: `python -m benchmarks.run` (see benchmarks/run.py), and the standalone
`benchmarks.rerank`, `benchmarks.precision`, `benchmarks.structured`, `benchmarks.asgi_costs`.

Layers; imports go one way, down this list, never up (tests/benchmarks/test_layering.py):
  commands   benchmarks/{run,rerank,precision,structured,asgi_costs}.py: the CLIs;
  phases     benchmarks/phases: what one benchmark measures, start to end, into a results dict
             (the standalone rerank, precision and structured ones keep their small tables);
  reports    benchmarks/reports: results dict -> ratios, targets, Markdown, plots (they import
             only core: a report never starts a server or imports a phase);
  peers      benchmarks/peers: what hf-runtime is compared against and how servers are
             started (the in-process ceiling, baseline, BentoML batching, floors, raw
             generate(), vLLM's server);
  loadgen    benchmarks/loadgen: the closed-loop load generators (C and Python);
  core       benchmarks/core: settings, workload, run names, the machine, logging.
"""
