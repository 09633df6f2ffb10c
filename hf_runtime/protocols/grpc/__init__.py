"""Open Inference Protocol V2 over gRPC (KServe's `inference.GRPCInferenceService`).

`server.start_grpc_server` serves it beside the HTTP server; `service` adapts the RPCs to the
data plane, `codec` translates messages. The `*_pb2*.py` stubs are generated from the .proto
files here (`make grpc-stubs`) and checked in.
"""
