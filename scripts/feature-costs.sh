#!/usr/bin/env bash
# What each cargo feature costs: for every feature set of the README's table, the crates in the
# build, the wall time of a clean `cargo build --release` of the rfc6455 binary (the median of
# ROUNDS, each into an empty target directory, sources already downloaded), and the size of that
# binary, stripped. Prints the table's rows as Markdown.
#
#   scripts/feature-costs.sh            # ROUNDS=3
#   ROUNDS=1 scripts/feature-costs.sh   # a quick look
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rounds=${ROUNDS:-3}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cargo fetch --locked --quiet

sets=("--no-default-features" "" "--features tls" "--features redis" "--all-features")
names=("none" "default (deflate)" "default + tls" "default + redis" "all")

printf '| features | crates | clean release build, s | binary, stripped, MiB |\n|---|---|---|---|\n'
for i in "${!sets[@]}"; do
  flags=${sets[$i]}
  # Normal (not build or dev) dependencies of this feature set, the crate itself included.
  # shellcheck disable=SC2086
  crates=$(cargo tree --locked -e normal --prefix none --format '{p}' $flags | sed 's/ (\*)$//' | sort -u | wc -l)
  times=()
  for _ in $(seq "$rounds"); do
    rm -rf "$scratch/target"
    start=$(date +%s.%N)
    # shellcheck disable=SC2086
    CARGO_TARGET_DIR="$scratch/target" cargo build --release --locked --quiet --bin rfc6455 $flags
    end=$(date +%s.%N)
    times+=("$(echo "$end - $start" | bc)")
  done
  median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((rounds + 1) / 2))p")
  strip -o "$scratch/stripped" "$scratch/target/release/rfc6455"
  size=$(stat -c %s "$scratch/stripped")
  printf '| %s | %s | %.0f | %.2f |\n' "${names[$i]}" "$crates" "$median" "$(echo "$size / 1048576" | bc -l)"
done
