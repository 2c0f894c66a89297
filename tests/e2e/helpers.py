"""HTTP helpers shared by the end-to-end tests: JSON GETs, polling, Prometheus instant queries."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from otelbench.backends import Stack


def get_json(url: str) -> Any:
    """GET ``url`` and decode its JSON body."""
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def poll(fetch: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 60.0) -> Any:
    """Call ``fetch`` every half second until ``done`` accepts its value or time runs out; the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


def prom(stack: Stack, query: str) -> list[dict[str, Any]]:
    """The result vector of a Prometheus instant query."""
    url = f"{stack.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    body = get_json(url)
    assert body["status"] == "success", body
    return body["data"]["result"]  # type: ignore[no-any-return]
