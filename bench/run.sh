#!/usr/bin/env bash
# The rfc6455 benchmark: every scenario against every server that supports it, interleaved,
# ROUNDS rounds, each result one JSON line; then bench/report.py writes docs/benchmarks.md.
#
#   bench/run.sh                                   # the full benchmark (pinned, 3 rounds)
#   ROUNDS=1 DURATION=1 SCENARIOS=1,2 bench/run.sh # a smoke run
#
# Environment (defaults in brackets):
#   ROUNDS [3]            rounds; within a round every server runs each scenario in turn
#   DURATION [5]          seconds per measurement
#   WARMUP [1]            seconds of load before measuring (echo and broadcast)
#   PIN [1]               1: server and load generator both on CPU $PIN_CPU (taskset);
#                         0: unpinned; both: the whole run pinned, then unpinned
#   PIN_CPU [0]           the CPU for PIN=1
#   SCENARIOS [1,2,3,4,5,6,7]   which scenarios (3 = 3a and 3b; 3a/3b alone also work;
#                         all = 1-10). 1-7 without compression; 8-10 with permessage-deflate
#                         (RFC 7692), run against rfc6455 (deflate is its default), uws-shared,
#                         uws-dedicated and ws-deflate only (and rfc6455-baseline):
#                           8  echo, 100 connections x 1 KiB compressible text, 32 in flight
#                           9  broadcast of 1 KiB text to 1,000 deflate receivers: the highest
#                              rate with p99 <= BCAST_P99_MS and nothing lost (scenario 4's
#                              search, from BCAST_DEFLATE_START)
#                           10 idle: IDLE_CONNS connections that negotiated deflate, bytes each
#   SERVERS [all]         comma-separated subset of: rfc6455 tungstenite tokio-tungstenite
#                         fastwebsockets tokio-websockets uws ws raw (scenarios 1-7), and
#                         uws-shared (uWS.SHARED_COMPRESSOR), uws-dedicated
#                         (uWS.DEDICATED_COMPRESSOR), ws-deflate (ws, perMessageDeflate with
#                         threshold 128) (scenarios 8-10); rfc6455-2loops (`--threads 2`, two
#                         event loops, the acceptor hands connections out) and
#                         rfc6455-2loops-reuseport (`--balance reuseport`) run only when named,
#                         best with PIN=0; rfc6455-tls (`--tls-cert`, a build with the cargo
#                         feature tls) and uws-tls (uWS.SSLApp) run scenarios 1, 2 and 4 over
#                         wss:// with the test certificate of tests/data/tls, only when named
#   RESULTS [target/bench/results-DATE.jsonl]   where the JSON lines go (appended)
#   BUILD [1]             0: skip the builds
#   REPORT [1]            0: do not run bench/report.py at the end
#   REPORT_MD [docs/benchmarks.md]  REPORT_SVG [docs/benchmarks.svg]
#   BCAST_START [100] BCAST_MAX_STEPS [12] BCAST_REFINE [3] BCAST_P99_MS [50]
#                         the broadcast rate search: doubling from BCAST_START msgs/s until a
#                         step fails (p99 > BCAST_P99_MS or anything lost), then BCAST_REFINE
#                         bisection steps; at most BCAST_MAX_STEPS steps per server and round
#   BCAST_DEFLATE_START [10]  the same search for scenario 9 starts here: the compressing
#                         peers fail below scenario 4's start
#   IDLE_CONNS [10000] IDLE_SETTLE [2]   the idle scenario
#   CONNECT_WORKERS [32]  concurrent connect/upgrade/close loops
#   DEFLATE_LEVEL [1]     zlib level the load generator compresses its own messages with
#                         (scenario 8, and the broadcast's sender in 9): the cheapest, since
#                         its CPU is taken from the server's when both are pinned
#   AUTOBAHN_TIMEOUT [1200]  seconds allowed for one wstest run of cases 9.*
#   RFC_BASELINE [unset]  another rfc6455 binary (an earlier build, say), run as the server
#                         "rfc6455-baseline" beside the current one: a before/after comparison
#                         measured in one run
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
PIN=${PIN:-1}
PIN_CPU=${PIN_CPU:-0}
SCENARIOS=${SCENARIOS:-1,2,3,4,5,6,7}
SERVERS=${SERVERS:-all}
STAMP=$(date +%Y%m%d-%H%M%S)
RESULTS=${RESULTS:-$ROOT/target/bench/results-$STAMP.jsonl}
BUILD=${BUILD:-1}
REPORT=${REPORT:-1}
REPORT_MD=${REPORT_MD:-$ROOT/docs/benchmarks.md}
REPORT_SVG=${REPORT_SVG:-$ROOT/docs/benchmarks.svg}
BCAST_START=${BCAST_START:-100}
BCAST_MAX_STEPS=${BCAST_MAX_STEPS:-12}
BCAST_REFINE=${BCAST_REFINE:-3}
BCAST_P99_MS=${BCAST_P99_MS:-50}
BCAST_DEFLATE_START=${BCAST_DEFLATE_START:-10}
IDLE_CONNS=${IDLE_CONNS:-10000}
IDLE_SETTLE=${IDLE_SETTLE:-2}
CONNECT_WORKERS=${CONNECT_WORKERS:-32}
DEFLATE_LEVEL=${DEFLATE_LEVEL:-1}
AUTOBAHN_TIMEOUT=${AUTOBAHN_TIMEOUT:-1200}

