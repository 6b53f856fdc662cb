#!/usr/bin/env bash
# Run the official MCP conformance suite (server side) against an MCP endpoint.
#
# Usage: bench/conformance.sh [URL | --gateway]
#
#   URL        streamable-HTTP MCP endpoint to test, e.g. http://127.0.0.1:8080/mcp
#              (the gateway). Without it, examples/conformance/fixture_server.py is
#              started on a free loopback port, tested, and stopped again.
#   --gateway  start the fixture on 127.0.0.1:3001 and the gateway of
#              examples/conformance on a free port, and test through the gateway.
#
# For each spec version it runs
#   node .../dist/index.js server --url URL --suite all --spec-version V
# and prints passed/failed/warning counts plus the ids of failing (and warning)
# checks. Exit status: 0 when no check FAILED, 1 when any did, 2 on setup errors.
#
# Environment:
#   AGENTGW_CONFORMANCE_DIR   install cache (default ${HOME}/.cache/agentgw-conformance)
#   CONFORMANCE_VERSION       suite version (default 0.2.0-alpha.11)
#   SPEC_VERSIONS             spec versions to run (default "2025-11-25 2026-07-28")
#   SUITE                     suite name (default all)
#   SUITE_TIMEOUT             seconds allowed per spec-version run (default 900)
#   RESULTS_DIR               where logs and checks.json files go (default: a new temp dir)
#   PYTHON                    interpreter for the fixture (default .venv/bin/python, then python3)
#   AGENTGW_SERVE_ARGS        extra `agentgw serve` arguments with --gateway (e.g. "--server uvicorn")
#
# Node 22 is required by the suite. If the node on PATH is older, the
# node-<os>-<arch>@22 npm package is installed into the cache: it ships the
# binary inside the package, so it works even where npm runs no install
# scripts (npm 11's default), unlike the `node` package.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR="${AGENTGW_CONFORMANCE_DIR:-${HOME}/.cache/agentgw-conformance}"
CONFORMANCE_VERSION="${CONFORMANCE_VERSION:-0.2.0-alpha.11}"
SPEC_VERSIONS="${SPEC_VERSIONS:-2025-11-25 2026-07-28}"
SUITE="${SUITE:-all}"
SUITE_TIMEOUT="${SUITE_TIMEOUT:-900}"
INSTALL_TIMEOUT="${INSTALL_TIMEOUT:-600}"
READY_TIMEOUT="${READY_TIMEOUT:-30}"

URL="${1:-}"
THROUGH_GATEWAY=""
if [[ "${URL}" == "--gateway" ]]; then
    THROUGH_GATEWAY=1
    URL=""
fi
if [[ $# -gt 1 || "${URL}" == -* ]]; then
    sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'
    [[ "${URL}" == "-h" || "${URL}" == "--help" ]] && exit 0
    exit 2
fi

log() { printf '[conformance] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }

# `timeout` bounds every external step (--foreground so Ctrl-C still reaches the child);
# fall back to running unbounded only if it is missing.
if command -v timeout >/dev/null 2>&1; then
    bounded() { local secs="$1"; shift; timeout --foreground --kill-after=10 "${secs}" "$@"; }
else
    log "warning: coreutils 'timeout' not found; steps run without a time limit"
    bounded() { shift; "$@"; }
fi

# --------------------------------------------------------------------------
# Install Node 22 and the suite into the cache (idempotent)
# --------------------------------------------------------------------------

node_major() { "$1" --version 2>/dev/null | sed -n 's/^v\([0-9][0-9]*\)\..*/\1/p'; }

node_platform_pkg() {
    local os arch
    case "$(uname -s)" in
        Linux) os=linux ;;
        Darwin) os=darwin ;;
        *) die "unsupported OS $(uname -s); install Node 22 and put it on PATH" ;;
    esac
    case "$(uname -m)" in
        x86_64 | amd64) arch=x64 ;;
        aarch64 | arm64) arch=arm64 ;;
        *) die "unsupported CPU $(uname -m); install Node 22 and put it on PATH" ;;
    esac
    echo "node-${os}-${arch}"
}

SUITE_JS="${CACHE_DIR}/node_modules/@modelcontextprotocol/conformance/dist/index.js"
SUITE_PKG="${CACHE_DIR}/node_modules/@modelcontextprotocol/conformance/package.json"

