"""The ONNX file an encoder runs: the checkpoint's own, or an export cached once per model.

A checkpoint that ships an ONNX file (sentence-transformers and optimum put it at
onnx/model.onnx) runs that file when it has the output the task reads. Otherwise the model is
exported once with torch.onnx's TorchScript exporter (`dynamo=False`: the dynamo exporter does
not trace transformers 5's encoders with dynamic shapes) at opset 17, with dynamic batch and
sequence axes, and cached under `$HF_RUNTIME_CACHE_DIR/onnx/<model>-<key>/`. The key covers
the weights (the Hub commit of a snapshot folder, else a sha256 of config.json and the weight
files), the head, the exporter and its torch and transformers versions, the opset and ONNX
Runtime's version: changing any of them exports again, nothing else does.

Writes are atomic and concurrent workers safe: a worker exports into a temporary folder
beside the target and renames it into place, under a file lock, so a second worker waits and
then reuses the first one's file. Imports torch and transformers (only to export).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hf_runtime.backends.onnxruntime.config import OnnxRuntimeConfig
from hf_runtime.config import ModelConfig
from hf_runtime.errors import ConfigError
from hf_runtime.sources import ResolvedSource, cache_dir
from hf_runtime.tasks.registry import Head, Task

logger = logging.getLogger("hf_runtime")

OPSET = 17
EXPORTER = "torch.onnx.export(dynamo=False)"
EXPORT_FILE = "model.onnx"
SHIPPED_FILES = ("onnx/model.onnx", "model.onnx")
# What the export checks its file against torch with (float32; the tests hold 1e-4).
EXPORT_CHECK_TOLERANCE = 1e-3
_COMMIT_SHA = re.compile(r"[0-9a-f]{40}")
_WEIGHT_SUFFIXES = (".safetensors", ".bin")


@dataclass(frozen=True)
class OnnxFile:
    """The ONNX file to run, where it came from (for the log), and the cache key it was made
    under (None for a checkpoint's own file)."""

    path: Path
    origin: str
    key: Mapping[str, str] | None = None


def output_name(head: Head) -> str:
    """The output the task reads: hidden states to pool, or the head's logits."""
    return "last_hidden_state" if head is Head.base else "logits"


def locate_onnx(
    config: ModelConfig,
    source: ResolvedSource,
    task: Task,
    section: OnnxRuntimeConfig,
    tokenizer: Any,
    added_pad_token: bool,
) -> OnnxFile:
    """The checkpoint's ONNX file if it has a usable one, else the cached export (made now if
    missing). ConfigError for a configured `model_file` that is missing or unusable."""
    wanted = output_name(task.spec.head)
    if section.model_file is not None:
        path = source.model_path / section.model_file
        if not path.is_file():
            raise ConfigError(f"onnxruntime.model_file: no {section.model_file} in the model")
        problem = _unusable(path, wanted, added_pad_token)
        if problem:
            raise ConfigError(f"onnxruntime.model_file {section.model_file}: {problem}")
        return OnnxFile(path, f"the checkpoint's {section.model_file}")
    for name in SHIPPED_FILES:
        path = source.model_path / name
        if path.is_file():
            problem = _unusable(path, wanted, added_pad_token)
            if problem is None:
                return OnnxFile(path, f"the checkpoint's {name}")
            logger.info("not running the checkpoint's %s (%s); exporting instead", name, problem)
    key = export_key(source.model_path, task, added_pad_token, len(tokenizer))
    folder = cache_dir() / "onnx" / f"{config.model_name}-{_digest(key)}"
    if (folder / EXPORT_FILE).is_file():
        return OnnxFile(folder / EXPORT_FILE, f"the cached export {folder}", key)

    def export(target: Path) -> None:
        export_encoder(config, source, task, tokenizer, added_pad_token, target)

    path = cached_build(folder, EXPORT_FILE, key, export)
    return OnnxFile(path, f"an export cached in {folder}", key)


def _unusable(path: Path, wanted: str, added_pad_token: bool) -> str | None:
    """Why a shipped file cannot run this task, or None."""
    import onnx

    if added_pad_token:
        return "the tokenizer has no padding token, so the model needs a grown vocabulary"
    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as exc:  # onnx raises DecodeError and others for a broken file
        return f"not a readable ONNX file ({type(exc).__name__}: {exc})"
    outputs = [output.name for output in graph.output]
    if wanted not in outputs:
        return f"it has no {wanted} output (outputs: {', '.join(outputs)})"
    return None


def weights_fingerprint(model_path: Path) -> str:
    """The Hub commit of a snapshot folder, else a sha256 of config.json and the weights."""
    if model_path.parent.name == "snapshots" and _COMMIT_SHA.fullmatch(model_path.name):
        return f"revision {model_path.name}"
    files = [
        path
        for path in sorted(model_path.iterdir())
        if path.is_file() and (path.name == "config.json" or path.suffix in _WEIGHT_SUFFIXES)
    ]
    return f"sha256 {_remembered_sha256(model_path, files)}"


def _remembered_sha256(model_path: Path, files: list[Path]) -> str:
    """The sha256 of `files` (names and contents), read from a sidecar in the cache while
    every file keeps its path, size, mtime, ctime and inode: a restart does not read gigabytes
    of weights again, and a file written since (which moves its ctime, whatever the writer does
    to mtime) is hashed again; only a rewrite to the same size within the clock tick of the
    stamp would pass unseen. A sidecar that cannot be written costs the next start a hash."""
    stamps = []
    for path in files:
        stat = path.stat()
        stamps.append(
            [str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]
        )
    folder = cache_dir() / "onnx" / "weights-sha256"
    sidecar = folder / f"{hashlib.sha256(str(model_path.resolve()).encode()).hexdigest()[:32]}.json"
    try:
        remembered = json.loads(sidecar.read_text())
        if remembered["files"] == stamps:
            return str(remembered["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        pass  # none yet, or unreadable: hash
    digest = _hash_files(files)
    staged: Path | None = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=folder, suffix=".tmp", delete=False) as out:
            staged = Path(out.name)
            json.dump({"files": stamps, "sha256": digest}, out)
        staged.replace(sidecar)  # atomic: a concurrent reader sees one whole sidecar
    except OSError as exc:
        logger.info("not remembering the weights' sha256 in %s: %s", folder, exc)
        if staged is not None:
            staged.unlink(missing_ok=True)
    return digest


def _hash_files(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as stream:
            while chunk := stream.read(1 << 23):
                digest.update(chunk)
    return digest.hexdigest()


def export_key(
    model_path: Path, task: Task, added_pad_token: bool, vocabulary: int
) -> dict[str, str]:
    """What an export depends on (see the module docstring)."""
    import onnxruntime
    import torch
    import transformers

    return {
        "weights": weights_fingerprint(model_path),
        "head": task.spec.head.value,
        "vocabulary": f"{vocabulary} (pad token added)" if added_pad_token else "as saved",
        "exporter": EXPORTER,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "opset": str(OPSET),
        "onnxruntime": onnxruntime.__version__,
    }


def _digest(key: Mapping[str, str]) -> str:
    return hashlib.sha256(json.dumps(dict(key), sort_keys=True).encode()).hexdigest()[:16]


def cached_build(
    folder: Path, filename: str, key: Mapping[str, str], build: Callable[[Path], None]
) -> Path:
    """`folder/filename`, built once by `build(path)`: in a temporary folder renamed into
    place (a reader sees all of it or none), under a lock so concurrent workers build once."""
    target = folder / filename
    folder.parent.mkdir(parents=True, exist_ok=True)
    with (folder.parent / f"{folder.name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if target.is_file():
            return target  # another worker built it while this one waited
        staging = Path(tempfile.mkdtemp(prefix=f"{folder.name}.", dir=folder.parent))
        try:
            build(staging / filename)
            (staging / "key.json").write_text(json.dumps(dict(key), indent=1) + "\n")
            shutil.rmtree(folder, ignore_errors=True)  # a folder without the file: unusable
            staging.rename(folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def export_encoder(
    config: ModelConfig,
    source: ResolvedSource,
    task: Task,
    tokenizer: Any,
    added_pad_token: bool,
    target: Path,
) -> None:
    """Export the task's model to `target` (float32, eager attention, the inputs its forward
    takes) and check the file against torch on a padded batch."""
    import torch
    import transformers

    from hf_runtime.backends.transformers_encoder import MODEL_CLASSES

    model_cls = getattr(transformers, MODEL_CLASSES[task.spec.head])
    logger.info("exporting %s to ONNX (once): %s", config.model_name, target.parent)
    model = model_cls.from_pretrained(
        str(source.model_path),
        dtype=torch.float32,
        attn_implementation="eager",  # the attention pattern ONNX Runtime's fusions match
        trust_remote_code=config.trust_remote_code,
    )
    if added_pad_token:
        model.resize_token_embeddings(len(tokenizer))
    model.eval()
    names = _input_names(model, tokenizer)
    output = output_name(task.spec.head)
    example = tokenizer(
        ["hello world", "a longer sentence, padded to the batch"], padding=True, return_tensors="pt"
    )
    ids = example["input_ids"]
    tensors = tuple(example.get(name, torch.zeros_like(ids)) for name in names)
    wrapper = _named_inputs_class()(model, names, output).eval()
    sequence_axes = {0: "batch", 1: "sequence"}
    axes = dict.fromkeys(names, sequence_axes)
    axes[output] = {0: "batch"} if task.spec.head is Head.sequence_classification else sequence_axes
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about Python ints in transformers
        expected = wrapper(*tensors).numpy()
        torch.onnx.export(
            wrapper,
            tensors,
            str(target),
            input_names=list(names),
            output_names=[output],
            dynamic_axes=axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    _check_export(target, names, tensors, expected)


def _named_inputs_class() -> type:
    """Defined in a function: torch is imported only to export."""
    import torch

    class NamedInputs(torch.nn.Module):
        """The model called with its inputs by name, returning one output: the TorchScript
        exporter passes tensors positionally, which transformers' forward does not take."""

        def __init__(self, model: Any, names: tuple[str, ...], output: str) -> None:
            super().__init__()
            self.model = model
            self.names = names
            self.output = output

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            result = self.model(**dict(zip(self.names, tensors, strict=True)), return_dict=True)
            return result[self.output]  # type: ignore[no-any-return]

    return NamedInputs


def _input_names(model: Any, tokenizer: Any) -> tuple[str, ...]:
    """input_ids, attention_mask, and token_type_ids when the forward takes them by name (or
    takes any keyword and the tokenizer makes them)."""
    import inspect

    parameters = inspect.signature(model.forward).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    types = "token_type_ids" in parameters or (
        takes_any and "token_type_ids" in tokenizer.model_input_names
    )
    return ("input_ids", "attention_mask", *(("token_type_ids",) if types else ()))


def _check_export(target: Path, names: tuple[str, ...], tensors: tuple[Any, ...], expected: Any):
    import numpy as np
    import onnxruntime

    session = onnxruntime.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    # The file takes only the inputs the forward reads (a forward taking **kwargs ignores
    # token_type_ids, and the exporter drops the unused input).
    taken = {arg.name for arg in session.get_inputs()}
    feed = {n: t.numpy() for n, t in zip(names, tensors, strict=True) if n in taken}
    got = session.run(None, feed)[0]
    error = float(np.abs(got - expected).max())
    if error > EXPORT_CHECK_TOLERANCE:
        raise ConfigError(
            f"the ONNX export differs from torch by {error:.2g} on a test batch (more than "
            f"{EXPORT_CHECK_TOLERANCE}); this architecture does not export: use backend: "
            "huggingface"
        )
