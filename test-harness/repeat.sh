#!/usr/bin/env bash
# make test-repeat: the e2e suite N times in a row; HOG=1 spins CPU 0 meanwhile.
# Prints one line per run (passed/failed counts, the failed tests) and fails
# if any run failed.
set -uo pipefail
n=$1 hog=$2
py=test-harness/.venv/bin/python
logs=test-harness/repeat-logs
mkdir -p "$logs"
hog_pid=
if [ "$hog" = 1 ]; then
  taskset -c 0 sh -c 'while :; do :; done' &
  hog_pid=$!
  trap 'kill $hog_pid 2>/dev/null' EXIT
  echo "test-repeat: CPU hog on CPU 0 (pid $hog_pid)"
fi
bad=0
for i in $(seq 1 "$n"); do
  start=$(date +%s)
  "$py" -m pytest -q -rf test-harness/tests >"$logs/run-$i.log" 2>&1
  rc=$?
  wall=$(( $(date +%s) - start ))
  summary=$(grep -E '^[=]* ?[0-9]+ (passed|failed)|(passed|failed).* in [0-9.]+s' "$logs/run-$i.log" | tail -1 | tr -d '=')
  failed=$(sed -n 's/^FAILED \([^ ]*\).*/\1/p' "$logs/run-$i.log" | tr '\n' ' ')
  echo "run $i/$n: rc $rc, ${wall} s,${summary}${failed:+ failed: $failed}"
  [ $rc -eq 0 ] || bad=$((bad + 1))
done
echo "test-repeat: $((n - bad)) of $n runs passed (logs: $logs/)"
[ $bad -eq 0 ]
