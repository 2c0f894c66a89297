"""Load a `MockConfig` from TOML (used by `otelbench mock --config`).

    host = "127.0.0.1"
    port = 8099
    seed = 1
    workers = 1                                 # server processes sharing the port (Linux)
    ground_truth = "mock-ground-truth.jsonl"

    [default]                                   # the profile of models not listed below
    ttft_ms = 20                                # a number is a fixed value
    itl_ms = { normal = [2.0, 0.3] }            # mean, std (truncated at 0)
    output_tokens = { lognormal = [64, 0.5] }   # median, sigma
    ttft_per_input_token_ms = 0.01

    [models."gpt-4o-mini"]                      # exact name or fnmatch pattern ("llama3*")
    ttft_ms = { empirical = [10, 12, 30] }      # uniform choice among observed values

    [faults]                                    # x-mock-fault spec -> probability per request
    "429:0.5" = 0.01
    "disconnect:5" = 0.001
    "malformed:3" = 0.001

Latencies are in milliseconds here (seconds in the Python API); a distribution may also be written
as `{ normal = { mean = 2, std = 0.3 } }` or `{ lognormal = { median = 64, sigma = 0.5 } }`.
"""

from __future__ import annotations

import socket
import tomllib
from pathlib import Path
from typing import Any

from otelbench.errors import ConfigError

from .model import DEFAULT_MAX_BODY_BYTES, DEFAULT_REQUEST_TIMEOUT, Dist, Fault, MockConfig, ModelProfile

_TOP_KEYS = {
    "host",
    "port",
    "seed",
    "workers",
    "ground_truth",
    "max_body_bytes",
    "request_timeout",
    "default",
    "models",
    "faults",
}
#: Upper bound of `workers` (a typo must not fork thousands of processes).
MAX_WORKERS = 256
_PROFILE_KEYS = {"ttft_ms", "itl_ms", "output_tokens", "ttft_per_input_token_ms"}
_DIST_ARGS = {
    "fixed": ("value",),
    "normal": ("mean", "std"),
    "lognormal": ("median", "sigma"),
    "empirical": (),
}


