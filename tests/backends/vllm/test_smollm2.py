"""A real model (SmolLM2-135M-Instruct, from its GGUF) gives the same greedy text on vLLM as on
the huggingface backend, in float32 (bf16 flips close calls on this model)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hf_runtime.model import TextGenerator
from hf_runtime.tasks.registry import Task
from hf_runtime.types import GenerationDelta, GenerationRequest, SamplingParams
from tests.backends.vllm.conftest import (
    LoopRunner,
    load_vllm,
    model_config,
    requires_vllm,
    source_for,
)

pytestmark = [requires_vllm, pytest.mark.vllm, pytest.mark.slow]

MAX_MODEL_LEN = 512


@pytest.fixture(scope="module")
def smollm2(run: LoopRunner, smollm2_dir: Path) -> Iterator[tuple[Any, Any]]:
    from tests.loading import load_generative_model

    ours = load_vllm(run, smollm2_dir, Task.text_generation, max_model_len=MAX_MODEL_LEN)
    config = model_config(
        smollm2_dir, backend="huggingface", vllm=None, max_model_len=MAX_MODEL_LEN
    )
    theirs = run(load_generative_model(config, source_for(smollm2_dir), Task.text_generation))
    yield ours, theirs
    run(ours.aclose())
    run(theirs.aclose())


async def complete(model: Any, prompt: list[int], **params: Any) -> list[GenerationDelta]:
    request = GenerationRequest("smollm2", prompt, SamplingParams(**params))
    return [delta async for delta in model.capability(TextGenerator).generate(request)]


def test_chat_answer_equals_huggingface(smollm2: tuple[Any, Any], run: LoopRunner) -> None:
    ours, theirs = smollm2
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    prompt = run(ours.render_chat(messages))
    assert prompt == run(theirs.render_chat(messages))
    mine = run(complete(ours, prompt, temperature=0, max_tokens=24))
    reference = run(complete(theirs, prompt, temperature=0, max_tokens=24))
    text = "".join(d.text for d in mine)
    assert text == "".join(d.text for d in reference)
    assert "Paris" in text
    assert (mine[-1].finish_reason, reference[-1].finish_reason) == ("stop", "stop")


def test_completion_and_logprobs_equal_huggingface(
    smollm2: tuple[Any, Any], run: LoopRunner
) -> None:
    ours, theirs = smollm2
    prompt = run(ours.tokenize("The capital of France is"))
    mine = run(complete(ours, prompt, temperature=0, max_tokens=8, logprobs=5))
    reference = run(complete(theirs, prompt, temperature=0, max_tokens=8, logprobs=5))
    assert [t for d in mine for t in d.token_ids] == [t for d in reference for t in d.token_ids]
    assert "".join(d.text for d in mine) == "".join(d.text for d in reference)
    mine_lp = [lp for d in mine for lp in d.logprobs or []]
    reference_lp = [lp for d in reference for lp in d.logprobs or []]
    for got, expected in zip(mine_lp, reference_lp, strict=True):
        assert got.logprob == pytest.approx(expected.logprob, abs=2e-3)
        assert [t[0] for t in got.top[:2]] == [t[0] for t in expected.top[:2]]
        assert [t[2] for t in got.top] == pytest.approx([t[2] for t in expected.top], abs=2e-3)
