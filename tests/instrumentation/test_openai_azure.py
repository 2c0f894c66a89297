"""Azure OpenAI through the openai SDK: provider azure.ai.openai, and streams whose first chunk is
Azure's prompt-filter annotation (empty id and model) still report the response's identity."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from otelbench.mock import MockServer
from otelbench_instrumentation import semconv
from otelbench_instrumentation.providers.openai._patch import provider_of

from ..conftest import MOCK_OUTPUT_TOKENS, MOCK_TTFT_S
from .conftest import Otel, only_span

API_VERSION = "2024-10-21"
AZURE_KEY = "az-0123456789abcdef-SECRET"
MESSAGES: Any = [{"role": "user", "content": "hello from azure"}]
AZURE = semconv.PROVIDER_AZURE_AI_OPENAI


@pytest.fixture
def azure(mock_server: MockServer) -> Iterator[openai.AzureOpenAI]:
    with openai.AzureOpenAI(
        azure_endpoint=mock_server.azure_endpoint, api_key=AZURE_KEY, api_version=API_VERSION
    ) as c:
        yield c


def _no_key_anywhere(otel: Otel) -> None:
    for span in otel.spans():
        texts = [str(v) for v in (span.attributes or {}).values()]
        texts += [str(v) for e in span.events for v in (e.attributes or {}).values()]
        assert not any(AZURE_KEY in t for t in texts), span.name
    for metric in otel.metrics().values():
        for point in metric.data.data_points:  # type: ignore[attr-defined]
            assert not any(AZURE_KEY in str(v) for v in point.attributes.values())


def test_chat_reports_azure_provider_and_deployment(
    otel: Otel, azure: openai.AzureOpenAI, mock_server: MockServer
) -> None:
    result = azure.chat.completions.create(model="my-gpt4o", messages=MESSAGES, max_tokens=16)
    assert isinstance(result, openai.types.chat.ChatCompletion)
    span = only_span(otel)
    a = span.attributes or {}
    assert span.name == "chat my-gpt4o"
    assert a[semconv.GEN_AI_PROVIDER_NAME] == AZURE
    assert a[semconv.GEN_AI_REQUEST_MODEL] == "my-gpt4o"
    assert a[semconv.GEN_AI_RESPONSE_ID] == result.id
    assert a[semconv.GEN_AI_RESPONSE_MODEL] == result.model
    assert a[semconv.SERVER_ADDRESS] == "127.0.0.1"
    assert a[semconv.SERVER_PORT] == int(mock_server.url.rsplit(":", 1)[1])
    assert result.usage is not None
    assert a[semconv.GEN_AI_USAGE_INPUT_TOKENS] == result.usage.prompt_tokens
    assert a[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == result.usage.completion_tokens
    for name in (semconv.METRIC_OPERATION_DURATION, semconv.METRIC_TOKEN_USAGE):
        points = otel.points(name)
        assert points and {p.attributes[semconv.GEN_AI_PROVIDER_NAME] for p in points} == {AZURE}
    _no_key_anywhere(otel)


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_stream_identity_comes_from_the_first_chunk_that_has_it(
    otel: Otel, mock_server: MockServer, is_async: bool
) -> None:
    def sync_run() -> list[Any]:
        with openai.AzureOpenAI(
            azure_endpoint=mock_server.azure_endpoint, api_key=AZURE_KEY, api_version=API_VERSION
        ) as c:
            stream = c.chat.completions.create(
                model="stream-dep", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
            )
            assert isinstance(stream, openai.Stream)
            return list(stream)

    async def async_run() -> list[Any]:
        async with openai.AsyncAzureOpenAI(
            azure_endpoint=mock_server.azure_endpoint, api_key=AZURE_KEY, api_version=API_VERSION
        ) as c:
            stream = await c.chat.completions.create(
                model="stream-dep", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
            )
            assert isinstance(stream, openai.AsyncStream)
            return [chunk async for chunk in stream]

    chunks = asyncio.run(async_run()) if is_async else sync_run()
    assert (chunks[0].id, chunks[0].model) == ("", "")  # Azure's prompt-filter chunk
    real_id = chunks[1].id
    assert real_id.startswith("chatcmpl-")
    a = only_span(otel).attributes or {}
    assert a[semconv.GEN_AI_PROVIDER_NAME] == AZURE
    assert a[semconv.GEN_AI_RESPONSE_ID] == real_id
    assert a[semconv.GEN_AI_RESPONSE_MODEL] == "stream-dep"
    assert a[semconv.STREAM_CHUNK_COUNT] == MOCK_OUTPUT_TOKENS
    assert a[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == MOCK_OUTPUT_TOKENS
    assert tuple(a[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ("stop",)  # type: ignore[arg-type]
    # The annotation and role chunks arrive at once; the first token only after the mock's TTFT.
    ttft = a[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK]
    assert isinstance(ttft, float) and ttft >= MOCK_TTFT_S
    (point,) = otel.points(semconv.METRIC_TIME_TO_FIRST_CHUNK)
    assert point.attributes[semconv.GEN_AI_RESPONSE_MODEL] == "stream-dep"
    assert point.attributes[semconv.GEN_AI_PROVIDER_NAME] == AZURE
    _no_key_anywhere(otel)


def test_asynchronous_filter_annotations_pass_through(otel: Otel, azure: openai.AzureOpenAI) -> None:
    stream = azure.chat.completions.create(
        model="async-filter-dep",
        messages=MESSAGES,
        stream=True,
        extra_headers={"x-mock-content-filter": "async"},
    )
    chunks = list(stream)
    # The app still gets Azure's annotation chunk, whose choice has no delta.
    assert any(c.choices and c.choices[0].delta is None for c in chunks)
    a = only_span(otel).attributes or {}
    assert semconv.ERROR_TYPE not in a
    assert a[semconv.STREAM_CHUNK_COUNT] == MOCK_OUTPUT_TOKENS
    assert a[semconv.GEN_AI_RESPONSE_MODEL] == "async-filter-dep"
    assert tuple(a[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ("stop",)  # type: ignore[arg-type]


def test_embeddings_and_responses(otel: Otel, azure: openai.AzureOpenAI) -> None:
    azure.embeddings.create(model="embed-dep", input="vector me")
    azure.responses.create(model="responses-dep", input="hello")
    spans = {s.name: s.attributes or {} for s in otel.spans()}
    assert set(spans) == {"embeddings embed-dep", "chat responses-dep"}
    assert {a[semconv.GEN_AI_PROVIDER_NAME] for a in spans.values()} == {AZURE}
    assert spans["embeddings embed-dep"][semconv.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] == 1536


def test_plain_client_on_the_v1_api_follows_the_host(otel: Otel, mock_server: MockServer) -> None:
    # On 127.0.0.1 nothing says Azure: the plain client reports openai, with Azure's stream intact.
    with openai.OpenAI(base_url=f"{mock_server.azure_endpoint}/openai/v1", api_key=AZURE_KEY) as c:
        chunks = list(c.chat.completions.create(model="v1-dep", messages=MESSAGES, stream=True))
    assert chunks[0].id == ""
    a = only_span(otel).attributes or {}
    assert a[semconv.GEN_AI_PROVIDER_NAME] == semconv.PROVIDER_OPENAI
    assert a[semconv.GEN_AI_RESPONSE_ID] == chunks[1].id


@pytest.mark.parametrize(
    ("client_class", "host", "expected"),
    [
        (openai.AzureOpenAI, "127.0.0.1", AZURE),
        (openai.AsyncAzureOpenAI, None, AZURE),
        (openai.OpenAI, "my-resource.openai.azure.com", AZURE),
        (openai.AsyncOpenAI, "my-foundry.cognitiveservices.azure.com", AZURE),
        (openai.OpenAI, "api.openai.com", semconv.PROVIDER_OPENAI),
        (openai.OpenAI, "azure.com.example.org", semconv.PROVIDER_OPENAI),
        (openai.OpenAI, None, semconv.PROVIDER_OPENAI),
    ],
)
def test_provider_of_client_class_and_host(client_class: type, host: str | None, expected: str) -> None:
    assert provider_of(client_class, host) == expected


def test_the_class_lookup_stays_bounded() -> None:
    from otelbench_instrumentation.providers.openai import _patch

    made = [type(f"Client{i}", (openai.AzureOpenAI if i % 2 else openai.OpenAI,), {}) for i in range(200)]
    answers = [provider_of(cls, None) for cls in made]
    assert answers == [AZURE if i % 2 else semconv.PROVIDER_OPENAI for i in range(200)]
    assert len(_patch._azure_classes) <= 64
