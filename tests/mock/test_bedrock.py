"""boto3's bedrock-runtime client (and raw HTTP) against the mock's Bedrock endpoints."""

from __future__ import annotations

import base64
import http.client
import json
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from otelbench.mock import Fault, MockServer

from .conftest import OUTPUT_TOKENS, TTFT_S, record_for, within_attempts

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
NOVA = "us.amazon.nova-lite-v1:0"
MESSAGES: list[Any] = [
    {"role": "user", "content": [{"text": "Say something about mocks, please."}]}
]  # 8 tokens


@pytest.fixture
def client(mock: MockServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[Any]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAMOCKTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "mock-secret")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    c = boto3.client(
        "bedrock-runtime",
        endpoint_url=mock.bedrock_endpoint_url,
        region_name="us-east-1",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )
    yield c
    c.close()


def _request_id(response: dict[str, Any]) -> str:
    return str(response["ResponseMetadata"]["RequestId"])


def test_converse(client: Any, mock: MockServer) -> None:
    result = client.converse(modelId=MODEL, messages=MESSAGES, inferenceConfig={"maxTokens": 100})
    content = result["output"]["message"]["content"]
    assert (
        result["output"]["message"]["role"] == "assistant"
        and len(content[0]["text"].split()) == OUTPUT_TOKENS
    )
    assert result["stopReason"] == "end_turn"
    assert result["usage"] == {
        "inputTokens": 8,
        "outputTokens": OUTPUT_TOKENS,
        "totalTokens": 8 + OUTPUT_TOKENS,
    }
    assert isinstance(result["metrics"]["latencyMs"], int)
    record = record_for(mock, _request_id(result))
    # The model id reaches the server percent-encoded (`:` is %3A) and is decoded.
    assert (record.protocol, record.model, record.stream, record.status) == ("bedrock", MODEL, False, 200)
    assert record.path == "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"


def test_converse_max_tokens_caps_output(client: Any) -> None:
    result = client.converse(modelId=MODEL, messages=MESSAGES, inferenceConfig={"maxTokens": 2})
    assert result["stopReason"] == "max_tokens" and result["usage"]["outputTokens"] == 2


def test_converse_stream_event_sequence(client: Any, mock: MockServer) -> None:
    response = client.converse_stream(modelId=MODEL, messages=MESSAGES)
    events = list(response["stream"])
    kinds = [next(iter(e)) for e in events]
    assert kinds == [
        "messageStart",
        *["contentBlockDelta"] * OUTPUT_TOKENS,
        "contentBlockStop",
        "messageStop",
        "metadata",
    ]
    assert events[-2]["messageStop"]["stopReason"] == "end_turn"
    metadata = events[-1]["metadata"]
    assert metadata["usage"]["outputTokens"] == OUTPUT_TOKENS and metadata["metrics"]["latencyMs"] >= 0
    record = record_for(mock, _request_id(response))
    assert record.stream and record.chunks == OUTPUT_TOKENS


def test_converse_cache_points(client: Any) -> None:
    system = [{"text": "Long shared instructions. " * 40}, {"cachePoint": {"type": "default"}}]
    first = client.converse(modelId="bedrock-cache-model", system=system, messages=MESSAGES)["usage"]
    second = client.converse(modelId="bedrock-cache-model", system=system, messages=MESSAGES)["usage"]
    assert first["cacheWriteInputTokens"] > 0 and first["cacheReadInputTokens"] == 0
    assert second["cacheReadInputTokens"] == first["cacheWriteInputTokens"]
    assert second["totalTokens"] == first["totalTokens"]


