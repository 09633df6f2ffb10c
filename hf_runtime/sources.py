"""Model sources: where a model's files come from, resolved once to a local folder.

Accepted forms (KServe resolves its source twice; we do it once, at load):
  model_id: "owner/name"             Hub id at model_revision (HF cache, HF_TOKEN, progress bar)
  model_dir: "/path" | "file:///path"  a local folder
  model_dir: "pkg://module/sub/dir"  a folder inside an installed Python package
  model_dir: "bentoml://name:version"  a model in the BentoML model store
  model_dir: "hf://owner/name[:rev]"   a Hub repo, KServe's storage-URI form
and with `gguf_file: NAME` (or a model_dir/model_id path ending in .gguf) a GGUF checkpoint,
converted once into a cached safetensors folder so later starts take about a second.

Hub snapshots baked into the image (`bentoml build --arg hub_weights=bake`, see
hf_runtime.baked) are found under $BENTOML_HF_CACHE_DIR, where `bentoml containerize` puts them,
without any Hub access; anything else downloads at start.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hf_runtime.config import ModelConfig
from hf_runtime.errors import ConfigError

logger = logging.getLogger("hf_runtime")

CACHE_ENV = "HF_RUNTIME_CACHE_DIR"
# Where `bentoml containerize` puts the Hub snapshots a Bento declares (BentoML's own variable).
BAKED_CACHE_ENV = "BENTOML_HF_CACHE_DIR"
_TOKENIZER_PATTERNS = ["tokenizer*", "vocab*", "merges.txt", "special_tokens_map.json", "*.model"]
_COMMIT_SHA = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class HubSnapshot:
    """The files a model needs from one Hub repo at one revision (None: the default branch)."""

    repo_id: str
    revision: str | None
    allow: tuple[str, ...] | None = None  # allow_patterns; None: every file

    @property
    def pinned(self) -> bool:
        """Whether the revision is a commit sha: an immutable snapshot, which can be baked."""
        return bool(self.revision and _COMMIT_SHA.fullmatch(self.revision))


@dataclass(frozen=True)
class ResolvedSource:
    """A model's files on local disk.

    `model_path` holds config.json + weights (a GGUF source is converted to safetensors first);
    `tokenizer_path` holds the tokenizer files (differs from model_path only when
    `tokenizer_revision` differs). `hf_config` is the parsed config.json.
    """

    model_path: Path
    tokenizer_path: Path
    hf_config: dict[str, Any] = field(default_factory=dict)
    description: str = ""


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "hf-runtime")


def hub_snapshots(config: ModelConfig) -> list[HubSnapshot]:
    """The Hub snapshots a model's files come from: none for a local source; else the model's
    (only the GGUF file, configs and tokenizer with `gguf_file`), plus the tokenizer's when
    `tokenizer_revision` differs from `model_revision`."""
    main: HubSnapshot | None = None
    if config.model_id and not Path(config.model_id).exists():
        allow = (config.gguf_file, "*.json", *_TOKENIZER_PATTERNS) if config.gguf_file else None
        main = HubSnapshot(config.model_id, config.model_revision, allow)
    else:
        scheme, sep, rest = (config.model_dir or "").partition("://")
        if sep and scheme == "hf":
            repo, _, rev = rest.partition(":")
            main = HubSnapshot(repo, rev or config.model_revision or None)
    if main is None:
        return []
    if config.model_id and config.tokenizer_revision not in (None, config.model_revision):
        tokenizer = ("*.json", *_TOKENIZER_PATTERNS)
        return [main, HubSnapshot(config.model_id, config.tokenizer_revision, tokenizer)]
    return [main]


def baked_snapshot(snapshot: HubSnapshot) -> Path | None:
    """The snapshot baked into the image, if it is there: looked up in $BENTOML_HF_CACHE_DIR
    with no Hub access at all. BentoML records repo ids lowercased, so both spellings count."""
    cache = os.environ.get(BAKED_CACHE_ENV)
    if not cache or not snapshot.pinned:
        return None
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    for repo_id in dict.fromkeys([snapshot.repo_id, snapshot.repo_id.lower()]):
        try:
            found = snapshot_download(
                repo_id, revision=snapshot.revision, cache_dir=cache, local_files_only=True
            )
        except LocalEntryNotFoundError:
            continue
        return Path(found)
    return None


def _hub_download(snapshot: HubSnapshot) -> Path:
    repo_id, revision = snapshot.repo_id, snapshot.revision
    baked = baked_snapshot(snapshot)
    if baked is not None:
        logger.info("%s@%s: using the weights baked into the image (%s)", repo_id, revision, baked)
        return baked
    from huggingface_hub import snapshot_download

    # snapshot_download honours HF_TOKEN / HF_HOME / HF_HUB_OFFLINE and shows a progress bar.
    allow = list(snapshot.allow) if snapshot.allow else None
    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=allow))
    except Exception as exc:  # network, auth, missing repo or revision: all configuration
        raise ConfigError(
            f"cannot download {repo_id}@{revision or 'main'} from the Hugging Face Hub: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _package_dir(spec: str) -> Path:
    module, _, sub = spec.partition("/")
    found = importlib.util.find_spec(module) if module else None
    if found is None or not found.submodule_search_locations:
        raise ConfigError(f"model_dir pkg://{spec}: Python package {module!r} is not installed")
    return Path(next(iter(found.submodule_search_locations))) / sub


def _bentoml_dir(tag: str) -> Path:
    import bentoml

    try:
        return Path(bentoml.models.get(tag).path)
    except Exception as exc:  # bentoml raises its own NotFound
        raise ConfigError(f"model_dir bentoml://{tag}: {exc}") from None


def _locate(config: ModelConfig) -> tuple[Path, str]:
    """(local path, human description) for the model files; downloads Hub repos."""
    snapshots = hub_snapshots(config)
    if snapshots:  # model_id (a Hub id) or model_dir hf://owner/name[:revision]
        hub = snapshots[0]
        return _hub_download(hub), f"Hub {hub.repo_id}@{hub.revision or 'main'}"
    if config.model_id:  # KServe passes local paths through model_id too
        return Path(config.model_id), f"local path {config.model_id}"
    uri = config.model_dir or ""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return Path(uri).expanduser(), f"local path {uri}"
    if scheme == "file":
        return Path(rest), f"local path {rest}"
    if scheme == "pkg":
        return _package_dir(rest), f"package {rest}"
    if scheme == "bentoml":
        return _bentoml_dir(rest), f"BentoML model {rest}"
    raise ConfigError(
        f"model_dir {uri}: unsupported scheme {scheme}://; use a local path, file://, pkg://, "
        "bentoml://, hf:// or model_id"
    )


def _gguf_cache_key(gguf: Path) -> str:
    import transformers

    stat = gguf.stat()
    ident = f"{gguf.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{transformers.__version__}"
    return hashlib.sha256(ident.encode()).hexdigest()[:16]


def convert_gguf(folder: Path, gguf_file: str) -> Path:
    """Dequantise a GGUF checkpoint once into a cached float32 safetensors folder.

    transformers dequantises GGUF on every load (~15 s for SmolLM2-135M) and refuses to
    save_pretrained a GGUF-loaded model, so we rebuild a plain model from its config and copy
    the weights. The result is reused while the GGUF file is unchanged.
    """
    gguf = folder / gguf_file
    if not gguf.is_file():
        raise ConfigError(f"gguf_file {gguf_file} not found in {folder}")
    target = cache_dir() / "gguf" / f"{gguf.stem}-{_gguf_cache_key(gguf)}"
    if (target / "config.json").is_file():
        return target
    import copy

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("converting %s to safetensors in %s (once)", gguf, target)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=torch.float32)
    plain_config = copy.deepcopy(loaded.config)
    if hasattr(plain_config, "quantization_config"):
        delattr(plain_config, "quantization_config")
    plain = AutoModelForCausalLM.from_config(plain_config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    plain.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    generation_config = getattr(loaded, "generation_config", None)
    if generation_config is not None:
        generation_config.save_pretrained(staging)
    try:
        staging.rename(target)  # atomic: a concurrent worker either sees all of it or none
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)  # another process won the race
    return target


def _read_hf_config(path: Path) -> dict[str, Any]:
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ConfigError(f"no config.json in {path}: not a Hugging Face model folder")
    try:
        data = json.loads(config_file.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{config_file} is not valid JSON: {exc}") from None
    return data if isinstance(data, dict) else {}


def resolve_source(config: ModelConfig) -> ResolvedSource:
    """Locate (downloading if needed) and, for GGUF, convert the model's files. Blocking."""
    path, description = _locate(config)
    gguf_file = config.gguf_file
    if gguf_file is None and path.suffix == ".gguf":
        path, gguf_file = path.parent, path.name
    if not path.is_dir():
        raise ConfigError(f"model {config.model_name}: {description} is not a folder")
    if gguf_file:
        path = convert_gguf(path, gguf_file)
        description += f" (GGUF {gguf_file}, converted)"
    snapshots = hub_snapshots(config)
    tokenizer_path = _hub_download(snapshots[1]) if len(snapshots) > 1 else path
    return ResolvedSource(path, tokenizer_path, _read_hf_config(path), description)
