"""What both backends share: pooling formulas, tokenizer rules, and the backend registry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from hf_runtime.backends import POOLING_MODES
from hf_runtime.backends.pooling import pool_hidden_states, pool_token_states
from hf_runtime.backends.registry import (
    BACKEND_PACKAGES,
    all_backends,
    get_backend,
    validate_backend_sections,
    with_drain_timeout,
)
from hf_runtime.backends.tokenizer_rules import encoder_max_length, read_chat_template
from hf_runtime.config import ModelConfig
from hf_runtime.errors import ConfigError
from hf_runtime.tasks.registry import Task


# weightedmean weighs by position in the padded batch, as sentence-transformers does, so on a
# left-padded batch its weights start after the padding: not comparable to an unpadded text.
@pytest.mark.parametrize(
    ("left", "modes"),
    [(False, POOLING_MODES), (True, tuple(m for m in POOLING_MODES if m != "weightedmean"))],
)
def test_one_text_pools_as_its_row_of_a_padded_batch(left: bool, modes: tuple[str, ...]) -> None:
    """vLLM pools each unpadded text; huggingface pools a padded batch: the same numbers."""
    torch.manual_seed(0)
    lengths, width = [5, 3], 4
    texts = [torch.randn(length, width) for length in lengths]
    longest = max(lengths)
    hidden = torch.zeros(len(texts), longest, width)
    mask = torch.zeros(len(texts), longest, dtype=torch.long)
    for row, states in enumerate(texts):
        start = longest - len(states) if left else 0
        hidden[row, start : start + len(states)] = states
        mask[row, start : start + len(states)] = 1
    batch = pool_hidden_states(hidden, mask, modes)
    for row, states in enumerate(texts):
        torch.testing.assert_close(pool_token_states(states, modes), batch[row])


def test_mean_pooling_is_the_average_of_the_real_tokens() -> None:
    states = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
    assert pool_token_states(states, ("mean", "cls", "lasttoken")).tolist() == [
        2.0, 4.0, 1.0, 2.0, 3.0, 6.0,
    ]  # fmt: skip
    with pytest.raises(ValueError, match="unknown pooling mode 'sum'"):
        pool_token_states(states, ("sum",))


@pytest.mark.parametrize(
    ("tokenizer_limit", "configured", "expected"),
    [(512, None, 512), (512, 514, 514), (int(1e30), None, 514), (0, None, 514), (600, None, 514)],
)
def test_encoder_max_length_takes_a_smaller_tokenizer_limit_unless_configured(
    tokenizer_limit: int, configured: int | None, expected: int
) -> None:
    tokenizer = SimpleNamespace(model_max_length=tokenizer_limit)
    assert encoder_max_length(514, tokenizer, configured) == expected


def test_chat_template_file(tmp_path: Path) -> None:
    template = tmp_path / "chat.jinja"
    template.write_text("{{ messages }}")
    assert read_chat_template(str(template)) == "{{ messages }}"
    assert read_chat_template(None) is None
    with pytest.raises(ConfigError, match="generation.chat_template: cannot read"):
        read_chat_template(str(tmp_path / "missing.jinja"))


def test_every_registered_backend_answers_without_importing_its_libraries() -> None:
    code = (
        "import sys\n"
        "from hf_runtime.backends.registry import all_backends\n"
        "from hf_runtime.tasks.registry import Task\n"
        "for backend in all_backends():\n"
        "    backend.installed()\n"
        "    [backend.unsupported_reason(task) for task in Task]\n"
        "    [backend.auto_declines(task) for task in Task]\n"
        "heavy = sorted(m for m in ('vllm', 'torch', 'transformers') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_registry_lists_each_backend_under_its_name() -> None:
    assert [backend.name for backend in all_backends()] == list(BACKEND_PACKAGES)
    assert get_backend("huggingface").unsupported_reason(Task.fill_mask) is None
    assert get_backend("vllm").unsupported_reason(Task.fill_mask) is not None
    with pytest.raises(ConfigError, match="backend 'tgi' does not exist"):
        get_backend("tgi")


def test_backend_sections_are_validated_and_given_the_drain_time() -> None:
    model = ModelConfig(model_name="m", model_dir="/m", vllm={"tensor_parallel": 2})
    with pytest.raises(ConfigError, match="vllm.tensor_parallel: unknown key"):
        validate_backend_sections(model)
    plain = ModelConfig(model_name="m", model_dir="/m")
    assert with_drain_timeout(plain, 30).vllm == {"shutdown_timeout": 30}
    own = ModelConfig(model_name="m", model_dir="/m", vllm={"shutdown_timeout": 5})
    assert with_drain_timeout(own, 30).vllm == {"shutdown_timeout": 5}
