"""V2 tensor codecs (hf_runtime.protocols.codecs), cross-checked against tritonclient's own
(de)serialisers."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pytest
from tritonclient.http import InferResult
from tritonclient.utils import deserialize_bytes_tensor, serialize_byte_tensor

from hf_runtime.dataplane import plane
from hf_runtime.dataplane.types import element_count
from hf_runtime.errors import InvalidInput
from hf_runtime.protocols.codecs import datatypes, json_values, raw_tensors, v2_binary, v2_json
from hf_runtime.types import OutputTensor

# ---------------------------------------------------------------- JSON values


def test_encode_json_value_stringifies_keys_like_orjson_non_str_keys() -> None:
    value = {0: 0.25, 7: {2: [np.float32(0.5), (1, 2)]}, True: None, None: np.int64(3)}
    assert json_values.encode_json_value(value) == {
        "0": 0.25,
        "7": {"2": [0.5, [1, 2]]},
        "true": None,
        "null": 3,
    }


def test_encode_json_value_converts_numpy_arrays() -> None:
    assert json_values.encode_json_value([np.arange(3)]) == [[0, 1, 2]]


# ---------------------------------------------------------------- request body


def test_split_binary_body_without_header_is_all_json() -> None:
    assert v2_binary.split_binary_body(b'{"a": 1}', None) == (b'{"a": 1}', b"")


def test_split_binary_body_splits_at_header_length() -> None:
    assert v2_binary.split_binary_body(b"{}\x01\x02", " 2 ") == (b"{}", b"\x01\x02")


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "", "\u00b2", "0x10"])
def test_split_binary_body_rejects_bad_header_values(value: str) -> None:
    with pytest.raises(InvalidInput, match="non-negative integer"):
        v2_binary.split_binary_body(b"{}", value)


def test_split_binary_body_rejects_header_longer_than_body() -> None:
    with pytest.raises(InvalidInput, match="has only 2 bytes"):
        v2_binary.split_binary_body(b"{}", "10")


def test_element_count_of_scalar_shape_is_one() -> None:
    assert element_count([]) == 1
    assert element_count([2, 3]) == 6
    assert element_count([0, 5]) == 0


@pytest.mark.parametrize(
    ("shape", "data", "expected"),
    [
        ([2], ["a", "b"], ["a", "b"]),
        ([], "one", ["one"]),  # KServe's e2e: shape [] with a single string
        ([], ["one"], ["one"]),
        ([2, 2], [["a", "b"], ["c", "d"]], ["a", "b", "c", "d"]),  # nested row-major
        ([1, 2, 1], [[["a"], ["b"]]], ["a", "b"]),
    ],
)
def test_decode_tensor_json_bytes(shape: list[int], data: Any, expected: list[str]) -> None:
    assert v2_json.decode_tensor("t", "BYTES", shape, data, None) == expected


@pytest.mark.parametrize(
    ("datatype", "data"),
    [
        ("BOOL", [True, False]),
        ("INT8", [-128, 127]),
        ("UINT8", [0, 255]),
        ("INT64", [-(2**63), 2**63 - 1]),
        ("UINT64", [0, 2**64 - 1]),
        ("FP32", [1, 2.5]),
        ("FP64", [-1.0, 3]),
    ],
)
def test_decode_tensor_json_numbers(datatype: str, data: list[Any]) -> None:
    assert v2_json.decode_tensor("t", datatype, [2], data, None) == data


@pytest.mark.parametrize(
    ("datatype", "shape", "data", "message"),
    [
        ("STRING", [1], ["a"], "invalid datatype 'STRING'"),
        ("BYTES", [3], ["a", "b"], r"shape \[3\] needs 3 elements, got 2"),
        ("BYTES", [], ["a", "b"], r"shape \[\] needs 1 elements, got 2"),
        ("BYTES", [-1], ["a"], "negative dimension"),
        ("BYTES", [1], [1], "not a valid BYTES element"),
        ("BYTES", [1], [None], "not a valid BYTES element"),
        ("BYTES", [1], None, "has no 'data'"),
        ("BOOL", [1], [1], "not a valid BOOL element"),
        ("INT8", [1], [128], "not a valid INT8 element"),
        ("UINT16", [1], [-1], "not a valid UINT16 element"),
        ("INT32", [1], [True], "not a valid INT32 element"),
        ("INT32", [1], [1.5], "not a valid INT32 element"),
        ("FP32", [1], ["1.0"], "not a valid FP32 element"),
        ("FP16", [1], [1.0], "FP16 data via JSON is not supported"),
        ("BF16", [1], [1.0], "BF16 data via JSON is not supported"),
    ],
)
def test_decode_tensor_rejects_bad_json_tensors(
    datatype: str, shape: list[int], data: Any, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        v2_json.decode_tensor("t", datatype, shape, data, None)


def test_decode_tensor_rejects_data_and_binary_together() -> None:
    with pytest.raises(InvalidInput, match="both 'data' and binary_data_size"):
        v2_json.decode_tensor("t", "BYTES", [1], ["a"], b"\x01\x00\x00\x00a")


# ---------------------------------------------------------------- binary tensors


def test_bytes_elements_match_tritonclient_serialisation() -> None:
    items = ["héllo", "", "wörld" * 50]
    ours = raw_tensors.encode_bytes_elements(items)
    theirs = serialize_byte_tensor(np.array(items, dtype=np.object_)).item()
    assert ours == theirs
    assert raw_tensors.decode_bytes_elements("t", theirs) == [s.encode() for s in items]


def test_decode_binary_bytes_tensor_checks_element_count() -> None:
    raw = raw_tensors.encode_bytes_elements(["a", "b"])
    assert v2_json.decode_tensor("t", "BYTES", [2], None, raw) == [b"a", b"b"]
    with pytest.raises(InvalidInput, match="needs 3 elements, got 2"):
        v2_json.decode_tensor("t", "BYTES", [3], None, raw)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x05\x00", "truncated BYTES element length"),
        (b"\x05\x00\x00\x00abc", "overruns the tensor data"),
        (struct.pack("<I", 1) + b"a" + b"\x00", "truncated BYTES element length"),
    ],
)
def test_decode_bytes_elements_rejects_truncated_data(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        raw_tensors.decode_bytes_elements("t", raw)


@pytest.mark.parametrize(
    ("datatype", "values"),
    [
        ("BOOL", [True, False, True]),
        ("INT8", [-128, 0, 127]),
        ("INT16", [-300, 0, 300]),
        ("INT32", [-(2**31), 0, 2**31 - 1]),
        ("INT64", [-(2**63), 0, 2**63 - 1]),
        ("UINT8", [0, 1, 255]),
        ("UINT16", [0, 1, 65535]),
        ("UINT32", [0, 1, 2**32 - 1]),
        ("UINT64", [0, 1, 2**64 - 1]),
        ("FP16", [0.5, -2.0, 1024.0]),
        ("BF16", [0.5, -2.0, 1024.0]),
        ("FP32", [0.25, -1.5, 3.0]),
        ("FP64", [0.1, -1e300, 3.0]),
    ],
)
def test_binary_numeric_round_trip(datatype: str, values: list[Any]) -> None:
    raw = raw_tensors.encode_binary_tensor(datatype, values)
    assert v2_json.decode_tensor("t", datatype, [3], None, raw) == values
    if datatype != "BF16":  # numpy has no bfloat16: compare the rest with numpy's own bytes
        triton_dtype = {"BOOL": "?", "FP16": "<f2"}.get(datatype)
        dtype = np.dtype(triton_dtype or datatypes.NUMPY_DTYPES[datatype])
        assert raw == np.array(values, dtype=dtype).tobytes()


def test_decode_binary_numeric_rejects_partial_elements() -> None:
    with pytest.raises(InvalidInput, match="not a whole number of INT32 elements"):
        v2_json.decode_tensor("t", "INT32", [1], None, b"\x00\x00\x00")


def test_decode_text_elements() -> None:
    assert plane.decode_text_elements("t", ["a", "é".encode()]) == ["a", "é"]
    with pytest.raises(InvalidInput, match="element 1 is not UTF-8"):
        plane.decode_text_elements("t", ["a", b"\xff\xfe"])


# ---------------------------------------------------------------- response body


def test_encode_output_json_uses_kserve_key_order() -> None:
    tensor = OutputTensor("output-0", "BYTES", [2], ["a", b"b"])
    encoded = v2_json.encode_output_json(tensor)
    assert list(encoded) == ["name", "shape", "datatype", "parameters", "data"]
    assert encoded["data"] == ["a", "b"]
    assert encoded["parameters"] is None


def test_encode_output_json_refuses_half_precision() -> None:
    with pytest.raises(InvalidInput, match="can only be sent binary"):
        v2_json.encode_output_json(OutputTensor("h", "FP16", [1], [0.5]))


def test_binary_response_is_readable_by_tritonclient() -> None:
    tensors = [
        OutputTensor("labels", "INT64", [2], [1, 0]),
        OutputTensor("probs", "BYTES", [2], ["{0: 0.5}", "{0: 0.25}"]),
        OutputTensor("half", "FP16", [2], [0.5, 1.5]),
    ]
    entries, chunks = [], []
    for tensor in tensors:
        entry, raw = v2_binary.encode_output_binary(tensor)
        entries.append(entry)
        chunks.append(raw)
    header = {"model_name": "m", "model_version": None, "id": "1", "parameters": None}
    body, header_length = v2_binary.encode_binary_body({**header, "outputs": entries}, chunks)
    result = InferResult.from_response_body(body, header_length=header_length)
    assert result.as_numpy("labels").tolist() == [1, 0]
    assert deserialize_bytes_tensor(chunks[1]).tolist() == [b"{0: 0.5}", b"{0: 0.25}"]
    assert result.as_numpy("probs").tolist() == [b"{0: 0.5}", b"{0: 0.25}"]
    assert result.as_numpy("half").tolist() == [0.5, 1.5]
    assert entries[0]["parameters"] == {"binary_data_size": 16}