RFC="$ROOT/target/release/rfc6455"
LOADGEN="$ROOT/bench/loadgen/target/release/loadgen"
PEERS="$ROOT/bench/peers/target/release"
NODE_DIR="$ROOT/bench/node"
LOGDIR="$ROOT/target/bench/logs-$STAMP"
ALL_SERVERS="rfc6455 tungstenite tokio-tungstenite fastwebsockets tokio-websockets uws ws raw uws-shared uws-dedicated ws-deflate"
RFC_BASELINE=${RFC_BASELINE:-}
RFC_TLS="$ROOT/target/tls/release/rfc6455"
TLS_FILES="--tls-cert $ROOT/tests/data/tls/server.pem --tls-key $ROOT/tests/data/tls/server.key"
[[ -n $RFC_BASELINE ]] && ALL_SERVERS="rfc6455 rfc6455-baseline ${ALL_SERVERS#rfc6455 }"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

case $PIN in 0 | 1) PIN_MODES=$PIN ;; both) PIN_MODES="1 0" ;; *) die "PIN must be 0, 1 or both" ;; esac
[[ $ROUNDS =~ ^[0-9]+$ && $ROUNDS -ge 1 ]] || die "ROUNDS must be a positive integer"

mkdir -p "$(dirname "$RESULTS")" "$LOGDIR"
# Ten thousand idle connections need as many descriptors in the server (children inherit).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ---------------------------------------------------------------------------------------------
# Build

if [[ $BUILD == 1 ]]; then
    log "building rfc6455, the load generator and the peers"
    cargo build --release --quiet || die "cargo build (rfc6455) failed"
    if [[ ",$SERVERS," == *",rfc6455-tls,"* ]]; then
        # Its own target directory: the plain figures come from a build without TLS.
        CARGO_TARGET_DIR="$ROOT/target/tls" cargo build --release --quiet --features tls || die "cargo build --features tls failed"
    fi
    cargo build --release --quiet --manifest-path bench/loadgen/Cargo.toml || die "cargo build (loadgen) failed"
    if [[ -f bench/peers/Cargo.toml ]]; then
        cargo build --release --quiet --manifest-path bench/peers/Cargo.toml || log "warning: the Rust peers did not build; those servers are skipped"
    fi
    if [[ -f $NODE_DIR/package.json ]] && command -v npm >/dev/null; then
        if [[ ! -d $NODE_DIR/node_modules ]]; then
            (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error) || log "warning: npm ci failed; the node servers are skipped"
        fi
    fi
fi
[[ -x $LOADGEN ]] || die "no load generator at $LOADGEN (run with BUILD=1)"
[[ -x $RFC ]] || die "no rfc6455 binary at $RFC"

# ---------------------------------------------------------------------------------------------
# Servers

