#!/usr/bin/env bash
# Join and reconnect storms (docs/benchmarks.md, "A chat of 10,000"): MEMBERS clients join a
# fresh server at once (PENDING handshakes in flight), stay SETTLE s, and leave at once, against
#   1. rfc6455 echo  (the bar: what connections alone cost)
#   2. rfc6455 chat  (welcome, presence, names; its default handshake rate)
# and then the reconnect storm: MEMBERS chat members in, the chat restarted (SIGTERM: every
# member gets 1001), every member reconnecting as the chat page does (a first retry within
# 3 s, a 503's Retry-After honoured) to the new process on the same port. The load generator
# reads each server's CPU time and VmRSS from /proc through every phase. Loopback only,
# bounded: every phase ends when done or after 60 s.
#
# Usage:
#   bench/storm.sh                              # writes bench/results/<date>-storm.jsonl
#   ROUNDS=1 MEMBERS=2000 bench/storm.sh        # a quick look
#
# Environment: ROUNDS [3], MEMBERS [10000], PENDING [200], SETTLE [2] seconds,
# RESULTS [bench/results/YYYY-MM-DD-storm.jsonl].
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
ROUNDS=${ROUNDS:-3}
MEMBERS=${MEMBERS:-10000}
PENDING=${PENDING:-200}
SETTLE=${SETTLE:-2}
RESULTS=${RESULTS:-$ROOT/bench/results/$(date -u +%Y-%m-%d)-storm.jsonl}
RFC="$ROOT/target/release/rfc6455"
LOADGEN="$ROOT/bench/loadgen/target/release/loadgen"
TMP=$(mktemp -d)
PIDS=()

log() { printf '[storm %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[[ $(ulimit -n) -gt $((MEMBERS + 512)) ]] || die "ulimit -n is $(ulimit -n): $MEMBERS members need more"

log "building rfc6455 and the load generator"
cargo build --release --quiet
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
rss_of() { awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$1/status"; }
# start CMD...: runs it in the background, remembers its pid in LAST.
start() { "$@" >>"$TMP/servers.log" 2>&1 & LAST=$!; PIDS+=("$LAST"); }
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

ECHO_ARGS=(echo --max-connections $((MEMBERS + 100)))
CHAT_ARGS=(chat --heartbeat 0 --max-connections $((MEMBERS + 100)) --max-connections-per-ip $((MEMBERS + 100)))

# record SETUP ROUND FRESH_RSS JSON
record() {
    printf '{"kind":"storm","setup":"%s","round":%d,"members":%d,"rss_fresh":%s,"result":%s}\n' \
        "$1" "$2" "$MEMBERS" "$3" "$4" >>"$RESULTS"
    python3 - "$1" "$3" "$4" <<'EOF' >&2
import json, sys
setup, fresh, r = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
line = "  %-18s join %6.2f s (server cpu %5.2f s, peak %6.1f MB, %5.0f B/member), leave %5.2f s (peak %6.1f MB), after %5.1f MB (fresh %4.1f MB), most messages/member %s" % (
    setup, r["join_s"], r["join_server_cpu_s"], r["join_peak_rss"] / 1e6, r["bytes_per_member"],
    r["leave_s"], r["leave_peak_rss"] / 1e6, r["rss_left"] / 1e6, fresh / 1e6, r["received_max"])
if "reconnect_s" in r:
    line += "\n  %-18s back %6.2f s after the drop (server cpu %5.2f s, peak %6.1f MB), refused %d" % (
        "", r["reconnect_s"], r["reconnect_server_cpu_s"], r["reconnect_peak_rss"] / 1e6, r["refused_reconnect"])
print(line)
EOF
}

# storm SETUP ROUND SERVER_ARGS...: one join-and-leave storm against a fresh server.
storm() {
    local setup=$1 round=$2
    shift 2
    local port out fresh
    port=$(free_port)
    start "$RFC" "$@" --listen "127.0.0.1:$port"
    local pid=$LAST
    wait_port "$port"
    sleep 0.2
    fresh=$(rss_of "$pid")
    out=$("$LOADGEN" storm --url "ws://127.0.0.1:$port/" --conns "$MEMBERS" --pid "$pid" \
        --max-pending "$PENDING" --settle "$SETTLE" --connect-timeout 60 2>"$TMP/loadgen.log") \
        || { log "loadgen failed: $(tail -3 "$TMP/loadgen.log")"; stop "$pid"; return 0; }
    stop "$pid"
    record "$setup" "$round" "$fresh" "$out"
}

# reconnect ROUND: the chat restarted under its members.
reconnect() {
    local round=$1 port out fresh pid loadgen
    port=$(free_port)
    start "$RFC" "${CHAT_ARGS[@]}" --listen "127.0.0.1:$port"
    pid=$LAST
    wait_port "$port"
    sleep 0.2
    fresh=$(rss_of "$pid")
    echo "$pid" >"$TMP/pid"
    rm -f "$TMP/ready"
    "$LOADGEN" storm --url "ws://127.0.0.1:$port/" --conns "$MEMBERS" --pid-file "$TMP/pid" \
        --max-pending "$PENDING" --settle "$SETTLE" --connect-timeout 60 --restart \
        --ready-file "$TMP/ready" >"$TMP/storm.json" 2>"$TMP/loadgen.log" &
    loadgen=$!
    local i
    for ((i = 0; i < 1200; i++)); do
        [[ -e $TMP/ready ]] && break
        kill -0 "$loadgen" 2>/dev/null || break
        sleep 0.05
    done
    [[ -e $TMP/ready ]] || { log "the members never got in: $(tail -3 "$TMP/loadgen.log")"; stop "$pid"; wait "$loadgen" || true; return 0; }
    stop "$pid"
    start "$RFC" "${CHAT_ARGS[@]}" --listen "127.0.0.1:$port"
    pid=$LAST
    echo "$pid" >"$TMP/pid"
    if ! wait "$loadgen"; then
        log "loadgen failed: $(tail -3 "$TMP/loadgen.log")"
        stop "$pid"
        return 0
    fi
    stop "$pid"
    record "chat, restarted" "$round" "$fresh" "$(cat "$TMP/storm.json")"
}

mkdir -p "$(dirname "$RESULTS")"
printf '{"kind":"meta","started":"%s","command":"ROUNDS=%s MEMBERS=%s PENDING=%s SETTLE=%s bench/storm.sh","cpu":"%s","cores":%s,"rounds":%s}\n' \
    "$(date -u '+%Y-%m-%d %H:%M:%S UTC')" "$ROUNDS" "$MEMBERS" "$PENDING" "$SETTLE" \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//' | cut -c1-40)" "$(nproc)" "$ROUNDS" >>"$RESULTS"

for ((round = 1; round <= ROUNDS; round++)); do
    log "round $round"
    storm echo "$round" "${ECHO_ARGS[@]}"
    storm chat "$round" "${CHAT_ARGS[@]}"
    reconnect "$round"
done
log "done: $RESULTS"
