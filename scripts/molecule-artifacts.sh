#!/usr/bin/env bash
# What the molecule scenarios install, built into build/molecule/:
#   deb/ deb-upgrade/   the Debian 12 package (the scenarios' hosts are bookworm), and a newer
#                       build of it for the rolling upgrade
#   wheelhouse/         the compute-endpoint wheel and every dependency (for hosts without PyPI)
#   wheel-upgrade/      a newer compute-endpoint wheel
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=build/molecule
UPGRADE_VERSION=0.1.0+upgrade1
rm -rf "$OUT" && mkdir -p "$OUT"

DIST=$OUT/deb packaging/build.sh debian12 >/dev/null
DIST=$OUT/deb-upgrade PACKAGE_VERSION=$UPGRADE_VERSION packaging/build.sh debian12 >/dev/null

.venv/bin/pip wheel -q ./endpoint_pkg -w "$OUT/wheelhouse"
src=$(mktemp -d)
cp -r endpoint_pkg/. "$src/"
rm -rf "$src/build" "$src"/*.egg-info
sed -i "s/^__version__ = \".*\"/__version__ = \"$UPGRADE_VERSION\"/" "$src/compute_endpoint/_version.py"
.venv/bin/pip wheel -q --no-deps "$src" -w "$OUT/wheel-upgrade"
rm -rf "$src"
ls -1 "$OUT"/*/compute*