# server_cmd NAME KIND ADDR: the command line, or status 1 when NAME does not do KIND.
server_cmd() {
    local name=$1 kind=$2 addr=$3
    case $name/$kind in
        rfc6455/echo) echo "$RFC echo --listen $addr --max-connections 100000 --max-connections-per-ip 100000" ;;
        rfc6455/broadcast) echo "$RFC chat --listen $addr --heartbeat 0 --history 0 --rate-limit 0 --max-connections-per-ip 100000 --max-outbox 67108864" ;;
        rfc6455-2loops/echo) echo "$RFC echo --threads 2 --listen $addr --max-connections 100000 --max-connections-per-ip 100000" ;;
        rfc6455-2loops/broadcast) echo "$RFC chat --threads 2 --listen $addr --heartbeat 0 --history 0 --rate-limit 0 --max-connections-per-ip 100000 --max-outbox 67108864" ;;
        rfc6455-2loops-reuseport/echo) echo "$RFC echo --threads 2 --balance reuseport --listen $addr --max-connections 100000 --max-connections-per-ip 100000" ;;
        rfc6455-2loops-reuseport/broadcast) echo "$RFC chat --threads 2 --balance reuseport --listen $addr --heartbeat 0 --history 0 --rate-limit 0 --max-connections-per-ip 100000 --max-outbox 67108864" ;;
        rfc6455-tls/echo) echo "$RFC_TLS echo --listen $addr --max-connections 100000 --max-connections-per-ip 100000 $TLS_FILES" ;;
        rfc6455-tls/broadcast) echo "$RFC_TLS chat --listen $addr --heartbeat 0 --history 0 --rate-limit 0 --max-connections-per-ip 100000 --max-outbox 67108864 $TLS_FILES" ;;
        uws-tls/echo | uws-tls/broadcast) echo "node $NODE_DIR/uws-server.mjs $kind --listen $addr $TLS_FILES" ;;
        rfc6455-baseline/echo) echo "$RFC_BASELINE echo --listen $addr --max-connections 100000 --max-connections-per-ip 100000" ;;
        rfc6455-baseline/broadcast) echo "$RFC_BASELINE chat --listen $addr --heartbeat 0 --history 0 --rate-limit 0 --max-connections-per-ip 100000 --max-outbox 67108864" ;;
        tungstenite/echo | fastwebsockets/echo | tokio-websockets/echo) echo "$PEERS/peer-$name echo --listen $addr" ;;
        tokio-tungstenite/echo | tokio-tungstenite/broadcast) echo "$PEERS/peer-tokio-tungstenite $kind --listen $addr" ;;
        uws/echo | uws/broadcast) echo "node $NODE_DIR/uws-server.mjs $kind --listen $addr" ;;
        ws/echo | ws/broadcast) echo "node $NODE_DIR/ws-server.mjs $kind --listen $addr" ;;
        uws-shared/echo | uws-shared/broadcast) echo "node $NODE_DIR/uws-server.mjs $kind --listen $addr --compression shared" ;;
        uws-dedicated/echo | uws-dedicated/broadcast) echo "node $NODE_DIR/uws-server.mjs $kind --listen $addr --compression dedicated" ;;
        ws-deflate/echo | ws-deflate/broadcast) echo "node $NODE_DIR/ws-server.mjs $kind --listen $addr --deflate" ;;
        raw/echo) echo "$PEERS/peer-rawtcp echo --listen $addr" ;;
        *) return 1 ;;
    esac
}

# available NAME: is its program there?
available() {
    case $1 in
        rfc6455 | rfc6455-2loops | rfc6455-2loops-reuseport) [[ -x $RFC ]] ;;
        rfc6455-baseline) [[ -x $RFC_BASELINE ]] ;;
        rfc6455-tls) [[ -x $RFC_TLS ]] ;;
        uws-tls) available uws ;;
        raw) [[ -x $PEERS/peer-rawtcp ]] ;;
        uws | ws) command -v node >/dev/null && [[ -d $NODE_DIR/node_modules && -f $NODE_DIR/$1-server.mjs ]] ;;
        uws-shared | uws-dedicated) available uws ;;
        ws-deflate) available ws ;;
        *) [[ -x $PEERS/peer-$1 ]] ;;
    esac
}

# rfc6455 with two event loops runs only when named: SERVERS=rfc6455,rfc6455-2loops,... PIN=0
ALL_SERVERS="$ALL_SERVERS rfc6455-2loops rfc6455-2loops-reuseport rfc6455-tls uws-tls"
SELECTED=()
for s in $ALL_SERVERS; do
    if [[ $SERVERS == all && ($s == rfc6455-2loops* || $s == *-tls) ]]; then continue; fi
    if [[ $SERVERS != all && ",$SERVERS," != *",$s,"* ]]; then continue; fi
    if available "$s"; then SELECTED+=("$s"); else log "note: server $s is not built; skipped"; fi
