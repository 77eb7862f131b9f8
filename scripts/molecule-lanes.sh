#!/usr/bin/env bash
# Run every molecule scenario, in two lanes at once, and fail if any scenario fails.
#   molecule-lanes.sh [LANE ...]     each LANE a space-separated list of scenarios run in turn
# The scenarios share nothing: each has its own bridge, subnet, containers and
# ephemeral directory. Their time is mostly spent waiting (boots, SSH, systemd,
# task streams), so two lanes take about half as long as one on two cores.
# Each scenario's output goes to build/molecule/SCENARIO.log; a failed one's is printed whole.
set -uo pipefail
cd "$(dirname "$0")/.."

LANES=("$@")
[ ${#LANES[@]} -gt 0 ] || LANES=("ha default" "cluster slurm")
LOG_DIR=build/molecule
mkdir -p "$LOG_DIR"
rm -f "$LOG_DIR"/*.log "$LOG_DIR/failed"

run_lane() {
    local scenario started
    for scenario in $1; do
        started=$(date +%s)
        echo "==> molecule $scenario: started (log: $LOG_DIR/$scenario.log)"
        if molecule test -s "$scenario" > "$LOG_DIR/$scenario.log" 2>&1; then
            echo "==> molecule $scenario: passed in $(( $(date +%s) - started )) s"
        else
            echo "==> molecule $scenario: FAILED after $(( $(date +%s) - started )) s"
            echo "$scenario" >> "$LOG_DIR/failed"
            return 1
        fi
    done
}

pids=()
for lane in "${LANES[@]}"; do
    run_lane "$lane" &
    pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
    wait "$pid" || status=1
done

if [ $status -ne 0 ]; then
    for scenario in $(cat "$LOG_DIR/failed"); do
        echo "----- molecule $scenario, whole output:"
        cat "$LOG_DIR/$scenario.log"
    done
    exit 1
fi
echo "==> molecule: every scenario passed"
