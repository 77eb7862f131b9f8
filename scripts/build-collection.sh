#!/usr/bin/env bash
# Build the Ansible collection compute.endpoint (galaxy.yml) into build/, then
# install that tarball into build/collections, offline and replacing any earlier
# install: the molecule scenarios run the roles from there, as users would.
#   scripts/build-collection.sh        prints the tarball's path
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
GALAXY=$VENV/bin/ansible-galaxy
[ -x "$GALAXY" ] || GALAXY=ansible-galaxy

version=$(sed -n 's/^version: *//p' galaxy.yml)
tarball=build/compute-endpoint-$version.tar.gz
mkdir -p build
"$GALAXY" collection build --force --output-path build . >/dev/null
ANSIBLE_COLLECTIONS_PATH=$PWD/build/collections "$GALAXY" collection install --offline --force --no-deps -p build/collections "$tarball" >/dev/null
echo "$tarball"
