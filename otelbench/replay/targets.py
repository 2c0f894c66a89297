"""Target specs: ``SCHEME:MODEL[@URL]``, resolved against the environment.

    openai:gpt-4o-mini                         OpenAI, key from OPENAI_API_KEY
    anthropic:claude-3-5-haiku-latest          Anthropic, key from ANTHROPIC_API_KEY
    ollama:llama3.2:1b                         Ollama at OLLAMA_HOST (default 127.0.0.1:11434)
    openai:meta-llama/Llama-3.1-8B@http://127.0.0.1:8000/v1
                                               any OpenAI-compatible server (vLLM, llama.cpp, LM Studio)
    bedrock:anthropic.claude-3-haiku-20240307-v1:0
                                               Amazon Bedrock (Converse API through boto3), standard
                                               AWS credential chain, region from AWS_REGION /
                                               AWS_DEFAULT_REGION (default us-east-1), endpoint from
                                               AWS_ENDPOINT_URL_BEDROCK_RUNTIME / AWS_ENDPOINT_URL
    azure:my-gpt-4o-deployment                 Azure OpenAI through openai.AsyncAzureOpenAI: the
                                               deployment at AZURE_OPENAI_ENDPOINT (or @URL, the
                                               resource's https://NAME.openai.azure.com), key from
                                               AZURE_OPENAI_API_KEY, API version from
                                               OPENAI_API_VERSION (default 2024-10-21)
    deepseek:deepseek-v4-flash                 another provider's OpenAI-compatible API through
    groq:llama-3.3-70b-versatile               the openai SDK, at its public URL with its own key
    xai:grok-3-mini                            (COMPATIBLE below): DEEPSEEK_API_KEY, GROQ_API_KEY,
    mistral:mistral-small-latest               XAI_API_KEY, MISTRAL_API_KEY, GEMINI_API_KEY (or
    gemini:gemini-2.5-flash                    GOOGLE_API_KEY)
    anthropic:mock-x@mock                      the embedded mock, through that SDK

``MODEL`` may contain colons (Ollama tags); everything after the first ``@`` that starts a URL
(``http://``, ``https://``) or the word ``mock`` is the endpoint. ``--base-url URL`` is the
endpoint of every target given without ``@``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from otelbench.errors import UsageError
from otelbench_instrumentation import semconv
from otelbench_instrumentation.providers.openai import provider_for_host


@dataclass(frozen=True)
class Compatible:
    """Another provider's OpenAI-compatible API, reached through the ``openai`` SDK."""

    url: str
    #: Where its key is read from, first set wins.
    key_env: tuple[str, ...]
    #: Whether it takes ``stream_options.include_usage`` (Mistral's schema refuses the field and
    #: sends a stream's usage unasked).
    stream_options: bool = True
    #: Where the embedded mock serves this API, and the protocol the mock's records name.
    mock_path: str = "/v1"
    mock_protocol: str = "openai"
    #: Whether it also serves OpenAI's Responses API (``--api responses``) at ``url``/responses.
    responses: bool = False


#: The OpenAI-compatible APIs a ``SCHEME:MODEL`` target names without a URL or a shared key.
COMPATIBLE = {
    "deepseek": Compatible(
        "https://api.deepseek.com", ("DEEPSEEK_API_KEY",), mock_path="/deepseek", mock_protocol="deepseek"
    ),
    "groq": Compatible("https://api.groq.com/openai/v1", ("GROQ_API_KEY",), responses=True),
    "xai": Compatible("https://api.x.ai/v1", ("XAI_API_KEY",), responses=True),
    "mistral": Compatible(
        "https://api.mistral.ai/v1",
        ("MISTRAL_API_KEY",),
        stream_options=False,
        mock_path="/mistral/v1",
        mock_protocol="mistral",
    ),
    "gemini": Compatible(
        "https://generativelanguage.googleapis.com/v1beta/openai", ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    ),
}
SCHEMES = ("openai", "anthropic", "ollama", "bedrock", "azure", *COMPATIBLE)
MOCK = "mock"
DEFAULT_OLLAMA_HOST = "http://127.0.0.1:11434"
OPENAI_DEFAULT_HOST = "api.openai.com"
OPENAI_DEFAULT_URL = f"https://{OPENAI_DEFAULT_HOST}/v1"
ANTHROPIC_DEFAULT_URL = "https://api.anthropic.com"
_KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
_BASE_URL_ENV = {"openai": "OPENAI_BASE_URL", "anthropic": "ANTHROPIC_BASE_URL"}
#: gen_ai.provider.name of each scheme, where the conventions spell it differently.
_PROVIDER_NAMES = {"bedrock": semconv.PROVIDER_AWS_BEDROCK, "azure": semconv.PROVIDER_AZURE_AI_OPENAI}
#: The Azure OpenAI API version sent when OPENAI_API_VERSION names none (the latest GA one).
DEFAULT_AZURE_API_VERSION = "2024-10-21"
DEFAULT_AWS_REGION = "us-east-1"
# Local OpenAI-compatible servers ignore the key, but the SDKs refuse to start without one.
PLACEHOLDER_KEY = "unused"
_ENDPOINT = re.compile(r"@(?=https?://|mock$)")


