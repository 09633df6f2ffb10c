"""How a dead vLLM engine is described (the reason its models report, the line the runtime
logs): the engine core process by name and how it ended. The e2e test kills a real one."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from hf_runtime.backends.vllm.async_llm import engine_failure


def fake_engine(errored: bool, finished: dict[str, int | None], dead: Any = None) -> Any:
    manager = SimpleNamespace(finished_procs=lambda: finished)
    core = SimpleNamespace(resources=SimpleNamespace(engine_manager=manager))
    return SimpleNamespace(errored=errored, engine_core=core, dead_error=dead)


def test_a_running_engine_has_no_failure() -> None:
    assert engine_failure(fake_engine(False, {})) is None


def test_a_killed_engine_core_is_named_with_its_signal() -> None:
    failure = engine_failure(fake_engine(True, {"EngineCore_DP0": -9}))
    assert failure == (
        "Its vLLM engine core process died: EngineCore_DP0 was killed by signal 9 (SIGKILL)"
    )
    failure = engine_failure(fake_engine(True, {"EngineCore_DP0": 1}))
    assert failure == "Its vLLM engine core process died: EngineCore_DP0 exited with code 1"


def test_an_in_process_engine_says_its_error() -> None:
    in_process = SimpleNamespace(errored=True, engine_core=object(), dead_error="EngineDeadError")
    assert engine_failure(in_process) == "Its vLLM engine died: EngineDeadError"