def test_invoke_model_anthropic_and_nova(client: Any, mock: MockServer) -> None:
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    result = client.invoke_model(modelId=MODEL, body=json.dumps(body))
    message = json.loads(result["body"].read())
    assert result["contentType"] == "application/json"
    assert message["type"] == "message" and message["usage"]["output_tokens"] == OUTPUT_TOKENS
    headers = result["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amzn-bedrock-output-token-count"] == str(OUTPUT_TOKENS)
    nova = {"schemaVersion": "messages-v1", "messages": MESSAGES, "inferenceConfig": {"max_new_tokens": 3}}
    decoded = json.loads(client.invoke_model(modelId=NOVA, body=json.dumps(nova))["body"].read())
    assert decoded["stopReason"] == "max_tokens" and decoded["usage"]["outputTokens"] == 3
    assert decoded["output"]["message"]["content"][0]["text"]


def test_invoke_model_with_response_stream_chunks(client: Any) -> None:
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    response = client.invoke_model_with_response_stream(modelId=MODEL, body=json.dumps(body))
    assert response["contentType"] == "application/json"
    chunks = [json.loads(e["chunk"]["bytes"]) for e in response["body"]]
    kinds = [c["type"] for c in chunks]
    assert kinds == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * OUTPUT_TOKENS,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    metrics = chunks[-1]["amazon-bedrock-invocationMetrics"]
    assert metrics["outputTokenCount"] == OUTPUT_TOKENS and metrics["firstByteLatency"] >= 0


def test_unknown_invoke_body_is_a_validation_error(client: Any) -> None:
    with pytest.raises(client.exceptions.ValidationException):
        client.invoke_model(modelId="meta.llama3-8b-instruct-v1:0", body=json.dumps({"prompt": "hi"}))


@pytest.mark.parametrize(
    ("status", "code"),
    [(429, "ThrottlingException"), (424, "ModelErrorException"), (503, "ServiceUnavailableException")],
)
def test_injected_errors_have_bedrock_shape(client: Any, mock: MockServer, status: int, code: str) -> None:
    mock.script("bedrock-fault-model", [Fault.status(status)])
    with pytest.raises(ClientError) as info:
        client.converse(modelId="bedrock-fault-model", messages=MESSAGES)
    error = info.value.response
    assert type(info.value).__name__ == code and error["Error"]["Code"] == code
    assert error["ResponseMetadata"]["HTTPStatusCode"] == status
    assert error["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"].startswith(code + ":")
    assert "injected by the mock" in error["Error"]["Message"]


