"""Raw transformers `generate()` on SmolLM2: what the huggingface backend is set against.

`python -m benchmarks.peers.raw_generate raw ...` measures static-batch generate() at each
batch size (the same model folder, dtype, prompts and greedy length as the streams, EOS held
off with min_new_tokens), best of a few repeats; `raw-serve` keeps the model loaded and answers
one batch size per stdin line, for the paired rounds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from benchmarks.core.settings import REPO_ROOT, Settings
from benchmarks.core.workload import CHAT_PROMPTS
from benchmarks.peers.servers import child_env

RAW_BATCHES = (1, 8)
Metrics = dict[str, float]


def _chat_prompts(tokenizer: Any, count: int) -> list[list[int]]:
    return [
        list(tokenizer.apply_chat_template(
            [{"role": "user", "content": CHAT_PROMPTS[i % len(CHAT_PROMPTS)]}],
            add_generation_prompt=True, tokenize=True, return_dict=False,
        ))
        for i in range(count)
    ]  # fmt: skip


def _raw_generator(model_dir: Path) -> Callable[[int, int], tuple[float, float]]:
    """Load SmolLM2 as transformers does; returns timed(batch, new_tokens) -> (wall seconds,
    CPU seconds of every thread of this process) of one greedy static-batch generate()."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()

    def timed(batch: int, new_tokens: int) -> tuple[float, float]:
        inputs = tokenizer.pad({"input_ids": _chat_prompts(tokenizer, batch)}, return_tensors="pt")
        started, cpu = time.perf_counter(), time.process_time()
        with torch.inference_mode():
            model.generate(
                **inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                pad_token_id=pad,
            )  # fmt: skip
        return time.perf_counter() - started, time.process_time() - cpu

    timed(1, 2)  # warm-up: lazy initialisation
    return timed


def raw_generate(
    model_dir: Path, max_tokens: int, batches: Sequence[int], repeats: int
) -> dict[str, Any]:
    """transformers' static batching in this process: tokens/s and prefill time per batch."""
    import torch

    timed = _raw_generator(model_dir)
    levels = []
    for batch in batches:
        # A shared machine only ever slows a run down: keep the fastest.
        best, cpu = min(timed(batch, max_tokens) for _ in range(repeats))
        prefill, _ = min(timed(batch, 1) for _ in range(repeats))
        tokens = batch * max_tokens
        levels.append({
            "batch": batch, "tokens_per_s": round(tokens / best, 2), "seconds": round(best, 3),
            "cpu_ms_per_token": round(1000 * cpu / tokens, 2),
            "prefill_ms": round(1000 * prefill, 1),
        })  # fmt: skip
    return {
        "max_tokens": max_tokens, "dtype": "float32", "torch_threads": torch.get_num_threads(),
        "levels": levels,
    }  # fmt: skip


def serve_raw_generate(
    model_dir: Path,
    max_tokens: int,
    *,
    requests: TextIO | None = None,
    answers: TextIO | None = None,
    load: Callable[[Path], Callable[[int, int], tuple[float, float]]] | None = None,
) -> None:
    """A loaded generate() on call for paired rounds (phases/generation_paired.py): each batch size
    read from `requests` (stdin) is answered on `answers` (stdout) with one JSON line."""
    requests = requests or sys.stdin
    answers = answers or sys.stdout
    timed = (load or _raw_generator)(model_dir)
    print(json.dumps({"ready": True}), file=answers, flush=True)
    for line in requests:
        batch = int(line)
        seconds, _ = timed(batch, max_tokens)
        tokens_per_s = round(batch * max_tokens / seconds, 2)
        print(json.dumps({"tokens_per_s": tokens_per_s}), file=answers, flush=True)


def measure_raw_generate(s: Settings, model_dir: Path) -> dict[str, Any]:
    """raw_generate in a child process (its own threads and memory, like a server)."""
    command = [
        sys.executable, "-m", "benchmarks.peers.raw_generate", "raw", "--model-dir", str(model_dir),
        "--max-tokens", str(s.max_tokens), "--batches", ",".join(map(str, RAW_BATCHES)),
        "--repeats", "1" if s.quick else "3",
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=REPO_ROOT, env=child_env(), capture_output=True, text=True, timeout=1800
    )
    if done.returncode != 0:
        return {"error": f"exit {done.returncode}: {done.stderr[-2000:]}"}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@contextlib.contextmanager
def raw_generate_process(model_dir: Path, max_tokens: int) -> Iterator[Callable[[int], Metrics]]:
    """`python -m benchmarks.peers.raw_generate raw-serve`: generate(batch) on call, the model
    loaded once."""
    command = [
        sys.executable, "-m", "benchmarks.peers.raw_generate", "raw-serve",
        "--model-dir", str(model_dir), "--max-tokens", str(max_tokens),
    ]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=child_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert process.stdin is not None and process.stdout is not None
    stdin, stdout = process.stdin, process.stdout

    def answer() -> dict[str, Any]:
        line = stdout.readline()
        if not line:
            raise RuntimeError(f"raw generate() process exited ({process.poll()})")
        return dict(json.loads(line))

    def generate(batch: int) -> Metrics:
        stdin.write(f"{batch}\n")
        stdin.flush()
        return {"tokens_per_s": float(answer()["tokens_per_s"])}

    try:
        answer()  # {"ready": true}
        yield generate
    finally:
        with contextlib.suppress(OSError):
            stdin.close()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peers.raw_generate")
    parser.add_argument("mode", choices=("raw", "raw-serve"))
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.mode == "raw-serve":
        serve_raw_generate(args.model_dir, args.max_tokens)
        return 0
    batches = [int(b) for b in args.batches.split(",") if b]
    result = raw_generate(args.model_dir, args.max_tokens, batches, args.repeats)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
