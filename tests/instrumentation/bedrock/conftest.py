"""Bedrock instrumentation on real OTel SDK providers, and real boto3 clients of the mock."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from otelbench.mock import MockServer
from otelbench_instrumentation import BedrockInstrumentor

from ..conftest import Otel, instrument_into_memory, instrumented_otel

__all__ = [
    "ACCESS_KEY",
    "MESSAGES",
    "MODEL",
    "PROMPT",
    "SECRET_KEY",
    "Otel",
    "bedrock_client",
    "instrumented",
]

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
PROMPT = "Say something about mocks, please."
MESSAGES: list[Any] = [{"role": "user", "content": [{"text": PROMPT}]}]
ACCESS_KEY = "AKIAOTELBENCHTEST0001"
SECRET_KEY = "bedrock-test-SECRET-0123456789abcdef"


def instrumented(**kwargs: Any) -> tuple[Otel, BedrockInstrumentor]:
    """Bedrock instrumentation exporting into memory (undo it with ``.uninstrument()``)."""
    instrumentor = BedrockInstrumentor()
    return instrument_into_memory(instrumentor, **kwargs), instrumentor


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    # Dummy credentials through the standard chain; no shared config or instance metadata.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def otel() -> Iterator[Otel]:
    """Bedrock instrumentation on, exporting into memory; undone after the test."""
    with instrumented_otel(BedrockInstrumentor()) as data:
        yield data


def bedrock_client(server: MockServer, max_attempts: int = 3) -> Any:
    """A real boto3 ``bedrock-runtime`` client of the mock (standard retries, ``max_attempts`` in all)."""
    config = Config(retries={"mode": "standard", "total_max_attempts": max_attempts})
    return boto3.client(
        "bedrock-runtime", endpoint_url=server.bedrock_endpoint_url, region_name="us-east-1", config=config
    )


@pytest.fixture
def client(mock_server: MockServer) -> Iterator[Any]:
    """A boto3 Bedrock runtime client talking to the mock."""
    c = bedrock_client(mock_server)
    yield c
    c.close()