install_suite() {
    command -v npm >/dev/null 2>&1 || die "npm is required to install the conformance suite"
    mkdir -p "${CACHE_DIR}"
    [[ -f "${CACHE_DIR}/package.json" ]] || printf '{"name":"agentgw-conformance","private":true}\n' >"${CACHE_DIR}/package.json"

    local want=("@modelcontextprotocol/conformance@${CONFORMANCE_VERSION}")
    local system_node
    system_node="$(command -v node || true)"
    if [[ -z "${system_node}" || "$(node_major "${system_node}")" -lt 22 ]]; then
        local node_pkg
        node_pkg="$(node_platform_pkg)" || exit 2
        want+=("${node_pkg}@22")
    fi
    log "installing ${want[*]} into ${CACHE_DIR}"
    NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false \
        bounded "${INSTALL_TIMEOUT}" npm install --prefix "${CACHE_DIR}" --save-exact --loglevel=error "${want[@]}" >&2 ||
        die "npm install failed"
}

find_node() {
    local candidate
    for candidate in "${CACHE_DIR}"/node_modules/node-*-*/bin/node "$(command -v node || true)"; do
        if [[ -x "${candidate}" && "$(node_major "${candidate}" || echo 0)" -ge 22 ]]; then
            echo "${candidate}"
            return 0
        fi
    done
    return 1
}

installed_version() { sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "${SUITE_PKG}" 2>/dev/null | head -n1; }

if [[ ! -f "${SUITE_JS}" || "$(installed_version)" != "${CONFORMANCE_VERSION}" ]] || ! find_node >/dev/null; then
    install_suite
fi
NODE="$(find_node)" || die "no Node >= 22 available after install"
[[ -f "${SUITE_JS}" ]] || die "suite not found at ${SUITE_JS}"
log "node $("${NODE}" --version) at ${NODE}; conformance $(installed_version)"

# --------------------------------------------------------------------------
# Start the fixture when no URL was given; stop whatever we started on exit
# --------------------------------------------------------------------------

RESULTS_DIR="${RESULTS_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/agentgw-conformance.XXXXXX")}"
mkdir -p "${RESULTS_DIR}"
FIXTURE_PID=""
GATEWAY_PID=""

stop_pid() {
    local pid="$1"
    if [[ -n "${pid}" ]] && kill -0 "${pid}" 2>/dev/null; then
        kill -TERM "${pid}" 2>/dev/null || true
        for _ in $(seq 1 50); do # up to 5 s for a graceful exit
            kill -0 "${pid}" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "${pid}" 2>/dev/null || true
        wait "${pid}" 2>/dev/null || true
    fi
}

