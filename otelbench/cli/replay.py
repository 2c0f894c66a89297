"""`otelbench replay`: replay a prompt set through the instrumented SDKs and summarise the metrics.

With no ``--target`` an embedded mock (a child process) serves four differently-shaped models
through the four SDKs (openai:mock-fast, anthropic:mock-balanced, bedrock:mock-steady,
ollama:mock-slow), so the command alone runs a cross-provider comparison on a fresh machine.
Latency figures are read back from the OpenTelemetry metrics our instrumentation exported
(exponential histograms); see ``docs/replay.md``.

Exit codes: 0 done; 1 a run-time failure (unreachable endpoint, every request of a target
failed); 2 bad input; 130 interrupted (partial results are written first).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from typing import TYPE_CHECKING

from otelbench.datasets import BUILTIN, Dataset, Prompt, load_dataset, parse_shape, synthetic, with_max_tokens
from otelbench.errors import ProviderError, UsageError
from otelbench.load import Limits
from otelbench.replay.pricing import PriceTable, load_prices
from otelbench.replay.slo import SLO, parse_slo
from otelbench.replay.targets import Target, default_mock_targets, parse_target
from otelbench.sweep import DEFAULT_METRIC as DEFAULT_SWEEP_METRIC
from otelbench.sweep import METRICS as SWEEP_METRICS
from otelbench.targets import DEFAULT_OUTPUT_DIR

if TYPE_CHECKING:
    from otelbench.replay.progress import Progress
    from otelbench.replay.runner import ReplayConfig

# The runner, adapters (all four SDKs), numpy and rich are imported inside `run`: input is
# checked first, so a bad flag is rejected without seconds of imports.

DEFAULT_REQUESTS = 40
EXIT_INTERRUPTED = 130


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


_DURATION = re.compile(r"^(?P<n>\d+(?:\.\d+)?)(?P<unit>ms|s|m|h)?$")


def _duration(text: str) -> float:
    found = _DURATION.match(text.strip())
    if not found or float(found["n"]) <= 0:
        raise argparse.ArgumentTypeError(f"expected a duration such as 30s, 2m or 90, got {text!r}")
    scale = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}[found["unit"] or "s"]
    return float(found["n"]) * scale


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `replay` sub-command."""
    p = sub.add_parser(
        "replay",
        help="replay prompts against providers (default: four embedded mock models)",
        description="Replay a prompt set through the instrumented provider SDKs; statistics come from "
        "the exported OpenTelemetry metrics. See docs/replay.md.",
    )
    t = p.add_argument_group("targets")
    t.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="SCHEME:MODEL[@URL]",
        help="openai:MODEL, anthropic:MODEL, bedrock:MODEL-ID, azure:DEPLOYMENT, ollama:MODEL, or an "
        "OpenAI-compatible deepseek:, groq:, xai:, mistral:, gemini:MODEL; optionally @http(s)://URL or @mock "
        "(repeatable; default: openai:mock-fast, anthropic:mock-balanced, bedrock:mock-steady, ollama:mock-slow "
        "on the embedded mock)",
    )
    t.add_argument("--base-url", metavar="URL", help="endpoint of every --target given without @URL")
    t.add_argument(
        "--mock-config", metavar="TOML", help="profiles of the embedded mock (as `otelbench mock --config`)"
    )
    d = p.add_argument_group("prompts")
    d.add_argument(
        "--dataset",
        default="chat",
        metavar="NAME|FILE",
        help=f"built-in set ({', '.join(BUILTIN)}), ShareGPT .json or .jsonl file (default: chat)",
    )
    d.add_argument("--shape", metavar="IN:OUT", help="synthetic prompts of IN tokens asking for OUT tokens")
    d.add_argument("--max-tokens", type=_positive_int, metavar="N", help="max output tokens of every request")
    d.add_argument(
        "--nonce", action="store_true", help="prefix each prompt with a unique nonce (defeats prompt caching)"
    )
    d.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="[SCHEME:]KEY=VALUE",
        help="a request option (temperature, top_p, seed, num_ctx, ...) sent to every target whose SDK takes "
        "it; with SCHEME:, a field of that provider's request body, VALUE as JSON or a string, e.g. "
        'deepseek:thinking=\'{"type":"disabled"}\' or openai:reasoning_effort=low (repeatable)',
    )
    load = p.add_argument_group("load")
    load.add_argument(
        "--concurrency",
        type=_positive_int,
        default=4,
        help="closed loop: requests in flight per target (default 4)",
    )
    load.add_argument(
        "--rate",
        type=_positive_float,
        metavar="R",
        help="open loop: R requests/s per target, on an absolute schedule",
    )
    load.add_argument(
        "--arrival",
        choices=("poisson", "constant"),
        default="poisson",
        help="open-loop arrivals (default poisson)",
    )
    load.add_argument(
        "--requests",
        type=_positive_int,
        help=f"measured requests per target (default {DEFAULT_REQUESTS} unless --duration)",
    )
    load.add_argument(
        "--duration", type=_duration, metavar="DUR", help="stop sending after DUR (e.g. 30s, 2m) per target"
    )
    load.add_argument(
        "--warmup",
        type=_non_negative_int,
        default=4,
        help="unmeasured warm-up requests per target (default 4)",
    )
    load.add_argument(
        "--parallel", action="store_true", help="load all targets at once (default: one after another)"
    )
    load.add_argument(
        "--no-stream", dest="stream", action="store_false", help="non-streaming requests (no TTFT)"
    )
    load.add_argument(
        "--client",
        choices=("sdk", "http"),
        default="sdk",
        help="sdk: each provider's official SDK (default); http: a lean HTTP client with no SDK, "
        "for high concurrency (openai, anthropic, ollama; no retries)",
    )
    load.add_argument(
        "--api",
        choices=("chat", "responses"),
        default="chat",
        help="OpenAI's API for openai:, azure:, groq: and xai: targets: chat (Chat Completions, default) or "
        "responses (the Responses API)",
    )
    load.add_argument(
        "--max-retries", type=_non_negative_int, default=None, help="SDK retries per request (default 2)"
    )
    load.add_argument("--timeout", type=_positive_float, default=600.0, help="timeout per request in seconds")
    load.add_argument(
        "--drain-timeout",
        type=_positive_float,
        default=10.0,
        help="after Ctrl-C, seconds to let requests in flight finish",
    )
    load.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        metavar="N",
        help="client processes sharing the load (default 1; use more when one saturates a core)",
    )
    load.add_argument("--seed", type=int, default=0, help="seed of the embedded mock and Poisson arrivals")
    sw = p.add_argument_group("sweeps (see docs/replay.md)")
    sw.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="KEY=V1,V2,...",
        help="replay every combination of these values (repeatable): a request option (temperature, "
        "top_p, num_ctx, num_gpu, ...), max_tokens, concurrency or rate",
    )
    sw.add_argument(
        "--runs",
        type=_positive_int,
        help="runs per configuration (default 3 with --sweep, else 1)",
    )
    sw.add_argument(
        "--sweep-metric",
        choices=tuple(SWEEP_METRICS),
        default=DEFAULT_SWEEP_METRIC,
        help=f"picks the best configuration (default {DEFAULT_SWEEP_METRIC}; latencies lower, rates higher is better)",
    )
    sw.add_argument(
        "--sweep-baseline",
        metavar="KEY=V,...",
        help="the configuration the others are compared with (default: the first)",
    )
    out = p.add_argument_group("results")
    out.add_argument(
        "--slo",
        action="append",
        default=[],
        metavar="METRIC_pQ=VALUE",
        help="e.g. ttft_p95=500ms (repeatable)",
    )
    out.add_argument(
        "--pricing", metavar="FILE", help="TOML/JSON prices (USD per 1M tokens) overriding the built-in table"
    )
    out.add_argument(
        "--output-dir",
        default=DEFAULT_OUTPUT_DIR,
        metavar="DIR",
        help=f"where raw/ and summary.md go (default {DEFAULT_OUTPUT_DIR})",
    )
    out.add_argument(
        "--otlp-endpoint",
        metavar="URL",
        help="also export metrics and spans over OTLP/HTTP (e.g. http://127.0.0.1:4318)",
    )
    out.add_argument("--no-progress", dest="progress", action="store_false", help="no progress display")
    p.set_defaults(func=run)