done
((${#SELECTED[@]} > 0)) || die "no server to run"

# The peers configured for permessage-deflate run scenarios 8-10 only; those scenarios run
# against them and rfc6455 (whose default is deflate on) only.
deflate_variant() { case $1 in uws-shared | uws-dedicated | ws-deflate) return 0 ;; *) return 1 ;; esac; }
deflate_server() { [[ $1 == rfc6455 || $1 == rfc6455-baseline ]] || deflate_variant "$1"; }
deflate_scenario() { case $1 in 8 | 9 | 10) return 0 ;; *) return 1 ;; esac; }
DEFLATE_ARGS=(--deflate --deflate-level "$DEFLATE_LEVEL")

# url_args NAME: the load generator's --url (and --ca-file over TLS) for the server on $PORT.
url_args() {
    case $1 in
        *-tls) echo "--url wss://127.0.0.1:$PORT/ --ca-file $ROOT/tests/data/tls/ca.pem" ;;
        *) echo "--url ws://127.0.0.1:$PORT/" ;;
    esac
}
# The TLS servers run the echo and broadcast scenarios only.
tls_server() { [[ $1 == *-tls ]]; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

PINCMD=()
SPID=""
PORT=""
SLOG=""

# start_server NAME KIND: starts it on a free loopback port; sets SPID, PORT.
start_server() {
    local name=$1 kind=$2 cmd
    PORT=$(free_port)
    cmd=$(server_cmd "$name" "$kind" "127.0.0.1:$PORT") || return 1
    SLOG="$LOGDIR/$name-$kind-$PORT.log"
    # shellcheck disable=SC2086 # the command line is split on purpose
    "${PINCMD[@]}" $cmd >"$SLOG" 2>&1 &
    SPID=$!
    local i
    for ((i = 0; i < 300; i++)); do
        if ! kill -0 "$SPID" 2>/dev/null; then
            log "error: $name $kind exited at start (see $SLOG)"
            wait "$SPID" 2>/dev/null
            SPID=""
            return 1
        fi
        # Every server says "listening on" (ours: "listening on ws://" or "open http://").
        if grep -qE 'listening on|open http' "$SLOG" 2>/dev/null; then return 0; fi
        # A server that prints nothing: the port accepting is enough after a second.
        if ((i > 20)) && (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    log "error: $name $kind did not start listening (see $SLOG)"
    stop_server
    return 1
}

stop_server() {
    [[ -n $SPID ]] || return 0
    kill -TERM "$SPID" 2>/dev/null
    local i
    for ((i = 0; i < 50; i++)); do
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$SPID" 2>/dev/null
    wait "$SPID" 2>/dev/null
    SPID=""
}

# ---------------------------------------------------------------------------------------------
# Results

# emit KIND SCENARIO SERVER ROUND PINNED OUTFILE ERRFILE STATUS [EXTRA_JSON]: appends one line.
emit() {
    python3 - "$@" >>"$RESULTS" <<'PY'
import json, sys, time
kind, scenario, server, rnd, pinned, out, err, status = sys.argv[1:9]
extra = json.loads(sys.argv[9]) if len(sys.argv) > 9 and sys.argv[9] else {}
line = {"kind": kind, "scenario": scenario, "server": server, "round": int(rnd),
        "pinned": pinned == "1", "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
result = None
try:
    text = open(out).read().strip().splitlines()
    if text:
        result = json.loads(text[-1])
except Exception:
    result = None
line["result"] = result
if result is None or status != "0":
    try:
        tail = [l for l in open(err).read().splitlines() if l.strip()][-3:]
    except Exception:
        tail = []
    line["error"] = "status %s: %s" % (status, " | ".join(tail)[-500:])
line.update(extra)
print(json.dumps(line, separators=(",", ":")))
PY
}

# json_get FILE EXPR: evaluates a Python expression over the result object `r`.
json_get() {
    python3 -c 'import json,sys; r=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]); print(eval(sys.argv[2]))' "$1" "$2" 2>/dev/null
}

# run_loadgen TIMEOUT OUT ERR ARGS...: the load generator, pinned like the server.
run_loadgen() {
    local t=$1 out=$2 err=$3
    shift 3
    timeout -k 5 "$t" "${PINCMD[@]}" "$LOADGEN" "$@" >"$out" 2>"$err"
}

TMP=$(mktemp -d)
trap 'stop_server; rm -rf "$TMP"; exit 130' INT TERM
trap 'stop_server; rm -rf "$TMP"' EXIT

# ---------------------------------------------------------------------------------------------
# Scenarios

scenario_label() {
    case $1 in
        1) echo "echo 100 conns x 20 B, window 1" ;;
        2) echo "echo 100 conns x 64 B, window 32" ;;
        3a) echo "echo 200 conns x 16 KiB, window 1" ;;
        3b) echo "echo 10 conns x 1 MiB, window 1" ;;
        4) echo "broadcast 1000 receivers x 64 B, max rate with p99 <= ${BCAST_P99_MS} ms, none lost" ;;
        5) echo "idle: $IDLE_CONNS connections, bytes per connection" ;;
        6) echo "connect + upgrade + close, $CONNECT_WORKERS workers" ;;
        7) echo "Autobahn 9.x total duration" ;;
        8) echo "echo 100 conns x 1 KiB text, window 32, permessage-deflate" ;;
        9) echo "broadcast 1000 deflate receivers x 1 KiB text, max rate with p99 <= ${BCAST_P99_MS} ms, none lost" ;;
        10) echo "idle with permessage-deflate: $IDLE_CONNS connections, bytes per connection" ;;
    esac
}