def _raw_post(mock: MockServer, path: str, body: dict[str, Any]) -> tuple[http.client.HTTPResponse, bytes]:
    conn = http.client.HTTPConnection(mock.host, mock.port, timeout=5)
    # Any SigV4 signature is accepted, a nonsense one included.
    headers = {
        "content-type": "application/json",
        "authorization": "AWS4-HMAC-SHA256 Credential=x, Signature=y",
    }
    conn.request("POST", path, json.dumps(body), headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response, data


def _frames(data: bytes) -> list[tuple[dict[str, str], bytes]]:
    """Decode event-stream messages, checking both CRCs."""
    frames = []
    offset = 0
    while offset < len(data):
        total, headers_len, prelude_crc = struct.unpack_from(">III", data, offset)
        assert zlib.crc32(data[offset : offset + 8]) == prelude_crc
        end = offset + total
        (message_crc,) = struct.unpack_from(">I", data, end - 4)
        assert zlib.crc32(data[offset : end - 4]) == message_crc
        pos, headers = offset + 12, {}
        while pos < offset + 12 + headers_len:
            name_len = data[pos]
            name = data[pos + 1 : pos + 1 + name_len].decode()
            assert data[pos + 1 + name_len] == 7  # string
            (value_len,) = struct.unpack_from(">H", data, pos + 2 + name_len)
            value_start = pos + 4 + name_len
            headers[name] = data[value_start : value_start + value_len].decode()
            pos = value_start + value_len
        frames.append((headers, data[pos : end - 4]))
        offset = end
    return frames


def test_event_stream_framing_on_the_wire(mock: MockServer) -> None:
    response, data = _raw_post(mock, "/model/raw-model/converse-stream", {"messages": MESSAGES})
    assert response.status == 200
    assert response.getheader("content-type") == "application/vnd.amazon.eventstream"
    frames = _frames(data)
    assert [h[":event-type"] for h, _ in frames][:2] == ["messageStart", "contentBlockDelta"]
    assert all(h[":message-type"] == "event" and h[":content-type"] == "application/json" for h, _ in frames)
    assert json.loads(frames[1][1])["delta"]["text"]
    invoke_body = {"schemaVersion": "messages-v1", "messages": MESSAGES}
    _, data = _raw_post(mock, "/model/amazon.nova-pro-v1%3A0/invoke-with-response-stream", invoke_body)
    chunk = _frames(data)[1]
    assert chunk[0][":event-type"] == "chunk"
    assert "contentBlockDelta" in json.loads(base64.b64decode(json.loads(chunk[1])["bytes"]))


def test_unknown_operation_is_404(mock: MockServer) -> None:
    response, _ = _raw_post(mock, "/model/x/summon", {})
    assert response.status == 404 and response.getheader("x-amzn-errortype", "").startswith(
        "ResourceNotFound"
    )


def test_converse_stream_ttft_follows_the_plan(timing_mock: MockServer) -> None:
    def check() -> None:
        _, data = _raw_post(timing_mock, "/model/bedrock-timing/converse-stream", {"messages": MESSAGES})
        assert len(_frames(data)) == OUTPUT_TOKENS + 4
        record = next(r for r in reversed(timing_mock.records) if r.model == "bedrock-timing")
        assert record.first_byte_ns is not None
        served = (record.first_byte_ns - record.arrival_ns) / 1e9
        assert abs(served - TTFT_S) < 0.001, served

    within_attempts(check)


# -- Anthropic extended thinking ---------------------------------------------------------------

THINKING = {"type": "enabled", "budget_tokens": 1024}
THOUGHT = OUTPUT_TOKENS // 2  # the mock thinks for the first half of the output


def _invoke_body(**fields: Any) -> str:
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 2048,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    return json.dumps({**body, **fields})


def _words(text: str) -> int:
    return len(text.split())


def test_converse_stream_thinking_event_sequence(client: Any, mock: MockServer) -> None:
    response = client.converse_stream(
        modelId=MODEL,
        messages=MESSAGES,
        inferenceConfig={"maxTokens": 2048},
        additionalModelRequestFields={"thinking": THINKING},
    )
    events = list(response["stream"])
    kinds = [next(iter(e)) for e in events]
    answer = OUTPUT_TOKENS - THOUGHT
    assert kinds == [
        "messageStart",
        *["contentBlockDelta"] * (THOUGHT + 1),  # the reasoning, then its signature
        "contentBlockStop",
        *["contentBlockDelta"] * answer,
        "contentBlockStop",
        "messageStop",
        "metadata",
    ]
    reasoning = [e["contentBlockDelta"] for e in events[1 : 1 + THOUGHT]]
    assert all(d["contentBlockIndex"] == 0 and set(d["delta"]) == {"reasoningContent"} for d in reasoning)
    assert _words("".join(d["delta"]["reasoningContent"]["text"] for d in reasoning)) == THOUGHT
    signature = events[1 + THOUGHT]["contentBlockDelta"]
    assert signature["contentBlockIndex"] == 0
    assert set(signature["delta"]["reasoningContent"]) == {"signature"}
    assert signature["delta"]["reasoningContent"]["signature"]
    assert events[2 + THOUGHT] == {"contentBlockStop": {"contentBlockIndex": 0}}
    texts = [e["contentBlockDelta"] for e in events[3 + THOUGHT : 3 + THOUGHT + answer]]
    assert all(d["contentBlockIndex"] == 1 and set(d["delta"]) == {"text"} for d in texts)
    assert _words("".join(d["delta"]["text"] for d in texts)) == answer
    assert events[-3] == {"contentBlockStop": {"contentBlockIndex": 1}}
    assert events[-2]["messageStop"]["stopReason"] == "end_turn"
    assert events[-1]["metadata"]["usage"]["outputTokens"] == OUTPUT_TOKENS  # thinking included
    record = record_for(mock, _request_id(response))
    assert (record.chunks, record.output_tokens, record.reasoning_tokens) == (
        OUTPUT_TOKENS,
        OUTPUT_TOKENS,
        THOUGHT,
    )


def test_converse_thinking_whole_message(client: Any, mock: MockServer) -> None:
    result = client.converse(
        modelId=f"us.{MODEL}",  # a cross-region inference profile is the same model family
        messages=MESSAGES,
        additionalModelRequestFields={"thinking": {"type": "adaptive"}},
    )
    content = result["output"]["message"]["content"]
    assert [set(block) for block in content] == [{"reasoningContent"}, {"text"}]
    reasoning = content[0]["reasoningContent"]["reasoningText"]
    assert _words(reasoning["text"]) == THOUGHT and reasoning["signature"]
    assert _words(content[1]["text"]) == OUTPUT_TOKENS - THOUGHT
    assert result["usage"]["outputTokens"] == OUTPUT_TOKENS
    assert record_for(mock, _request_id(result)).reasoning_tokens == THOUGHT


def test_invoke_model_with_response_stream_thinking(client: Any, mock: MockServer) -> None:
    response = client.invoke_model_with_response_stream(modelId=MODEL, body=_invoke_body(thinking=THINKING))
    chunks = [json.loads(e["chunk"]["bytes"]) for e in response["body"]]
    answer = OUTPUT_TOKENS - THOUGHT
    summary = [
        (c["type"], c.get("index"), c.get("delta", c.get("content_block", {})).get("type")) for c in chunks
    ]
    assert summary == [
        ("message_start", None, None),
        ("content_block_start", 0, "thinking"),
        *[("content_block_delta", 0, "thinking_delta")] * THOUGHT,
        ("content_block_delta", 0, "signature_delta"),
        ("content_block_stop", 0, None),
        ("content_block_start", 1, "text"),
        *[("content_block_delta", 1, "text_delta")] * answer,
        ("content_block_stop", 1, None),
        ("message_delta", None, None),
        ("message_stop", None, None),
    ]
    assert chunks[1]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    assert chunks[2 + THOUGHT]["delta"]["signature"]
    assert _words("".join(c["delta"]["thinking"] for c in chunks[2 : 2 + THOUGHT])) == THOUGHT
    assert chunks[-2]["usage"]["output_tokens"] == OUTPUT_TOKENS
    assert chunks[-1]["amazon-bedrock-invocationMetrics"]["outputTokenCount"] == OUTPUT_TOKENS
    record = record_for(mock, _request_id(response))
    assert (record.chunks, record.reasoning_tokens) == (OUTPUT_TOKENS, THOUGHT)


def test_invoke_model_thinking_whole_message(client: Any, mock: MockServer) -> None:
    result = client.invoke_model(modelId=MODEL, body=_invoke_body(thinking=THINKING))
    message = json.loads(result["body"].read())
    thinking, text = message["content"]
    assert set(thinking) == {"type", "thinking", "signature"} and thinking["type"] == "thinking"
    assert _words(thinking["thinking"]) == THOUGHT and thinking["signature"]
    assert text["type"] == "text" and _words(text["text"]) == OUTPUT_TOKENS - THOUGHT
    assert message["usage"]["output_tokens"] == OUTPUT_TOKENS
    assert result["ResponseMetadata"]["HTTPHeaders"]["x-amzn-bedrock-output-token-count"] == str(
        OUTPUT_TOKENS
    )
    assert record_for(mock, _request_id(result)).reasoning_tokens == THOUGHT


_BUDGET_TOO_SMALL = "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
_BUDGET_NOT_BELOW_MAX = "`max_tokens` must be greater than `thinking.budget_tokens`."
_TEMPERATURE = "`temperature` may only be set to 1 when thinking is enabled."


@pytest.mark.parametrize(
    ("thinking", "inference", "message"),
    [
        ({"type": "enabled", "budget_tokens": 512}, {"maxTokens": 2048}, _BUDGET_TOO_SMALL),
        ({"type": "enabled", "budget_tokens": 1024}, {"maxTokens": 1024}, _BUDGET_NOT_BELOW_MAX),
        (THINKING, {"maxTokens": 2048, "temperature": 0.5}, _TEMPERATURE),
        ({"type": "sometimes"}, {}, "thinking.type: Input should be 'enabled', 'disabled' or 'adaptive'"),
    ],
)
def test_converse_thinking_refusals(
    client: Any, thinking: dict[str, Any], inference: dict[str, Any], message: str
) -> None:
    with pytest.raises(client.exceptions.ValidationException) as info:
        client.converse(
            modelId=MODEL,
            messages=MESSAGES,
            inferenceConfig=inference,
            additionalModelRequestFields={"thinking": thinking},
        )
    error = info.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    # Bedrock relays the model's own refusal under its prefix.
    assert error["Error"]["Message"] == "The model returned the following errors: " + message


def test_converse_thinking_refuses_forced_tool_use(client: Any) -> None:
    tools = {"tools": [{"toolSpec": {"name": "f", "inputSchema": {"json": {"type": "object"}}}}]}
    with pytest.raises(client.exceptions.ValidationException, match="tool_choice forces tool use"):
        client.converse_stream(
            modelId=MODEL,
            messages=MESSAGES,
            toolConfig={**tools, "toolChoice": {"any": {}}},
            additionalModelRequestFields={"thinking": THINKING},
        )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"thinking": {"type": "enabled", "budget_tokens": 100}}, _BUDGET_TOO_SMALL),
        ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, _BUDGET_NOT_BELOW_MAX),
        ({"thinking": THINKING, "temperature": 0.2}, _TEMPERATURE),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_invoke_model_thinking_refusals(
    client: Any, fields: dict[str, Any], message: str, stream: bool
) -> None:
    call = client.invoke_model_with_response_stream if stream else client.invoke_model
    with pytest.raises(client.exceptions.ValidationException) as info:
        call(modelId=MODEL, body=_invoke_body(**fields))
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert info.value.response["Error"]["Message"] == message  # the Anthropic body's own words


