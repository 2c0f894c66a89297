"""The official OpenAI SDK's Azure clients against the mock: Azure's paths, auth and annotations."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import openai
import pytest

from otelbench.mock import Fault, MockServer

from .conftest import OUTPUT_TOKENS, hdrs, record_for, records_for_model

API_VERSION = "2024-10-21"
MESSAGES: list[Any] = [{"role": "user", "content": "Say something about mocks, please."}]  # 8 tokens


@pytest.fixture
def azure(mock: MockServer) -> Any:
    with openai.AzureOpenAI(
        azure_endpoint=mock.azure_endpoint, api_key="az-test-key", api_version=API_VERSION, max_retries=0
    ) as c:
        yield c


def _filtered(annotations: Any) -> bool:
    """Whether Azure's content-filter annotations are present, every category passed."""
    return (
        isinstance(annotations, dict)
        and set(annotations) >= {"hate", "self_harm", "sexual", "violence"}
        and not any(v["filtered"] for v in annotations.values())
    )


def test_chat_json_under_the_deployment_path(azure: openai.AzureOpenAI, mock: MockServer) -> None:
    completion = azure.chat.completions.create(model="chat-deployment", messages=MESSAGES)
    assert completion.model == "chat-deployment"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens == OUTPUT_TOKENS
    extra = completion.model_extra or {}
    (prompt_filter,) = extra["prompt_filter_results"]
    assert prompt_filter["prompt_index"] == 0 and _filtered(prompt_filter["content_filter_results"])
    assert _filtered((completion.choices[0].model_extra or {})["content_filter_results"])

    record = record_for(mock, completion._request_id)
    assert (record.protocol, record.path, record.model, record.status) == (
        "azure",
        "/openai/deployments/chat-deployment/chat/completions",
        "chat-deployment",
        200,
    )


