"""Small stateless codecs between wire representations and the data plane's neutral types.

One module per representation, each a set of `decode_*` / `encode_*` functions (MLServer
style): `v1_json` (KServe V1 bodies), `v2_json` (V2 JSON tensors), `v2_binary` (V2's binary
tensor extension). Shared pieces: `raw_tensors`, the byte layout of the binary extension and
of gRPC's raw contents; `datatypes`, the V2 datatypes JSON data and gRPC contents are checked
against; `json_values`; `parameters`. gRPC's own codec is `hf_runtime.protocols.grpc.codec`.
Every decode failure raises `InvalidInput` naming the tensor, so adapters answer 400 /
INVALID_ARGUMENT and never 500.
"""
