"""The request log line of an encoder model: bounded in instances and characters, one line."""

from __future__ import annotations

import logging

import pytest

from hf_runtime.runtime.encoder_model import MAX_LOGGED_INSTANCES
from hf_runtime.tasks.registry import Task
from tests.encoder_support import model_config, source_for
from tests.loading import load_encoder_model


async def test_request_log_shows_a_bounded_prefix_of_the_instances(
    tiny_models, caplog: pytest.LogCaptureFixture
) -> None:
    path = tiny_models["bert-seq-cls"]
    config = model_config(path, model_name="clf", max_log_len=9)
    model = await load_encoder_model(config, source_for(path), Task.sequence_classification)
    texts = ["evil\nINFO fake line", "x" * 100_000] + [f"text {i}" for i in range(98)]
    with caplog.at_level(logging.INFO, logger="hf_runtime.requests"):
        prediction = await model.predict(texts)
    assert len(prediction.predictions) == 100  # the log is cut, the inputs are not
    (record,) = caplog.records
    message = record.getMessage()
    assert "\n" not in message
    assert message.startswith("model clf: 100 instance(s): ['evil\\nINFO...', 'xxxxxxxxx...'")
    assert f"'text {MAX_LOGGED_INSTANCES - 3}'" in message
    assert f"'text {MAX_LOGGED_INSTANCES - 2}'" not in message
    assert message.endswith(f" ... {100 - MAX_LOGGED_INSTANCES} more")
    assert len(message) < 300

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="hf_runtime.requests"):
        await model.predict(["one", "two"])
    assert caplog.records[0].getMessage() == "model clf: 2 instance(s): ['one', 'two']"
    await model.aclose()


async def test_token_id_inputs_log_their_count_only(
    tiny_models, caplog: pytest.LogCaptureFixture
) -> None:
    path = tiny_models["bert-embed"]
    config = model_config(path, model_name="embed")
    model = await load_encoder_model(config, source_for(path), Task.text_embedding)
    with caplog.at_level(logging.INFO, logger="hf_runtime.requests"):
        await model.embed([[5, 6, 7]] * 20)
    (record,) = caplog.records
    message = record.getMessage()
    assert message.startswith("model embed: 20 instance(s): ['<3 token ids>'")
    assert message.endswith(f" ... {20 - MAX_LOGGED_INSTANCES} more")
    await model.aclose()