def _targets(args: argparse.Namespace) -> list[Target]:
    if not args.target:
        if args.base_url:
            raise UsageError("--base-url needs a --target to apply to")
        # The lean client has no Bedrock (SigV4) support: its defaults are the other three.
        return [t for t in default_mock_targets() if args.client == "sdk" or t.scheme != "bedrock"]
    targets = [parse_target(spec, os.environ, args.base_url) for spec in args.target]
    seen: set[tuple[str, str, str | None]] = set()
    for t in targets:
        key = (t.scheme, t.model, t.base_url)
        if key in seen:
            raise UsageError(f"--target {t.id} is given twice")
        seen.add(key)
    if args.parallel:
        # Loaded at once, two targets the metrics name alike would be summed into one.
        alike: dict[tuple[str, str, tuple[str | None, int | None]], Target] = {}
        for t in targets:
            other = alike.setdefault((t.provider, t.model, t.host_port), t)
            if other is not t:
                raise UsageError(
                    f"--parallel: --target {other.id} and --target {t.id} report the same provider, "
                    "model and endpoint, so their metrics cannot be told apart; run them one after another"
                )
    return targets


def _dataset(args: argparse.Namespace) -> Dataset:
    if args.shape:
        dataset_given = args.dataset != "chat"
        if dataset_given:
            raise UsageError("--shape and --dataset are alternatives; give one")
        return synthetic(*parse_shape(args.shape), seed=args.seed)
    return load_dataset(args.dataset)


