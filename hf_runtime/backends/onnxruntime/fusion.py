"""Offline graph fusion: ONNX Runtime's transformers optimizer on the file an encoder runs.

ONNX Runtime's own session optimisations fuse little of a torch.onnx export of a BERT-like
encoder (GELU and MatMul pairs); its offline optimizer (`onnxruntime.transformers.optimizer`)
matches the whole pattern: the embeddings and their LayerNorm into EmbedLayerNormalization,
each layer's attention into one Attention node. Its SkipLayerNormalization fusion (residual
add + LayerNorm) is left out: ONNX Runtime's CPU kernel for it measured slower than the Add and
LayerNormalization it replaces (MiniLM, one thread, batch 64: about 10% of the forward), and
the session keeps its online fusion off too (`session.DISABLED_OPTIMIZERS`). MiniLM goes from
254 nodes (after the session's own optimisations) to 70 (README, "The onnxruntime backend",
for the speed).

`fusion: auto` (the default) runs it for the architectures it handles (`FUSION_MODEL_TYPES`),
with the raw attention mask (its default for BERT, a mask index, assumes right padding), and
keeps the fused file only when it has fewer nodes than the input and, on a padded batch of
sentence pairs and on one sentence, matches the input file within `FUSION_CHECK_TOLERANCE`
(the input was checked against torch when exported). Otherwise the unfused file runs and the
reason is logged. The outcome, fused or not, is cached under
`$HF_RUNTIME_CACHE_DIR/onnx/<model>-fused-<key>/` (`fusion.json`, `key.json`, and
`model.fused.onnx` when fused) with the export's atomic, locked writes, so a worker fuses once.
The key covers the input file (the export's key, or a sha256 of a shipped file), the
optimizer's settings and onnxruntime's version.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime

from hf_runtime.backends.onnxruntime.export import OnnxFile, cached_build
from hf_runtime.sources import cache_dir

logger = logging.getLogger("hf_runtime")

# config.json model_type -> the optimizer's model type. Each was exported and fused here
# (attention fused in all of them; the embeddings of roberta-like models, whose position ids
# start after the padding index, stay unfused by the optimizer's own pattern check). MPNet and
# DeBERTa are left out: their attention (relative position bias) does not fuse.
FUSION_MODEL_TYPES = {
    "bert": "bert",
    "roberta": "bert",
    "xlm-roberta": "bert",
    "camembert": "bert",
    "distilbert": "bert",
    "electra": "bert",
    "albert": "bert",
}
FUSED_FILE = "model.fused.onnx"
RESULT_FILE = "fusion.json"
# The fused file's outputs against the unfused file's, relative to the largest output (at
# least 1): float32 arithmetic in another order stays near 1e-6.
FUSION_CHECK_TOLERANCE = 1e-4
OPTIMIZER = (
    "onnxruntime.transformers.optimizer, opt_level 0, raw attention mask, no SkipLayerNormalization"
)
EXTERNAL_DATA_BYTES = 1_800_000_000  # protobuf's 2 GiB limit, as session.INT8's
_CHECK_TEXTS = (
    ["hello world", "a longer sentence, padded to the batch, with a few more words"],
    ["a short pair", "x"],
)


def fusion_shape(hf_config: Any) -> tuple[str, int, int] | None:
    """(optimizer model type, heads, hidden size) for a supported architecture, else None."""
    model_type = FUSION_MODEL_TYPES.get(str(getattr(hf_config, "model_type", "")))
    heads = _first_int(hf_config, ("num_attention_heads", "n_heads"))
    hidden = _first_int(hf_config, ("hidden_size", "dim"))
    if model_type is None or heads is None or hidden is None:
        return None
    return model_type, heads, hidden


def _first_int(hf_config: Any, keys: tuple[str, ...]) -> int | None:
    for key in keys:
        value = getattr(hf_config, key, None)
        if isinstance(value, int):
            return value
    return None


def fused_onnx(model: OnnxFile, hf_config: Any, tokenizer: Any, name: str) -> OnnxFile:
    """The fused file when fusion applies and passes its check (made once and cached), else
    `model` itself."""
    shape = fusion_shape(hf_config)
    if shape is None:
        logger.info(
            "model %s: no offline fusion for model type %r; running the unfused file",
            name, getattr(hf_config, "model_type", None),
        )  # fmt: skip
        return model
    model_type, heads, hidden = shape
    key = {
        **(dict(model.key) if model.key else {"model": f"sha256 {_sha256(model.path)}"}),
        "fusion": f"{OPTIMIZER}, model_type {model_type}, {heads} heads, hidden {hidden}",
        "fusion check": f"{FUSION_CHECK_TOLERANCE} of the unfused file",
        "onnxruntime": onnxruntime.__version__,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    folder = cache_dir() / "onnx" / f"{name}-fused-{digest}"

    def build(target: Path) -> None:
        result = fuse(model.path, target.parent / FUSED_FILE, shape, tokenizer)
        target.write_text(json.dumps(result, indent=1) + "\n")

    result = json.loads(cached_build(folder, RESULT_FILE, key, build).read_text())
    if not result["fused"]:
        logger.info("model %s: running the unfused file (%s)", name, result["reason"])
        return model
    operators = ", ".join(f"{op} x{n}" for op, n in result["operators"].items())
    logger.info("model %s: running the fused file %s (%s)", name, folder, operators)
    return OnnxFile(folder / FUSED_FILE, f"{model.origin}, fused", dict(key))


def fuse(source: Path, target: Path, shape: tuple[str, int, int], tokenizer: Any) -> dict[str, Any]:
    """Fuse `source` into `target` and check it; what happened, for fusion.json (`target` is
    written only when it is to be used)."""
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import AttentionMaskFormat, FusionOptions

    model_type, heads, hidden = shape
    options = FusionOptions(model_type)
    options.attention_mask_format = AttentionMaskFormat.AttentionMask  # any padding side
    options.enable_skip_layer_norm = False  # slower on CPU (see the module docstring)
    options.enable_bias_skip_layer_norm = False
    logger.info("fusing %s with ONNX Runtime's transformers optimizer (once)", source)
    try:
        optimized = optimizer.optimize_model(
            str(source),
            model_type=model_type,
            num_heads=heads,
            hidden_size=hidden,
            optimization_options=options,
            opt_level=0,  # the graph stays portable; the session applies its own levels
        )
    except Exception as exc:  # the optimizer raises whatever its pattern code hits
        return _unfused(f"the optimizer failed: {type(exc).__name__}: {exc}")
    before = _node_count(source)
    after = len(optimized.model.graph.node)
    if after >= before:
        return _unfused(f"the optimizer fused nothing ({before} nodes)")
    large = source.stat().st_size > EXTERNAL_DATA_BYTES
    optimized.save_model_to_file(str(target), use_external_data_format=large)
    try:
        error = largest_difference(source, target, tokenizer)
    except Exception as exc:  # a fused graph ONNX Runtime cannot load or run
        error, problem = None, f"the fused file does not run: {type(exc).__name__}: {exc}"
    else:
        problem = None if error <= FUSION_CHECK_TOLERANCE else f"it differs by {error:.2g}"
    if problem is not None:
        for path in (target, target.with_name(f"{target.name}.data")):
            path.unlink(missing_ok=True)  # only the outcome is cached
        return _unfused(f"the fused file failed its check: {problem}")
    operators = Counter(node.op_type for node in optimized.model.graph.node)
    fused_ops = {op: n for op, n in sorted(operators.items()) if op in _FUSED_OPERATORS}
    return {"fused": True, "nodes": [before, after], "operators": fused_ops, "error": error}


_FUSED_OPERATORS = frozenset(
    {"Attention", "EmbedLayerNormalization", "SkipLayerNormalization", "BiasGelu", "FastGelu",
     "Gelu", "LayerNormalization", "SkipSimplifiedLayerNormalization"}
)  # fmt: skip


def _unfused(reason: str) -> dict[str, Any]:
    return {"fused": False, "reason": reason}


def _node_count(path: Path) -> int:
    import onnx

    return len(onnx.load(str(path), load_external_data=False).graph.node)


def largest_difference(unfused: Path, fused: Path, tokenizer: Any) -> float:
    """The largest difference between the two files' outputs, relative to the largest output
    (at least 1), on a padded batch, on one sentence and on a padded batch of sentence pairs
    (token types 0 and 1, unless the unfused model has one token type), padded as the
    tokenizer pads."""
    reference = _session(unfused)
    candidate = _session(fused)
    texts, pairs = _CHECK_TEXTS
    error = 0.0
    batches = (tokenizer(texts, padding=True), tokenizer(texts[:1]))
    for index, encoding in enumerate((*batches, tokenizer(texts, pairs, padding=True))):
        try:
            expected = reference.run(None, _feed(reference, encoding))[0]
        except Exception:  # onnxruntime raises its own types: a second token type is out of range
            if index < len(batches):
                raise
            continue
        got = candidate.run(None, _feed(candidate, encoding))[0]
        scale = max(1.0, float(np.abs(expected).max()))
        error = max(error, float(np.abs(got - expected).max()) / scale)
    return error


def _session(path: Path) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _feed(session: onnxruntime.InferenceSession, encoding: Mapping[str, Any]) -> dict[str, Any]:
    """The session's inputs from the tokenizer's output; what the encoder feeds for one the
    tokenizer does not make (every token attended, token type 0)."""
    ids = np.asarray(encoding["input_ids"], dtype=np.int64)
    defaults = {"attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    dtypes = {"tensor(int32)": np.int32}
    return {
        arg.name: np.asarray(encoding.get(arg.name, defaults.get(arg.name, ids))).astype(
            dtypes.get(arg.type, np.int64)
        )
        for arg in session.get_inputs()
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 23):
            digest.update(chunk)
    return digest.hexdigest()
