#!/usr/bin/env bash
# Installs the real backends the end-to-end tests run against, caching builds outside the repo:
#   - OpenTelemetry Collector, built by ocb from collector-config/builder-config.yaml
#   - Jaeger v2 (all-in-one), `go install`ed at a pinned release commit
#   - Prometheus, from Debian's package
#   - Chromium, from Debian's package (headless, for the HTML report test)
# Prints `export ...` lines for the tests (OTELBENCH_OTELCOL, OTELBENCH_JAEGER, OTELBENCH_PROMETHEUS,
# OTELBENCH_CHROMIUM).
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${OTELBENCH_CACHE:-$HOME/.cache/otelbench}"
BUILDER_VERSION=v0.155.0
# Jaeger: the module proxy here serves the v1.x tags only (its v2.x tags are not valid Go
# module versions, and it answers no pseudo-version for a release commit). Since v1.62 each
# v1.x tag is cut from the same commit as a v2.x release and its cmd/jaeger is the v2 binary.
# `go install pkg@version` refuses the module's replace directives, so it is built in place.
JAEGER_VERSION=v1.76.0
mkdir -p "$CACHE/bin"

log() { echo "backends: $*" >&2; }

# --- Collector ------------------------------------------------------------------------------
manifest=collector-config/builder-config.yaml
key=$( (cat "$manifest"; echo "$BUILDER_VERSION"; go version) | sha256sum | cut -c1-16)
otelcol="$CACHE/otelcol-$key/otelcol-otelbench"
if [[ ! -x "$otelcol" ]]; then
    if [[ ! -x "$CACHE/bin/builder-$BUILDER_VERSION" ]]; then
        log "installing ocb $BUILDER_VERSION"
        GOBIN="$CACHE/gobin-tmp" go install "go.opentelemetry.io/collector/cmd/builder@$BUILDER_VERSION"
        mv "$CACHE/gobin-tmp/builder" "$CACHE/bin/builder-$BUILDER_VERSION"
    fi
    log "building the Collector (first time only; several minutes)"
    work="$CACHE/otelcol-$key.work"
    rm -rf "$work" && mkdir -p "$work"
    sed "s|output_path: .*|output_path: $work|" "$manifest" > "$work.yaml"
    "$CACHE/bin/builder-$BUILDER_VERSION" --config "$work.yaml" >&2
    mkdir -p "$(dirname "$otelcol")"
    mv "$work/otelcol-otelbench" "$otelcol"
    rm -rf "$work" "$work.yaml"
fi

# --- Jaeger -----------------------------------------------------------------------------------
jaeger="$CACHE/bin/jaeger-$JAEGER_VERSION"
if [[ ! -x "$jaeger" ]]; then
    log "building Jaeger $JAEGER_VERSION (first time only; several minutes)"
    src=$(go mod download -json "github.com/jaegertracing/jaeger@$JAEGER_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
    work="$CACHE/jaeger-$JAEGER_VERSION.work"
    rm -rf "$work" && cp -r "$src" "$work" && chmod -R u+w "$work"
    (cd "$work" && go build -o "$jaeger.tmp" ./cmd/jaeger) >&2
    mv "$jaeger.tmp" "$jaeger"
    rm -rf "$work"
fi

# --- Prometheus -------------------------------------------------------------------------------
prometheus=$(command -v prometheus || true)
if [[ -z "$prometheus" ]]; then
    log "installing Prometheus from Debian"
    sudo_=""
    [[ $(id -u) -ne 0 ]] && sudo_=sudo
    $sudo_ apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends prometheus >&2
    # Debian's package starts a system service; the tests run their own instances.
    ($sudo_ systemctl stop prometheus || $sudo_ service prometheus stop || true) >/dev/null 2>&1
    prometheus=$(command -v prometheus)
fi

# --- Chromium (renders the HTML report in tests/bench/test_report.py) -----------------------
chromium=$(command -v chromium || command -v chromium-browser || true)
if [[ -z "$chromium" ]]; then
    log "installing Chromium from Debian"
    sudo_=""
    [[ $(id -u) -ne 0 ]] && sudo_=sudo
    $sudo_ apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends chromium >&2
    chromium=$(command -v chromium)
fi

# --- valgrind (callgrind counts instructions in the overhead-instructions target) --------------
if ! command -v valgrind >/dev/null || ! command -v callgrind_annotate >/dev/null; then
    log "installing valgrind from Debian"
    sudo_=""
    [[ $(id -u) -ne 0 ]] && sudo_=sudo
    $sudo_ apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends valgrind >&2
fi

echo "export OTELBENCH_OTELCOL=$otelcol"
echo "export OTELBENCH_JAEGER=$jaeger"
echo "export OTELBENCH_PROMETHEUS=$prometheus"
echo "export OTELBENCH_CHROMIUM=$chromium"
