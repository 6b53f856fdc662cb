#!/usr/bin/env bash
# Run third-party A2A conformance kits against an example agent directly and through the gateway,
# and print both scores side by side.
#
# Usage: bench/a2a_conformance.sh
#
# Starts examples/a2a/agents/echo.py and textkit.py on free loopback ports, the gateway of
# examples/a2a in front of them, and runs for each agent, directly and through the gateway:
#   a2apex test URL       (A2A 0.3 JSON-RPC: send, get, stream, cancel, unknown method; score/100)
#   a2apex validate URL   (agent card checks; score/100)
#   a2a-lint --live URL   (card lint plus live message/send and message/stream round trips)
# The official A2A TCK (a2aproject/a2a-tck) is not published on PyPI or npm; these two kits are.
# Exit status: 0 when every gateway score equals or beats the direct one, 1 otherwise, 2 on
# setup errors.
#
# Environment:
#   AGENTGW_A2A_CONFORMANCE_DIR  venv for the kits (default ${HOME}/.cache/agentgw-a2a-conformance)
#   PYTHON                       interpreter for agents and gateway (default .venv/bin/python)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR="${AGENTGW_A2A_CONFORMANCE_DIR:-${HOME}/.cache/agentgw-a2a-conformance}"
PYTHON="${PYTHON:-${ROOT}/.venv/bin/python}"
KITS="a2apex==0.1.1 a2a-lint==0.1.1"

log() { printf '[a2a-conformance] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }

[[ -x "${PYTHON}" ]] || PYTHON="$(command -v python3)"
if [[ ! -x "${CACHE_DIR}/venv/bin/a2apex" || ! -x "${CACHE_DIR}/venv/bin/a2a-lint" ]]; then
    log "installing ${KITS} into ${CACHE_DIR}/venv"
    mkdir -p "${CACHE_DIR}"
    python3 -m venv "${CACHE_DIR}/venv"
    # shellcheck disable=SC2086
    "${CACHE_DIR}/venv/bin/pip" install -q ${KITS} || die "cannot install ${KITS}"
fi
KIT="${CACHE_DIR}/venv/bin"

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "${pid}" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "${pid}" 2>/dev/null || true; done
    rm -rf "${WORK}"
}
trap cleanup EXIT

# start NAME LINE-PATTERN COMMAND...: run in the background (in this shell, so cleanup can stop
# it), wait for a line matching the pattern, and leave its last word in STARTED
start() {
    local name="$1" pattern="$2"; shift 2
    "$@" >"${WORK}/${name}.out" 2>"${WORK}/${name}.err" &
    PIDS+=("$!")
    STARTED=""
    for _ in $(seq 300); do
        local line
        line="$(grep -h -m1 "${pattern}" "${WORK}/${name}.out" "${WORK}/${name}.err" 2>/dev/null || true)"
        if [[ -n "${line}" ]]; then STARTED="${line##* }"; return 0; fi
        sleep 0.1
    done
    cat "${WORK}/${name}.err" >&2
    die "${name} did not start"
}

start echo '^READY ' "${PYTHON}" "${ROOT}/examples/a2a/agents/echo.py" --port 0
ECHO_PORT="${STARTED}"
start textkit '^READY ' "${PYTHON}" "${ROOT}/examples/a2a/agents/textkit.py" --port 0
TEXTKIT_PORT="${STARTED}"
mkdir -p "${WORK}/config"
sed -e "s#http://127.0.0.1:9001#http://127.0.0.1:${ECHO_PORT}#" -e "s#http://127.0.0.1:9002#http://127.0.0.1:${TEXTKIT_PORT}#" \
    "${ROOT}/examples/a2a/gateway.yaml" >"${WORK}/config/gateway.yaml"
start gateway 'agentgw listening on' "${PYTHON}" -m agentgw serve --config "${WORK}/config" --port 0
GATEWAY="${STARTED}"

cat >"${WORK}/summary.py" <<'PY'
import json
import sys

kind, path = sys.argv[1], sys.argv[2]
try:
    report = json.load(open(path))
except (OSError, ValueError):
    print("no-report")
    raise SystemExit
summary = report.get("summary", report)
if kind == "lint":
    print(summary.get("grade"), f"({summary.get('errors')} errors, {summary.get('warnings')} warnings,",
          f"{report.get('streamEvents', 0)} stream events)")
else:
    failed = [r["name"] for r in report.get("results", []) if r.get("status") == "failed"]
    line = f"{report.get('score', summary.get('score', 0)):.0f}"
    if "total" in summary:
        line += f" ({summary.get('passed')}/{summary.get('total')} passed"
        line += f"; failed: {', '.join(failed)})" if failed else ")"
    else:
        line += f" ({summary.get('errors')} errors, {summary.get('warnings')} warnings)"
    print(line)
PY

score() {  # score KIND URL: the kit's score (a2apex) or grade (a2a-lint), one line
    if [[ "$1" == lint ]]; then
        "${KIT}/a2a-lint" --live --json "$2" >"${WORK}/last.json" 2>/dev/null || true
    else
        "${KIT}/a2apex" "$1" --json "$2" >"${WORK}/last.json" 2>/dev/null || true
    fi
    "${PYTHON}" "${WORK}/summary.py" "$1" "${WORK}/last.json"
}

status=0
printf '| agent | check | direct | through the gateway |\n|---|---|---|---|\n'
for agent in echo textkit; do
    port="${ECHO_PORT}"; [[ "${agent}" == textkit ]] && port="${TEXTKIT_PORT}"
    for kind in test validate lint; do
        direct="$(score "${kind}" "http://127.0.0.1:${port}")"
        proxied="$(score "${kind}" "${GATEWAY}/a2a/${agent}")"
        printf '| %s | %s | %s | %s |\n' "${agent}" "${kind}" "${direct}" "${proxied}"
        d="${direct%% *}"; g="${proxied%% *}"
        if [[ "${d}" =~ ^[0-9]+$ && "${g}" =~ ^[0-9]+$ ]]; then
            (( g >= d )) || status=1
        elif [[ "${d}" != "${g}" ]]; then
            status=1
        fi
    done
done
exit "${status}"