def build_config(args: argparse.Namespace) -> tuple[ReplayConfig, list[SLO], PriceTable]:
    """Validate every option and build the run's configuration (UsageError on bad input)."""
    targets = _targets(args)
    _check_client(args, targets)
    from otelbench.replay.options import RESPONSES_SCHEMES, parse_params

    request, body = parse_params(args.param, {t.scheme for t in targets})
    _note_unsent(request, targets, args.api)
    if args.api == "responses" and not any(t.scheme in RESPONSES_SCHEMES for t in targets):
        names = ", ".join(f"{s}:" for s in sorted(RESPONSES_SCHEMES))
        raise UsageError(
            f"--api responses: no target with a Responses API ({names}; the others keep their own API)"
        )
    slos = [parse_slo(s) for s in args.slo]
    prices = load_prices(args.pricing) if args.pricing else PriceTable()
    dataset = _dataset(args)
    prompts = list(dataset.prompts)
    if args.max_tokens:
        prompts = with_max_tokens(prompts, args.max_tokens)
    _check_responses_limits(args, targets, prompts)
    mock_config = None
    if args.mock_config:
        if not any(t.is_mock for t in targets):
            raise UsageError("--mock-config given but no target uses the embedded mock (@mock)")
        from otelbench.mock.config import load_config

        mock_config = load_config(args.mock_config)
    if args.otlp_endpoint:
        from otelbench.replay.telemetry import check_otlp_endpoint

        check_otlp_endpoint(args.otlp_endpoint)  # fail now, not after the warm-up
    requests = args.requests
    if requests is None and args.duration is None:
        requests = DEFAULT_REQUESTS
    _check_workers(args.workers, args.concurrency, args.rate, requests)
    from otelbench.replay.adapters import ClientOptions
    from otelbench.replay.runner import LoadSpec, ReplayConfig

    config = ReplayConfig(
        targets=targets,
        prompts=prompts,
        dataset=dataset.name,
        load=LoadSpec(
            limits=Limits(requests=requests, duration=args.duration),
            concurrency=args.concurrency,
            rate=args.rate,
            arrival=args.arrival,
            warmup=args.warmup,
        ),
        client=ClientOptions(
            stream=args.stream,
            max_retries=2 if args.max_retries is None else args.max_retries,
            timeout=args.timeout,
            kind=args.client,
            request=request,
            body=body,
            api=args.api,
        ),
        nonce=args.nonce,
        parallel=args.parallel,
        drain_timeout=args.drain_timeout,
        seed=args.seed,
        mock_config=mock_config,
        otlp_endpoint=args.otlp_endpoint,
        workers=args.workers,
    )
    return config, slos, prices


