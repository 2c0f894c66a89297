"""TOML configuration and the `otelbench mock` command."""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from otelbench.cli import mock as mock_cli
from otelbench.errors import ConfigError
from otelbench.mock import Dist, ModelProfile
from otelbench.mock.config import load_config

GOOD = """
host = "127.0.0.1"
port = 0
seed = 3
workers = 2
ground_truth = "truth.jsonl"
request_timeout = 2.5

[default]
ttft_ms = 20
itl_ms = { normal = [2.0, 0.5] }
output_tokens = { lognormal = { median = 64, sigma = 0.5 } }
ttft_per_input_token_ms = 0.01

[models."llama3*"]
ttft_ms = { empirical = [10, 30] }

[faults]
"429:0.5" = 0.01
"disconnect:5" = 0.002
"malformed:1" = 0.003
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mock.toml"
    path.write_text(text)
    return path


def test_load_config(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert (config.host, config.port, config.seed, config.ground_truth_path) == (
        "127.0.0.1",
        0,
        3,
        "truth.jsonl",
    )
    default = config.default_profile
    assert default.ttft == Dist.fixed(0.02)
    assert default.itl.kind == "normal" and default.itl.params == pytest.approx((0.002, 0.0005))
    assert default.output_tokens.kind == "lognormal" and default.output_tokens.mean > 64
    assert default.ttft_per_input_token == pytest.approx(1e-5)
    llama = config.profile_for("llama3.2:1b")
    assert (
        llama.ttft.params == pytest.approx((0.01, 0.03)) and llama.itl == default.itl
    )  # inherits the default
    assert config.fault_rates == {"429:0.5": 0.01, "disconnect:5": 0.002, "malformed:1": 0.003}
    assert config.workers == 2
    assert config.request_timeout == 2.5


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("seed = 'x'", "seed"),
        ("request_timeout = 0", "request_timeout"),
        ("request_timeout = 'soon'", "request_timeout"),
        ("port = 70000", "port"),
        ("workers = 0", "workers"),
        ("workers = 'two'", "workers"),
        ('[faults]\n"malformed:x" = 0.1', 'faults."malformed:x"'),
        ("colour = 1", "colour"),
        ("[default]\nttft_ms = { gauss = 1 }", "default.ttft_ms"),
        ("[default]\nitl_ms = { normal = [1] }", "default.itl_ms"),
        ("[default]\nitl_ms = -1", "default.itl_ms"),
        ("[default]\nspeed = 1", "speed"),
        ('[models."m"]\noutput_tokens = { empirical = ["a"] }', 'models."m".output_tokens'),
        ('[faults]\n"boom" = 0.1', 'faults."boom"'),
        ('[faults]\n"429" = 2', 'faults."429"'),
        ('[faults]\n"429" = 0.7\n"503" = 0.7', "faults"),
        ("seed = ", "invalid TOML"),
    ],
)
def test_bad_config_names_the_field(tmp_path: Path, text: str, field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.").replace("[", r"\[")):
        load_config(write(tmp_path, text))


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    mock_cli.register(parser.add_subparsers())
    return parser.parse_args(["mock", *argv])


def test_flags_override_the_file(tmp_path: Path) -> None:
    args = parse(
        "--config", str(write(tmp_path, GOOD)), "--seed", "9", "--ttft-ms", "5", "--output-tokens", "4"
    )
    config = mock_cli.build_config(args)
    assert config.seed == 9 and config.port == 0
    assert config.default_profile.ttft == Dist.fixed(0.005)
    assert config.default_profile.output_tokens == Dist.fixed(4)
    assert config.default_profile.itl.kind == "normal"  # untouched by flags
    assert mock_cli.build_config(parse()).default_profile == ModelProfile()
    assert args.func is mock_cli.run


@pytest.mark.parametrize(
    "argv", [("--ttft-ms", "-1"), ("--output-tokens", "0"), ("--port", "-2"), ("--workers", "0")]
)
def test_bad_flags(argv: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError):
        mock_cli.build_config(parse(*argv))


@pytest.mark.parametrize("workers", [1, 2])
def test_cli_serves_until_interrupted(tmp_path: Path, workers: int) -> None:
    truth = tmp_path / "truth.jsonl"
    code = "import sys; from otelbench.cli import main; sys.exit(main(sys.argv[1:]))"
    argv = ["mock", "--port", "0", "--ttft-ms", "1", "--output-tokens", "3", "--ground-truth", str(truth)]
    argv += ["--workers", str(workers)]
    with subprocess.Popen([sys.executable, "-c", code, *argv], stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        try:
            first = proc.stdout.readline()
            assert ("2 worker processes" in first) == (workers == 2), first
            url = first.split()[4]
            banner = "".join(proc.stdout.readline() for _ in range(7))
            for _ in range(3):
                request = urllib.request.Request(
                    url + "/api/generate",
                    data=json.dumps({"model": "m", "prompt": "hi", "stream": False}).encode(),
                )
                with urllib.request.urlopen(request, timeout=5) as response:
                    assert len(json.load(response)["response"].split()) == 3
        finally:
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, out
    # The banner names where each SDK points.
    assert (
        f"  Mistral:   base_url={url}/mistral/v1\n" in banner
        and f"  DeepSeek:  base_url={url}/deepseek\n" in banner
    )
    rows = [json.loads(line) for line in truth.read_text().splitlines()]
    assert len(rows) == 3 and all(r["path"] == "/api/generate" and r["output_tokens"] == 3 for r in rows)
    assert {r["worker"] for r in rows} <= set(range(workers))


def test_cli_bad_config_exits_2(tmp_path: Path) -> None:
    code = "import sys; from otelbench.cli import main; sys.exit(main(sys.argv[1:]))"
    path = write(tmp_path, "[default]\nttft_ms = 'soon'")
    result = subprocess.run(
        [sys.executable, "-c", code, "mock", "--config", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 2 and "default.ttft_ms" in result.stderr
