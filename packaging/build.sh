#!/usr/bin/env bash
# Build dist/compute-endpoint_VERSION-1_amd64.deb and dist/compute-endpoint-VERSION-1.x86_64.rpm
# from packaging/nfpm.yaml. Run from the repository root (`make packages`).
#
# The package carries its own virtual environment under /opt/compute-endpoint,
# made with the target's interpreter (/usr/bin/python3.11, Debian 12's, and
# RHEL 9's python3.11) so the venv's python links to the target's python.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PACKAGE_PYTHON:-/usr/bin/python3.11}
NFPM=${NFPM:-.venv/bin/nfpm}
PREFIX=/opt/compute-endpoint
ROOT=build/pkgroot
VENV=$ROOT$PREFIX
# PACKAGE_VERSION overrides the version (the upgrade test builds a newer one);
# DIST is where the packages go.
VERSION=${PACKAGE_VERSION:-$(sed -n 's/^__version__ = "\(.*\)"/\1/p' endpoint_pkg/compute_endpoint/_version.py)}
DIST=${DIST:-dist}
export VERSION

[ -x "$PYTHON" ] || { echo "$PYTHON is missing: apt-get install python3.11 python3.11-venv" >&2; exit 1; }
echo "==> venv for $PREFIX (compute-endpoint $VERSION, $("$PYTHON" --version))"
rm -rf build/pkgroot build/systemd build/bin build/config-template.yaml build/compute-endpoint.1.gz build/changelog.gz
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --no-cache-dir --upgrade pip
"$VENV/bin/python" -m pip install -q --no-cache-dir --no-compile ./endpoint_pkg
# Installers are not needed at run time.
"$VENV/bin/python" -m pip uninstall -q -y setuptools pip
find "$VENV" -name __pycache__ -type d -prune -exec rm -rf {} +
# Build-time files of the bundled distributions (C headers and sources, Cython
# declarations, typer's notes for code agents) are not needed to run.
find "$VENV/lib" \( -name '*.h' -o -name '*.c' -o -name '*.pyx' -o -name '*.pxd' \) -delete
rm -rf "$VENV"/lib/python3.11/site-packages/typer/.agents
# Nor are the bundled distributions' own test suites, or Parsl's monitoring web UI (which
# needs Flask, absent here, and pulls scripts from CDNs): the endpoint uses Parsl's providers only.
SITE="$VENV/lib/python3.11/site-packages"
find "$SITE" -mindepth 2 -maxdepth 2 -type d -name tests ! -path "$SITE/compute_endpoint/*" -exec rm -rf {} +
rm -rf "$SITE/parsl/monitoring/visualization"
# Library modules are imported, never run: a leftover "#!" line makes them look like scripts.
find "$SITE" -name '*.py' -type f ! -perm -u+x -exec sed -i '1{/^#!/d}' {} +
# Shared objects: stripped and not executable, as Debian and Fedora ship them.
find "$VENV/lib" -name '*.so*' -type f -exec strip --strip-unneeded {} + -exec chmod 0644 {} +
# Only our own command in bin/, beside the interpreter links.
find "$VENV/bin" -type f ! -name 'compute-endpoint' ! -name 'python*' ! -name activate -delete
# The venv was made at $VENV; it will live at $PREFIX.
abs=$(cd "$VENV" && pwd)
grep -rlI --null "$abs" "$VENV/bin" | xargs -0 -r sed -i "s|$abs|$PREFIX|g"
sed -i "s|$abs|$PREFIX|g" "$VENV/pyvenv.cfg"
rm -f "$VENV"/bin/activate.csh "$VENV"/bin/activate.fish "$VENV"/bin/Activate.ps1

"$VENV/bin/python" -c 'import sys; sys.path.insert(0, "endpoint_pkg")
from compute_endpoint.config.template import TEMPLATE; print(TEMPLATE, end="")' > build/config-template.yaml
packaging/render-units.sh build "$PREFIX"
gzip -9n < packaging/compute-endpoint.1 > build/compute-endpoint.1.gz
gzip -9n < CHANGELOG.md > build/changelog.gz  # Debian's name for the upstream changelog

mkdir -p "$DIST"
rm -f "$DIST"/compute-endpoint*.deb "$DIST"/compute-endpoint*.rpm
for format in deb rpm; do
    "$NFPM" package --config packaging/nfpm.yaml --packager "$format" --target "$DIST/" >&2
done
ls -1 "$DIST"/compute-endpoint*
