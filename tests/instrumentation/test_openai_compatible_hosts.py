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

from otelbench.mock import Dist, MockConfig, MockServer, ModelProfile
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
    # The mock's DeepSeek API (reasoning deltas, cache fields) at DeepSeek's own URL.
    http = httpx.Client(transport=ToMock(f"{mock_server.url}/deepseek"))
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


def test_deepseek_cache_hits_are_cache_reads(otel: Otel, deepseek: openai.OpenAI) -> None:
    # DeepSeek caches every prompt unasked; the repeat's hits are cache reads.
    deepseek.chat.completions.create(model="deepseek-chat", messages=MESSAGES, max_tokens=2)
    again = deepseek.chat.completions.create(model="deepseek-chat", messages=MESSAGES, max_tokens=2)
    hits = (again.usage.model_extra or {})["prompt_cache_hit_tokens"]  # type: ignore[union-attr]
    assert hits > 0
    second = otel.spans()[-1].attributes or {}
    assert second[semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == hits


# Thinking is slow here, so a TTFT taken at the first answer chunk would be far off.
THINKING = ModelProfile(ttft=Dist.fixed(0.02), itl=Dist.fixed(0.06), output_tokens=Dist.fixed(6))


@pytest.fixture(scope="module")
def thinking_server() -> Iterator[MockServer]:
    with MockServer(MockConfig(seed=3, profiles={"deepseek-v4-flash": THINKING})) as server:
        yield server


def test_reasoning_deltas_are_chunks(otel: Otel, thinking_server: MockServer) -> None:
    # In thinking mode (V4's default) 3 chunks of reasoning_content come before 3 of content:
    # TTFT is the first reasoning chunk's (as with Anthropic's thinking deltas); all 6 are chunks.
    http = httpx.Client(transport=ToMock(f"{thinking_server.url}/deepseek"))
    with openai.OpenAI(base_url="https://api.deepseek.com", api_key="k", http_client=http) as client:
        chunks = list(
            client.chat.completions.create(
                model="deepseek-v4-flash",
                messages=MESSAGES,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert [bool((d.model_extra or {}).get("reasoning_content")) for d in deltas[1:-1]] == [True] * 3 + [
        False
    ] * 3
    a = only_span(otel).attributes or {}
    ttft = a[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK]
    assert isinstance(ttft, float) and 0.02 <= ttft < 0.02 + 0.06  # not the first answer chunk's
    # The answer starts three gaps later, and has its own time.
    answer = a[semconv.RESPONSE_TIME_TO_FIRST_ANSWER_CHUNK]
    assert isinstance(answer, float) and 0.02 + 3 * 0.06 <= answer < 0.02 + 4 * 0.06
    (point,) = otel.points(semconv.METRIC_TIME_TO_FIRST_ANSWER_CHUNK)
    assert point.count == 1 and point.sum == pytest.approx(answer)
    assert a[semconv.STREAM_CHUNK_COUNT] == 6
    assert a[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 6
    assert a[semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == 3
    # One mean gap per stream (OTELBENCH_CHUNK_TIMING=mean): 5 gaps of 60 ms.
    (gaps,) = otel.points(semconv.METRIC_TIME_PER_OUTPUT_CHUNK)
    assert gaps.count == 1 and 0.055 <= gaps.sum < 0.1


def test_without_thinking_the_answer_starts_with_the_first_chunk(
    otel: Otel, thinking_server: MockServer
) -> None:
    # Thinking disabled, the first chunk is the answer's: both times are the same.
    http = httpx.Client(transport=ToMock(f"{thinking_server.url}/deepseek"))
    with openai.OpenAI(base_url="https://api.deepseek.com", api_key="k", http_client=http) as client:
        stream = client.chat.completions.create(
            model="deepseek-v4-flash",
            messages=MESSAGES,
            stream=True,
            extra_body={"thinking": {"type": "disabled"}},
        )
        assert len([c for c in stream if c.choices and c.choices[0].delta.content]) == 6
    a = only_span(otel).attributes or {}
    assert a[semconv.STREAM_CHUNK_COUNT] == 6
    ttft = a[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK]
    assert isinstance(ttft, float) and 0.02 <= ttft < 0.02 + 0.06
    assert a[semconv.RESPONSE_TIME_TO_FIRST_ANSWER_CHUNK] == ttft
    (point,) = otel.points(semconv.METRIC_TIME_TO_FIRST_ANSWER_CHUNK)
    assert point.count == 1 and point.sum == pytest.approx(ttft)