# echo_run SCENARIO SERVER ROUND PINNED CONNS SIZE WINDOW [LOADGEN ARGS...]
echo_run() {
    local sc=$1 name=$2 rnd=$3 pinned=$4 conns=$5 size=$6 window=$7
    shift 7
    local out="$TMP/out" err="$TMP/err" status
    : >"$out"
    : >"$err"
    if ! start_server "$name" echo; then
        emit result "$sc" "$name" "$rnd" "$pinned" "$out" "$err" start-failed
        return
    fi
    run_loadgen $((40 + DURATION + WARMUP)) "$out" "$err" echo $(url_args "$name") \
        --conns "$conns" --size "$size" --window "$window" --duration "$DURATION" --warmup "$WARMUP" --pid "$SPID" "$@"
    status=$?
    stop_server
    emit result "$sc" "$name" "$rnd" "$pinned" "$out" "$err" "$status"
    log "  $sc $name: $(json_get "$out" '"%.0f msgs/s, %.1f MB/s, p99 %.0f us, errors %d, loadgen cpu %.2f, server cpu %s%s" % (r["msgs_per_s"], r["mb_per_s"], r["p99_us"], r["errors"], r["loadgen_cpu"], r["server_cpu"], ", wire/payload %.3f from the server, %d compressed" % (r["rx_ratio"], r["rx_compressed_messages"]) if r.get("deflate") else "")' || echo "failed (status $status)")"
}

# broadcast_step SCENARIO SERVER ROUND PINNED RATE SIZE [LOADGEN ARGS...]: one step of the
# search; sets STEP_PASS (1: pass) and, on a pass, copies the result to $TMP/bpass.
STEP_PASS=0
broadcast_step() {
    local sc=$1 name=$2 rnd=$3 pinned=$4 rate=$5 size=$6
    shift 6
    local out="$TMP/bout" err="$TMP/berr" status pass=0
    : >"$out"
    : >"$err"
    STEP_PASS=0
    if ! start_server "$name" broadcast; then
        emit step "$sc" "$name" "$rnd" "$pinned" "$out" "$err" start-failed "{\"rate\":$rate,\"pass\":false}"
        return
    fi
    run_loadgen $((60 + DURATION + WARMUP)) "$out" "$err" broadcast $(url_args "$name") \
        --receivers 1000 --size "$size" --rate "$rate" --duration "$DURATION" --warmup "$WARMUP" \
        --p99-limit-ms "$BCAST_P99_MS" --pid "$SPID" "$@"
    status=$?
    stop_server
    if [[ $status == 0 ]]; then
        pass=$(json_get "$out" "int(r['lost'] == 0 and r['p99_us'] <= $BCAST_P99_MS * 1000 and r['errors'] == 0 and not r['aborted'] and r['receivers_open'] == r['receivers'] and r['received'] > 0)")
        [[ $pass == 1 ]] || pass=0
    fi
    local passj=false
    [[ $pass == 1 ]] && passj=true
    emit step "$sc" "$name" "$rnd" "$pinned" "$out" "$err" "$status" "{\"rate\":$rate,\"pass\":$passj}"
    log "  $sc $name @ $rate msgs/s: $([[ $pass == 1 ]] && echo pass || echo FAIL) ($(json_get "$out" '"p99 %.1f ms, lost %d, %.0f deliveries/s%s, loadgen cpu %.2f, server cpu %s" % (r["p99_us"] / 1000, r["lost"], r["deliveries_per_s"], ", aborted" if r["aborted"] else "", r["loadgen_cpu"], r["server_cpu"])' || echo "status $status"))"
    [[ $pass == 1 ]] && cp "$out" "$TMP/bpass"
    STEP_PASS=$pass
}

