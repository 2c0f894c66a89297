"""In-process transports for the SDKs' public ``http_client``/``transport`` hooks.

Load and hostile-response tests need thousands of calls, or bytes no real server would send.
Each SDK takes an httpx client (OpenAI/Anthropic: ``http_client=``; Ollama: keyword arguments
forwarded to its ``httpx.Client``), so an ``httpx.MockTransport`` feeds the real SDK parsers
without a socket and without patching anything. The well-formed bodies are recorded from the
real mock server once, so they are the wire protocol as the mock (and the SDK tests) know it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx
import httpx2
import ollama
import openai

from otelbench.mock import MockServer

BASE = "http://127.0.0.1:9"  # never contacted: the transport answers
API_KEY = "sk-wire-0123456789abcdefSECRET"
MESSAGES: Any = [{"role": "user", "content": "hello"}]

SSE = "text/event-stream"
NDJSON = "application/x-ndjson"
JSON = "application/json"


@dataclass(frozen=True)
class Body:
    """One recorded response: its content type and its events (SSE events or NDJSON lines)."""

    content_type: str
    events: tuple[bytes, ...]

    @property
    def raw(self) -> bytes:
        return b"".join(self.events)


def _split(content_type: str, raw: bytes) -> tuple[bytes, ...]:
    if content_type.startswith(SSE):
        return tuple(part + b"\n\n" for part in raw.split(b"\n\n") if part)
    if content_type.startswith(NDJSON):
        return tuple(line + b"\n" for line in raw.split(b"\n") if line)
    return (raw,)


def record_bodies(server: MockServer, output_tokens: int = 8) -> dict[str, Body]:
    """Streamed and plain responses of each protocol, as the mock sends them."""
    requests = {
        "openai-stream": (
            "/v1/chat/completions",
            {"model": "m", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}},
        ),
        "openai-json": ("/v1/chat/completions", {"model": "m", "messages": MESSAGES}),
        "anthropic-stream": (
            "/v1/messages",
            {"model": "m", "max_tokens": 50, "messages": MESSAGES, "stream": True},
        ),
        "anthropic-json": ("/v1/messages", {"model": "m", "max_tokens": 50, "messages": MESSAGES}),
        "ollama-stream": ("/api/chat", {"model": "m", "messages": MESSAGES}),
        "ollama-json": ("/api/chat", {"model": "m", "messages": MESSAGES, "stream": False}),
    }
    found: dict[str, Body] = {}
    headers = {"x-mock-output-tokens": str(output_tokens), "anthropic-version": "2023-06-01"}
    with httpx.Client(base_url=server.url, timeout=10) as c:
        for name, (path, payload) in requests.items():
            r = c.post(path, json=payload, headers=headers)
            r.raise_for_status()
            ctype = r.headers["content-type"].split(";")[0]
            found[name] = Body(ctype, _split(ctype, r.content))
    return found


def map_json(body: Body, fn: Callable[[Any], Any]) -> Body:
    """Apply ``fn`` to every JSON document of a body (SSE data, NDJSON line, or JSON body)."""
    events: list[bytes] = []
    for event in body.events:
        if body.content_type == SSE:
            lines = []
            for line in event.rstrip(b"\n").split(b"\n"):
                if line.startswith(b"data: ") and line[6:].strip() != b"[DONE]":
                    line = b"data: " + json.dumps(fn(json.loads(line[6:]))).encode()
                lines.append(line)
            events.append(b"\n".join(lines) + b"\n\n")
        else:
            tail = b"\n" if body.content_type == NDJSON else b""
            events.append(json.dumps(fn(json.loads(event))).encode() + tail)
    return Body(body.content_type, tuple(events))


def walk(obj: Any, fn: Callable[[str, Any], Any]) -> Any:
    """Rebuild a JSON value, replacing each (key, value) by fn(key, value) (a DROP drops it)."""
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            new = fn(key, walk(value, fn))
            if new is not DROP:
                out[key] = new
        return out
    if isinstance(obj, list):
        return [walk(v, fn) for v in obj]
    return obj


DROP = object()


Route = Callable[[Any], "Reply"]


@dataclass(frozen=True)
class Reply:
    """What the transport answers: status, content type, and the body in the pieces it is sent in."""

    body: Body
    status: int = 200
    async_pause: bool = False  # yield to the loop between pieces (so a task can be cancelled mid-read)

    def response(self, hx: Any, *, is_async: bool) -> Any:
        """An ``hx.Response`` (hx: the httpx package, or httpx2 for the Anthropic SDK)."""
        headers = {"content-type": self.body.content_type}
        return hx.Response(
            self.status, headers=headers, content=self._apieces() if is_async else self._pieces()
        )

    def _pieces(self) -> Iterator[bytes]:
        yield from self.body.events

    async def _apieces(self) -> AsyncIterator[bytes]:
        for piece in self.body.events:
            if self.async_pause:
                await asyncio.sleep(0)
            yield piece


def by_protocol(replies: dict[str, Reply]) -> Route:
    """Route by path and ``stream`` flag to ``replies["<protocol>-stream|json"]``."""

    def route(request: Any) -> Reply:
        path = request.url.path
        protocol = (
            "openai" if path.startswith("/v1/chat") else "anthropic" if "/messages" in path else "ollama"
        )
        text = request.content
        if protocol == "ollama":
            streamed = b'"stream":false' not in text.replace(b" ", b"")
        else:
            streamed = b'"stream":true' in text.replace(b" ", b"")
        return replies[f"{protocol}-{'stream' if streamed else 'json'}"]

    return route


def sync_transport(route: Route, hx: Any = httpx) -> Any:
    """A sync ``hx.MockTransport`` answering with ``route``."""
    return hx.MockTransport(lambda request: route(request).response(hx, is_async=False))


def async_transport(route: Route, hx: Any = httpx) -> Any:
    """An async ``hx.MockTransport`` answering with ``route``."""

    async def handle(request: Any) -> Any:
        return route(request).response(hx, is_async=True)

    return hx.MockTransport(handle)


@dataclass
class Clients:
    """One sync and one async client of each SDK, all answered by ``route``."""

    openai: openai.OpenAI
    aopenai: openai.AsyncOpenAI
    anthropic: anthropic.Anthropic
    aanthropic: anthropic.AsyncAnthropic
    ollama: ollama.Client
    aollama: ollama.AsyncClient

    @classmethod
    def build(cls, route: Route, api_key: str = API_KEY) -> Clients:
        # The Anthropic SDK is built on httpx2 (it refuses httpx objects); the others on httpx.
        return cls(
            openai=openai.OpenAI(
                base_url=BASE + "/v1",
                api_key=api_key,
                http_client=httpx.Client(transport=sync_transport(route)),
                max_retries=0,
            ),
            aopenai=openai.AsyncOpenAI(
                base_url=BASE + "/v1",
                api_key=api_key,
                http_client=httpx.AsyncClient(transport=async_transport(route)),
                max_retries=0,
            ),
            anthropic=anthropic.Anthropic(
                base_url=BASE,
                api_key=api_key,
                http_client=httpx2.Client(transport=sync_transport(route, httpx2)),
                max_retries=0,
            ),
            aanthropic=anthropic.AsyncAnthropic(
                base_url=BASE,
                api_key=api_key,
                http_client=httpx2.AsyncClient(transport=async_transport(route, httpx2)),
                max_retries=0,
            ),
            ollama=ollama.Client(host=BASE, transport=sync_transport(route)),
            aollama=ollama.AsyncClient(host=BASE, transport=async_transport(route)),
        )

    def close(self) -> None:
        self.openai.close()
        self.anthropic.close()
        self.ollama.close()

        async def aclose() -> None:
            await self.aopenai.close()
            await self.aanthropic.close()
            await self.aollama._client.aclose()

        asyncio.run(aclose())


def with_text(body: Body, text: str) -> Body:
    """The body with every non-empty completion text (``content``/``text`` string) set to ``text``."""

    def fn(key: str, value: Any) -> Any:
        return text if key in ("content", "text") and isinstance(value, str) and value else value

    return map_json(body, lambda o: walk(o, fn))
