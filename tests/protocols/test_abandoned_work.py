"""Abandoned work is dropped: a client that leaves before its answer (an HTTP disconnect, a
cancelled gRPC call) takes its items out of the encoder batcher's queue at once, on every
encoder route, so admission counts only live work (no timing asserts: states are awaited)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import grpc
import pytest

from hf_runtime.config import BatchingConfig
from hf_runtime.protocols.grpc import open_inference_messages_pb2 as pb
from hf_runtime.protocols.grpc.open_inference_pb2_grpc import GRPCInferenceServiceStub
from hf_runtime.runtime.encoder_model import EncoderModel
from hf_runtime.tasks.registry import Task
from tests.encoder_support import model_config, source_for
from tests.fakes import FakeRegistry
from tests.loading import load_encoder_model
from tests.protocols.grpc_support import GrpcLiveServer
from tests.protocols.openai.helpers import RawCall, wait_until
from tests.served_app import make_served_app

TEXTS = [f"text number {n}" for n in range(4)]
V2_INPUT = {"name": "text", "datatype": "BYTES", "shape": [4], "data": TEXTS}
# (path, body, texts the request puts in the queue: an embedding model scores by embedding the
# query and every document)
ROUTES: list[tuple[str, dict[str, Any], int]] = [
    ("/v1/models/m:predict", {"instances": TEXTS}, 4),
    ("/v2/models/m/infer", {"inputs": [V2_INPUT]}, 4),
    ("/v1/embeddings", {"model": "m", "input": TEXTS}, 4),
    ("/v1/score", {"model": "m", "text_1": "query", "text_2": TEXTS}, 5),
    ("/v1/rerank", {"model": "m", "query": "query", "documents": TEXTS}, 5),
]


class HeldForward:
    """Wraps the model's forward: the first pass waits for `release`, so later requests queue."""

    def __init__(self, forward: Any) -> None:
        self.forward = forward
        self.release = threading.Event()
        self.started = threading.Event()

    def __call__(self, items: list[Any]) -> Any:
        self.started.set()
        self.release.wait(timeout=20)
        return self.forward(items)


async def held_model(tiny_models: Any, queue: int = 12) -> tuple[EncoderModel, HeldForward]:
    path = tiny_models["bert-embed"]
    config = model_config(path, model_name="m", batching=BatchingConfig(max_queue_size=queue))
    model = await load_encoder_model(config, source_for(path), Task.text_embedding)
    held = HeldForward(model.batcher._run_batch)
    model.batcher._run_batch = held
    return model, held


async def hold(model: EncoderModel, held: HeldForward) -> asyncio.Task[Any]:
    first = asyncio.create_task(model.predict(["occupies the inference thread"]))
    await asyncio.to_thread(held.started.wait, 10)
    return first


@pytest.mark.parametrize(("path", "body", "texts"), ROUTES, ids=[r[0] for r in ROUTES])
async def test_a_disconnected_client_frees_its_queue_places(tiny_models, path, body, texts):
    model, held = await held_model(tiny_models, 3 * texts)
    app = make_served_app(FakeRegistry([model]))
    first = await hold(model, held)
    calls = [RawCall(app, path, body, "2.4") for _ in range(3)]
    tasks = [asyncio.create_task(call.run()) for call in calls]
    await wait_until(lambda: model.stats()["waiting"] == 3 * texts)  # the queue is full
    for call in calls:
        call.disconnected.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 30)
    assert model.stats()["waiting"] == 0  # freed at once, not when the runner reaches them
    assert [call.messages[0]["status"] for call in calls] == [499] * 3
    held.release.set()
    await first
    live = RawCall(app, path, body, "2.4")
    await live.run()
    assert live.messages[0]["status"] == 200
    assert model.stats()["items"] == 1 + texts  # the abandoned texts never ran
    await model.aclose()


@pytest.mark.parametrize(("path", "body", "texts"), ROUTES, ids=[r[0] for r in ROUTES])
async def test_a_client_gone_before_admission_is_never_queued(tiny_models, path, body, texts):
    # Its client left while the request waited (for a worker thread to decode its body, for the
    # loop): admitted and cancelled a moment later, it would hold queue places meanwhile.
    model, held = await held_model(tiny_models, texts)
    admitted: list[int] = []
    run = model.batcher.run

    async def counting_run(job: Any) -> Any:
        admitted.append(job.size)
        return await run(job)

    model.batcher.run = counting_run  # type: ignore[method-assign]
    app = make_served_app(FakeRegistry([model]))
    first = await hold(model, held)
    gone = RawCall(app, path, body, "2.4")
    gone.disconnected.set()  # the body arrived, then the client left
    await gone.run()
    assert gone.messages[0]["status"] == 499
    assert admitted == [1]  # only the request holding the inference thread
    held.release.set()
    await first
    await model.aclose()


def test_a_cancelled_grpc_call_frees_its_queue_places(tiny_models):
    loop = asyncio.new_event_loop()
    model, held = loop.run_until_complete(held_model(tiny_models))
    loop.close()
    with GrpcLiveServer(FakeRegistry([model])) as server:
        first = asyncio.run_coroutine_threadsafe(model.predict(["occupies"]), server.loop)
        assert held.started.wait(10)
        tensor = pb.ModelInferRequest.InferInputTensor(
            name="text",
            datatype="BYTES",
            shape=[4],
            contents=pb.InferTensorContents(bytes_contents=[t.encode() for t in TEXTS]),
        )
        request = pb.ModelInferRequest(model_name="m", inputs=[tensor])
        with grpc.insecure_channel(server.url) as channel:
            stub = GRPCInferenceServiceStub(channel)
            calls = [stub.ModelInfer.future(request) for _ in range(3)]
            server.run(wait_until(lambda: model.stats()["waiting"] == 12, 10))
            for call in calls:
                call.cancel()
            server.run(wait_until(lambda: model.stats()["waiting"] == 0, 10))
            held.release.set()
            first.result(timeout=20)
            answer = stub.ModelInfer(request, timeout=20)
            assert answer.model_name == "m"
        assert model.stats()["items"] == 1 + 4
        server.run(model.aclose())
