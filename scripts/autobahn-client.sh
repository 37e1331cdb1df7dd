#!/usr/bin/env bash
# Autobahn|TestSuite conformance gate for the rfc6455 client (the client role of the core).
#
# Usage (from anywhere):
#   scripts/autobahn-client.sh
#
# Environment:
#   AUTOBAHN_CLIENT_PORT=9001  port wstest's fuzzingserver listens on (default 9001). When it
#                              differs from the URL in autobahn/fuzzingserver.json, a temporary
#                              copy of the spec with the new URL is used.
#   AUTOBAHN_DOCS=FILE         where the summary goes (default docs/conformance.md, whose client
#                              part is rewritten; empty: none).
#   AUTOBAHN_TIMEOUT=1800      hard limit in seconds for the client's run (default 1800).
#
# What it does:
#   1. cargo build --release --example autobahn_client
#   2. starts `wstest -m fuzzingserver -s autobahn/fuzzingserver.json --webport 0` from
#      autobahn/ (log: autobahn/reports/wstest-fuzzingserver.log), waits up to 30 s for its port
#   3. runs `autobahn_client --url ws://127.0.0.1:$PORT --agent rfc6455`: every case, echoing,
#      then /updateReports (log: autobahn/reports/client.log)
#   4. runs scripts/autobahn_check.py --side client over autobahn/reports/clients/index.json;
#      the exit status is non-zero unless all 517 cases are OK or INFORMATIONAL in both
#      behavior and behaviorClose.
#
# wstest comes from PATH. Without it, the Docker image works the same way (see the message
# printed when wstest is missing).
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$script_dir/.." && pwd)
autobahn_dir="$root/autobahn"
reports_dir="$autobahn_dir/reports"
spec="$autobahn_dir/fuzzingserver.json"
index="$reports_dir/clients/index.json"
port="${AUTOBAHN_CLIENT_PORT:-9001}"
client_timeout="${AUTOBAHN_TIMEOUT:-1800}"
run_start=$(date +%s)

log() { printf 'autobahn-client: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

wstest_pid=""
tmp_dir=""
cleanup() {
  local rc=$?
  if [ -n "$wstest_pid" ] && kill -0 "$wstest_pid" 2>/dev/null; then
    kill "$wstest_pid" 2>/dev/null || true
    wait "$wstest_pid" 2>/dev/null || true
  fi
  [ -n "$tmp_dir" ] && rm -rf "$tmp_dir"
  log "wall-clock duration of the whole run: $(( $(date +%s) - run_start )) s (exit status $rc)"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

case "$port" in
  ''|*[!0-9]*) die "AUTOBAHN_CLIENT_PORT must be a number, got '$port'" ;;
esac

if ! (command -v wstest >/dev/null 2>&1 && wstest --autobahnversion >/dev/null 2>&1); then
  cat >&2 <<EOF
autobahn-client: error: 'wstest' (Autobahn|TestSuite) is not on PATH (or does not run).

Install autobahntestsuite into a Python 2.7 environment (python2.7 -m pip install
autobahntestsuite), or run the tester from Docker, from the project root:
    docker run -it --rm --network host \\
        -v "\$PWD/autobahn:/config" -v "\$PWD/autobahn/reports:/reports" \\
        crossbario/autobahn-testsuite \\
        wstest -m fuzzingserver -s /config/fuzzingserver.json --webport 0
then, in another shell:
    cargo run --release --example autobahn_client -- --url ws://127.0.0.1:9001 --agent rfc6455
    python3 scripts/autobahn_check.py --side client autobahn/reports/clients/index.json
EOF
  exit 1
fi
command -v python3 >/dev/null 2>&1 || die "python3 is needed for scripts/autobahn_check.py"
command -v timeout >/dev/null 2>&1 || die "'timeout' (coreutils) is needed"

log "building the client (cargo build --release --example autobahn_client in $root)"
(cd "$root" && cargo build --release --example autobahn_client)
target_dir="${CARGO_TARGET_DIR:-$root/target}"
case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
client_bin="$target_dir/release/examples/autobahn_client"
[ -x "$client_bin" ] || die "$client_bin was not built"

run_spec="$spec"
if [ "$port" != "9001" ]; then
  tmp_dir=$(mktemp -d)
  run_spec="$tmp_dir/fuzzingserver.json"
  python3 - "$spec" "$run_spec" "$port" <<'EOF'
import json, sys
src, dst, port = sys.argv[1], sys.argv[2], sys.argv[3]
with open(src) as f:
    spec = json.load(f)
spec["url"] = "ws://127.0.0.1:%s" % port
with open(dst, "w") as f:
    json.dump(spec, f, indent=4)
EOF
  log "using port $port (temporary spec $run_spec)"
fi

# Fresh reports for this side only (the server's, in reports/servers, stay).
rm -rf "$reports_dir/clients" "$reports_dir/wstest-fuzzingserver.log" "$reports_dir/client.log"
mkdir -p "$reports_dir"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if port_open "$port"; then
  die "something is already listening on 127.0.0.1:$port; stop it or set AUTOBAHN_CLIENT_PORT"
fi

log "starting wstest -m fuzzingserver -s $run_spec --webport 0 (log: $reports_dir/wstest-fuzzingserver.log)"
(cd "$autobahn_dir" && exec wstest -m fuzzingserver -s "$run_spec" --webport 0) \
  >"$reports_dir/wstest-fuzzingserver.log" 2>&1 &
wstest_pid=$!
ready=0
for _ in $(seq 1 300); do   # 300 x 0.1 s = 30 s
  kill -0 "$wstest_pid" 2>/dev/null || {
    tail -n 20 "$reports_dir/wstest-fuzzingserver.log" >&2 || true
    die "wstest exited before listening"
  }
  if port_open "$port"; then ready=1; break; fi
  sleep 0.1
done
[ "$ready" = 1 ] || die "wstest did not listen on 127.0.0.1:$port within 30 s"

log "running $client_bin --url ws://127.0.0.1:$port --agent rfc6455 (limit ${client_timeout} s, log: $reports_dir/client.log)"
client_start=$(date +%s)
set +e
timeout "$client_timeout" "$client_bin" --url "ws://127.0.0.1:$port" --agent rfc6455 \
  >"$reports_dir/client.log" 2>&1
client_rc=$?
set -e
log "client: $(( $(date +%s) - client_start )) s, exit status $client_rc"
if [ "$client_rc" = 124 ]; then
  log "error: the client did not finish within ${client_timeout} s (see the last lines of $reports_dir/client.log)"
elif [ "$client_rc" != 0 ]; then
  tail -n 20 "$reports_dir/client.log" >&2 || true
  log "error: the client exited with status $client_rc"
fi

check_args=(--side client "$index")
docs="${AUTOBAHN_DOCS-$root/docs/conformance.md}"
if [ -n "$docs" ]; then
  tester=$(wstest --autobahnversion 2>/dev/null | sed '/^[[:space:]]*$/d' | paste -sd, - | sed 's/,/, /g')
  check_args+=(--markdown "$docs" --tester "$tester")
fi
set +e
python3 "$script_dir/autobahn_check.py" "${check_args[@]}"
check_rc=$?
set -e

if [ "$client_rc" != 0 ] || [ "$check_rc" != 0 ]; then
  log "FAIL: Autobahn client conformance gate not met (client status $client_rc, checker status $check_rc)"
  exit 1
fi
log "PASS: Autobahn client conformance gate met"