# broadcast_search SCENARIO SERVER ROUND PINNED SIZE START_RATE [LOADGEN ARGS...]
broadcast_search() {
    local sc=$1 name=$2 rnd=$3 pinned=$4 size=$5 rate=$6
    shift 6
    local last_pass=0 first_fail=0 steps=0 refines=0
    rm -f "$TMP/bpass"
    while ((steps < BCAST_MAX_STEPS)); do
        broadcast_step "$sc" "$name" "$rnd" "$pinned" "$rate" "$size" "$@"
        steps=$((steps + 1))
        if [[ $STEP_PASS == 1 ]]; then last_pass=$rate; else first_fail=$rate; fi
        if ((first_fail == 0)); then
            rate=$((rate * 2))
            continue
        fi
        # Bisect between the last pass and the first fail, to within 5 %.
        if ((refines >= BCAST_REFINE)) || ((first_fail - last_pass <= (first_fail / 20 > 1 ? first_fail / 20 : 1))); then
            break
        fi
        rate=$(((last_pass + first_fail) / 2))
        refines=$((refines + 1))
    done
    printf '{"mode":"broadcast-search","max_rate":%d,"first_fail":%d,"steps":%d,"p99_limit_ms":%s}\n' \
        "$last_pass" "$first_fail" "$steps" "$BCAST_P99_MS" >"$TMP/sout"
    if [[ $sc != 4 && -f $TMP/bpass ]]; then
        # The best passing step's CPU use and compression, beside the rate (scenario 4's lines
        # stay as they were).
        python3 - "$TMP/sout" "$TMP/bpass" <<'PY'
import json, sys
s = json.loads(open(sys.argv[1]).read())
b = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])
for k in ("p99_us", "loadgen_cpu", "server_cpu", "deflate", "deflate_answer", "rx_ratio", "tx_ratio",
          "rx_compressed_messages", "rx_memo_hits", "inflate_memo", "size", "text"):
    if k in b:
        s["best_" + k if k == "p99_us" else k] = b[k]
open(sys.argv[1], "w").write(json.dumps(s, separators=(",", ":")) + "\n")
PY
    fi
    emit result "$sc" "$name" "$rnd" "$pinned" "$TMP/sout" /dev/null 0
    log "  $sc $name: max rate $last_pass msgs/s (first fail: $first_fail)"
}

# idle_run SCENARIO SERVER ROUND PINNED [LOADGEN ARGS...]
idle_run() {
    local sc=$1 name=$2 rnd=$3 pinned=$4 out="$TMP/out" err="$TMP/err" status
    shift 4
    : >"$out"
    : >"$err"
    if ! start_server "$name" echo; then
        emit result "$sc" "$name" "$rnd" "$pinned" "$out" "$err" start-failed
        return
    fi
    run_loadgen $((90 + IDLE_SETTLE)) "$out" "$err" idle --url "ws://127.0.0.1:$PORT/" \
        --conns "$IDLE_CONNS" --settle "$IDLE_SETTLE" --pid "$SPID" "$@"
    status=$?
    stop_server
    emit result "$sc" "$name" "$rnd" "$pinned" "$out" "$err" "$status"
    log "  $sc $name: $(json_get "$out" '"%.0f bytes per connection (%d open, %d errors)" % (r["bytes_per_conn"], r["open"], r["errors"])' || echo "failed (status $status)")"
}