def load_config(path: str | Path) -> MockConfig:
    """Read and validate a TOML mock configuration."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read mock config {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return config_from_dict(data, source=str(path))


def config_from_dict(data: dict[str, Any], source: str = "mock config") -> MockConfig:
    """Build a `MockConfig` from parsed TOML, naming the offending field on error."""
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"{source}: unknown field(s) {', '.join(sorted(unknown))}")
    host = _typed(data, "host", str, "127.0.0.1", source)
    port = _typed(data, "port", int, 0, source)
    if not 0 <= port <= 65535:
        raise ConfigError(f"{source}: port must be within 0..65535, got {port}")
    seed = _typed(data, "seed", int, 0, source)
    workers = _typed(data, "workers", int, 1, source)
    check_workers(workers, f"{source}: workers")
    ground_truth = data.get("ground_truth")
    if ground_truth is not None and not isinstance(ground_truth, str):
        raise ConfigError(f"{source}: ground_truth must be a file path string")
    max_body = _typed(data, "max_body_bytes", int, DEFAULT_MAX_BODY_BYTES, source)
    request_timeout = data.get("request_timeout", DEFAULT_REQUEST_TIMEOUT)
    if (
        isinstance(request_timeout, bool)
        or not isinstance(request_timeout, int | float)
        or request_timeout <= 0
    ):
        raise ConfigError(
            f"{source}: request_timeout must be a positive number of seconds, got {request_timeout!r}"
        )
    default = profile_from_dict(data.get("default", {}), f"{source}: default", ModelProfile())
    models = data.get("models", {})
    if not isinstance(models, dict):
        raise ConfigError(f"{source}: models must be a table of model name -> profile")
    profiles = {
        str(name): profile_from_dict(table, f'{source}: models."{name}"', default)
        for name, table in models.items()
    }
    faults = data.get("faults", {})
    if not isinstance(faults, dict):
        raise ConfigError(f"{source}: faults must be a table of fault spec -> probability")
    rates: dict[str, float] = {}
    for spec, rate in faults.items():
        field = f'{source}: faults."{spec}"'
        try:
            Fault.parse(spec)
        except ValueError as exc:
            raise ConfigError(f"{field}: {exc}") from None
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
            raise ConfigError(f"{field}: probability must be a number within 0..1, got {rate!r}")
        rates[spec] = float(rate)
    if sum(rates.values()) > 1:
        raise ConfigError(f"{source}: faults: probabilities add up to more than 1")
    return MockConfig(
        host=host,
        port=port,
        seed=seed,
        profiles=profiles,
        default_profile=default,
        fault_rates=rates,
        ground_truth_path=ground_truth,
        max_body_bytes=max_body,
        request_timeout=float(request_timeout),
        workers=workers,
    )


def check_workers(workers: int, where: str) -> None:
    """ConfigError unless `workers` is usable here (1..MAX_WORKERS; > 1 needs SO_REUSEPORT)."""
    if not 1 <= workers <= MAX_WORKERS:
        raise ConfigError(f"{where} must be within 1..{MAX_WORKERS}, got {workers}")
    if workers > 1 and not hasattr(socket, "SO_REUSEPORT"):
        raise ConfigError(f"{where} > 1 needs SO_REUSEPORT, which this platform lacks")


def profile_from_dict(table: Any, where: str, base: ModelProfile) -> ModelProfile:
    """A profile from a TOML table; missing fields come from `base`."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table")
    unknown = set(table) - _PROFILE_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    per_token = table.get("ttft_per_input_token_ms")
    if per_token is not None and (isinstance(per_token, bool) or not isinstance(per_token, int | float)):
        raise ConfigError(f"{where}.ttft_per_input_token_ms: must be a number")
    return ModelProfile(
        ttft=dist_from_value(table["ttft_ms"], f"{where}.ttft_ms", 1e-3) if "ttft_ms" in table else base.ttft,
        itl=dist_from_value(table["itl_ms"], f"{where}.itl_ms", 1e-3) if "itl_ms" in table else base.itl,
        output_tokens=(
            dist_from_value(table["output_tokens"], f"{where}.output_tokens", 1.0)
            if "output_tokens" in table
            else base.output_tokens
        ),
        ttft_per_input_token=per_token * 1e-3 if per_token is not None else base.ttft_per_input_token,
    )


def dist_from_value(value: Any, where: str, scale: float) -> Dist:
    """A `Dist` from a number or a one-key table ({normal = [mean, std]} ...), multiplied by `scale`."""
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return Dist.fixed(value).scaled(scale)
        if not isinstance(value, dict) or len(value) != 1:
            raise ValueError("expected a number or a table with one of fixed, normal, lognormal, empirical")
        ((kind, args),) = value.items()
        if kind not in _DIST_ARGS:
            raise ValueError(f"unknown distribution {kind!r} (fixed, normal, lognormal, empirical)")
        if kind == "empirical":
            if not isinstance(args, list) or not all(_is_number(v) for v in args):
                raise ValueError("empirical takes a list of numbers")
            return Dist.empirical(args).scaled(scale)
        names = _DIST_ARGS[kind]
        if isinstance(args, dict):
            missing = [n for n in names if n not in args]
            if missing or set(args) - set(names):
                raise ValueError(f"{kind} takes {{{', '.join(names)}}}")
            params = [args[n] for n in names]
        elif isinstance(args, list):
            params = args
        else:
            params = [args]
        if len(params) != len(names) or not all(_is_number(p) for p in params):
            raise ValueError(f"{kind} takes {len(names)} number(s): {', '.join(names)}")
        if kind == "fixed":
            return Dist.fixed(params[0]).scaled(scale)
        if kind == "normal":
            return Dist.normal(params[0], params[1]).scaled(scale)
        return Dist.lognormal(params[0], params[1]).scaled(scale)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _typed(data: dict[str, Any], key: str, kind: type, default: Any, source: str) -> Any:
    value = data.get(key, default)
    if not isinstance(value, kind) or isinstance(value, bool):
        noun = {"int": "an integer", "str": "a string"}.get(kind.__name__, kind.__name__)
        raise ConfigError(f"{source}: {key} must be {noun}, got {value!r}")
    return value