def test_thinking_only_when_an_anthropic_model_is_asked_to(client: Any, mock: MockServer) -> None:
    def stream_deltas(model: str, **extra: Any) -> tuple[list[dict[str, Any]], int]:
        response = client.converse_stream(modelId=model, messages=MESSAGES, **extra)
        events = list(response["stream"])
        reasoning = record_for(mock, _request_id(response)).reasoning_tokens
        return [next(iter(e.items())) for e in events], reasoning

    thinking, reasoning = stream_deltas(MODEL, additionalModelRequestFields={"thinking": THINKING})
    assert reasoning == THOUGHT and any("reasoningContent" in str(e) for e in thinking)
    plain: list[tuple[Any, int]] = [
        stream_deltas(MODEL),
        stream_deltas(MODEL, additionalModelRequestFields={"thinking": {"type": "disabled"}}),
        # Other families are handed the field too; the mock ignores it, as any extra field.
        stream_deltas(NOVA, additionalModelRequestFields={"thinking": THINKING}),
    ]
    for events, reasoning in plain:
        assert reasoning == 0
        assert [kind for kind, _ in events] == [
            "messageStart",
            *["contentBlockDelta"] * OUTPUT_TOKENS,
            "contentBlockStop",
            "messageStop",
            "metadata",
        ]
        deltas = [body for kind, body in events if kind == "contentBlockDelta"]
        assert all(d["contentBlockIndex"] == 0 and set(d["delta"]) == {"text"} for d in deltas)
        assert events[-3][1] == {"contentBlockIndex": 0}
    body = json.loads(client.invoke_model(modelId=MODEL, body=_invoke_body())["body"].read())
    assert [b["type"] for b in body["content"]] == ["text"]