@dataclass(frozen=True, repr=False)
class Target:
    """One provider endpoint and model to replay against."""

    scheme: str
    model: str
    #: Endpoint URL; None = the provider's default; "mock" = the embedded mock (until resolved).
    base_url: str | None
    api_key: str | None = field(default=None, repr=False)
    #: True when the endpoint was named by the user (shown in the id).
    explicit_url: bool = False
    #: True once ``base_url`` points at the running embedded mock.
    mock_resolved: bool = False
    #: Azure OpenAI's ``api-version`` (azure targets only).
    api_version: str | None = None

    def __repr__(self) -> str:
        # Never the raw URL or key: a URL may carry credentials (https://user:key@host).
        return f"Target({self.id!r}, endpoint={self.endpoint!r})"

    @property
    def is_mock(self) -> bool:
        """Served by the embedded mock."""
        return self.base_url == MOCK or self.mock_resolved

    @property
    def sdk(self) -> str:
        """The SDK (and instrumentor) the target's requests go through."""
        return "openai" if self.scheme == "azure" or self.scheme in COMPATIBLE else self.scheme

    @property
    def provider(self) -> str:
        """The ``gen_ai.provider.name`` the instrumentation reports for this target."""
        if self.scheme == "openai" or self.scheme in COMPATIBLE:
            # The instrumentation's own rule, by host: api.groq.com is groq, the mock is openai.
            return provider_for_host(self.host_port[0])
        return _PROVIDER_NAMES.get(self.scheme, self.scheme)

    @property
    def mock_protocol(self) -> str:
        """The protocol the embedded mock's records name for this target's requests."""
        api = COMPATIBLE.get(self.scheme)
        return self.scheme if api is None else api.mock_protocol

    @property
    def asks_stream_usage(self) -> bool:
        """Whether a stream request carries ``stream_options.include_usage`` (OpenAI protocol)."""
        api = COMPATIBLE.get(self.scheme)
        return api is None or api.stream_options

    @property
    def max_tokens_key(self) -> str:
        """The request field that caps the output: OpenAI's own API and Azure's want
        ``max_completion_tokens`` (reasoning models refuse ``max_tokens``), while OpenAI-compatible
        servers widely understand only ``max_tokens``."""
        official = self.scheme == "azure" or (
            self.scheme == "openai" and self.host_port[0] == OPENAI_DEFAULT_HOST
        )
        return "max_completion_tokens" if official else "max_tokens"

    @property
    def id(self) -> str:
        """How the target is named in tables and files (credentials never included)."""
        if self.explicit_url and not self.mock_resolved and self.base_url not in (None, MOCK):
            return f"{self.scheme}:{self.model}@{redact_url(self.base_url)}"
        return f"{self.scheme}:{self.model}"

    @property
    def endpoint(self) -> str:
        """The URL requests go to, without credentials (for messages and result files)."""
        if self.base_url is None:
            if self.scheme in COMPATIBLE:
                return COMPATIBLE[self.scheme].url
            return {"openai": OPENAI_DEFAULT_URL, "anthropic": ANTHROPIC_DEFAULT_URL}.get(
                self.scheme, DEFAULT_OLLAMA_HOST
            )
        return redact_url(self.base_url)

    @property
    def host_port(self) -> tuple[str | None, int | None]:
        """Host and port the instrumentation reports as server.address / server.port."""
        url = self.endpoint if "://" in self.endpoint else f"http://{self.endpoint}"
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = None
        if port is None:
            port = {"https": 443, "http": 80}.get(parts.scheme)
        return parts.hostname, port

    def with_mock(self, url: str) -> Target:
        """This target pointed at the running embedded mock at ``url``."""
        api = COMPATIBLE.get(self.scheme)
        base = f"{url}{api.mock_path}" if api is not None else {"openai": f"{url}/v1"}.get(self.scheme, url)
        return replace(self, base_url=base, api_key="mock-key", mock_resolved=True)


