#!/usr/bin/env bash
# Power off one molecule test host (systemd's SIGRTMIN+4), unmount and delete it.
#   nspawn-down.sh NAME      (MACHINES_DIR as for nspawn-up.sh)
set -uo pipefail
D=$MACHINES_DIR/$1
if [ -f "$D/nspawn.pid" ] && kill -0 "$(cat "$D/nspawn.pid")" 2>/dev/null; then
    kill -s SIGRTMIN+4 "$(cat "$D/leader.pid")" 2>/dev/null
    for _ in $(seq 1 150); do
        kill -0 "$(cat "$D/nspawn.pid")" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$(cat "$D/nspawn.pid")" 2>/dev/null && kill -9 "$(cat "$D/nspawn.pid")"
fi
mountpoint -q "$D/root" && umount "$D/root"
rm -rf "$D"
exit 0