def _note_unsent(request: dict[str, int | float], targets: list[Target], api: str) -> None:
    # An option some targets' API has no parameter for is not sent to them: say so, once.
    from otelbench.replay.options import accepted_options

    for key in request:
        skipped = [t.id for t in targets if key not in accepted_options(t.scheme, api)]
        if skipped:
            print(
                f"otelbench: note: --param {key} is not sent to {', '.join(skipped)} (no such request parameter)",
                file=sys.stderr,
            )


def _check_responses_limits(args: argparse.Namespace, targets: list[Target], prompts: list[Prompt]) -> None:
    # The Responses API refuses a max_output_tokens below its minimum: say so before sending.
    from otelbench.replay.adapters import RESPONSES_MIN_OUTPUT_TOKENS
    from otelbench.replay.options import RESPONSES_SCHEMES

    if args.api != "responses" or not any(t.scheme in RESPONSES_SCHEMES for t in targets):
        return
    small = [
        p.max_tokens
        for p in prompts
        if p.max_tokens is not None and p.max_tokens < RESPONSES_MIN_OUTPUT_TOKENS
    ]
    if small:
        raise UsageError(
            f"--api responses: the Responses API takes max_output_tokens of {RESPONSES_MIN_OUTPUT_TOKENS} or more, "
            f"but {len(small)} prompts ask for fewer (the smallest {min(small)}); "
            f"set --max-tokens {RESPONSES_MIN_OUTPUT_TOKENS} or more"
        )


def _check_client(args: argparse.Namespace, targets: list[Target]) -> None:
    if args.client != "http":
        return
    from otelbench.replay.adapters import LEAN_SCHEMES

    if args.max_retries:
        raise UsageError(f"--max-retries {args.max_retries}: --client http does not retry (use --client sdk)")
    for target in targets:
        if target.scheme not in LEAN_SCHEMES:
            raise UsageError(
                f"--target {target.id}: --client http speaks every scheme but bedrock "
                "(SigV4-signed; use --client sdk)"
            )
    # The SDKs go through HTTP(S)_PROXY; the lean client connects directly: say so, once.
    import urllib.request

    proxies = urllib.request.getproxies()
    for target in targets:
        if target.is_mock:
            continue
        scheme = "https" if target.endpoint.startswith("https://") else "http"
        host = target.host_port[0] or ""
        if proxies.get(scheme) and not urllib.request.proxy_bypass(host):
            print(
                f"otelbench: warning: --client http ignores {scheme.upper()}_PROXY; {target.id} is "
                "reached directly",
                file=sys.stderr,
            )
            break


def _check_workers(workers: int, concurrency: int, rate: float | None, requests: int | None) -> None:
    if workers == 1:
        return
    from otelbench.replay.workers import MAX_WORKERS  # imports the runner: only when needed

    if workers > MAX_WORKERS:
        raise UsageError(f"--workers {workers} is more than {MAX_WORKERS}")
    if workers > 1 and rate is None and concurrency < workers:
        raise UsageError(
            f"--workers {workers} needs --concurrency >= {workers} (each worker keeps requests in flight)"
        )
    if workers > 1 and requests is not None and requests < workers:
        raise UsageError(f"--requests {requests} is fewer than --workers {workers}")


def _progress(enabled: bool) -> Progress:
    from otelbench.replay.progress import BarProgress, LineProgress, NullProgress

    if not enabled:
        return NullProgress()
    return BarProgress() if sys.stderr.isatty() else LineProgress()


