"""The openai SDK pointed at another provider's OpenAI-compatible API reports that provider.

The end-to-end cases give the real SDK a provider's public base URL and an httpx transport (the
SDK's documented ``http_client``) that delivers the requests to the mock on 127.0.0.1, as a
hosts-file entry would: the SDK, and so the instrumentation, sees only the provider's URL.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from otelbench.mock import MockServer
from otelbench_instrumentation import semconv
from otelbench_instrumentation.providers.openai import provider_for_host

from .conftest import Otel, only_span

MESSAGES: Any = [{"role": "user", "content": "hello"}]


class ToMock(httpx.BaseTransport):
    """Sends every request to ``mock_url`` (its path prefixed), whatever host its URL names."""

    def __init__(self, mock_url: str) -> None:
        self.inner = httpx.HTTPTransport()
        self.mock = httpx.URL(mock_url)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        m = self.mock
        path = m.path.rstrip("/") + request.url.path
        request.url = request.url.copy_with(scheme=m.scheme, host=m.host, port=m.port, path=path)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def deepseek(mock_server: MockServer) -> Iterator[openai.OpenAI]:
    http = httpx.Client(transport=ToMock(mock_server.url))
    with openai.OpenAI(base_url="https://api.deepseek.com/v1", api_key="sk-test", http_client=http) as c:
        yield c


@pytest.fixture
def mistral(mock_server: MockServer) -> Iterator[openai.OpenAI]:
    # The mock's Mistral API (strict schema, usage in the finish chunk) at Mistral's own URL.
    http = httpx.Client(transport=ToMock(f"{mock_server.url}/mistral"))
    with openai.OpenAI(base_url="https://api.mistral.ai/v1", api_key="test", http_client=http) as c:
        yield c


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("api.openai.com", semconv.PROVIDER_OPENAI),
        ("api.deepseek.com", semconv.PROVIDER_DEEPSEEK),
        ("api.groq.com", semconv.PROVIDER_GROQ),
        ("api.x.ai", semconv.PROVIDER_X_AI),
        ("api.mistral.ai", semconv.PROVIDER_MISTRAL_AI),
        ("api.perplexity.ai", semconv.PROVIDER_PERPLEXITY),
        ("api.cohere.ai", semconv.PROVIDER_COHERE),
        ("generativelanguage.googleapis.com", semconv.PROVIDER_GCP_GEMINI),
        ("us-central1-aiplatform.googleapis.com", semconv.PROVIDER_GCP_VERTEX_AI),
        ("aiplatform.googleapis.com", semconv.PROVIDER_GCP_VERTEX_AI),
        ("my-resource.openai.azure.com", semconv.PROVIDER_AZURE_AI_OPENAI),
        # DNS names are case-insensitive and may end in the root's dot.
        ("API.Groq.COM", semconv.PROVIDER_GROQ),
        ("api.x.ai.", semconv.PROVIDER_X_AI),
        # Look-alikes and self-hosted servers are not the provider.
        ("api.groq.com.example.org", semconv.PROVIDER_OPENAI),
        ("notapi.deepseek.com", semconv.PROVIDER_OPENAI),
        ("x.ai", semconv.PROVIDER_OPENAI),
        ("127.0.0.1", semconv.PROVIDER_OPENAI),
        ("", semconv.PROVIDER_OPENAI),
        (None, semconv.PROVIDER_OPENAI),
    ],
)
def test_provider_for_host(host: str | None, expected: str) -> None:
    assert provider_for_host(host) == expected


def test_a_call_to_deepseek_reports_deepseek(otel: Otel, deepseek: openai.OpenAI) -> None:
    result = deepseek.chat.completions.create(model="deepseek-chat", messages=MESSAGES, max_tokens=8)
    assert isinstance(result, openai.types.chat.ChatCompletion)
    a = only_span(otel).attributes or {}
    assert a[semconv.GEN_AI_PROVIDER_NAME] == semconv.PROVIDER_DEEPSEEK
    assert a[semconv.SERVER_ADDRESS] == "api.deepseek.com"
    assert a[semconv.SERVER_PORT] == 443
    assert a[semconv.GEN_AI_RESPONSE_ID] == result.id
    # Every metric point names the provider too: dashboards group by it.
    points = otel.points(semconv.METRIC_OPERATION_DURATION) + otel.points(semconv.METRIC_TOKEN_USAGE)
    assert len(points) == 3
    assert {p.attributes[semconv.GEN_AI_PROVIDER_NAME] for p in points} == {semconv.PROVIDER_DEEPSEEK}


def test_a_stream_from_deepseek_reports_deepseek(otel: Otel, deepseek: openai.OpenAI) -> None:
    stream = deepseek.chat.completions.create(
        model="deepseek-chat", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    assert isinstance(stream, openai.Stream)
    chunks = list(stream)
    a = only_span(otel).attributes or {}
    assert a[semconv.GEN_AI_PROVIDER_NAME] == semconv.PROVIDER_DEEPSEEK
    assert a[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == chunks[-1].usage.completion_tokens  # type: ignore[union-attr]
    ttft = otel.points(semconv.METRIC_TIME_TO_FIRST_CHUNK)
    assert [p.attributes[semconv.GEN_AI_PROVIDER_NAME] for p in ttft] == [semconv.PROVIDER_DEEPSEEK]


def test_a_mistral_stream_reports_the_usage_it_sends_unasked(otel: Otel, mistral: openai.OpenAI) -> None:
    # Mistral refuses stream_options; its usage rides on the chunk with the finish reason.
    chunks = list(
        mistral.chat.completions.create(model="mistral-small-latest", messages=MESSAGES, stream=True)
    )
    usage = chunks[-1].usage
    assert usage is not None and chunks[-1].choices[0].finish_reason == "stop"
    a = only_span(otel).attributes or {}
    assert a[semconv.GEN_AI_PROVIDER_NAME] == semconv.PROVIDER_MISTRAL_AI
    assert a[semconv.SERVER_ADDRESS] == "api.mistral.ai"
    assert a[semconv.GEN_AI_USAGE_INPUT_TOKENS] == usage.prompt_tokens
    assert a[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == usage.completion_tokens
    assert a[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    tokens = otel.points(semconv.METRIC_TOKEN_USAGE)
    assert sorted(p.sum for p in tokens) == sorted([usage.prompt_tokens, usage.completion_tokens])