def test_stream_opens_with_the_prompt_filter_chunk(azure: openai.AzureOpenAI, mock: MockServer) -> None:
    stream = azure.chat.completions.create(
        model="stream-deployment", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    first, role = chunks[0], chunks[1]
    assert (first.id, first.model, first.choices) == ("", "", [])
    assert _filtered((first.model_extra or {})["prompt_filter_results"][0]["content_filter_results"])
    assert role.choices[0].delta.role == "assistant" and not role.choices[0].delta.content
    content = chunks[2:-2]
    assert len(content) == OUTPUT_TOKENS
    assert all(c.choices[0].delta.content for c in content)
    assert all(_filtered((c.choices[0].model_extra or {})["content_filter_results"]) for c in content)
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert {c.id for c in chunks[1:]} == {role.id} and role.id.startswith("chatcmpl-")
    assert {c.model for c in chunks[1:]} == {"stream-deployment"}
    record = record_for(mock, stream.response.headers["x-request-id"])
    assert (record.protocol, record.chunks, record.stream) == ("azure", OUTPUT_TOKENS, True)


def test_asynchronous_filter_annotates_after_the_text(azure: openai.AzureOpenAI) -> None:
    chunks = list(
        azure.chat.completions.create(
            model="async-filter",
            messages=MESSAGES,
            stream=True,
            extra_headers={"x-mock-content-filter": "async"},
        )
    )
    content = [
        c for c in chunks if c.choices and c.choices[0].delta is not None and c.choices[0].delta.content
    ]
    assert len(content) == OUTPUT_TOKENS
    assert all("content_filter_results" not in (c.choices[0].model_extra or {}) for c in content)
    (annotation,) = [c for c in chunks if c.choices and c.choices[0].delta is None]
    assert (annotation.id, annotation.model) == ("", "")
    assert chunks.index(annotation) == len(chunks) - 2  # just before the finish chunk
    extra = annotation.choices[0].model_extra or {}
    assert _filtered(extra["content_filter_results"])
    assert extra["content_filter_offsets"]["end_offset"] == OUTPUT_TOKENS
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_embeddings_and_responses(azure: openai.AzureOpenAI, mock: MockServer) -> None:
    embedding = azure.embeddings.create(model="embed-deployment", input=["alpha", "beta"])
    assert embedding.model == "embed-deployment" and len(embedding.data) == 2
    assert len(embedding.data[0].embedding) == 1536
    response = azure.responses.create(model="responses-deployment", input="hello")
    assert response.model == "responses-deployment" and response.output_text
    paths = {r.model: r.path for r in mock.records if r.protocol == "azure"}
    assert paths["embed-deployment"] == "/openai/deployments/embed-deployment/embeddings"
    assert paths["responses-deployment"] == "/openai/responses"


def test_v1_api_with_the_plain_client(mock: MockServer) -> None:
    with openai.OpenAI(
        base_url=f"{mock.azure_endpoint}/openai/v1", api_key="az-test-key", max_retries=0
    ) as c:
        completion = c.chat.completions.create(model="v1-deployment", messages=MESSAGES)
        stream = c.chat.completions.create(model="v1-deployment", messages=MESSAGES, stream=True)
        chunks = list(stream)
    assert completion.model == "v1-deployment"
    assert (chunks[0].id, chunks[0].choices) == ("", [])
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert {r.path for r in records_for_model(mock, "v1-deployment")} == {"/openai/v1/chat/completions"}


def test_async_client(mock: MockServer) -> None:
    async def main() -> tuple[str, int]:
        async with openai.AsyncAzureOpenAI(
            azure_endpoint=mock.azure_endpoint, api_key="k", api_version=API_VERSION, max_retries=0
        ) as c:
            completion = await c.chat.completions.create(model="async-deployment", messages=MESSAGES)
            stream = await c.chat.completions.create(model="async-deployment", messages=MESSAGES, stream=True)
            texts = [ch async for ch in stream if ch.choices and ch.choices[0].delta.content]
        return completion.model, len(texts)

    assert asyncio.run(main()) == ("async-deployment", OUTPUT_TOKENS)


def test_gateway_errors_in_azure_shape(mock: MockServer) -> None:
    path = f"{mock.url}/openai/deployments/d/chat/completions"
    body = {"model": "d", "messages": MESSAGES}
    no_version = httpx.post(path, headers={"api-key": "k"}, json=body)
    no_key = httpx.post(path, params={"api-version": API_VERSION}, json=body)
    bearer = httpx.post(
        path, params={"api-version": API_VERSION}, headers={"authorization": "Bearer t"}, json=body
    )
    assert (no_version.status_code, no_version.json()) == (
        404,
        {"error": {"code": "404", "message": "Resource not found"}},
    )
    assert no_key.status_code == 401 and no_key.json()["error"]["code"] == "401"
    assert bearer.status_code == 200 and bearer.json()["model"] == "d"
    # Not an Azure operation: the usual 404, in Azure's shape.
    other = httpx.post(f"{mock.url}/openai/deployments/d/completions", headers={"api-key": "k"}, json=body)
    assert other.status_code == 404 and json.loads(other.text)["error"]["code"] == "404"


def test_validation_errors_pass_through_in_openai_shape(azure: openai.AzureOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        azure.chat.completions.create(model="d", messages=[])
    assert info.value.param == "messages" and info.value.type == "invalid_request_error"


def test_rate_limit_is_retried_by_the_sdk(mock: MockServer) -> None:
    model = "azure-retry-429"
    mock.script(model, [Fault.status(429, retry_after=0.01), Fault.ok()])
    with openai.AzureOpenAI(
        azure_endpoint=mock.azure_endpoint, api_key="k", api_version=API_VERSION, max_retries=2
    ) as c:
        start = time.perf_counter()
        completion = c.chat.completions.create(model=model, messages=MESSAGES)
        elapsed = time.perf_counter() - start
    assert completion.model == model
    assert [r.status for r in records_for_model(mock, model)] == [429, 200]
    assert elapsed < 0.3  # retry-after honoured, not the SDK's default backoff


def test_injected_rate_limit_reaches_the_app(azure: openai.AzureOpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as info:
        azure.chat.completions.create(model="d", messages=MESSAGES, extra_headers=hdrs(fault=429))
    assert isinstance(info.value.body, dict) and info.value.body["code"] == "429"