def run(args: argparse.Namespace) -> int:
    """Run the replay, print the comparison, write the result files; return the exit code."""
    if args.sweep or (args.runs or 1) > 1:
        return run_sweep(args)
    config, slos, prices = build_config(args)
    from otelbench.replay.report import build_report, compare, print_terminal, render_terminal, write_outputs
    from otelbench.replay.runner import run_replay

    progress = _progress(args.progress)
    if any(t.is_mock for t in config.targets):
        progress.message("replaying against the embedded mock (no real provider is contacted)")
    outcome = run_replay(config, progress)
    runs = [r for r in outcome.runs if not r.skipped]
    if not runs:
        progress.message("interrupted before any measurement; nothing written")
        return EXIT_INTERRUPTED
    reports = [build_report(r, slos, prices, seed=config.seed) for r in runs]
    pairs = compare(reports)
    print_terminal(render_terminal(outcome, reports, pairs))
    for rep in reports:
        for note in rep.warnings(config.load.rate, config.client.kind):
            progress.message(f"warning: {rep.id}: {note}")
    raw_path, summary_path, log_path = write_outputs(outcome, reports, pairs, args.output_dir)
    print(f"\nresults: {raw_path}\nsummary: {summary_path}\nrequests: {log_path}")
    if outcome.interrupted:
        skipped = [r.target.id for r in outcome.runs if r.skipped]
        note = f"; not started: {', '.join(skipped)}" if skipped else ""
        progress.message(f"interrupted: partial results written{note}")
        return EXIT_INTERRUPTED
    dead = [rep for rep in reports if rep.raw_requests and not any(r.ok for r in rep.run.measured)]
    if dead:
        rep = dead[0]
        kinds = ", ".join(f"{k}: {v}" for k, v in sorted(rep.raw_errors.items()))
        raise ProviderError(f"{rep.id}: all {rep.raw_requests} requests failed ({kinds})")
    return 0


def run_sweep(args: argparse.Namespace) -> int:
    """Replay every configuration of the ``--sweep`` axes ``--runs`` times; print and write the sweep."""
    from otelbench.sweep import check_applicable, parse_axes, parse_configuration

    axes = parse_axes(args.sweep)
    keys = {a.key for a in axes}
    if "concurrency" in keys and args.rate is not None:
        raise UsageError("--sweep concurrency has no effect in an open loop (--rate); sweep rate instead")
    baseline = parse_configuration(args.sweep_baseline, axes) if args.sweep_baseline else None
    if args.slo:
        raise UsageError("--slo is not evaluated in a sweep; run the chosen configuration without --sweep")
    config, _slos, _prices = build_config(args)
    both = sorted(keys & set(config.client.request))
    if both:
        raise UsageError(f"--param {both[0]} is also swept; give its values in --sweep only")
    notes = check_applicable(axes, (t.scheme for t in config.targets))
    runs = args.runs or (3 if axes else 1)
    from otelbench.replay.progress import NullProgress
    from otelbench.replay.report import print_terminal
    from otelbench.sweep import render_terminal, run_sweep, write_sweep

    # Sweep-level lines only; each run gets its own progress display (closed when the run ends).
    say = NullProgress()
    if any(t.is_mock for t in config.targets):
        say.message("replaying against the embedded mock (no real provider is contacted)")
    for note in notes:
        say.message(f"note: {note}")
    result = run_sweep(
        config,
        axes,
        runs,
        metric=args.sweep_metric,
        baseline=baseline,
        progress=lambda: _progress(args.progress),
        message=say.message,
    )
    result.notes = notes
    if not any(cell.runs for cell in result.cells.values()):
        say.message("interrupted before any measurement; nothing written")
        return EXIT_INTERRUPTED
    print_terminal(render_terminal(result))
    csv_path, md_path = write_sweep(result, args.output_dir)
    print(f"\nsweep: {csv_path}\nsummary: {md_path}")
    return EXIT_INTERRUPTED if result.partial else 0