connect_run() {
    local name=$1 rnd=$2 pinned=$3 out="$TMP/out" err="$TMP/err" status
    : >"$out"
    : >"$err"
    if ! start_server "$name" echo; then
        emit result 6 "$name" "$rnd" "$pinned" "$out" "$err" start-failed
        return
    fi
    run_loadgen $((40 + DURATION)) "$out" "$err" connect --url "ws://127.0.0.1:$PORT/" \
        --conns "$CONNECT_WORKERS" --duration "$DURATION" --pid "$SPID"
    status=$?
    stop_server
    emit result 6 "$name" "$rnd" "$pinned" "$out" "$err" "$status"
    log "  6 $name: $(json_get "$out" '"%.0f handshakes/s, errors %d" % (r["handshakes_per_s"], r["errors"])' || echo "failed (status $status)")"
}

WSTEST_OK=""
# wstest runs on Python 2.7; where pyenv provides one, put it beside the default Python.
if [ -z "${PYENV_VERSION:-}" ] && command -v pyenv >/dev/null 2>&1; then
    py27=$(pyenv versions --bare 2>/dev/null | grep -E '^2\.7' | tail -n 1 || true)
    [ -n "$py27" ] && export PYENV_VERSION="$(pyenv version-name 2>/dev/null | tr -d '\n'):$py27"
fi

wstest_available() {
    if [[ -z $WSTEST_OK ]]; then
        if command -v wstest >/dev/null && wstest --help >/dev/null 2>&1; then
            WSTEST_OK=1
        else
            WSTEST_OK=0
        fi
    fi
    [[ $WSTEST_OK == 1 ]]
}

autobahn_run() {
    local name=$1 rnd=$2 pinned=$3 out="$TMP/out" err="$TMP/err" status dir
    : >"$out"
    : >"$err"
    if ! wstest_available; then
        printf '{"mode":"autobahn","skipped":"wstest is not available"}\n' >"$out"
        emit result 7 "$name" "$rnd" "$pinned" "$out" "$err" 0 '{"skipped":true}'
        log "  7 $name: skipped: wstest is not available"
        return
    fi
    if ! start_server "$name" echo; then
        emit result 7 "$name" "$rnd" "$pinned" "$out" "$err" start-failed
        return
    fi
    dir=$(mktemp -d)
    cat >"$dir/spec.json" <<EOF
{
  "outdir": "./reports",
  "servers": [{"agent": "$name", "url": "ws://127.0.0.1:$PORT"}],
  "cases": ["9.*"],
  "exclude-cases": [],
  "exclude-agent-cases": {}
}
EOF
    (cd "$dir" && timeout -k 10 "$AUTOBAHN_TIMEOUT" "${PINCMD[@]}" wstest -m fuzzingclient -s spec.json) >"$err" 2>&1
    status=$?
    stop_server
    python3 - "$dir/reports/index.json" "$name" >"$out" <<'PY'
import json, sys
try:
    index = json.load(open(sys.argv[1]))
except Exception as e:
    sys.exit(0)
cases = index.get(sys.argv[2]) or next(iter(index.values()), {})
nine = {k: v for k, v in cases.items() if k.startswith("9.")}
ok = sum(1 for v in nine.values() if v.get("behavior") in ("OK", "INFORMATIONAL"))
total_ms = sum(int(v.get("duration") or 0) for v in nine.values())
print(json.dumps({"mode": "autobahn", "cases": len(nine), "ok": ok,
                  "not_ok": sorted(k for k, v in nine.items() if v.get("behavior") not in ("OK", "INFORMATIONAL")),
                  "duration_ms": total_ms}, separators=(",", ":")))
PY
    rm -rf "$dir"
    emit result 7 "$name" "$rnd" "$pinned" "$out" "$err" "$status"
    log "  7 $name: $(json_get "$out" '"%d ms over %d cases, %d OK" % (r["duration_ms"], r["cases"], r["ok"])' || echo "failed (status $status)")"
}

supports() { server_cmd "$1" "$2" 127.0.0.1:1 >/dev/null; }