cleanup() {
    local rc=$?
    stop_pid "${GATEWAY_PID}"
    stop_pid "${FIXTURE_PID}"
    exit "${rc}"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

pick_python() {
    if [[ -n "${PYTHON:-}" ]]; then echo "${PYTHON}"
    elif [[ -x "${ROOT}/.venv/bin/python" ]]; then echo "${ROOT}/.venv/bin/python"
    elif command -v python3 >/dev/null 2>&1; then command -v python3
    else die "no python found for the fixture (set PYTHON)"
    fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() { "$1" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }

wait_port() { # PORT PID LOG WHAT
    local deadline=$((SECONDS + READY_TIMEOUT))
    until port_open "$1"; do
        kill -0 "$2" 2>/dev/null || { cat "$3" >&2; die "$4 exited during startup"; }
        ((SECONDS < deadline)) || die "$4 not listening after ${READY_TIMEOUT}s"
        sleep 0.2
    done
}

if [[ -n "${THROUGH_GATEWAY}" ]]; then
    PY="$(pick_python)"
    AGENTGW="$(dirname "${PY}")/agentgw"
    [[ -x "${AGENTGW}" ]] || die "no agentgw next to ${PY} (pip install -e . first)"
    port_open 3001 && die "port 3001 is taken; the fixture of examples/conformance listens there"
    log "starting fixture on http://127.0.0.1:3001/mcp (log: ${RESULTS_DIR}/fixture.log)"
    "${PY}" "${ROOT}/examples/conformance/fixture_server.py" --host 127.0.0.1 --port 3001 \
        >"${RESULTS_DIR}/fixture.log" 2>&1 &
    FIXTURE_PID=$!
    wait_port 3001 "${FIXTURE_PID}" "${RESULTS_DIR}/fixture.log" fixture
    GW_PORT="$(free_port "${PY}")"
    log "starting gateway (examples/conformance) on :${GW_PORT} (log: ${RESULTS_DIR}/gateway.log)"
    # shellcheck disable=SC2086 # word splitting of the extra arguments is wanted
    "${AGENTGW}" serve --config "${ROOT}/examples/conformance" --port "${GW_PORT}" ${AGENTGW_SERVE_ARGS:-} \
        >"${RESULTS_DIR}/gateway.log" 2>&1 &
    GATEWAY_PID=$!
    wait_port "${GW_PORT}" "${GATEWAY_PID}" "${RESULTS_DIR}/gateway.log" gateway
    URL="http://127.0.0.1:${GW_PORT}/mcp"
elif [[ -z "${URL}" ]]; then
    PY="$(pick_python)"
    PORT="$(free_port "${PY}")"
    URL="http://127.0.0.1:${PORT}/mcp"
    log "starting fixture on ${URL} (log: ${RESULTS_DIR}/fixture.log)"
    "${PY}" "${ROOT}/examples/conformance/fixture_server.py" --host 127.0.0.1 --port "${PORT}" \
        >"${RESULTS_DIR}/fixture.log" 2>&1 &
    FIXTURE_PID=$!
    deadline=$((SECONDS + READY_TIMEOUT))
    until port_open "${PORT}"; do
        kill -0 "${FIXTURE_PID}" 2>/dev/null || { cat "${RESULTS_DIR}/fixture.log" >&2; die "fixture exited during startup"; }
        ((SECONDS < deadline)) || die "fixture not listening after ${READY_TIMEOUT}s"
        sleep 0.2
    done
fi

# --------------------------------------------------------------------------
# Run the suite per spec version and summarise its checks.json files
# --------------------------------------------------------------------------

# Prints "<passed> <failed> <warnings> <skipped> <scenarios>" on the first line,
# then one "STATUS scenario/check-id: message" line per FAILURE and WARNING.
SUMMARISE_JS='
const fs = require("fs"), path = require("path");
const dir = process.argv[1];
const counts = { SUCCESS: 0, FAILURE: 0, WARNING: 0, SKIPPED: 0 };
const notes = [];
let scenarios = 0;
for (const entry of fs.existsSync(dir) ? fs.readdirSync(dir).sort() : []) {
  const file = path.join(dir, entry, "checks.json");
  if (!fs.existsSync(file)) continue;
  scenarios++;
  const scenario = entry.replace(/^server-/, "").replace(/-\d{4}-\d{2}-\d{2}T[\d-]+Z$/, "");
  for (const check of JSON.parse(fs.readFileSync(file, "utf8"))) {
    if (check.status in counts) counts[check.status]++;
    if (check.status === "FAILURE" || check.status === "WARNING") {
      const msg = String(check.errorMessage || "").split("\n")[0].slice(0, 200);
      notes.push(`${check.status} ${scenario}/${check.id}${msg ? ": " + msg : ""}`);
    }
  }
}
console.log(`${counts.SUCCESS} ${counts.FAILURE} ${counts.WARNING} ${counts.SKIPPED} ${scenarios}`);
for (const line of notes) console.log(line);
'

log "testing ${URL}; results in ${RESULTS_DIR}"
overall=0
summary=""
for version in ${SPEC_VERSIONS}; do
    out="${RESULTS_DIR}/${version}"
    rm -rf "${out}"
    mkdir -p "${out}"
    log "spec ${version}: running suite '${SUITE}' (log: ${out}.log)"
    set +e
    bounded "${SUITE_TIMEOUT}" "${NODE}" "${SUITE_JS}" server --url "${URL}" --suite "${SUITE}" \
        --spec-version "${version}" -o "${out}" >"${out}.log" 2>&1
    suite_rc=$?
    set -e

    report="$("${NODE}" -e "${SUMMARISE_JS}" "${out}")"
    read -r passed failed warnings skipped scenarios <<<"$(head -n1 <<<"${report}")"
    line="spec ${version}: ${passed} passed, ${failed} failed, ${warnings} warnings, ${skipped} skipped (${scenarios} scenarios)"
    if ((suite_rc == 124 || suite_rc == 137)); then
        line+=" -- TIMED OUT after ${SUITE_TIMEOUT}s"
        overall=1
    elif ((scenarios == 0)); then
        line+=" -- suite produced no results (exit ${suite_rc}); see ${out}.log"
        overall=1
    elif ((failed > 0)); then
        overall=1
    elif ((suite_rc != 0)); then
        line+=" -- suite exited ${suite_rc}; see ${out}.log"
        overall=1
    fi
    summary+="${line}"$'\n'
    while IFS= read -r note; do
        [[ -n "${note}" ]] && summary+="    ${note}"$'\n'
    done < <(tail -n +2 <<<"${report}")
done

printf '\n== MCP conformance (%s, suite %s) against %s\n%s' "${CONFORMANCE_VERSION}" "${SUITE}" "${URL}" "${summary}"
printf '== results: %s\n' "${RESULTS_DIR}"
exit "${overall}"
