"""Generation on vLLM's AsyncLLM: one `generate` call is one vLLM request streaming DELTAs.

`VLLMGenerationEngine` is the vLLM backend's `hf_runtime.backends.GenerationEngine`: it
validates a request with the same rules and messages as the huggingface engine, maps our
SamplingParams to vLLM's, and turns vLLM's RequestOutputs into GenerationDeltas. Tokenizing and
chat templates belong to the served model the runtime builds around any engine, so both
backends share them.

Closing the delta iterator or cancelling the task that reads it aborts the vLLM request, so
the engine frees the sequence's KV cache at its next step.

Structured outputs (a StructuredOutput in the parameters) go through the same checks and
compile bounds as on the huggingface backend (hf_runtime.decoding.grammar, remembering only the
verdict), then to vLLM's own structured outputs (`json=` / `json_object=`), which vLLM compiles
with its default backend, xgrammar, with the same options. As on the huggingface backend the
grammar decides where the output ends: ignore_eos and min_tokens are not passed with it.

Admission follows the huggingface engine's rule (hf_runtime.decoding.admission): at most
max_num_seqs + max_queue_size sequences in flight, counted before the first await.

Queue time: vLLM V1 attaches the request's `RequestStateStats` to each RequestOutput
(`output.metrics`, when stats logging is on: `vllm.disable_log_stats: false`, the default).
Its engine-core timestamps `queued_ts` (QUEUED event: the scheduler took the request) and
`scheduled_ts` (first SCHEDULED event) give the time spent waiting for a place in the running
batch, the same interval the huggingface engine measures. With stats logging off they are not
recorded and no queue time is observed.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from vllm import SamplingParams as VLLMSamplingParams
from vllm.exceptions import GracefulHTTPError, VLLMClientError, VLLMValidationError
from vllm.logprobs import Logprob
from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams
from vllm.v1.engine.async_llm import AsyncLLM
from vllm.v1.engine.exceptions import EngineDeadError

from hf_runtime.backends import GenerationEngine
from hf_runtime.backends.vllm import BACKEND
from hf_runtime.backends.vllm.async_llm import (
    engine_failure,
    render_token_prompt,
    shutdown_engine,
)
from hf_runtime.decoding.admission import AdmissionLimit, AdmissionTicket
from hf_runtime.decoding.detokenize import REPLACEMENT_CHAR, TokenTextCache
from hf_runtime.decoding.grammar import GrammarCompiler
from hf_runtime.decoding.limits import check_request
from hf_runtime.decoding.text_constraints import choices
from hf_runtime.errors import (
    HFRuntimeError,
    InvalidInput,
    ModelLoadFailed,
    ModelNotReady,
    Overloaded,
    Unsupported,
)
from hf_runtime.observability.metrics import observe_queue_time
from hf_runtime.types import (
    FinishReason,
    GenerationDelta,
    GenerationRequest,
    SamplingParams,
    StructuredOutput,
    TokenLogprob,
)

logger = logging.getLogger("hf_runtime")
RUNTIME_ADAPTER_IDS = 1 << 20  # above any configured adapter's id (1..len(lora_modules))


def is_adapter_folder(path: str) -> bool:
    return (Path(path) / "adapter_config.json").is_file()


_FINISH_REASONS: dict[str, FinishReason] = {"stop": "stop", "length": "length", "abort": "abort"}


def to_vllm_sampling_params(params: SamplingParams, max_tokens: int) -> VLLMSamplingParams:
    """Our (OpenAI-semantics) parameters as vLLM's, streaming deltas. Raises InvalidInput."""
    structured = params.structured
    try:
        return VLLMSamplingParams(
            n=1,  # the protocol layer fans n out into separate sequences
            max_tokens=max_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            top_k=params.top_k if params.top_k > 0 else -1,  # -1: disabled on every vLLM
            min_p=params.min_p,
            seed=params.seed,
            presence_penalty=params.presence_penalty,
            frequency_penalty=params.frequency_penalty,
            repetition_penalty=params.repetition_penalty,
            logit_bias={int(k): float(v) for k, v in params.logit_bias.items()} or None,
            stop=list(params.stop) or None,
            stop_token_ids=list(params.stop_token_ids) or None,
            # With a grammar, EOS comes only once the output is complete: it must end it.
            ignore_eos=params.ignore_eos and structured is None,
            min_tokens=params.min_tokens if structured is None else 0,
            logprobs=params.logprobs,
            output_kind=RequestOutputKind.DELTA,
            skip_special_tokens=True,
            structured_outputs=to_vllm_structured(structured),
        )
    except VLLMValidationError as exc:
        raise InvalidInput(str(exc), param=exc.parameter or _param(structured)) from None
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"invalid sampling parameters: {exc}") from None


