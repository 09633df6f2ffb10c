"""Regenerate the checked-in gRPC stubs from the .proto files: `make grpc-stubs`.

The stubs are checked in so that serving needs only grpcio and protobuf; grpcio-tools (the
test extra, pinned: its version is written into the stubs) is needed only here, and by the
test that fails when the checked-in stubs are stale.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]  # protoc paths, and the stubs' imports, are relative to the repository
MESSAGES_PROTO = HERE / "open_inference_messages.proto"
SERVICE_PROTO = HERE / "open_inference.proto"
# Only the service's gRPC stub comes from open_inference.proto: a `_pb2` of it would register
# `inference.GRPCInferenceService` in protobuf's process-wide pool (see the .proto).
STUBS = ("open_inference_messages_pb2.py", "open_inference_pb2_grpc.py")


def generate(out_dir: Path) -> list[Path]:
    """Write the stubs under `out_dir` (in their package folders); return their paths."""
    from grpc_tools import protoc

    for output, proto in [("--python_out", MESSAGES_PROTO), ("--grpc_python_out", SERVICE_PROTO)]:
        args = ["grpc_tools.protoc", f"-I{ROOT}", f"{output}={out_dir}", str(proto)]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed on {proto.relative_to(ROOT)}")
    package = out_dir / HERE.relative_to(ROOT)
    return [package / name for name in STUBS]


def main() -> None:
    for path in generate(ROOT):
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
