"""The vLLM backend: generation on vLLM's AsyncLLM, encoder tasks on its pooling runner.

Importing this package never imports vLLM (or torch): `model.load_vllm_model` does, when a
model configured or selected for vLLM loads. Modules:
  config     the `vllm:` configuration section (`VLLMEngineConfig`)
  env        safe environment defaults for vLLM (CPU build above all)
  tasks      which tasks vLLM serves (checked before anything loads)
  engine     AsyncEngineArgs / AsyncLLM creation
  generator  generation requests -> vLLM requests -> GenerationDeltas
  pooling    encoder tasks through the `EncoderBackend` protocol
  model      `load_vllm_model` and the ServedModels it returns
  metrics    vLLM's Prometheus metrics for /metrics
"""
