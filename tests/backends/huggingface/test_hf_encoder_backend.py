from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from hf_runtime.backends import ForwardItem, ForwardSpec
from hf_runtime.backends.checkpoint import derive_max_model_len, resolve_dtype
from hf_runtime.errors import ConfigError
from hf_runtime.tasks.registry import Task
from tests.encoder_support import load_backend

# ---------------------------------------------------------------- max_model_len


def test_max_len_is_the_smallest_bounding_key():
    config = {"max_position_embeddings": 512, "n_positions": 1024}
    assert derive_max_model_len(config, None, env={}) == 512
    assert derive_max_model_len(config, 100, env={}) == 100


def test_max_len_without_bounds_is_2048_or_the_users():
    assert derive_max_model_len({}, None, env={}) == 2048
    assert derive_max_model_len({}, 9000, env={}) == 9000


def test_rope_scaling_multiplies_the_bound():
    linear = {"max_position_embeddings": 1000, "rope_scaling": {"rope_type": "linear", "factor": 2}}
    yarn = {
        "max_position_embeddings": 1000,
        "rope_scaling": {"type": "yarn", "factor": 4, "original_max_position_embeddings": 500},
    }
    llama3 = {"max_position_embeddings": 1000, "rope_scaling": {"rope_type": "llama3", "factor": 8}}
    assert derive_max_model_len(linear, None, env={}) == 2000
    assert derive_max_model_len(yarn, None, env={}) == 2000
    assert derive_max_model_len(llama3, None, env={}) == 1000


def test_user_max_len_above_derived_needs_permission():
    config = {"max_position_embeddings": 512}
    with pytest.raises(ConfigError, match="ALLOW_LONG_MAX_MODEL_LEN=1"):
        derive_max_model_len(config, 1024, env={})
    assert derive_max_model_len(config, 1024, env={"ALLOW_LONG_MAX_MODEL_LEN": "1"}) == 1024


def test_max_model_len_config_error_at_load(tiny_models, monkeypatch):
    monkeypatch.delenv("ALLOW_LONG_MAX_MODEL_LEN", raising=False)
    with pytest.raises(ConfigError, match="max_model_len: 1000"):
        load_backend(tiny_models["bert-seq-cls"], Task.sequence_classification, max_model_len=1000)
    monkeypatch.setenv("ALLOW_LONG_MAX_MODEL_LEN", "1")
    backend = load_backend(
        tiny_models["bert-seq-cls"], Task.sequence_classification, max_model_len=1000
    )
    assert backend.max_length == 1000


def test_max_model_len_truncates(tiny_models):
    path = tiny_models["bert-seq-cls"]
    text = " ".join(["hello"] * 400)
    assert len(load_backend(path, Task.sequence_classification).tokenize([text])[0]) == 256
    short = load_backend(path, Task.sequence_classification, max_model_len=10)
    encoding = short.tokenize([text])[0]
    assert len(encoding) == 10
    assert encoding.input_ids[-1] == 3  # [SEP] kept: truncation, not a cut


# ---------------------------------------------------------------- dtype / attention / device


def test_resolve_dtype_rules():
    assert resolve_dtype("auto", {"dtype": "bfloat16"}, on_cuda=False) is torch.bfloat16
    assert resolve_dtype("auto", {"torch_dtype": "float16"}, on_cuda=False) is torch.float16
    assert resolve_dtype("auto", {}, on_cuda=False) is torch.float32
    assert resolve_dtype("auto", {}, on_cuda=True) is torch.float16
    assert resolve_dtype("half", {"dtype": "float32"}, on_cuda=False) is torch.float16
    assert resolve_dtype("float", {}, on_cuda=True) is torch.float32


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [("float32", torch.float32), ("bfloat16", torch.bfloat16), ("half", torch.float16)],
)
def test_dtype_flag_sets_weights_dtype(tiny_models, dtype, expected):
    backend = load_backend(tiny_models["bert-seq-cls"], Task.sequence_classification, dtype=dtype)
    assert next(backend.model.parameters()).dtype is expected
    [out] = backend.forward(
        [ForwardItem(backend.tokenize(["hello"])[0])], ForwardSpec()
    )  # outputs always come back as float32
    assert out.dtype == np.float32


