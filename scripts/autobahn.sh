#!/usr/bin/env bash
# Autobahn|TestSuite conformance gate for the rfc6455 echo server.
#
# Usage (from anywhere):
#   scripts/autobahn.sh
#
# Environment:
#   AUTOBAHN_PORT=9001        port the echo server listens on (default 9001). When it differs
#                             from the port in autobahn/fuzzingclient.json, a temporary copy of
#                             the spec with the new URL is used.
#   AUTOBAHN_DOCS=FILE        where the summary goes (default docs/conformance.md; empty: none).
#                             It is written on every run and holds nothing that changes from
#                             run to run, so CI can fail when the committed file differs.
#   AUTOBAHN_TIMEOUT=1800     hard limit in seconds for the wstest run (default 1800).
#   AUTOBAHN_THREADS=1        event loops of the echo server (`rfc6455 echo --threads N`;
#                             CI uses 2). The summary names the command.
#   AUTOBAHN_TLS=0            1: over TLS (wss://): the server built with the cargo feature
#                             tls and run with the test certificate of tests/data/tls (wstest
#                             does not check it). The gate is the same; the summary is written
#                             only when AUTOBAHN_DOCS names a file.
#
# What it does:
#   1. cargo build --release (in the project root, found relative to this script)
#   2. starts `target/release/rfc6455 echo --listen 127.0.0.1:$AUTOBAHN_PORT` in the background
#      (log: autobahn/reports/server.log), waits up to 10 s for the port to accept TCP
#   3. removes old reports, runs `wstest -m fuzzingclient -s autobahn/fuzzingclient.json`
#      (log: autobahn/reports/wstest.log)
#   4. runs scripts/autobahn_check.py over autobahn/reports/servers/index.json; the exit status
#      of this script is non-zero unless wstest finished and every one of the 517 cases passed
#      (sections 12 and 13, permessage-deflate, included).
#
# Paths: wstest resolves the spec's relative "outdir" (./reports/servers) against its current
# directory, so wstest is run from the project's autobahn/ directory and the reports land in
# autobahn/reports/servers/. The Docker image crossbario/autobahn-testsuite runs from "/", so
# mounting autobahn/reports at /reports puts its reports in the same place (see the message
# printed when wstest is missing).
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$script_dir/.." && pwd)
autobahn_dir="$root/autobahn"
reports_dir="$autobahn_dir/reports"
spec="$autobahn_dir/fuzzingclient.json"
index="$reports_dir/servers/index.json"
port="${AUTOBAHN_PORT:-9001}"
wstest_timeout="${AUTOBAHN_TIMEOUT:-1800}"
threads="${AUTOBAHN_THREADS:-1}"
tls="${AUTOBAHN_TLS:-0}"
run_start=$(date +%s)

log() { printf 'autobahn: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

elapsed() { echo $(( $(date +%s) - run_start )); }

server_pid=""
tmp_dir=""
cleanup() {
  local rc=$?
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  [ -n "$tmp_dir" ] && rm -rf "$tmp_dir"
  log "wall-clock duration of the whole run: $(elapsed) s (exit status $rc)"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

case "$port" in
  ''|*[!0-9]*) die "AUTOBAHN_PORT must be a number, got '$port'" ;;
esac
case "$threads" in
  ''|*[!0-9]*) die "AUTOBAHN_THREADS must be a number, got '$threads'" ;;
esac
server_args=(echo --listen "127.0.0.1:$port")
if [ "$threads" != 1 ]; then server_args+=(--threads "$threads"); fi
build_args=(--release)
scheme=ws
if [ "$tls" = 1 ]; then
  server_args+=(--tls-cert "$root/tests/data/tls/server.pem" --tls-key "$root/tests/data/tls/server.key")
  build_args+=(--features tls)
  scheme=wss
fi

# --- wstest must be available ------------------------------------------------------------
if ! (command -v wstest >/dev/null 2>&1 && wstest --autobahnversion >/dev/null 2>&1); then
  cat >&2 <<EOF
autobahn: error: 'wstest' (Autobahn|TestSuite) is not on PATH (or does not run).

Install the autobahntestsuite package into a Python 2.7 environment (wstest does not run
on Python 3; its dependencies may need pinning to their last Python 2.7 releases):
    python2.7 -m pip install autobahntestsuite
or run the tester from Docker instead, from the project root, while the echo server
(target/release/rfc6455 echo --listen 127.0.0.1:9001) is running:
    docker run -it --rm --network host \\
        -v "\$PWD/autobahn:/config" -v "\$PWD/autobahn/reports:/reports" \\
        crossbario/autobahn-testsuite \\
        wstest -m fuzzingclient -s /config/fuzzingclient.json
(the container works in "/", so the spec's outdir ./reports/servers is the mounted
autobahn/reports/servers) and then check the results with:
    python3 scripts/autobahn_check.py autobahn/reports/servers/index.json
EOF
  exit 1
