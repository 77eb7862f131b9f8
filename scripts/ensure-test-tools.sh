#!/usr/bin/env bash
# Install, with apt, every system package the tests use that is missing. `make test`
# runs this first, so a fresh Debian 12 machine needs nothing installed by hand.
set -euo pipefail

# What each package is for:
#   rabbitmq-server            the broker (started by ensure-rabbitmq.sh)
#   python3.11 python3.11-venv the interpreter the packages are built with (packaging/build.sh)
#   python3-venv               the test venv (ensure-venv.sh)
#   iproute2                   network namespaces: partition tests, molecule's bridge
#   debootstrap systemd-container  the cached Debian 12 root and its systemd-nspawn hosts
#   rpm rpmlint lintian binutils   building and checking the DEB and RPM (strip, ar)
#   openssh-client openssl     molecule reaches its hosts over SSH; the cluster scenario makes a CA
#   util-linux procps          nsenter, mount, mountpoint, setsid; pgrep
#   slurmctld slurmd slurm-client munge   a one-node Slurm for the batch tests (single-node-slurm.sh)
#   mpich                      mpiexec, for MPIFunction under GlobusMPIEngine
#   podman runc catatonit      containers around managers and workers (runc: crun fails on these machines)
#   charliecloud-runtime       ch-run, the HPC-style unprivileged runtime
#   prometheus                 a real Prometheus server scraping the endpoint's /metrics (tests/integration/test_metrics.py)
PACKAGES=(rabbitmq-server python3.11 python3.11-venv python3-venv iproute2 debootstrap systemd-container
          rpm rpmlint lintian binutils openssh-client openssl util-linux procps
          slurmctld slurmd slurm-client munge mpich podman runc catatonit charliecloud-runtime prometheus)

# podman here: runc rather than crun, and no default ulimits (both fail in these machines' containers).
PODMAN_CONF=/etc/containers/containers.conf.d/50-compute-endpoint-tests.conf
write_podman_conf() {
    [ -f "$PODMAN_CONF" ] && return 0
    $SUDO mkdir -p "$(dirname "$PODMAN_CONF")"
    printf '# Written by compute-endpoint scripts/ensure-test-tools.sh\n[engine]\nruntime = "runc"\n[containers]\ndefault_ulimits = []\n' |
        $SUDO tee "$PODMAN_CONF" >/dev/null
}
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
    write_podman_conf
    echo "==> test tools: all installed"
    exit 0
fi

echo "==> installing ${missing[*]} (apt)"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
write_podman_conf
