#!/usr/bin/env bash
# The Autobahn|TestSuite over the benchmark peers: every case (cases ["*"], nothing excluded,
# so permessage-deflate's sections 12 and 13 too) against each echo peer, one peer after the
# other, summarized by bench/autobahn_peers.py into bench/results/autobahn-peers.json.
#
#   bench/autobahn-peers.sh                       # all six peers
#   SERVERS=ws,uws bench/autobahn-peers.sh        # a subset (the other peers' records in the
#                                                 # JSON file are kept, if from the same suite)
#
# Environment (defaults in brackets):
#   SERVERS [all]      comma-separated subset of: rfc6455 tungstenite tokio-tungstenite fastwebsockets
#                      tokio-websockets ws uws
#   OUT [bench/results/autobahn-peers.json]
#   TIMEOUT [1200]     seconds allowed for one peer's wstest run
#   STALL_TIMEOUT [180]  seconds one case may take (no new case started for that long: hung)
#   BUILD [1]          1: cargo build --release of bench/peers (a no-op when up to date) and,
#                      when bench/node/node_modules is missing, npm ci; 0: use what is built
#   KEEP_REPORTS []    a directory: copy each peer's wstest reports and logs there
#
# Each peer runs as `PEER echo --listen 127.0.0.1:PORT` on a free loopback port, is stopped
# after its run (and on any exit of this script), and gets a temporary spec with one server
# entry whose agent is the peer's name. When a run reaches TIMEOUT or a case STALL_TIMEOUT,
# the peer is killed: wstest then ends the case it was in (the peer's connection is gone),
# cannot connect for the next one, and writes its report of the cases done; the record gets
# a "note" saying so. Nothing here needs the network (except BUILD's first build, which
# fetches crates and npm packages when they are not there yet).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

SERVERS=${SERVERS:-all}
OUT=${OUT:-$ROOT/bench/results/autobahn-peers.json}
TIMEOUT=${TIMEOUT:-1200}
STALL_TIMEOUT=${STALL_TIMEOUT:-180}
BUILD=${BUILD:-1}
KEEP_REPORTS=${KEEP_REPORTS:-}

PEERS="$ROOT/bench/peers/target/release"
NODE_DIR="$ROOT/bench/node"
SUMMARY="$ROOT/bench/autobahn_peers.py"
ALL_SERVERS="rfc6455 tungstenite tokio-tungstenite fastwebsockets tokio-websockets ws uws"

log() { printf '[autobahn-peers %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

for v in TIMEOUT STALL_TIMEOUT; do
    [[ ${!v} =~ ^[0-9]+$ && ${!v} -ge 1 ]] || die "$v must be a positive number of seconds"
done
command -v python3 >/dev/null || die "python3 is needed"
command -v timeout >/dev/null || die "timeout (coreutils) is needed"

# wstest runs on Python 2.7; where pyenv provides one, put it beside the default Python.
if [[ -z ${PYENV_VERSION:-} ]] && command -v pyenv >/dev/null 2>&1; then
    py27=$(pyenv versions --bare 2>/dev/null | grep -E '^2\.7' | tail -n 1 || true)
    if [[ -n $py27 ]]; then
        PYENV_VERSION="$(pyenv version-name 2>/dev/null | tr -d '\n'):$py27"
        export PYENV_VERSION
    fi
fi
command -v wstest >/dev/null || die "wstest (Autobahn|TestSuite) is not on PATH"
SUITE=$(timeout 60 wstest --autobahnversion 2>/dev/null | sed '/^[[:space:]]*$/d' | paste -sd'/' - | sed 's|/| / |g') ||
    die "wstest --autobahnversion failed"
[[ -n $SUITE ]] || die "wstest --autobahnversion printed nothing"

# ---------------------------------------------------------------------------------------------
# Build

if [[ $BUILD == 1 ]]; then
    log "building rfc6455 and the Rust peers (cargo build --release)"
    timeout 1800 cargo build --release --quiet || die "cargo build --release (rfc6455) failed"
    timeout 1800 cargo build --release --quiet --manifest-path bench/peers/Cargo.toml ||
        log "warning: the Rust peers did not build; the ones missing are skipped"
    if [[ ! -d $NODE_DIR/node_modules ]] && command -v npm >/dev/null; then
        log "installing the Node peers' packages (npm ci in bench/node)"
        (cd "$NODE_DIR" && timeout 600 npm ci --no-audit --no-fund --loglevel=error) ||
            log "warning: npm ci failed; the Node peers are skipped"
    fi
fi

# peer_cmd NAME ADDR: the peer's command line (paths relative to the repository root).
peer_cmd() {
    case $1 in
        rfc6455) echo "target/release/rfc6455 echo --listen $2" ;;
        tungstenite | tokio-tungstenite | fastwebsockets | tokio-websockets)
            echo "bench/peers/target/release/peer-$1 echo --listen $2" ;;
        ws | uws) echo "node bench/node/$1-server.mjs echo --listen $2" ;;
        *) return 1 ;;
    esac
}