def test_auto_dtype_follows_the_checkpoint(tiny_models, tmp_path):
    path = tmp_path / "bf16"
    shutil.copytree(tiny_models["bert-seq-cls"], path)
    config = json.loads((path / "config.json").read_text())
    config["dtype"] = "bfloat16"
    config.pop("torch_dtype", None)
    (path / "config.json").write_text(json.dumps(config))
    backend = load_backend(path, Task.sequence_classification)
    assert next(backend.model.parameters()).dtype is torch.bfloat16


def test_sdpa_attention_on_cpu(tiny_models):
    backend = load_backend(tiny_models["bert-seq-cls"], Task.sequence_classification)
    assert backend.model.config._attn_implementation == "sdpa"
    assert backend.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert not backend.model.training


# ---------------------------------------------------------------- inputs fed to the model


def _capture_forward_kwargs(backend):
    seen: list[set[str]] = []
    handle = backend.model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(set(kwargs)), with_kwargs=True
    )
    return seen, handle


def test_token_type_ids_are_returned_and_fed_when_enabled(tiny_models):
    path = tiny_models["bert-seq-cls"]
    plain = load_backend(path, Task.sequence_classification)
    typed = load_backend(path, Task.sequence_classification, return_token_type_ids=True)
    assert plain.tokenize(["hello"])[0].token_type_ids is None
    assert typed.tokenize(["hello"])[0].token_type_ids == (0, 0, 0)

    for backend, expected in ((plain, False), (typed, True)):
        seen, handle = _capture_forward_kwargs(backend)
        backend.forward([ForwardItem(e) for e in backend.tokenize(["a", "b c"])], ForwardSpec())
        handle.remove()
        assert ("token_type_ids" in seen[0]) is expected


def test_tensor_input_names_select_the_model_inputs(tiny_models):
    path = tiny_models["bert-seq-cls"]
    full = load_backend(path, Task.sequence_classification)
    ids_only = load_backend(path, Task.sequence_classification, tensor_input_names="input_ids")
    seen, handle = _capture_forward_kwargs(ids_only)
    texts = ["hello", "the quick brown fox jumps over the lazy dog"]
    items_full = [ForwardItem(e) for e in full.tokenize(texts)]
    without_mask = ids_only.forward(items_full, ForwardSpec())
    handle.remove()
    assert seen[0] == {"input_ids", "return_dict"}
    with_mask = full.forward(items_full, ForwardSpec())
    # The padded short text attends to its pad tokens without an attention mask.
    assert not np.allclose(without_mask[0], with_mask[0], atol=1e-4)
    np.testing.assert_allclose(without_mask[1], with_mask[1], atol=1e-5)


def test_unknown_tensor_input_name_is_a_config_error(tiny_models):
    with pytest.raises(ConfigError, match="token_type_ids not produced"):
        load_backend(
            tiny_models["bert-seq-cls"],
            Task.sequence_classification,
            tensor_input_names=["input_ids", "token_type_ids"],
        )


def test_offsets_are_returned_for_token_classification_only(tiny_models):
    # Entity grouping needs character offsets whether or not the offset_mapping output is on
    # (that output is still only sent with return_offsets_mapping: see the task tests).
    path = tiny_models["bert-ner"]
    with_offsets = load_backend(path, Task.token_classification, return_offsets_mapping=True)
    assert with_offsets.tokenize(["hello world"])[0].offsets == ((0, 0), (0, 5), (6, 11), (0, 0))
    assert load_backend(path, Task.token_classification).tokenize(["hi"])[0].offsets is not None
    classifier = load_backend(tiny_models["bert-seq-cls"], Task.sequence_classification)
    assert classifier.tokenize(["hi"])[0].offsets is None


def test_lower_casing_is_passed_to_the_tokenizer(tiny_models):
    path = tiny_models["bert-seq-cls"]
    lower = load_backend(path, Task.sequence_classification)
    cased = load_backend(path, Task.sequence_classification, disable_lower_case=True)
    assert lower.tokenize(["Paris"])[0] != cased.tokenize(["Paris"])[0]
    assert lower.tokenize(["Paris"])[0] == cased.tokenize(["paris"])[0]


