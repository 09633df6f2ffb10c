"""`server.model_repository`: a folder of model folders, loaded and unloaded by folder name.

Each sub-folder is a Hugging Face checkpoint (a `config.json`), optionally with its own
`hf-runtime.yaml` of model settings (task, backend, options: the `models:` entry's keys, bar
the name and location the folder gives), or a LoRA adapter (an `adapter_config.json`),
which loads through the runtime LoRA routes. The folder is read again whenever the index is
asked for or a name is loaded, so folders added while serving are found without a restart.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from hf_runtime.config import ModelConfig
from hf_runtime.config.model import MODEL_FLAGS

logger = logging.getLogger("hf_runtime")

MODEL_SETTINGS_FILE = "hf-runtime.yaml"
ADAPTER_CONFIG_FILE = "adapter_config.json"
# What the folder itself decides: its name is the model's, its path the checkpoint.
FOLDER_DECIDED = ("model_name", "model_id", "model_dir")


@dataclass(frozen=True)
class RepositoryFolder:
    """One sub-folder: a model's settings, or why they are invalid; or a LoRA adapter."""

    name: str
    path: Path
    config: ModelConfig | None = None
    error: str = ""  # an invalid settings file: the folder is listed, its load refused
    is_adapter: bool = False


def scan(root: str) -> dict[str, RepositoryFolder]:
    """The folders of `root` by name (hidden ones and plain files skipped). Blocking I/O."""
    base = Path(root)
    if not base.is_dir():
        logger.warning("model repository %s is not a folder", root)
        return {}
    found: dict[str, RepositoryFolder] = {}
    for path in sorted(base.iterdir()):
        if path.name.startswith(".") or not path.is_dir():
            continue
        found[path.name] = read_folder(path)
    return found


def read_folder(path: Path) -> RepositoryFolder:
    name = path.name
    if (path / ADAPTER_CONFIG_FILE).is_file():
        return RepositoryFolder(name, path, is_adapter=True)
    try:
        settings = _read_settings(path / MODEL_SETTINGS_FILE)
        config = ModelConfig.model_validate(
            {**settings, "model_name": name, "model_dir": str(path)}
        )
    except (ValueError, ValidationError) as exc:
        return RepositoryFolder(name, path, error=f"{MODEL_SETTINGS_FILE}: {_one_line(exc)}")
    return RepositoryFolder(name, path, config=config)


def _read_settings(file: Path) -> dict[str, object]:
    if not file.is_file():
        return {}
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError("must hold a mapping of model settings")
    decided = sorted(set(data) & set(FOLDER_DECIDED))
    if decided:
        raise ValueError(f"{', '.join(decided)} come(s) from the folder; remove it")
    unknown = sorted(set(data) - MODEL_FLAGS)
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(map(str, unknown))}")
    return data


def _one_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(settings)'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
    return str(exc)


def release_memory() -> None:
    """Hand an unloaded model's memory back: collect its reference cycles, return glibc's free
    heap pages to the system (else RSS keeps the high-water mark), empty torch's GPU cache.
    Blocking: run it in a thread."""
    gc.collect()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # not glibc (musl): no trim
            ctypes.CDLL("libc.so.6").malloc_trim(0)
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
