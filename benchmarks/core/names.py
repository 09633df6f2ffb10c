"""The names runs carry in the results: what phases record and reports look up."""

from __future__ import annotations

# Encoder servers.
HF_RUNTIME = "hf-runtime"
HF_RUNTIME_BEFORE = "hf-runtime-before"  # the same server from --before's git ref
BASELINE = "baseline"
BENTOML_BATCHING = "bentoml-batching"
BENTOML_BATCHING_DIRECT = "bentoml-batching-direct"  # its /embed endpoint, no proxy
# The HTTP floor (peers/floor.py): a trivial route, bare and in bentoml serve.
FLOOR_UVICORN = "floor-uvicorn"
FLOOR_BENTOML_MODES = {  # run name -> BENCH_FLOOR_MODE
    "floor-bentoml": "bentoml",
    "floor-bentoml-gateway": "gateway",
    "floor-bentoml-fast-path": "fast-path",
}
FLOOR_RUNS = (FLOOR_UVICORN, *FLOOR_BENTOML_MODES)

# Generation servers ("backend" in the results).
HF = "huggingface"
HF_BEFORE = "huggingface-before"  # the huggingface backend served from --before's git ref
VLLM = "vllm"
VLLM_SERVER = "vllm-server"  # vLLM's own OpenAI server on the same model folder