def test_special_tokens_flag(tiny_models):
    path = tiny_models["bert-seq-cls"]
    with_special = load_backend(path, Task.sequence_classification).tokenize(["hello"])[0]
    without = load_backend(path, Task.sequence_classification, disable_special_tokens=True)
    assert with_special.input_ids == (2, *without.tokenize(["hello"])[0].input_ids, 3)


# ---------------------------------------------------------------- trust_remote_code

_CONFIGURATION = """
from transformers import BertConfig


class CustomBertConfig(BertConfig):
    model_type = "custom-bert"
"""
_MODELING = """
from transformers import BertForSequenceClassification

from .configuration_custom import CustomBertConfig


class CustomBertForSequenceClassification(BertForSequenceClassification):
    config_class = CustomBertConfig
"""


def test_trust_remote_code_loads_a_custom_architecture(tiny_models, tmp_path):
    path = tmp_path / "custom"
    shutil.copytree(tiny_models["bert-seq-cls"], path)
    (path / "configuration_custom.py").write_text(_CONFIGURATION)
    (path / "modeling_custom.py").write_text(_MODELING)
    config = json.loads((path / "config.json").read_text())
    config.update(
        model_type="custom-bert",
        architectures=["CustomBertForSequenceClassification"],
        auto_map={
            "AutoConfig": "configuration_custom.CustomBertConfig",
            "AutoModelForSequenceClassification": (
                "modeling_custom.CustomBertForSequenceClassification"
            ),
        },
    )
    (path / "config.json").write_text(json.dumps(config))

    with pytest.raises(ValueError, match="trust_remote_code"):
        load_backend(path, Task.sequence_classification)
    custom = load_backend(path, Task.sequence_classification, trust_remote_code=True)
    assert type(custom.model).__name__ == "CustomBertForSequenceClassification"
    reference = load_backend(tiny_models["bert-seq-cls"], Task.sequence_classification)
    items = [ForwardItem(e) for e in reference.tokenize(["hello world"])]
    np.testing.assert_allclose(
        custom.forward(items, ForwardSpec())[0], reference.forward(items, ForwardSpec())[0]
    )


# ---------------------------------------------------------------- tokenizer quirks


def _edit_json(path, **changes) -> None:
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path.write_text(json.dumps(data))


def test_user_max_len_up_to_config_model_max_length_is_allowed():
    config = {"max_position_embeddings": 512, "model_max_length": 512}
    assert derive_max_model_len(config, 512, env={}) == 512
    with pytest.raises(ConfigError):
        derive_max_model_len(config, 513, env={})


def test_tokenizer_limit_below_positions_caps_the_default_length(tiny_models, tmp_path):
    """RoBERTa-style: 514 positions but 512 usable tokens; KServe would truncate at 514."""
    path = tmp_path / "capped"
    shutil.copytree(tiny_models["bert-seq-cls"], path)
    _edit_json(path / "tokenizer_config.json", model_max_length=100)
    backend = load_backend(path, Task.sequence_classification)
    assert backend.max_length == 100
    assert len(backend.tokenize([" ".join(["hello"] * 300)])[0]) == 100
    explicit = load_backend(path, Task.sequence_classification, max_model_len=200)
    assert explicit.max_length == 200


def test_missing_pad_token_gets_kserve_fallback(tiny_models, tmp_path):
    path = tmp_path / "nopad"
    shutil.copytree(tiny_models["gpt2-chat"], path)
    _edit_json(path / "tokenizer_config.json", pad_token=None)
    backend = load_backend(path, Task.text_embedding)
    assert backend.tokenizer.pad_token == "[PAD]"
    assert backend.vocab_size == len(backend.tokenizer)
    items = [ForwardItem(e) for e in backend.tokenize(["Hello world", "Paris"])]
    pooled = backend.forward(items, ForwardSpec(pooling=("lasttoken",)))
    assert [p.shape for p in pooled] == [(64,), (64,)]
