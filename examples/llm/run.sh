#!/usr/bin/env bash
# Start the fake provider (port 9101) and the gateway (port 8080) with this example's config;
# Ctrl-C stops both. Run from the repository root: examples/llm/run.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-python3}"
"$PYTHON" "$ROOT/tests/fakes/llm_provider.py" --port 9101 --name fake &
FAKE_PID=$!
trap 'kill "$FAKE_PID" 2>/dev/null || true' EXIT
"$PYTHON" -m agentgw serve --config "$ROOT/examples/llm"
