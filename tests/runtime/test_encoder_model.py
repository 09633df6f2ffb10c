"""EncoderModel end to end on the tiny models: load -> predict/embed through the batcher."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import threading

import numpy as np
import pytest
import torch

from hf_runtime.config import BatchingConfig
from hf_runtime.errors import ConfigError, InvalidInput, Overloaded, Unsupported
from hf_runtime.model import Embedder, Predictor, ServedModel, TextGenerator, require_capability
from hf_runtime.runtime.encoder_model import EncoderModel
from hf_runtime.tasks.registry import Task
from tests.encoder_support import kserve_forward, model_config, source_for
from tests.loading import load_encoder_model

TEXTS = ["John Smith works at Google in Paris", "hello world", "I love this movie"]


async def load(path, task: Task, **flags) -> EncoderModel:
    return await load_encoder_model(model_config(path, **flags), source_for(path), task)


@pytest.mark.parametrize(
    ("name", "task"),
    [
        ("bert-seq-cls", Task.sequence_classification),
        ("bert-ner", Task.token_classification),
        ("bert-embed", Task.text_embedding),
    ],
)
async def test_predict_matches_kserve(tiny_models, name, task):
    model = await load(tiny_models[name], task, model_name="m")
    assert isinstance(model, ServedModel)
    assert (model.name, model.task, model.ready, model.capability(TextGenerator)) == (
        "m",
        task.value,
        True,
        None,
    )
    prediction = await model.predict(TEXTS)
    inputs, raw = kserve_forward(tiny_models[name], task, TEXTS)
    if task is Task.sequence_classification:
        assert prediction.predictions == [int(r.argmax()) for r in raw]
    elif task is Task.token_classification:
        assert prediction.predictions == [torch.argmax(r[None], dim=2).tolist() for r in raw]
    else:
        mask = inputs["attention_mask"].unsqueeze(-1).float()
        pooled = torch.nn.functional.normalize((raw * mask).sum(1) / mask.sum(1), dim=1)
        np.testing.assert_allclose(prediction.predictions, pooled.numpy(), atol=1e-6)
    await model.aclose()
    assert not model.ready


async def test_fill_mask_predict(tiny_models):
    model = await load(tiny_models["bert-mlm"], Task.fill_mask)
    prediction = await model.predict(["paris is the [MASK] of france"])
    assert isinstance(prediction.predictions[0], str)
    with pytest.raises(InvalidInput, match="no \\[MASK\\] token"):
        await model.predict(["no mask"])
    await model.aclose()


async def test_metadata_lists_real_inputs_and_outputs(tiny_models):
    model = await load(tiny_models["bert-ner"], Task.token_classification, model_name="ner",
                       return_offsets_mapping=True)  # fmt: skip
    meta = model.metadata()
    assert (meta.name, meta.task, meta.platform) == ("ner", "token_classification", "huggingface")
    assert [(s.name, s.datatype, s.shape) for s in meta.inputs] == [("input-0", "BYTES", [-1])]
    assert [(s.name, s.datatype, s.shape) for s in meta.outputs] == [
        ("output-0", "INT64", [-1, 1, -1]),
        ("offset_mapping", "INT64", [-1, -1, 2]),
    ]
    embed = await load(tiny_models["bert-embed"], Task.text_embedding)
    assert [(s.datatype, s.shape) for s in embed.metadata().outputs] == [("FP64", [-1, 64])]
    await model.aclose()
    await embed.aclose()


async def test_offsets_flag_only_applies_to_token_classification(tiny_models):
    model = await load(
        tiny_models["bert-seq-cls"], Task.sequence_classification, return_offsets_mapping=True
    )
    assert len((await model.predict(TEXTS)).tensors) == 1
    await model.aclose()


async def test_concurrent_requests_share_batches_and_match_solo_results(tiny_models, monkeypatch):
    model = await load(tiny_models["bert-ner"], Task.token_classification)
    solo = [await model.predict(TEXTS), await model.predict(["hello"])]
    before = model.stats()

    # Hold the first forward pass until every request has queued behind it.
    real_forward = model.encoder.forward
    gate = threading.Event()
    first_batch: list[int] = []

    def gated_forward(items, spec):
        if not first_batch:
            first_batch.append(len(items))
            gate.wait(timeout=30)
        return real_forward(items, spec)

    monkeypatch.setattr(model.encoder, "forward", gated_forward)
    requests = [
        asyncio.create_task(model.predict(TEXTS if n % 2 == 0 else ["hello"])) for n in range(8)
    ]
    for _ in range(3000):  # tokenization runs in threads: poll until all have queued
        if first_batch and model.stats()["queue_depth"] == 16 - first_batch[0]:
            break
        await asyncio.sleep(0.01)
    gate.set()
    results = await asyncio.gather(*requests)

    after = model.stats()
    assert after["items"] - before["items"] == 16
    # The held pass, then everything else (or all in one when all queued before it started).
    assert after["batches"] - before["batches"] in (1, 2)
    assert after["largest_batch"] >= 8
    for n, result in enumerate(results):
        assert result.predictions == solo[n % 2].predictions
        assert result.tensors[0].shape == solo[n % 2].tensors[0].shape
    await model.aclose()


async def test_overloaded_model_answers_overloaded(tiny_models):
    path = tiny_models["bert-seq-cls"]
    config = model_config(path, batching=BatchingConfig(max_queue_size=3))
    model = await load_encoder_model(config, source_for(path), Task.sequence_classification)
    requests = [asyncio.create_task(model.predict(["a", "b"])) for _ in range(3)]
    results = await asyncio.gather(*requests, return_exceptions=True)
    rejected = [r for r in results if isinstance(r, Overloaded)]
    assert rejected, results  # 6 texts at once cannot all wait in a queue of 3
    assert model.stats()["rejected_requests"] == len(rejected)
    with pytest.raises(InvalidInput, match="at most 3 per request"):
        await model.predict(["a", "b", "c", "d"])
    await model.aclose()


async def test_bad_instances_are_invalid_input(tiny_models):
    model = await load(tiny_models["bert-seq-cls"], Task.sequence_classification)
    for bad in ([], [1], [None, "x"]):
        with pytest.raises(InvalidInput):
            await model.predict(bad)
    await model.aclose()


async def test_embed_on_a_classifier_is_unsupported(tiny_models):
    model = await load(tiny_models["bert-seq-cls"], Task.sequence_classification, model_name="c")
    # Decided once, at load: a classifier has no Embedder capability.
    assert model.capability(Embedder) is None and model.capability(Predictor) is model
    with pytest.raises(Unsupported, match="does not support embeddings"):
        require_capability(model, Embedder)
    await model.aclose()


async def test_embed_texts_ids_and_dimensions(tiny_models):
    model = await load(tiny_models["bert-embed"], Task.text_embedding)
    by_text = await model.embed(["hello world", "hello"])
    ids = list(model.encoder.tokenize(["hello world"])[0].input_ids)
    by_ids = await model.embed([ids])
    assert by_text.prompt_tokens == len(ids) + 3
    np.testing.assert_allclose(by_ids.embeddings[0], by_text.embeddings[0], atol=1e-6)
    prediction = await model.predict(["hello world"])
    np.testing.assert_allclose(prediction.predictions[0], by_text.embeddings[0], atol=1e-6)
    short = await model.embed("hello world", dimensions=16)
    assert len(short.embeddings[0]) == 16
    with pytest.raises(InvalidInput, match="dimensions"):
        await model.embed("hello", dimensions=1000)
    await model.aclose()


async def test_request_log_is_truncated_but_inputs_are_not(tiny_models, caplog):
    path = tiny_models["bert-seq-cls"]
    long_text = "the quick brown fox jumps over the lazy dog"
    model = await load(path, Task.sequence_classification, max_log_len=9, return_raw_logits=True)
    full = await load(path, Task.sequence_classification, return_raw_logits=True)
    with caplog.at_level(logging.INFO, logger="hf_runtime.requests"):
        prediction = await model.predict([long_text])
    assert "'the quick...'" in caplog.text
    assert "lazy" not in caplog.text
    assert prediction.predictions == (await full.predict([long_text])).predictions
    _, logits = kserve_forward(path, Task.sequence_classification, [long_text])
    assert list(prediction.predictions[0].values()) == pytest.approx(logits[0].tolist(), abs=1e-6)

    quiet = await load(path, Task.sequence_classification, disable_log_requests=True)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="hf_runtime.requests"):
        await quiet.predict([long_text])
    assert caplog.text == ""
    for m in (model, full, quiet):
        await m.aclose()


async def test_left_padding_tokenizer_matches_kserve(tiny_models, tmp_path):
    path = tmp_path / "left"
    shutil.copytree(tiny_models["bert-ner"], path)
    tokenizer_config = json.loads((path / "tokenizer_config.json").read_text())
    tokenizer_config["padding_side"] = "left"
    (path / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    model = await load(path, Task.token_classification, return_raw_logits=True)
    others = model.predict(["the quick brown fox jumps over the lazy dog and the cat"])
    mine, _ = await asyncio.gather(model.predict(TEXTS[:2]), others)
    _, logits = kserve_forward(path, Task.token_classification, TEXTS[:2])
    got = np.array([[[d[j] for j in range(9)] for d in row] for row in mine.predictions])
    np.testing.assert_allclose(got, logits.numpy(), atol=1e-5)
    await model.aclose()


async def test_generative_task_is_a_config_error(tiny_models):
    with pytest.raises(ConfigError, match="generative"):
        await load(tiny_models["gpt2-chat"], Task.text_generation)
