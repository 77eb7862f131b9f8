#!/usr/bin/env bash
# Build once, then reuse, a debootstrapped Debian root for systemd-nspawn test hosts.
# Usage: scripts/nspawn-base.sh [bookworm|trixie]   (default bookworm: Debian 12; trixie: Debian 13)
# Prints the root's path on stdout. The cache key is the package list, so a change rebuilds.
#
# Test hosts cannot reach apt mirrors (they sit on a private bridge), so everything
# the package and the Ansible roles install from apt is baked in here, including
# python3-apt and python3-packaging, which Ansible's apt and pip modules need.
set -euo pipefail

SUITE=${1:-bookworm}
case $SUITE in
    bookworm) RELEASE=debian12 PYTHON=python3.11 LOCK=.lock ;;
    trixie) RELEASE=debian13 PYTHON=python3.13 LOCK=.lock-trixie ;;
    *) echo "unknown suite $SUITE: bookworm or trixie" >&2; exit 2 ;;
esac
# The package's interpreter is the release's own python3.X.
PACKAGES="systemd,systemd-sysv,dbus,libpam-systemd,python3,$PYTHON,python3-venv,python3-apt,python3-packaging"
PACKAGES="$PACKAGES,sudo,openssh-server,iproute2,procps,netcat-openbsd,ca-certificates,less"
PACKAGES="$PACKAGES,rabbitmq-server,adduser"
# nftables for the roles' optional firewall (compute_broker_firewall_enabled, ...).
PACKAGES="$PACKAGES,nftables"
# Slurm for the `slurm` scenario, whose compute nodes run managers in batch jobs.
PACKAGES="$PACKAGES,slurmctld,slurmd,slurm-client,munge"
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${COMPUTE_NSPAWN_CACHE:-/var/cache/compute-endpoint-tests}
KEY=$(printf '%s v3' "$PACKAGES" | sha256sum | cut -c1-12)
ROOT=$CACHE/$RELEASE-$KEY

mkdir -p "$CACHE"
exec 9>"$CACHE/$LOCK"
flock 9
if [ -f "$ROOT/.complete" ]; then
    echo "$ROOT"
    exit 0
fi

command -v debootstrap >/dev/null || { echo "debootstrap is missing: apt-get install debootstrap" >&2; exit 1; }
rm -rf "$ROOT.tmp"
echo "==> debootstrap $SUITE ($RELEASE) into $ROOT (once; a few minutes)" >&2
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOT.tmp" "$MIRROR" >&2

# Every container gets its own identity at boot.
: > "$ROOT.tmp/etc/machine-id"
rm -f "$ROOT.tmp"/etc/ssh/ssh_host_*
# RabbitMQ is installed for the broker role, not started by default: only the
# hosts that converge that role run it.
systemctl --root="$ROOT.tmp" disable rabbitmq-server.service >/dev/null 2>&1 || true
# Likewise Slurm: the scenario that uses it writes the cluster's munge key and
# slurm.conf, then starts them.
systemctl --root="$ROOT.tmp" disable munge.service slurmctld.service slurmd.service >/dev/null 2>&1 || true
rm -f "$ROOT.tmp/etc/munge/munge.key"
# No units that wait for hardware or a network manager that is not there.
systemctl --root="$ROOT.tmp" mask systemd-networkd-wait-online.service getty@tty1.service >/dev/null 2>&1 || true
echo "PermitRootLogin prohibit-password" > "$ROOT.tmp/etc/ssh/sshd_config.d/10-test.conf"
mkdir -p "$ROOT.tmp/root/.ssh" && chmod 700 "$ROOT.tmp/root/.ssh"

touch "$ROOT.tmp/.complete"
mv "$ROOT.tmp" "$ROOT"
echo "$ROOT"
