"""Azure OpenAI wire protocol: OpenAI's bodies under Azure's paths, auth and content filters.

Two URL shapes, as the ``openai`` SDK uses them:

    /openai/deployments/{deployment}/chat/completions?api-version=V   AzureOpenAI clients
    /openai/deployments/{deployment}/embeddings?api-version=V
    /openai/responses?api-version=V                                    (model = deployment)
    /openai/v1/chat/completions | responses | embeddings               the v1 API, plain client

A deployment's name is its model here (its latency profile). Requests need an ``api-key``
header or a bearer token, and the dated paths an ``api-version``; replies carry Azure's
content-filter annotations (see ``openai_api.chat_completions``).
"""

from __future__ import annotations

import functools
from urllib.parse import parse_qs, unquote

from . import openai_api
from .core import ErrorReply, ProtocolSpec, RequestContext, Route, dumps

# Azure's gateway answers these statuses itself, in its own shape; the rest pass through in
# OpenAI's.
_GATEWAY_STATUSES = frozenset({401, 404, 429})
_NO_KEY = "Access denied due to invalid subscription key or wrong API endpoint."
_NOT_FOUND = "Resource not found"


def error_body(err: ErrorReply) -> bytes:
    """``{"error": {"code": "429", "message": ...}}`` from the gateway, else OpenAI's body."""
    if err.status in _GATEWAY_STATUSES:
        return dumps({"error": {"code": str(err.status), "message": err.message}})
    return openai_api.error_body(err)


AZURE = ProtocolSpec("azure", error_body, stream_error=openai_api.stream_error)

_DEPLOYMENT_OPS = {"chat/completions": "chat", "embeddings": "embeddings"}
_V1_OPS = {"chat/completions": "chat", "responses": "responses", "embeddings": "embeddings"}


def _check(ctx: RequestContext, dated: bool) -> None:
    headers = ctx.req.headers
    if not headers.get("api-key") and not headers.get("authorization", "").startswith("Bearer "):
        raise ErrorReply(401, _NO_KEY)
    if dated and not parse_qs(ctx.req.query).get("api-version"):
        raise ErrorReply(404, _NOT_FOUND)


async def _serve(ctx: RequestContext, op: str, deployment: str | None, dated: bool) -> None:
    _check(ctx, dated)
    if op == "chat":
        await openai_api.chat_completions(ctx, deployment=deployment, dialect="azure")
    elif op == "embeddings":
        await openai_api.embeddings(ctx, deployment=deployment)
    else:
        await openai_api.responses(ctx)


def path_router(method: str, path: str) -> tuple[ProtocolSpec, Route] | None:
    """Resolve an Azure path to its route, or None (then the usual 404/405 follow)."""
    if method != "POST" or not path.startswith("/openai/"):
        return None
    rest = path[len("/openai/") :]
    if rest.startswith("v1/"):
        op = _V1_OPS.get(rest[len("v1/") :])
        return None if op is None else (AZURE, functools.partial(_serve, op=op, deployment=None, dated=False))
    if rest == "responses":
        return AZURE, functools.partial(_serve, op="responses", deployment=None, dated=True)
    if rest.startswith("deployments/"):
        deployment, _, name = rest[len("deployments/") :].partition("/")
        op = _DEPLOYMENT_OPS.get(name)
        if op is not None and deployment:
            return AZURE, functools.partial(_serve, op=op, deployment=unquote(deployment), dated=True)
    return None