available() {
    case $1 in
        rfc6455) [[ -x target/release/rfc6455 ]] ;;
        ws | uws) command -v node >/dev/null && [[ -d $NODE_DIR/node_modules && -f $NODE_DIR/$1-server.mjs ]] ;;
        *) [[ -x $PEERS/peer-$1 ]] ;;
    esac
}

SELECTED=()
MISSING=0
if [[ $SERVERS != all ]]; then
    IFS=, read -ra want <<<"$SERVERS"
    for s in "${want[@]}"; do
        [[ " $ALL_SERVERS " == *" $s "* ]] || die "unknown server '$s' (known: $ALL_SERVERS)"
    done
fi
for s in $ALL_SERVERS; do
    if [[ $SERVERS != all && ",$SERVERS," != *",$s,"* ]]; then continue; fi
    if available "$s"; then
        SELECTED+=("$s")
    else
        log "warning: peer $s is not built; skipped (build: see bench/peers/README.md)"
        MISSING=1
    fi
done
((${#SELECTED[@]} > 0)) || die "no peer to run"

# ---------------------------------------------------------------------------------------------
# Processes: the peer and wstest of the current run; both are ended on any exit.

SPID=""
WPID=""
TMP=$(mktemp -d)

stop_pid() { # stop_pid PID: TERM, up to 5 s, then KILL
    local pid=$1 i
    [[ -n $pid ]] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    stop_pid "$WPID"
    WPID=""
    stop_pid "$SPID"
    SPID=""
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_peer NAME DIR: on a free loopback port; sets SPID and PORT; status 1 if it did not start.
PORT=""
start_peer() {
    local name=$1 dir=$2 cmd i
    PORT=$(free_port)
    cmd=$(peer_cmd "$name" "127.0.0.1:$PORT")
    # shellcheck disable=SC2086 # the command line is split on purpose
    $cmd >"$dir/peer.log" 2>&1 &
    SPID=$!
    for ((i = 0; i < 200; i++)); do # 10 s
        if ! kill -0 "$SPID" 2>/dev/null; then
            wait "$SPID" 2>/dev/null || true
            SPID=""
            return 1
        fi
        if grep -q 'listening on' "$dir/peer.log" 2>/dev/null && port_open "$PORT"; then return 0; fi
        sleep 0.05
    done
    stop_pid "$SPID"
    SPID=""
    return 1
}

# ---------------------------------------------------------------------------------------------
# One peer

LINES="$TMP/peers.jsonl"
: >"$LINES"
FAILED_PEERS=()
INCOMPLETE=()

run_peer() {
    local name=$1 dir="$TMP/$1" start now last_change last_count count note="" elapsed rc killed=""
    local -a notes=()
    mkdir -p "$dir"
    if ! start_peer "$name" "$dir"; then
        log "$name: the peer did not start: $(tail -n 3 "$dir/peer.log" 2>/dev/null | tr '\n' ' ')"
        FAILED_PEERS+=("$name")
        return 0
    fi
    log "$name: $(peer_cmd "$name" "127.0.0.1:$PORT") (pid $SPID); running wstest (limit ${TIMEOUT} s)"
    cat >"$dir/spec.json" <<EOF
{
  "outdir": "./reports",
  "servers": [{"agent": "$name", "url": "ws://127.0.0.1:$PORT"}],
  "cases": ["*"],
  "exclude-cases": [],
  "exclude-agent-cases": {}
}
EOF
    start=$(date +%s)
    # The hard limit is a backstop only: the loop below kills the peer first, after which
    # wstest writes its report and exits by itself.
    # PYTHONUNBUFFERED: wstest's "Running test case ID" lines, which the loop below watches,
    # reach the log as they are printed.
    (cd "$dir" && exec env PYTHONUNBUFFERED=1 timeout -k 10 $((TIMEOUT + 120)) wstest -m fuzzingclient -s spec.json) >"$dir/wstest.log" 2>&1 &
    WPID=$!
    last_change=$start
    last_count=0
    while kill -0 "$WPID" 2>/dev/null; do
        sleep 1
        now=$(date +%s)
        count=$(grep -c '^Running test case ID' "$dir/wstest.log" 2>/dev/null || true)
        if [[ $count != "$last_count" ]]; then
            last_count=$count
            last_change=$now
        fi
        if [[ -n $SPID ]] && ! kill -0 "$SPID" 2>/dev/null; then
            notes+=("the peer exited during the run (after $count cases started); the cases after it did not run")
            log "$name: ${notes[-1]}"
            wait "$SPID" 2>/dev/null || true
            SPID=""
            last_change=$now
        fi
        if [[ -n $SPID ]] && ((now - start >= TIMEOUT || now - last_change >= STALL_TIMEOUT)); then
            if ((now - start >= TIMEOUT)); then
                killed="the time limit of $TIMEOUT s was reached"
            else
                killed="no new case started for $STALL_TIMEOUT s (a hang)"
            fi
            log "$name: $killed; killing the peer (wstest then reports the cases done)"
            kill -KILL "$SPID" 2>/dev/null || true
            wait "$SPID" 2>/dev/null || true
            SPID=""
            last_change=$now
        fi
        if [[ -z $SPID ]] && ((now - last_change > 60)); then
            notes+=("wstest did not end within 60 s of the peer's end; it was stopped")
            stop_pid "$WPID"
        fi
    done
    rc=0
    wait "$WPID" 2>/dev/null || rc=$?
    WPID=""
    elapsed=$(($(date +%s) - start))
    [[ $rc == 0 ]] || notes+=("wstest exited with status $rc")
    if [[ -n $SPID ]]; then
        stop_pid "$SPID"
        SPID=""
    fi
    if [[ ! -f $dir/reports/index.json ]]; then
        log "$name: no index.json; last lines of wstest's log: $(tail -n 5 "$dir/wstest.log" | tr '\n' ' ')"
    fi

    local -a noteargs=()
    for note in "${notes[@]+"${notes[@]}"}"; do noteargs+=(--note "$note"); done
    [[ -z $killed ]] || noteargs+=(--killed "$killed")
    log "$name: wstest took ${elapsed} s"
    rc=0
    python3 "$SUMMARY" peer --name "$name" --index "$dir/reports/index.json" --into "$LINES" --log "$dir/wstest.log" \
        --seconds "$elapsed" --command "$(peer_cmd "$name" 127.0.0.1:PORT)" "${noteargs[@]+"${noteargs[@]}"}" >&2 || rc=$?
    case $rc in
        0) ;;
        3) INCOMPLETE+=("$name") ;; # the record has a note
        *) FAILED_PEERS+=("$name") ;;
    esac
    if [[ -n $KEEP_REPORTS ]]; then
        mkdir -p "$KEEP_REPORTS/$name"
        cp -r "$dir/." "$KEEP_REPORTS/$name/"
    fi
    rm -rf "$dir"
}

log "suite: $SUITE; peers: ${SELECTED[*]}; output: $OUT"
for s in "${SELECTED[@]}"; do
    run_peer "$s"
done

python3 "$SUMMARY" write --out "$OUT" --suite "$SUITE" "$LINES" >&2
python3 "$SUMMARY" table "$OUT"

status=0
if ((${#FAILED_PEERS[@]} > 0)); then
    log "error: no results for: ${FAILED_PEERS[*]}"
    status=1
fi
if ((${#INCOMPLETE[@]} > 0)); then
    log "warning: incomplete runs (see their \"note\" in $OUT): ${INCOMPLETE[*]}"
    status=1
fi
((MISSING == 0)) || status=1
exit "$status"
