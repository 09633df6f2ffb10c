"""What one benchmark invocation measures: the command line, parsed into `Settings`."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCHMARKS_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = BENCHMARKS_DIR.parent
RESULTS_DIR = BENCHMARKS_DIR / "results"
DEFAULT_CONFIG = REPO_ROOT / "configs" / "default.yaml"
VARIANTS = ("bentoml-batching",)
BACKENDS = ("huggingface", "vllm")
DTYPES = ("float32", "bfloat16")


@dataclass(frozen=True)
class Settings:
    phases: tuple[str, ...]
    backends: tuple[str, ...]
    dtypes: tuple[str, ...]  # the first is the main run; baseline and variants run only there
    variants: tuple[str, ...]
    concurrencies: tuple[int, ...]
    streams: tuple[int, ...]
    level_s: float  # measured seconds per encoder concurrency level, split into windows
    windows: int  # each level reports its fastest window (a shared machine only slows down)
    warmup_s: float  # unmeasured load before each level
    stream_level_s: float  # seconds to keep opening streams per generation level
    stream_limit_s: float  # streams still open this long after a level starts are cut off
    max_tokens: int
    ceiling_s_per_size: float
    config: Path
    out_dir: Path
    quick: bool
    # Encoder extras: the load generator, the HTTP floor (trivial route in BentoML vs bare
    # uvicorn), the CPU breakdowns (BentoML middlewares, hf-runtime's own path) and hf-runtime
    # from another git ref served beside this tree's (before/after in one run).
    loadgen: str = "c"
    floor: bool = True
    breakdown: bool = True
    routes: bool = True  # every encoder route against the ceiling (phases/encoder_routes.py)
    before: str | None = None
    torch_threads: int | None = None  # OMP_NUM_THREADS for the ceiling and every server
    # Paired rounds (phases/rounds.py): the targets' ratios from alternating windows with
    # both sides up at once; 0 turns them off.
    paired_rounds: int = 3
    # Generation extras (phases/generation.py): N requests sent at once against one alone
    # (time to first token), and many short chats at once.
    simultaneous: int = 8
    arrival_repeats: int = 3
    short_chats: int = 100
    short_chat_tokens: int = 32


def _csv(
    kind: Callable[[str], Any], allowed: Sequence[Any] | None = None
) -> Callable[[str], tuple]:
    def parse(text: str) -> tuple:
        try:
            values = tuple(kind(part.strip()) for part in text.split(",") if part.strip())
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        if not values:
            raise argparse.ArgumentTypeError("give at least one value")
        bad = [v for v in values if allowed is not None and v not in allowed]
        if bad:
            raise argparse.ArgumentTypeError(f"{bad} not in {list(allowed or [])}")
        return values

    return parse


def parse_settings(argv: Sequence[str] | None = None, description: str = "") -> Settings:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=description)
    parser.add_argument("--quick", action="store_true", help="short durations (a smoke run)")
    parser.add_argument("--only", choices=("encoder", "generation"))
    parser.add_argument(
        "--backends", type=_csv(str, BACKENDS), default=("huggingface",),
        help="generation backends for smollm2: huggingface[,vllm]",
    )  # fmt: skip
    parser.add_argument(
        "--dtype", type=_csv(str, DTYPES), default=DTYPES,
        help="encoder dtypes (HF_RUNTIME_DTYPE); the first is the main comparison",
    )  # fmt: skip
    parser.add_argument(
        "--variants", default=",".join(VARIANTS),
        help="extra encoder servers to compare: bentoml-batching, or none",
    )  # fmt: skip
    parser.add_argument("--concurrency", type=_csv(int), default=(1, 16, 64))
    parser.add_argument("--streams", type=_csv(int), default=(1, 8, 32))
    parser.add_argument("--max-tokens", type=int, default=None, help="per stream (default 64)")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument(
        "--loadgen", choices=("c", "python"), default="c",
        help="encoder load generator: c (benchmarks/loadgen/hfload.c, built with cc; the Python "
        "one when no compiler) or python",
    )  # fmt: skip
    parser.add_argument(
        "--floor", action=argparse.BooleanOptionalAction, default=None,
        help="measure the HTTP floor: a trivial route in bentoml serve vs bare uvicorn "
        "(default: on, off with --quick)",
    )  # fmt: skip
    parser.add_argument(
        "--breakdown", action=argparse.BooleanOptionalAction, default=None,
        help="CPU per request: each BentoML middleware, and hf-runtime's own path "
        "(default: on, off with --quick)",
    )  # fmt: skip
    parser.add_argument(
        "--routes", action=argparse.BooleanOptionalAction, default=None,
        help="every encoder route (V1, OpenAI embeddings at /v1 and /openai/v1, V2 infer, "
        "score, rerank) against the ceiling in paired rounds (default: on, off with --quick)",
    )  # fmt: skip
    parser.add_argument(
        "--torch-threads", type=int, default=None,
        help="OMP_NUM_THREADS for the ceiling and every server (default: the cores); 1 keeps "
        "a shared, oversubscribed machine's numbers stable",
    )  # fmt: skip
    parser.add_argument(
        "--paired-rounds", type=int, default=None,
        help="alternating windows per compared pair for the targets' ratios (default 3, 1 "
        "with --quick; 0: off, the targets then use the sequential runs)",
    )  # fmt: skip
    parser.add_argument(
        "--before", metavar="GIT_REF", default=None,
        help="also serve hf-runtime from this git ref (e.g. HEAD), as hf-runtime-before",
    )  # fmt: skip
    parser.add_argument(
        "--out-dir", type=Path, default=None,
        help="default benchmarks/results (with --quick: benchmarks/results/quick.tmp)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    variants = tuple(v for v in args.variants.split(",") if v and v != "none")
    if unknown := sorted(set(variants) - set(VARIANTS)):
        parser.error(f"unknown variant(s) {unknown}; known: {', '.join(VARIANTS)} or none")
    if min(args.concurrency + args.streams) < 1:
        parser.error("concurrency and streams must be at least 1")
    if args.paired_rounds is not None and args.paired_rounds < 0:
        parser.error("--paired-rounds must be 0 or more")
    if args.max_tokens is not None and args.max_tokens < 1:
        parser.error("--max-tokens must be at least 1")
    quick = bool(args.quick)
    out_dir = args.out_dir or (RESULTS_DIR / "quick.tmp" if quick else RESULTS_DIR)
    return Settings(
        phases=(args.only,) if args.only else ("encoder", "generation"),
        backends=args.backends,
        dtypes=args.dtype,
        variants=variants,
        concurrencies=args.concurrency,
        streams=args.streams,
        level_s=2.0 if quick else 9.0,
        windows=1 if quick else 3,
        warmup_s=0.5 if quick else 2.0,
        stream_level_s=2.0 if quick else 15.0,
        stream_limit_s=30.0 if quick else 90.0,
        max_tokens=args.max_tokens or (16 if quick else 64),
        ceiling_s_per_size=0.3 if quick else 1.5,
        config=args.config.resolve(),
        out_dir=out_dir.resolve(),
        quick=quick,
        loadgen=args.loadgen,
        floor=(not quick) if args.floor is None else args.floor,
        breakdown=(not quick) if args.breakdown is None else args.breakdown,
        routes=(not quick) if args.routes is None else args.routes,
        before=args.before,
        torch_threads=args.torch_threads,
        paired_rounds=(1 if quick else 3) if args.paired_rounds is None else args.paired_rounds,
        arrival_repeats=1 if quick else 3,
        short_chats=16 if quick else 100,
        short_chat_tokens=8 if quick else 32,
    )
