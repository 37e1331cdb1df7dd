#!/usr/bin/env bash
# The chat's scale-out costs (docs/scaling.md): the same broadcast load (RECEIVERS members, one
# sender publishing the chat's own JSON at RATE messages/s for DURATION s) against
#   1. one process, one event loop                      (rfc6455 chat)
#   2. one process, two event loops                     (rfc6455 chat --threads 2)
#   3. one process through a local Redis                (rfc6455 chat --redis)
#   4. two processes through a local Redis: the receivers on one, the sender on the other
# and, for the chat's latency bar, uWebSockets.js's broadcast server with the same load. Every
# server and redis-server run on free loopback ports, started and stopped here; redis-server
# gets a temporary directory. Unpinned: the loops and Redis need the machine's cores.
#
# Usage:
#   bench/scaleout.sh                        # writes bench/results/<date>-scaleout.jsonl
#   ROUNDS=1 DURATION=3 bench/scaleout.sh    # a quick look
#
# Environment: ROUNDS [3], DURATION [10] seconds, RECEIVERS [1000], RATE [100] messages/s,
# SIZE [100] bytes of payload, RESULTS [bench/results/YYYY-MM-DD-scaleout.jsonl]. Needs
# redis-server, and a build with the cargo feature redis (this script builds one).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
RECEIVERS=${RECEIVERS:-1000}
RATE=${RATE:-100}
SIZE=${SIZE:-100}
RESULTS=${RESULTS:-$ROOT/bench/results/$(date -u +%Y-%m-%d)-scaleout.jsonl}
RFC="$ROOT/target/release/rfc6455"
LOADGEN="$ROOT/bench/loadgen/target/release/loadgen"
NODE_DIR="$ROOT/bench/node"
TMP=$(mktemp -d)
PIDS=()

log() { printf '[scaleout %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
command -v redis-server >/dev/null || die "redis-server is needed (apt install redis-server)"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

log "building rfc6455 with the redis feature, and the load generator"
cargo build --release --quiet --features redis
cargo build --release --quiet --manifest-path bench/loadgen/Cargo.toml

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() {
    local i
    for ((i = 0; i < 200; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    die "nothing listens on port $1"
}
# start CMD...: runs it in the background, remembers its pid in LAST.
start() { "$@" >"$TMP/$(date +%s%N).log" 2>&1 & LAST=$!; PIDS+=("$LAST"); }
stop_all() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
}

CHAT_ARGS=(--heartbeat 0 --history 0 --rate-limit 0 --max-connections-per-ip 100000 --max-outbox 67108864)

# run SETUP RECEIVER_PORT SENDER_PORT ROUND PIDS...: one broadcast measurement.
run() {
    local setup=$1 rport=$2 sport=$3 round=$4
    shift 4
    local pid_args=()
    [[ $# -gt 0 ]] && pid_args=(--pid "$1")
    local out
    out=$("$LOADGEN" broadcast --url "ws://127.0.0.1:$rport/" --sender-url "ws://127.0.0.1:$sport/" \
        --receivers "$RECEIVERS" --size "$SIZE" --rate "$RATE" --duration "$DURATION" --warmup 1 \
        --text "${pid_args[@]}" 2>"$TMP/loadgen.log") || { log "loadgen failed: $(tail -3 "$TMP/loadgen.log")"; return 0; }
    printf '{"kind":"scaleout","setup":"%s","round":%d,"receivers":%d,"rate":%s,"result":%s}\n' \
        "$setup" "$round" "$RECEIVERS" "$RATE" "$out" >>"$RESULTS"
    python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print("  %-32s deliveries/s %8.0f  p50 %6.2f ms  p99 %6.2f ms  lost %s" % (sys.argv[2], r.get("deliveries_per_s", 0), r.get("p50_us", 0)/1e3, r.get("p99_us", 0)/1e3, r.get("lost")))' "$out" "$setup" >&2
}

mkdir -p "$(dirname "$RESULTS")"
printf '{"kind":"meta","started":"%s","command":"ROUNDS=%s DURATION=%s RECEIVERS=%s RATE=%s SIZE=%s bench/scaleout.sh","cpu":"%s","cores":%s,"rounds":%s,"duration":%s}\n' \
    "$(date -u '+%Y-%m-%d %H:%M:%S UTC')" "$ROUNDS" "$DURATION" "$RECEIVERS" "$RATE" "$SIZE" \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//' | cut -c1-40)" "$(nproc)" "$ROUNDS" "$DURATION" >>"$RESULTS"

for ((round = 1; round <= ROUNDS; round++)); do
    log "round $round"
    # 1 and 2: one process, one or two loops.
    for threads in 1 2; do
        port=$(free_port)
        start "$RFC" chat --listen "127.0.0.1:$port" --threads "$threads" "${CHAT_ARGS[@]}"
        wait_port "$port"
        run "one process, $threads event loop$([[ $threads == 2 ]] && echo s)" "$port" "$port" "$round" "$LAST"
        stop_all
    done
    # 3 and 4: through Redis.
    rport=$(free_port)
    mkdir -p "$TMP/redis"
    start redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly yes --dir "$TMP/redis"
    wait_port "$rport"
    a=$(free_port)
    start "$RFC" chat --listen "127.0.0.1:$a" --redis "redis://127.0.0.1:$rport/" "${CHAT_ARGS[@]}"
    apid=$LAST
    wait_port "$a"
    run "one process, through Redis" "$a" "$a" "$round" "$apid"
    b=$(free_port)
    start "$RFC" chat --listen "127.0.0.1:$b" --redis "redis://127.0.0.1:$rport/" "${CHAT_ARGS[@]}"
    wait_port "$b"
    run "two processes, through Redis" "$a" "$b" "$round" "$apid"
    stop_all
    rm -rf "$TMP/redis"
    # uWebSockets.js, the latency bar.
    if command -v node >/dev/null && [[ -d $NODE_DIR/node_modules ]]; then
        port=$(free_port)
        start node "$NODE_DIR/uws-server.mjs" broadcast --listen "127.0.0.1:$port"
        wait_port "$port"
        run "uWebSockets.js (node), one process" "$port" "$port" "$round" "$LAST"
        stop_all
    fi
done
log "done: $RESULTS"
