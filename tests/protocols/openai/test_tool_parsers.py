"""Tool-call parsers on recorded model texts: whole answers, and streams split at every
character boundary, which must assemble to exactly the whole answer."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, get_args

import pytest

from hf_runtime.config import ToolCallParser
from hf_runtime.protocols.openai.tool_parsers import (
    PARSERS,
    Extracted,
    Extractor,
    NamedCallExtractor,
    RequiredCallsExtractor,
    assemble,
    extract,
)
from hf_runtime.protocols.openai.tool_parsers.pythonic import parse_call_list

Calls = list[tuple[str, dict[str, Any]]]

WEATHER = {"location": "San Francisco, CA, USA"}
# (parser, model text, content, calls): texts as the models write them.
RECORDED: list[tuple[str, str, str, Calls]] = [
    # Qwen2.5 / Qwen3 (Hermes format), one call and parallel calls
    (
        "hermes",
        '<tool_call>\n{"name": "get_current_temperature", "arguments": {"location": '
        '"San Francisco, CA, USA"}}\n</tool_call>',
        "",
        [("get_current_temperature", WEATHER)],
    ),
    (
        "hermes",
        '<tool_call>\n{"name": "get_current_temperature", "arguments": {"location": '
        '"San Francisco, CA, USA"}}\n</tool_call>\n<tool_call>\n{"name": '
        '"get_temperature_date", "arguments": {"location": "San Francisco, CA, USA", "date": '
        '"2024-10-01"}}\n</tool_call>',
        "",
        [
            ("get_current_temperature", WEATHER),
            ("get_temperature_date", {**WEATHER, "date": "2024-10-01"}),
        ],
    ),
    # Hermes 2 Pro writes the arguments first, after a sentence
    (
        "hermes",
        "I will look up the fundamentals for you.\n<tool_call>\n"
        '{"arguments": {"symbol": "TSLA"}, "name": "get_stock_fundamentals"}\n</tool_call>',
        "I will look up the fundamentals for you.",
        [("get_stock_fundamentals", {"symbol": "TSLA"})],
    ),
    # Qwen3 thinking first (no reasoning parser: the thoughts are content), unicode, escapes
    (
        "hermes",
        "<think>\nThe user wants the weather in Zürich.\n</think>\n\n<tool_call>\n"
        '{"name": "say", "arguments": {"text": "Grüezi \\"Zürich\\"\\n", "n": [1, {"x": null}]}}'
        "\n</tool_call>",
        "<think>\nThe user wants the weather in Zürich.\n</think>",
        [("say", {"text": 'Grüezi "Zürich"\n', "n": [1, {"x": None}]})],
    ),
    # Small models: the closing brace or tag forgotten
    (
        "hermes",
        '<tool_call>\n{"name": "f", "arguments": {"a": 1}\n</tool_call>',
        "",
        [("f", {"a": 1})],
    ),
    (
        "hermes",
        '<tool_call>{"name": "f", "arguments": {}}<tool_call>{"name": "g", "arguments": {}}',
        "",
        [("f", {}), ("g", {})],
    ),
    # arguments as a JSON string holding the object
    (
        "hermes",
        '<tool_call>{"name": "f", "arguments": "{\\"a\\": 1}"}</tool_call>',
        "",
        [("f", {"a": 1})],
    ),
    # Llama 3.1 / 3.3: with and without <|python_tag|>, several calls, a "type" key (3.2)
    (
        "llama3_json",
        '<|python_tag|>{"name": "get_weather", "parameters": {"location": "Paris"}}',
        "",
        [("get_weather", {"location": "Paris"})],
    ),
    (
        "llama3_json",
        '{"name": "get_weather", "parameters": {"location": "Paris"}}',
        "",
        [("get_weather", {"location": "Paris"})],
    ),
    (
        "llama3_json",
        '{"name": "get_weather", "parameters": {"location": "Paris"}}; '
        '{"name": "get_time", "parameters": {"tz": "CET"}}',
        "",
        [("get_weather", {"location": "Paris"}), ("get_time", {"tz": "CET"})],
    ),
    (
        "llama3_json",
        'Let me check. <|python_tag|>{"type": "function", "name": "search", "parameters": '
        '{"query": "llamas", "k": 3}}',
        "Let me check.",
        [("search", {"query": "llamas", "k": 3})],
    ),
    # Mistral before v11, v11+ (one marker per call), and an id; a bare array (marker dropped)
    (
        "mistral",
        '[TOOL_CALLS] [{"name": "get_current_weather", "arguments": {"location": "Paris, '
        'France", "format": "celsius"}}, {"name": "get_time", "arguments": {"tz": "CET"}}]',
        "",
        [
            ("get_current_weather", {"location": "Paris, France", "format": "celsius"}),
            ("get_time", {"tz": "CET"}),
        ],
    ),
    (
        "mistral",
        '[TOOL_CALLS]get_current_weather[ARGS]{"location": "Paris, France", "format": '
        '"celsius"}[TOOL_CALLS]get_time[ARGS]{"tz": "CET"}',
        "",
        [
            ("get_current_weather", {"location": "Paris, France", "format": "celsius"}),
            ("get_time", {"tz": "CET"}),
        ],
    ),
    (
        "mistral",
        'Sure.[TOOL_CALLS]lookup[CALL_ID]a1B2c3D4e[ARGS]{"id": 7}',
        "Sure.",
        [("lookup", {"id": 7})],
    ),
    (
        "mistral",
        '[{"name": "get_time", "arguments": {"tz": "CET"}}]',
        "",
        [("get_time", {"tz": "CET"})],
    ),
    # Pythonic (Llama 3.2 / 4, ToolACE)
    (
        "pythonic",
        '[get_weather(city="San Francisco", metric="celsius"), get_time(timezone="PST")]',
        "",
        [
            ("get_weather", {"city": "San Francisco", "metric": "celsius"}),
            ("get_time", {"timezone": "PST"}),
        ],
    ),
    (
        "pythonic",
        "<|python_start|>[search(query='llamas', k=-3, exact=True, tags=['a', \"b\"], "
        "filters={'lang': None, 'safe': false})]<|python_end|>",
        "",
        [
            (
                "search",
                {
                    "query": "llamas",
                    "k": -3,
                    "exact": True,
                    "tags": ["a", "b"],
                    "filters": {"lang": None, "safe": False},
                },
            )
        ],
    ),
    ("pythonic", "[tools.now()] Done.", "Done.", [("tools.now", {})]),
]

# Texts without a call: content, unchanged.
CONTENT_ONLY: list[tuple[str, str]] = [
    (name, text)
    for name in PARSERS
    for text in (
        "",
        "The capital of France is Paris.",
        "  Use <b>bold</b>, a <tool> tag, [brackets] and {braces}.\n\n",
        "<tool_call",
        "[TOOL_CALLS",
        "<|python_tag",
        "[1, 2, 3] are numbers",
        '{"answer": 42}',
    )
]

# Malformed calls: content, whole (found before the call was announced).
MALFORMED: list[tuple[str, str]] = [
    ("hermes", "<tool_call>not json</tool_call> after"),
    ("hermes", '<tool_call>{"name": "f", "arguments": }</tool_call>'),
    ("hermes", '<tool_call>{"arguments": {"a": 1}}</tool_call>'),
    ("hermes", '<tool_call>{"name": 3, "arguments": {}}</tool_call>'),
    ("hermes", '<tool_call>{"name": "f", "arguments": [1]}</tool_call>'),
    ("hermes", '<tool_call>{"name": "f"}</tool_call>'),
    ("llama3_json", '{"name": "f"}'),
    ("llama3_json", '{"name": "Bob", "age": 3}'),
    ("llama3_json", "<|python_tag|>print('hi')"),
    ("mistral", "[TOOL_CALLS] not json"),
    ("mistral", "[TOOL_CALLS]f[ARGS]not json"),
    ("mistral", "[TOOL_CALLS]f g"),
    ("pythonic", "[f(1, 2)]"),
    ("pythonic", '[f(x=open("a"))]'),
    ("pythonic", "[f(a=1)"),
    ("pythonic", "[f(a=1e999)]"),
]


def calls_of(found: Extracted) -> Calls:
    return [(call.name, json.loads(call.arguments)) for call in found.calls]


def streamed(make: Callable[[], Extractor], pieces: list[str]) -> Extracted:
    extractor = make()
    return assemble([extractor.feed(piece) for piece in pieces] + [extractor.finish()])


def every_split(text: str) -> list[list[str]]:
    """One character at a time, and cut in two at every boundary."""
    return [list(text)] + [[text[:i], text[i:]] for i in range(len(text) + 1)]


def assert_streams_match(make: Callable[[], Extractor], text: str) -> Extracted:
    whole = extract(make(), text)
    expected = (whole.content, [(c.name, c.arguments) for c in whole.calls])
    for pieces in every_split(text):
        got = streamed(make, pieces)
        assert (got.content, [(c.name, c.arguments) for c in got.calls]) == expected, pieces
    return whole


def test_the_registry_has_every_configurable_parser() -> None:
    assert tuple(PARSERS) == get_args(ToolCallParser)


@pytest.mark.parametrize(("parser", "text", "content", "calls"), RECORDED)
def test_recorded_calls(parser: str, text: str, content: str, calls: Calls) -> None:
    found = assert_streams_match(PARSERS[parser], text)
    assert found.content == content
    assert calls_of(found) == calls
    if parser != "pythonic" and '"arguments": "' not in text:
        # JSON formats send the model's own text, not a re-encoding.
        assert all(call.arguments in text for call in found.calls)


@pytest.mark.parametrize(("parser", "text"), CONTENT_ONLY)
def test_text_without_a_call_is_content(parser: str, text: str) -> None:
    found = assert_streams_match(PARSERS[parser], text)
    if parser == "llama3_json" and text == '{"answer": 42}':
        assert found.calls == []
    assert found == Extracted(text, [])


@pytest.mark.parametrize(("parser", "text"), MALFORMED)
def test_malformed_calls_are_content(parser: str, text: str) -> None:
    found = assert_streams_match(PARSERS[parser], text)
    assert found == Extracted(text, [])


def test_a_call_found_malformed_after_it_was_announced() -> None:
    """Its broken entry stays in the stream, and its text is content there too."""
    text = 'Hi <tool_call>{"name": "f", "arguments": {"a": 1,,}}</tool_call>'
    assert extract(PARSERS["hermes"](), text) == Extracted(text, [])
    got = streamed(PARSERS["hermes"], list(text))
    assert got.content == text
    # What had been sent of its arguments when the closing brace showed them invalid.
    assert [(c.name, c.arguments) for c in got.calls] == [("f", '{"a": 1,,')]
    named = streamed(lambda: NamedCallExtractor("f"), list('{"city": }'))
    assert named.content == '{"city": }' and [c.name for c in named.calls] == ["f"]
    assert extract(NamedCallExtractor("f"), '{"city": }') == Extracted('{"city": }', [])


@pytest.mark.parametrize(
    ("parser", "text", "name", "arguments"),
    [
        ("hermes", '<tool_call>\n{"name": "f", "arguments": {"city": "Par', "f", '{"city": "Par'),
        ("llama3_json", '{"name": "f", "parameters": {"q": [1, ', "f", '{"q": [1, '),
        ("mistral", '[TOOL_CALLS]f[ARGS]{"a": "x', "f", '{"a": "x'),
    ],
)
def test_a_call_cut_off_keeps_what_it_got(
    parser: str, text: str, name: str, arguments: str
) -> None:
    """As OpenAI does when max_tokens cuts a call (finish_reason "length" says so)."""
    found = assert_streams_match(PARSERS[parser], text)
    assert [(c.name, c.arguments) for c in found.calls] == [(name, arguments)]
    assert found.content == ""


def test_streams_announce_a_call_once_then_send_argument_fragments() -> None:
    text = (
        'Sure.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    )
    extractor = PARSERS["hermes"]()
    deltas = [extractor.feed(ch) for ch in text] + [extractor.finish()]
    assert "".join(d.content for d in deltas) == "Sure."
    parts = [part for d in deltas for part in d.calls]
    assert [p.name for p in parts if p.name] == ["get_weather"]
    assert parts[0].id is not None and all(p.id is None for p in parts[1:])
    assert len(parts) > 5  # the arguments arrive as they are written
    assert "".join(p.arguments for p in parts) == '{"city": "Paris"}'
    # No delta ever shows part of a marker as content.
    assert not any("<" in d.content for d in deltas)


def test_call_ids() -> None:
    block = '<tool_call>{"name": "f", "arguments": {}}</tool_call>'
    two = block + block.replace('"f"', '"g"')
    ids = [c.id for c in extract(PARSERS["hermes"](), two).calls]
    assert len(set(ids)) == 2 and all(re.fullmatch(r"call_[0-9a-f]{24}", i) for i in ids)
    (mistral,) = extract(PARSERS["mistral"](), '[TOOL_CALLS]f[ARGS]{"a": 1}').calls
    assert re.fullmatch(r"[A-Za-z0-9]{9}", mistral.id)  # what Mistral's templates take back


# ---------------------------------------------------------------- forced tool_choice


@pytest.mark.parametrize(
    ("text", "content", "calls"),
    [
        ('{"city": "Paris"}', "", [("get_weather", {"city": "Paris"})]),
        (' \n{"city": "Paris"} \n', "", [("get_weather", {"city": "Paris"})]),
        ("Hello from a model without a grammar.", "Hello from a model without a grammar.", []),
    ],
)
def test_named_tool_choice(text: str, content: str, calls: Calls) -> None:
    found = assert_streams_match(lambda: NamedCallExtractor("get_weather"), text)
    assert (found.content, calls_of(found)) == (content, calls)


@pytest.mark.parametrize(
    ("text", "content", "calls"),
    [
        (
            '[{"name": "get_weather", "parameters": {"city": "Paris"}}, {"name": "get_time", '
            '"parameters": {}}]',
            "",
            [("get_weather", {"city": "Paris"}), ("get_time", {})],
        ),
        ('[ {"name": "f", "parameters": {"a": [1, 2]}} ]', "", [("f", {"a": [1, 2]})]),
        ("no grammar here", "no grammar here", []),
        ("[]", "[]", []),
        ('[{"parameters": {}}]', '[{"parameters": {}}]', []),
    ],
)
def test_required_tool_choice(text: str, content: str, calls: Calls) -> None:
    found = assert_streams_match(RequiredCallsExtractor, text)
    assert (found.content, calls_of(found)) == (content, calls)


# ---------------------------------------------------------------- pythonic details


@pytest.mark.parametrize(
    "text",
    ["[f(**kw)]", "[f(a=b)]", "[f(a=1j)]", "[f(a={1: 2})]", "[1]", "[]", "f(a=1)", "[f(a=-'x')]"],
)
def test_pythonic_takes_only_literal_keyword_calls(text: str) -> None:
    assert parse_call_list(text) is None


def test_pythonic_never_evaluates() -> None:
    assert parse_call_list("[f(a=__import__('os').system('true'))]") is None
