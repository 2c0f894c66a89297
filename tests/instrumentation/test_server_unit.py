"""server.address / server.port, worked out once per endpoint object."""

from __future__ import annotations

from typing import Any

import httpx

from otelbench_instrumentation.providers._server import Server, http_server, remembered


def test_the_answer_is_kept_per_endpoint_object_and_errors_are_not_kept() -> None:
    calls: list[Any] = []

    def where(url: Any) -> Server:
        calls.append(url)
        if url == "bad":
            raise ValueError("not a url")
        return http_server(url)

    server = remembered(where)
    first = httpx.URL("https://api.example.invalid/v1")
    assert server(first) == server(first) == ("api.example.invalid", 443)
    assert calls == [first]
    moved = httpx.URL("http://127.0.0.1:8123/v1")  # a client given a new base URL
    assert server(moved) == ("127.0.0.1", 8123)
    assert server("bad") == server("bad") == (None, None)
    assert calls == [first, moved, "bad", "bad"]
    assert server(first) == ("api.example.invalid", 443) and len(calls) == 5
