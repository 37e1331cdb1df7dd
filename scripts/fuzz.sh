#!/usr/bin/env bash
# Fuzzes the protocol core with cargo-fuzz (libFuzzer); see fuzz/README.md.
#
# Usage (from anywhere):
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
#   SECONDS_PER_TARGET   fuzzing time of each target (default 30); the build comes on top
#   TARGET               frame_header, handshake, connection, utf8, deflate, client (default:
#                        all of them, in turn)
#
# Each target starts from its committed seeds (fuzz/seeds/<target>/) and the minimized crashers
# kept as regressions (fuzz/regressions/<target>/), and grows a working corpus that git ignores
# (fuzz/corpus/<target>/). A crash, a timeout (-timeout=10 s per input) or running out of memory
# (-rss_limit_mb=2048) leaves the input in fuzz/artifacts/<target>/ and makes this script exit
# non-zero, after the other targets have run. handshake and connection also get the HTTP tokens of
# fuzz/dicts/http.dict. libFuzzer's output goes to fuzz/logs/<target>.log;
# the number of executions of each target is printed.
#
# cargo-fuzz needs a nightly compiler's flags (-Zsanitizer=address); RUSTC_BOOTSTRAP=1 lets the
# stable toolchain accept them.
set -euo pipefail

# All in a function, read whole before it runs: editing this file during a run cannot break it.
main() {
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  fuzz="$root/fuzz"
  all_targets=(frame_header handshake connection utf8 deflate client)

  seconds=${1:-30}
  if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
    echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2
    exit 2
  fi
  shift || true
  targets=("$@")
  [ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
  for t in "${targets[@]}"; do
    if [[ ! " ${all_targets[*]} " =~ " $t " ]]; then
      echo "unknown target '$t' (targets: ${all_targets[*]})" >&2
      exit 2
    fi
  done

  export RUSTC_BOOTSTRAP=1
  if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
  fi

  start=$(date +%s)
  cd "$root"
  echo "building fuzz targets: ${targets[*]}"
  for t in "${targets[@]}"; do
    cargo fuzz build "$t"
  done
  built=$(date +%s)
  echo "built in $((built - start)) s"

  mkdir -p "$fuzz/logs"
  failed=()
  for t in "${targets[@]}"; do
    corpus="$fuzz/corpus/$t"
    mkdir -p "$corpus" "$fuzz/artifacts/$t"
    dirs=("$corpus" "$fuzz/seeds/$t")
    [ -d "$fuzz/regressions/$t" ] && dirs+=("$fuzz/regressions/$t")
    extra=()
    case "$t" in handshake | connection | client) extra+=(-dict="$fuzz/dicts/http.dict") ;; esac
    log="$fuzz/logs/$t.log"
    echo "fuzzing $t for $seconds s (log: fuzz/logs/$t.log)"
    t0=$(date +%s)
    status=0
    cargo fuzz run "$t" "${dirs[@]}" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
      ${extra[@]+"${extra[@]}"} >"$log" 2>&1 || status=$?
    t1=$(date +%s)
    execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -n 1 | grep -o '[0-9]*$' || true)
    corpus_size=$(find "$corpus" -type f | wc -l)
    if [ "$status" -eq 0 ]; then
      echo "  $t: ok, ${execs:-?} executions in $((t1 - t0)) s, working corpus $corpus_size inputs"
    else
      failed+=("$t")
      echo "  $t: FAILED (exit $status) after ${execs:-?} executions in $((t1 - t0)) s"
      grep -E "^ERROR|SUMMARY|Test unit written to" "$log" | head -n 20 | sed 's/^/    /' || true
      grep -A 3 "panicked at" "$log" | head -n 8 | sed 's/^/    /' || true
      echo "    minimize: RUSTC_BOOTSTRAP=1 cargo fuzz tmin $t <artifact>; full output in fuzz/logs/$t.log"
    fi
  done

  echo "total $(( $(date +%s) - start )) s for ${targets[*]} ($seconds s each)"
  if [ ${#failed[@]} -gt 0 ]; then
    echo "crashes found in: ${failed[*]}" >&2
    exit 1
  fi
}

main "$@"
