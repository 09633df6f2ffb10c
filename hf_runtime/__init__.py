"""hf-runtime: serve Hugging Face models over KServe V1, Open Inference Protocol V2 and OpenAI.

Importing this package imports no torch, transformers or vllm.
"""

__version__ = "0.1.0"