# run_scenario ID ROUND PINNED: every selected server that supports it, in turn.
run_scenario() {
    local sc=$1 rnd=$2 pinned=$3 s
    log "round $rnd, scenario $sc: $(scenario_label "$sc")$([[ $pinned == 1 ]] && echo ", pinned to CPU $PIN_CPU")"
    for s in "${SELECTED[@]}"; do
        if deflate_scenario "$sc"; then
            deflate_server "$s" || continue
        elif deflate_variant "$s"; then
            continue
        fi
        if tls_server "$s" && [[ $sc != 1 && $sc != 2 && $sc != 4 ]]; then continue; fi
        case $sc in
            1) supports "$s" echo && echo_run 1 "$s" "$rnd" "$pinned" 100 20 1 ;;
            2) supports "$s" echo && echo_run 2 "$s" "$rnd" "$pinned" 100 64 32 ;;
            3a) supports "$s" echo && echo_run 3a "$s" "$rnd" "$pinned" 200 16384 1 ;;
            3b) supports "$s" echo && echo_run 3b "$s" "$rnd" "$pinned" 10 1048576 1 ;;
            4) supports "$s" broadcast && broadcast_search 4 "$s" "$rnd" "$pinned" 64 "$BCAST_START" ;;
            5) [[ $s != raw ]] && idle_run 5 "$s" "$rnd" "$pinned" ;;
            6) [[ $s != raw ]] && connect_run "$s" "$rnd" "$pinned" ;;
            7) [[ $s != raw ]] && autobahn_run "$s" "$rnd" "$pinned" ;;
            8) supports "$s" echo && echo_run 8 "$s" "$rnd" "$pinned" 100 1024 32 "${DEFLATE_ARGS[@]}" --text ;;
            9) supports "$s" broadcast && broadcast_search 9 "$s" "$rnd" "$pinned" 1024 "$BCAST_DEFLATE_START" "${DEFLATE_ARGS[@]}" --text ;;
            10) idle_run 10 "$s" "$rnd" "$pinned" "${DEFLATE_ARGS[@]}" ;;
        esac
    done
}

IDS=()
IFS=, read -ra WANT <<<"$SCENARIOS"
for w in "${WANT[@]}"; do
    case $w in
        3) IDS+=(3a 3b) ;;
        all) IDS+=(1 2 3a 3b 4 5 6 7 8 9 10) ;;
        1 | 2 | 3a | 3b | 4 | 5 | 6 | 7 | 8 | 9 | 10) IDS+=("$w") ;;
        *) die "unknown scenario $w" ;;
    esac
done

# The meta line: the machine and the command that reproduces the run.
python3 - "$ROUNDS" "$DURATION" "$WARMUP" "$PIN" "$SCENARIOS" "$SERVERS" "${SELECTED[*]}" >>"$RESULTS" <<'PY'
import json, os, platform, subprocess, sys, time
def out(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception:
        return ""
cpu = ""
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
except Exception:
    pass
rounds, duration, warmup, pin, scenarios, servers, selected = sys.argv[1:8]
env = "ROUNDS=%s DURATION=%s WARMUP=%s PIN=%s SCENARIOS=%s" % (rounds, duration, warmup, pin, scenarios)
if servers != "all":
    env += " SERVERS=%s" % servers
print(json.dumps({"kind": "meta", "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                  "command": env + " bench/run.sh", "cpu": cpu, "cores": os.cpu_count(),
                  "kernel": platform.release(), "rustc": out(["rustc", "--version"]),
                  "node": out(["node", "--version"]), "servers": selected.split(),
                  "duration": float(duration), "warmup": float(warmup), "rounds": int(rounds)},
                 separators=(",", ":")))
PY

log "results: $RESULTS; server logs: $LOGDIR"
log "servers: ${SELECTED[*]}; scenarios: ${IDS[*]}; rounds: $ROUNDS; duration: ${DURATION}s; PIN=$PIN"

for pinned in $PIN_MODES; do
    if [[ $pinned == 1 ]]; then PINCMD=(taskset -c "$PIN_CPU"); else PINCMD=(); fi
    for ((rnd = 1; rnd <= ROUNDS; rnd++)); do
        for sc in "${IDS[@]}"; do
            run_scenario "$sc" "$rnd" "$pinned"
        done
    done
done

rm -rf "$TMP"
log "done: $RESULTS"
if [[ $REPORT == 1 ]]; then
    python3 "$ROOT/bench/report.py" --md "$REPORT_MD" --svg "$REPORT_SVG" "$RESULTS" || die "report.py failed"
    log "report: $REPORT_MD, $REPORT_SVG"
fi
