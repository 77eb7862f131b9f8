#!/usr/bin/env bash
# Build once, then reuse, a debootstrapped Debian root to build and lint packages for a
# release other than this machine's: the bundled venv must be made by the target's own
# interpreter (trixie: python3.13), and lintian must be the target's.
# Usage: packaging/build-root.sh trixie            prints the root's path on stdout
#        packaging/build-root.sh trixie CMD ARGS...  runs CMD in it (systemd-nspawn --pipe, no boot),
#            with the current directory bound read-write at /src and as CMD's working directory, e.g.
#            packaging/build-root.sh trixie lintian --fail-on error,warning dist/*+deb13_amd64.deb
set -euo pipefail

SUITE=${1:?usage: build-root.sh SUITE [CMD ARGS...]}
shift
case $SUITE in
    trixie) PYTHON=python3.13 ;;
    *) echo "no build root for $SUITE: this machine builds for bookworm itself" >&2; exit 2 ;;
esac
# perl-openssl-defaults provides perl-openssl-abi-3 for lintian's libnet-ssleay-perl: debootstrap
# does not resolve virtual packages.
PACKAGES="$PYTHON,$PYTHON-venv,python3-venv,lintian,perl-openssl-defaults,binutils,ca-certificates"
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${COMPUTE_BUILD_CACHE:-/var/cache/compute-endpoint-build}
KEY=$(printf '%s v1' "$PACKAGES" | sha256sum | cut -c1-12)
ROOT=$CACHE/$SUITE-$KEY

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock-$SUITE"
flock 9

run_in_root() {
    # The lock is shared while a command runs (the debootstrap below holds it exclusively).
    flock -s 9
    # It trusts the certificate authorities this machine trusts (pip reaches PyPI through them).
    exec systemd-nspawn --quiet --register=no --keep-unit --pipe --directory="$ROOT" \
        --bind-ro=/etc/ssl/certs/ca-certificates.crt --setenv=PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
        --bind="$PWD:/src" --chdir=/src --setenv=HOME=/root --setenv=LANG=C.UTF-8 -- "$@"
}

if [ -f "$ROOT/.complete" ]; then
    [ $# -eq 0 ] || run_in_root "$@"
    echo "$ROOT"
    exit 0
fi

command -v debootstrap >/dev/null || { echo "debootstrap is missing: apt-get install debootstrap" >&2; exit 1; }
rm -rf "$ROOT.tmp"
echo "==> debootstrap $SUITE build root into $ROOT (once; a few minutes)" >&2
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOT.tmp" "$MIRROR" >&2
rm -rf "$ROOT.tmp"/var/cache/apt/archives/*.deb
touch "$ROOT.tmp/.complete"
mv "$ROOT.tmp" "$ROOT"
[ $# -eq 0 ] || run_in_root "$@"
echo "$ROOT"
