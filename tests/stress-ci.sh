#!/usr/bin/env bash
# CI under load: `.ci/run` on a fresh clone of this checkout, RUNS times in a row (3 by default), while another
# process keeps one core busy the whole time, as a newcomer's machine busy with other work would. Prints each
# run's exit code, time and pytest summary, and the failures of a failed run; the logs of every run are kept in
# test-output/stress-ci/. Exits non-zero if any run failed.
#
#   bash tests/stress-ci.sh            # about 3 x 15 minutes on 2 cores
#   RUNS=1 bash tests/stress-ci.sh
set -uo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
runs=${RUNS:-3}
work=$(mktemp -d)
logs="$here/test-output/stress-ci"
mkdir -p "$logs"
git clone -q "$here" "$work/neon-grid"
[ -d "$here/../shared" ] && ln -s "$here/../shared" "$work/shared"  # CI has ../shared beside the clone

# One core busy for the whole time (a process spinning in a loop), stopped however this script ends.
python3 -c 'while True: pass' &
burner=$!
trap 'kill "$burner" 2>/dev/null; rm -rf "$work"' EXIT

failed=0
for i in $(seq 1 "$runs"); do
  log="$logs/run-$i.log"
  start=$(date +%s)
  (cd "$work/neon-grid" && CI=true bash .ci/run >"$log" 2>&1)
  code=$?
  took=$(($(date +%s) - start))
  summary=$(grep -E "^=+ .*(passed|failed|error).* =+$" "$log" | tail -1 | tr -d '=' | sed 's/^ *//;s/ *$//')
  echo "run $i of $runs: exit $code after $((took / 60))m$((took % 60))s: ${summary:-no pytest summary (see $log)}"
  if [ "$code" -ne 0 ]; then
    failed=1
    grep -E "^(FAILED|ERROR) " "$log" | sed 's/^/    /'
  fi
  # Each run starts from a clean clone: nothing a run left behind carries into the next.
  (cd "$work/neon-grid" && git clean -qfdx)
done
kill "$burner" 2>/dev/null
echo "logs: $logs"
exit "$failed"
