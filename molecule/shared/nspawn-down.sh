#!/usr/bin/env bash
# Power off one molecule test host (systemd's SIGRTMIN+4), unmount and delete it.
#   nspawn-down.sh NAME      (MACHINES_DIR as for nspawn-up.sh)
set -uo pipefail
D=$MACHINES_DIR/$1

# The pid in FILE, if it is still this host's init (the first process of a pid namespace,
# with this host's machine id) or its systemd-nspawn: a recorded pid may be another process's by now.
ours() {
    local pid
    [ -f "$1" ] || return 1
    pid=$(cat "$1")
    if { grep -qE '^NSpid:.*\s1$' "/proc/$pid/status" 2>/dev/null \
            && cmp -s "/proc/$pid/root/etc/machine-id" "$D/root/etc/machine-id"; } \
        || tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "-D $D/root "; then
        echo "$pid"
    else
        return 1
    fi
}

if leader=$(ours "$D/leader.pid"); then
    kill -s SIGRTMIN+4 "$leader" 2>/dev/null
    for _ in $(seq 1 150); do
        ours "$D/leader.pid" >/dev/null || break
        sleep 0.1
    done
fi
# Not down in time: SIGKILL to its init ends every process in it (systemd-nspawn
# going alone would leave them running), then to systemd-nspawn.
for file in "$D/leader.pid" "$D/nspawn.pid"; do
    pid=$(ours "$file") && kill -9 "$pid" 2>/dev/null
done
for _ in $(seq 1 50); do
    ours "$D/leader.pid" >/dev/null || ours "$D/nspawn.pid" >/dev/null || break
    sleep 0.1
done
mountpoint -q "$D/root" && umount "$D/root"
rm -rf "$D"
exit 0