fi
command -v python3 >/dev/null 2>&1 || die "python3 is needed for scripts/autobahn_check.py"
command -v timeout >/dev/null 2>&1 || die "'timeout' (coreutils) is needed"

# --- build -------------------------------------------------------------------------------
log "building release binary (cargo build ${build_args[*]} in $root)"
build_start=$(date +%s)
(cd "$root" && cargo build "${build_args[@]}")
build_s=$(( $(date +%s) - build_start ))
target_dir="${CARGO_TARGET_DIR:-$root/target}"
case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
server_bin="$target_dir/release/rfc6455"
[ -x "$server_bin" ] || die "$server_bin was not built (is there a binary target named rfc6455?)"

# --- spec (temporary copy when the port is overridden) ------------------------------------
run_spec="$spec"
if [ "$port" != "9001" ] || [ "$tls" = 1 ]; then
  tmp_dir=$(mktemp -d)
  run_spec="$tmp_dir/fuzzingclient.json"
  python3 - "$spec" "$run_spec" "$port" "$scheme" <<'EOF'
import json, sys
src, dst, port, scheme = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
with open(src) as f:
    spec = json.load(f)
for server in spec["servers"]:
    server["url"] = "%s://127.0.0.1:%s" % (scheme, port)
with open(dst, "w") as f:
    json.dump(spec, f, indent=4)
EOF
  log "using $scheme://127.0.0.1:$port (temporary spec $run_spec)"
fi

# --- fresh reports (this side's only: the client's, in reports/clients, stay) --------------
rm -rf "$reports_dir/servers" "$reports_dir/server.log" "$reports_dir/wstest.log" \
  "$reports_dir/timing.txt"
mkdir -p "$reports_dir"

# --- start the server ----------------------------------------------------------------------
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if port_open "$port"; then
  die "something is already listening on 127.0.0.1:$port; stop it or set AUTOBAHN_PORT"
fi

log "starting $server_bin ${server_args[*]} (log: $reports_dir/server.log)"
"$server_bin" "${server_args[@]}" >"$reports_dir/server.log" 2>&1 &
server_pid=$!

ready=0
for _ in $(seq 1 100); do   # 100 x 0.1 s = 10 s
  if ! kill -0 "$server_pid" 2>/dev/null; then
    tail -n 20 "$reports_dir/server.log" >&2 || true
    die "the server exited before accepting connections (see $reports_dir/server.log)"
  fi
  if port_open "$port"; then ready=1; break; fi
  sleep 0.1
done
[ "$ready" = 1 ] || die "the server did not accept TCP connections on 127.0.0.1:$port within 10 s"
log "server is up (pid $server_pid)"

# --- run wstest ----------------------------------------------------------------------------
log "running wstest -m fuzzingclient -s $run_spec (limit ${wstest_timeout} s, log: $reports_dir/wstest.log)"
wstest_start=$(date +%s)
set +e
(cd "$autobahn_dir" && timeout "$wstest_timeout" wstest -m fuzzingclient -s "$run_spec") \
  2>&1 | tee "$reports_dir/wstest.log"
wstest_rc=${PIPESTATUS[0]}
set -e
wstest_s=$(( $(date +%s) - wstest_start ))

if [ "$wstest_rc" = 124 ]; then
  log "error: wstest did not finish within ${wstest_timeout} s (a case probably hangs; see the last lines of $reports_dir/wstest.log)"
elif [ "$wstest_rc" != 0 ]; then
  log "error: wstest exited with status $wstest_rc"
fi
if ! kill -0 "$server_pid" 2>/dev/null; then
  log "error: the server is no longer running (crashed during the run? see $reports_dir/server.log)"
  if [ "$wstest_rc" = 0 ]; then wstest_rc=1; fi
fi

{
  echo "build_seconds=$build_s"
  echo "wstest_seconds=$wstest_s"
  echo "total_seconds_until_check=$(elapsed)"
} >"$reports_dir/timing.txt"
log "build: ${build_s} s, wstest: ${wstest_s} s (recorded in $reports_dir/timing.txt)"

# --- check the results ---------------------------------------------------------------------
check_args=("$index")
if [ "$tls" = 1 ]; then docs="${AUTOBAHN_DOCS:-}"; else docs="${AUTOBAHN_DOCS-$root/docs/conformance.md}"; fi
if [ -n "$docs" ]; then
  tester=$(wstest --autobahnversion 2>/dev/null | sed '/^[[:space:]]*$/d' | paste -sd, - | sed 's/,/, /g')
  check_args+=(--side server --markdown "$docs" --tester "$tester")
  if [ "$threads" != 1 ]; then check_args+=(--command "rfc6455 echo --threads $threads"); fi
fi
set +e
python3 "$script_dir/autobahn_check.py" "${check_args[@]}"
check_rc=$?
set -e

if [ "$wstest_rc" != 0 ] || [ "$check_rc" != 0 ]; then
  log "FAIL: Autobahn conformance gate not met (wstest status $wstest_rc, checker status $check_rc)"
  exit 1
fi
log "PASS: Autobahn conformance gate met"
