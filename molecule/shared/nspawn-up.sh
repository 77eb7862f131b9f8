#!/usr/bin/env bash
# Boot one systemd Debian 12 test host for molecule on a private bridge.
#   nspawn-up.sh NAME BASE_ROOT
# Environment: MACHINES_DIR (state, one directory per host), BRIDGE, IP (address/prefix),
# HOSTS (lines for /etc/hosts), SSH_PUBKEY (file allowed to log in as root),
# BIND_RO (optional HOST_PATH:CONTAINER_PATH, e.g. a wheelhouse), BIND (the same, read-write: a shared
# filesystem).
# Prints the host pid of the container's systemd, also written to MACHINES_DIR/NAME/leader.pid.
set -euo pipefail
NAME=$1
BASE=$2
D=$MACHINES_DIR/$NAME
ROOT=$D/root

mkdir -p "$D/upper" "$D/work" "$ROOT"
mountpoint -q "$ROOT" || mount -t overlay overlay -o "lowerdir=$BASE,upperdir=$D/upper,workdir=$D/work" "$ROOT"

# Identity of this host: machine id, name, how it resolves its peers, sshd keys and login.
tr -d - < /proc/sys/kernel/random/uuid > "$ROOT/etc/machine-id"
echo "$NAME" > "$ROOT/etc/hostname"
printf '127.0.0.1 localhost\n%s\n' "$HOSTS" > "$ROOT/etc/hosts"
rm -f "$ROOT"/etc/ssh/ssh_host_*
ssh-keygen -q -t ed25519 -N '' -C "$NAME" -f "$ROOT/etc/ssh/ssh_host_ed25519_key"
install -m 600 "$SSH_PUBKEY" "$ROOT/root/.ssh/authorized_keys"

ARGS=(-D "$ROOT" -b --register=no --keep-unit "--machine=$NAME" --console=passive "--network-bridge=$BRIDGE")
[ -n "${BIND_RO:-}" ] && ARGS+=("--bind-ro=$BIND_RO")
[ -n "${BIND:-}" ] && ARGS+=("--bind=$BIND")
setsid systemd-nspawn "${ARGS[@]}" > "$D/console.log" 2>&1 < /dev/null &
echo $! > "$D/nspawn.pid"

# The container's systemd is the child of nspawn whose pid in its own namespace is 1.
for _ in $(seq 1 400); do
    for child in $(pgrep -P "$(cat "$D/nspawn.pid")" || true); do
        if grep -qE '^NSpid:\s+[0-9]+\s+1$' "/proc/$child/status" 2>/dev/null; then
            echo "$child" > "$D/leader.pid"
            break 2
        fi
    done
    sleep 0.05
done
LEADER=$(cat "$D/leader.pid")

# No network manager inside: address the container's end of the veth from here.
for _ in $(seq 1 200); do
    nsenter -t "$LEADER" -n ip link show host0 >/dev/null 2>&1 && break
    sleep 0.05
done
nsenter -t "$LEADER" -n ip addr add "$IP" dev host0
nsenter -t "$LEADER" -n ip link set host0 up
nsenter -t "$LEADER" -n ip link set lo up
echo "$LEADER"
