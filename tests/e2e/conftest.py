"""The real Collector, Jaeger and Prometheus for end-to-end tests (see otelbench.backends).

Locally a missing backend skips these tests with a pointer to `.ci/backends.sh`; in CI
(`CI=true`) it fails them, so a broken install can never pass as a skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from otelbench.backends import Stack, missing_binaries

#: Short test runs must span several scrapes: rate() ignores a series' first sample.
SCRAPE_INTERVAL = "1s"


@pytest.fixture(scope="session")
def backends_installed() -> None:
    """Fail (in CI) or skip (locally) when a backend binary is missing."""
    missing = missing_binaries()
    if missing:
        message = f"backends not installed: {', '.join(missing)}; run `bash .ci/backends.sh`"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def stack(backends_installed: None) -> Iterator[Stack]:
    """One backend stack on free 127.0.0.1 ports for the session."""
    with Stack(scrape_interval=SCRAPE_INTERVAL) as running:
        yield running