def redact_url(url: str) -> str:
    """``url`` without user info, query or fragment (where keys tend to hide)."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port else host
    return f"{parts.scheme}://{netloc}{parts.path}"


def parse_target(spec: str, env: Mapping[str, str], base_url: str | None = None) -> Target:
    """Parse ``SCHEME:MODEL[@URL]`` and find its key; a UsageError names what is wrong."""
    scheme, sep, rest = spec.partition(":")
    if not sep or not rest or scheme not in SCHEMES:
        raise UsageError(
            f"bad --target {spec!r}: expected SCHEME:MODEL[@URL] with SCHEME one of {', '.join(SCHEMES)}"
        )
    found = _ENDPOINT.search(rest)
    model, url = (rest[: found.start()], rest[found.end() :]) if found else (rest, None)
    if not model:
        raise UsageError(f"bad --target {spec!r}: the model name is empty")
    explicit = url is not None
    if url is None:
        url = base_url
        explicit = base_url is not None
    if url is not None and url != MOCK:
        _check_url(url, spec)
    if scheme == "ollama":
        if url is None:
            url = env.get("OLLAMA_HOST") or DEFAULT_OLLAMA_HOST
            if "://" not in url:
                url = f"http://{url}"
            _check_url(url, "OLLAMA_HOST")
        return Target(scheme, model, url, None, explicit)
    api_version = (env.get("OPENAI_API_VERSION") or DEFAULT_AZURE_API_VERSION) if scheme == "azure" else None
    if url == MOCK:
        return Target(scheme, model, MOCK, "mock-key", api_version=api_version)
    if scheme == "bedrock":
        # Credentials come from the standard AWS chain inside boto3, never through us.
        if url is None:
            url = env.get("AWS_ENDPOINT_URL_BEDROCK_RUNTIME") or env.get("AWS_ENDPOINT_URL")
            if url:
                _check_url(url, "AWS_ENDPOINT_URL")
            else:
                url = f"https://bedrock-runtime.{aws_region(env)}.amazonaws.com"
        return Target(scheme, model, url, None, explicit)
    if scheme == "azure":
        if url is None:
            url = env.get("AZURE_OPENAI_ENDPOINT")
            if not url:
                raise UsageError(
                    f"--target {spec}: AZURE_OPENAI_ENDPOINT is not set "
                    "(or name the resource: azure:DEPLOYMENT@https://NAME.openai.azure.com)"
                )
            _check_url(url, "AZURE_OPENAI_ENDPOINT")
        key = env.get("AZURE_OPENAI_API_KEY")
        # Without a key the SDK itself reads an Entra ID token from AZURE_OPENAI_AD_TOKEN.
        if not key and not env.get("AZURE_OPENAI_AD_TOKEN"):
            raise UsageError(
                f"--target {spec}: neither AZURE_OPENAI_API_KEY nor AZURE_OPENAI_AD_TOKEN is set"
            )
        return Target(scheme, model, url, key or None, explicit, api_version=api_version)
    api = COMPATIBLE.get(scheme)
    if api is not None:
        key = next((env[var] for var in api.key_env if env.get(var)), None)
        if not key:
            if url is None:
                raise UsageError(f"--target {spec}: {' or '.join(api.key_env)} is not set")
            key = PLACEHOLDER_KEY  # a self-hosted gateway may need none
        return Target(scheme, model, url or api.url, key, explicit)
    if url is None:
        # The URL the SDK itself would take: the summary must look for the host it reports.
        url = env.get(_BASE_URL_ENV[scheme]) or None
        if url is not None:
            _check_url(url, _BASE_URL_ENV[scheme])
    key_var = _KEY_ENV[scheme]
    key = env.get(key_var)
    if not key:
        if url is None:
            raise UsageError(f"--target {spec}: {key_var} is not set")
        key = PLACEHOLDER_KEY
    return Target(scheme, model, url, key, explicit)


def aws_region(env: Mapping[str, str]) -> str:
    """The AWS region the standard variables name (boto3's own order), else us-east-1."""
    return env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or DEFAULT_AWS_REGION


def _check_url(url: str, where: str) -> None:
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError:
        raise UsageError(f"bad endpoint {redact_url(url)!r} in {where!r}: invalid port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"bad endpoint {redact_url(url)!r} in {where!r}: expected http(s)://HOST[:PORT][/PATH]"
        )


def default_mock_targets() -> list[Target]:
    """The four embedded-mock targets of a bare ``otelbench replay``: one per SDK."""
    return [
        Target("openai", "mock-fast", MOCK, "mock-key"),
        Target("anthropic", "mock-balanced", MOCK, "mock-key"),
        Target("bedrock", "mock-steady", MOCK, "mock-key"),
        Target("ollama", "mock-slow", MOCK, "mock-key"),
    ]
