"""`otelbench report`: bad input, and a real report rendered in headless Chromium.

The inputs are real: two default replays (results + request logs + history) and a sweep, all
against the embedded mock through the four SDKs. Chromium (Debian's package; `.ci/backends.sh`
installs it and exports OTELBENCH_CHROMIUM) loads the file, the page's script counts the drawn
series of every chart into the DOM, and `--dump-dom` returns it. Locally a missing Chromium
skips the test; in CI (`CI=true`) it fails.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from otelbench.cli import main
from otelbench.datasets import builtin
from otelbench.targets import BenchmarkResult, write_results
from tests.bench.test_cli import run_main

EXPECTED_CHARTS = {"ttft-cdf", "duration-cdf", "matrix-ttft", "matrix-duration", "throughput", "history"}


def chromium() -> str:
    """Path of a Chromium binary; skip (locally) or fail (CI) when there is none."""
    found = os.environ.get("OTELBENCH_CHROMIUM") or next(
        (p for name in ("chromium", "chromium-browser", "google-chrome") if (p := shutil.which(name))), None
    )
    if found and Path(found).exists():
        return found
    message = "chromium not installed; run `bash .ci/backends.sh` (or apt-get install chromium)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


# --- bad input --------------------------------------------------------------------------------
@pytest.fixture
def result_file(tmp_path: Path) -> Path:
    """A valid results file without a request log (from the real writer)."""
    result = BenchmarkResult("example", {"ops_per_s": 12.5}, "2026-01-01T00:00:00+00:00")
    raw, _ = write_results([result], tmp_path / "out")
    return raw


BAD_HISTORY = "timestamp,target_id,metric,value\nyesterday,t,m,1\n"


@pytest.mark.parametrize(
    ("case", "named"),
    [
        ("missing results", "missing.json"),
        ("broken json", "x.json"),
        ("not results", "no 'results' list"),
        ("history without columns", "'timestamp'"),
        ("history with a bad row", "h.csv:2"),
        ("missing sweep", "nope.csv"),
        ("sweep without columns", "'configuration'"),
        ("unwritable output", "cannot write"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, result_file: Path, case: str, named: str
) -> None:
    r, d = str(result_file), tmp_path
    output = ["-o", str(d / "r.html")]
    args = {
        "missing results": [str(d / "missing.json")],
        "broken json": [str(_write(d / "x.json", "{"))],
        "not results": [str(_write(d / "y.json", '{"a": 1}'))],
        "history without columns": [r, "--history", str(_write(d / "h1.csv", "a,b\n1,2\n"))],
        "history with a bad row": [r, "--history", str(_write(d / "h.csv", BAD_HISTORY))],
        "missing sweep": [r, "--sweep", str(d / "nope.csv")],
        "sweep without columns": [r, "--sweep", str(_write(d / "s.csv", "target,metric\n"))],
        # The output's parent directory is a file.
        "unwritable output": [r, "-o", f"{r}/r.html"],
    }[case]
    code, out, err = run_main(capsys, "report", *args, *([] if "-o" in args else output))
    assert code == 2, (args, out, err)
    assert named in err and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert not (tmp_path / "r.html").exists()


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_results_without_a_request_log_still_render(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, result_file: Path
) -> None:
    out = tmp_path / "r.html"
    code, _, err = run_main(capsys, "report", str(result_file), "-o", str(out))
    assert code == 0, err
    html = out.read_text()
    assert "example" in html and "ops_per_s" in html
    assert "No request log found" in html and "No sweep given" in html
    assert 'data-chart="' not in html


# --- a real report in Chromium ----------------------------------------------------------------
@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[Path], Path, Path]]:
    """Two small default replays and a concurrency sweep, written by the real CLI."""
    out = tmp_path_factory.mktemp("report") / "out"
    common = [
        "--requests",
        "8",
        "--concurrency",
        "2",
        "--warmup",
        "1",
        "--no-progress",
        "--output-dir",
        str(out),
    ]
    for _ in range(2):
        assert main(["replay", *common]) == 0
    sweep = ["--target", "openai:mock-fast@mock", "--sweep", "concurrency=1,2", "--runs", "2"]
    assert (
        main(
            ["replay", *sweep, "--requests", "4", "--warmup", "0", "--no-progress", "--output-dir", str(out)]
        )
        == 0
    )
    results = sorted((out / "raw").glob("benchmarks-*.json"))
    (sweep_csv,) = (out / "raw").glob("sweep-*.csv")
    assert len(results) == 2
    yield results, out / "history.csv", sweep_csv


@pytest.mark.slow
def test_report_renders_every_chart_in_chromium(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, inputs: tuple[list[Path], Path, Path]
) -> None:
    browser = chromium()
    results, history, sweep = inputs
    report = tmp_path / "report.html"
    code, out, err = run_main(
        capsys,
        "report",
        *map(str, results),
        "--history",
        str(history),
        "--sweep",
        str(sweep),
        "-o",
        str(report),
    )
    assert code == 0, err
    assert str(report) in out
    html = report.read_text()
    # Self-contained: nothing is fetched; no prompt text in the page.
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", html)
    assert "url(" not in html and "@import" not in html
    assert builtin("chat")[0].messages[-1]["content"] not in html
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]

    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    dom = subprocess.run(
        [browser, *flags, "--virtual-time-budget=5000", "--dump-dom", report.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    figures = {
        m["chart"]: (int(m["series"]), int(m["drawn"]))
        for m in re.finditer(
            r'<figure class="chart" data-chart="(?P<chart>[^"]+)" data-series="(?P<series>\d+)" '
            r'data-drawn="(?P<drawn>\d+)"',
            dom,
        )
    }
    # Every chart is there and each of its series has a non-empty box once laid out.
    assert set(figures) == EXPECTED_CHARTS, figures
    assert re.search(r'<body[^>]*data-charts="6"', dom)
    for chart, (series, drawn) in figures.items():
        assert series > 0 and drawn == series, (chart, series, drawn)
    assert figures["ttft-cdf"][0] == 8  # four targets in each of the two result files
    assert figures["matrix-ttft"][0] == 8 * 7  # every ordered pair
    assert figures["history"][0] == 4  # the four replay targets, over the two runs
    assert figures["throughput"][0] == 1  # one target, concurrency on the x axis

    shot = tmp_path / "shot.png"
    subprocess.run(
        [browser, *flags, "--window-size=1400,2600", f"--screenshot={shot}", report.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1400, 2600)
    assert len(data) > 50_000  # charts and tables, not a blank page