def to_vllm_structured(structured: StructuredOutput | None) -> StructuredOutputsParams | None:
    if structured is None:
        return None
    kind, text = structured.kind, structured.schema
    if kind == "json_object":
        return StructuredOutputsParams(json_object=True)
    if kind == "regex":
        return StructuredOutputsParams(regex=text)
    if kind == "grammar":
        return StructuredOutputsParams(grammar=text)
    if kind == "choice":
        return StructuredOutputsParams(choice=choices(structured))
    if kind == "structural_tag":
        return StructuredOutputsParams(structural_tag=text)
    return StructuredOutputsParams(json=text)


def _param(structured: StructuredOutput | None) -> str | None:
    return structured.param if structured is not None else None


class VLLMGenerationEngine:
    """The generation engine behind a vLLM TextGenerator (see module docstring)."""

    def __init__(
        self,
        engine: AsyncLLM,
        tokenizer: Any,
        *,
        name: str,
        max_queue_size: int,
        lora_request: Any = None,
    ) -> None:
        self.engine = engine
        self.name = name
        model_config = engine.model_config
        self.max_model_len = int(model_config.max_model_len)
        self.is_encoder_decoder = bool(model_config.is_encoder_decoder)
        self.input_vocab_size = int(model_config.get_vocab_size())
        self.max_num_seqs = int(engine.vllm_config.scheduler_config.max_num_seqs)
        self.max_queue_size = max_queue_size
        # Shared by adapter views (shallow copies): they all run on this one engine.
        self.admission = AdmissionLimit(
            name, max_num_seqs=self.max_num_seqs, max_queue_size=max_queue_size
        )
        self.lora_request = lora_request
        # False for an adapter's view: the base model's engine reports and closes the engine.
        self._owns_engine = True
        # Token texts for logprobs exactly as the huggingface engine writes them (single-token
        # decodes, memoised, on the loop). A copy: decoding never races the model's encodes.
        self._decoder = copy.deepcopy(tokenizer)
        self._token_texts = TokenTextCache(self._decoder)
        # Checks and compile bounds for structured outputs, as on the huggingface backend.
        eos = getattr(tokenizer, "eos_token_id", None)
        self.grammars = GrammarCompiler(
            self._decoder,
            vocab_size=self.input_vocab_size,
            stop_token_ids=[eos] if isinstance(eos, int) else [],
            keep_grammars=False,
        )
        self._ids = itertools.count()
        # Runtime adapters' vLLM ids, shared by every view; configured ones use 1..N.
        self._adapter_ids = itertools.count(RUNTIME_ADAPTER_IDS)

    @property
    def ready(self) -> bool:
        return not self.engine.errored

    @property
    def failure(self) -> str | None:
        return engine_failure(self.engine)

    def for_adapter(self, lora_request: Any) -> VLLMGenerationEngine:
        """A view of this engine whose requests run with a LoRA adapter."""
        view = copy.copy(self)
        view.lora_request = lora_request
        view._owns_engine = False
        return view

    @property
    def lora_enabled(self) -> bool:
        return self.engine.vllm_config.lora_config is not None

    async def add_adapter(self, name: str, path: str) -> VLLMGenerationEngine:
        """Load the LoRA adapter at `path` into the engine (vLLM's /v1/load_lora_adapter);
        returns the view of this engine whose requests run with it."""
        from vllm.lora.request import LoRARequest

        if not self.lora_enabled:
            raise Unsupported(
                f"model {self.name} was started without LoRA: set vllm: {{enable_lora: true}} "
                "(and max_lora_rank, max_loras as the adapters need) to load adapters",
                param="lora_name",
            )
        if not await asyncio.to_thread(is_adapter_folder, path):
            raise InvalidInput(
                f"LoRA adapter {name}: no adapter_config.json in {path}", param="lora_path"
            )
        request = LoRARequest(lora_name=name, lora_int_id=next(self._adapter_ids), lora_path=path)
        try:
            await self.engine.add_lora(request)
        except Exception as exc:  # vLLM's own check of the adapter (rank, modules, weights)
            message = " ".join(str(exc).split()) or type(exc).__name__
            raise InvalidInput(
                f"LoRA adapter {name} from {path} cannot be loaded: {message}", param="lora_path"
            ) from None
        return self.for_adapter(request)

    async def remove_adapter(self, adapter: GenerationEngine) -> None:
        lora_request = getattr(adapter, "lora_request", None)
        if lora_request is not None:
            await self.engine.remove_lora(lora_request.lora_int_id)

    def stats(self) -> dict[str, int]:
        """running (sequences vLLM has produced output for) / waiting (admitted, no output
        yet) / rejected_requests, for /metrics beside vLLM's own `vllm:*` series.

        The shared engine's counts are reported once: by the base model's engine, not again
        by each LoRA adapter's view of it (sums over models would count them twice)."""
        return self.admission.stats() if self._owns_engine else {}

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationDelta]:
        max_tokens = check_request(
            request,
            max_model_len=self.max_model_len,
            vocab_size=self.input_vocab_size,
            is_encoder_decoder=self.is_encoder_decoder,
        )
        structured = request.params.structured
        if structured is not None:  # before admission, as the huggingface engine does
            await self.grammars.compile(structured)
        params = to_vllm_sampling_params(request.params, max_tokens)
        if self.engine.errored:
            raise self._dead()
        ticket = self.admission.reserve()  # before the first await: see admission.py
        # Unique per call: the protocol layer may reuse one id for the n sequences it fans out.
        request_id = f"{request.request_id}-{next(self._ids)}"
        stream: AsyncGenerator[Any, None] | None = None
        finished = False
        try:
            try:
                prompt = await render_token_prompt(self.engine, request.prompt_token_ids)
            except VLLMValidationError as exc:
                raise InvalidInput(str(exc), param=exc.parameter or "prompt") from None
            stream = self.engine.generate(
                prompt, params, request_id, lora_request=self.lora_request
            )
            prompt_tokens = len(request.prompt_token_ids)
            generated: list[int] = []
            emitted: list[str] = []
            while True:  # until vLLM's stream ends, right after the finished output
                output = await self._next_output(stream, _param(structured))
                if output is None:
                    return
                if not ticket.started:  # the first output: vLLM has scheduled the sequence
                    self._first_output(ticket, output)
                delta = self._delta(output.outputs[0], request.params.logprobs, prompt_tokens)
                prompt_tokens = 0
                generated.extend(delta.token_ids)
                emitted.append(delta.text)
                finished = delta.finish_reason is not None
                if finished and not isinstance(delta.stop_reason, str):
                    delta.text += await self._held_back_text(generated, "".join(emitted))
                yield delta
        finally:
            try:
                if stream is not None:
                    if not finished:
                        await self.engine.abort(request_id)
                    await stream.aclose()
            finally:
                ticket.release()

    async def _next_output(self, stream: AsyncIterator[Any], param: str | None = None) -> Any:
        """vLLM's next RequestOutput (None at the end), its errors as ours (`param` names the
        field of a validation error vLLM does not attribute: the structured output's)."""
        try:
            return await anext(stream)
        except StopAsyncIteration:
            return None
        except EngineDeadError as exc:
            raise self._dead() from exc
        except VLLMValidationError as exc:
            raise InvalidInput(str(exc), param=exc.parameter or param) from exc
        except VLLMClientError as exc:
            raise InvalidInput(str(exc)) from exc
        except GracefulHTTPError as exc:
            raise Overloaded(exc.message) from exc

    def _dead(self) -> ModelNotReady:
        """The 503 of a request the dead engine cannot serve, saying how it died (the server
        logs it once: hf_runtime.runtime.liveness)."""
        return ModelLoadFailed(self.name, self.failure or "Its vLLM engine died")

    def _first_output(self, ticket: AdmissionTicket, output: Any) -> None:
        """The sequence's first output: count it running, observe its queue time."""
        ticket.start()
        stats = getattr(output, "metrics", None)  # None when vLLM logs no stats
        queued = float(getattr(stats, "queued_ts", 0.0) or 0.0)
        scheduled = float(getattr(stats, "scheduled_ts", 0.0) or 0.0)
        if queued > 0.0 and scheduled >= queued:
            observe_queue_time(self.name, BACKEND.name, scheduled - queued)

    def _decode(self, token_ids: Sequence[int]) -> str:
        return str(
            self._decoder.decode(
                list(token_ids), skip_special_tokens=True, clean_up_tokenization_spaces=False
            )
        )

    async def _held_back_text(self, token_ids: Sequence[int], emitted: str) -> str:
        """What vLLM still held back when the sequence ended by length or by a token: the
        bytes of an unfinished character, which it drops. The huggingface engine flushes them
        (as U+FFFD), so we do too, and both backends return the same text."""
        if not token_ids or not self._decode(token_ids[-4:]).endswith(REPLACEMENT_CHAR):
            return ""  # the usual case, checked cheaply on the loop
        full = await asyncio.to_thread(self._decode, token_ids)
        return full[len(emitted) :] if full.startswith(emitted) else ""

    def _delta(self, completion: Any, logprobs: int | None, prompt_tokens: int) -> GenerationDelta:
        reason = completion.finish_reason
        finish: FinishReason | None = None
        if reason is not None:
            finish = _FINISH_REASONS.get(str(reason))
            if finish is None:
                raise HFRuntimeError(f"model {self.name}: vLLM ended the sequence with {reason}")
        token_ids = list(completion.token_ids)
        return GenerationDelta(
            text=completion.text,
            token_ids=token_ids,
            logprobs=self._logprobs(token_ids, completion.logprobs, logprobs),
            finish_reason=finish,
            stop_reason=completion.stop_reason if finish == "stop" else None,
            prompt_tokens=prompt_tokens,
        )

    def _logprobs(
        self,
        token_ids: Sequence[int],
        positions: Sequence[Mapping[int, Logprob]] | None,
        k: int | None,
    ) -> list[TokenLogprob] | None:
        """vLLM gives, per position, the sampled token plus the top k by rank."""
        if k is None or positions is None:
            return None
        text = self._token_texts.text
        result = []
        for token_id, candidates in zip(token_ids, positions, strict=True):
            ranked = sorted(candidates.items(), key=lambda item: item[1].rank or 0)
            top = [(tid, text(tid), lp.logprob) for tid, lp in ranked if (lp.rank or 0) <= k][:k]
            chosen = candidates[token_id]
            result.append(TokenLogprob(token_id, text(token_id), chosen.logprob, top))
        return result

    async def aclose(self) -> None:
        """Shut the engine down; an adapter's view leaves the shared engine running."""
        if self._owns_engine:
            await shutdown_engine(self.engine)
