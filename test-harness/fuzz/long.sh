#!/usr/bin/env bash
# make fuzz-long: each fuzz target for RUNS executions (libFuzzer -runs), on
# the persistent corpus test-harness/fuzz/corpus/<target> (plus the checked-in
# seeds/<target>, if any), then one line per target from libFuzzer's final
# stats: executions, exec/s, wall time, corpus size, coverage. Every target runs even
# after a crash; the script fails if any crashed (the input is in
# test-harness/fuzz/artifacts/<target>/).
#
# Usage: long.sh RUNS MAX_SECONDS SANITIZER TARGET...
#   MAX_SECONDS caps each target's time (0: no cap); SANITIZER is cargo
#   fuzz's --sanitizer (none, address, ...).
set -uo pipefail

runs=$1 max=$2 sanitizer=$3
shift 3
dir=test-harness/fuzz
logs=$dir/logs
mkdir -p "$logs"
# Build every target once, so the wall times below are fuzzing only.
cargo +nightly fuzz build -s "$sanitizer" --fuzz-dir "$dir" || exit 1

failed=()
summary=()
for t in "$@"; do
  corpus=$dir/corpus/$t
  mkdir -p "$corpus"
  dirs=("$corpus")
  [ -d "$dir/seeds/$t" ] && dirs+=("$dir/seeds/$t")
  echo "== $t: up to $runs executions (log: $logs/$t.log)"
  start=$(date +%s)
  cargo +nightly fuzz run -s "$sanitizer" --fuzz-dir "$dir" "$t" "${dirs[@]}" -- \
    -runs="$runs" -max_total_time="$max" -print_final_stats=1 >"$logs/$t.log" 2>&1
  rc=$?
  wall=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$t.log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$logs/$t.log" | tail -1)
  files=$(find "$corpus" -type f | wc -l)
  kib=$(find "$corpus" -type f -printf '%s\n' | awk '{s += $1} END {printf "%d", s / 1024}')
  # Coverage (edges) at the end, from libFuzzer's last status line.
  cov=$(grep -oE 'cov: [0-9]+' "$logs/$t.log" | tail -1 | cut -d' ' -f2)
  # libFuzzer's own corpus (units/bytes) after reduction; the directory also
  # keeps inputs that later ones made redundant.
  corp=$(grep -oE 'corp: [0-9]+/[0-9]+[a-zA-Z]*' "$logs/$t.log" | tail -1 | cut -d' ' -f2)
  note=ok
  if [ $rc -ne 0 ]; then
    note="CRASH (exit $rc)"
    failed+=("$t")
    grep -E "panicked at|^==[0-9]+==|Test unit written to|^SUMMARY" "$logs/$t.log" | head -20
  elif [ "${execs:-0}" -lt "$runs" ]; then
    note="stopped by the ${max} s cap"
  fi
  line=$(printf '%-9s %10s execs %7s exec/s %6s s wall  corpus %5s files %6s KiB (in use %s)  cov %5s  %s' \
    "$t" "${execs:-?}" "${rate:-?}" "$wall" "$files" "$kib" "${corp:-?}" "${cov:-?}" "$note")
  echo "$line"
  summary+=("$line")
done

echo
echo "fuzz-long: $(date -u +%Y-%m-%d) $(rustc +nightly --version), sanitizer $sanitizer, -runs=$runs"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz-long: crashes in: ${failed[*]}" >&2
  exit 1
fi
