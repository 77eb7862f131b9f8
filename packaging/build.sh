#!/usr/bin/env bash
# Build the packages from packaging/nfpm.yaml, one per target distribution:
#   debian12  dist/compute-endpoint_VERSION-1+deb12_amd64.deb   (bookworm, python3.11)
#   debian13  dist/compute-endpoint_VERSION-1+deb13_amd64.deb   (trixie, python3.13)
#   el9       dist/compute-endpoint-VERSION-1.x86_64.rpm        (RHEL 9 AppStream's python3.11)
# Usage: packaging/build.sh [TARGET...]   (no target: all three, as `make packages` and the tests need)
# Run from the repository root.
#
# Each package carries its own virtual environment under /opt/compute-endpoint, made
# with the target's interpreter so that the venv's python links to the target's python
# and compiled wheels match its ABI. Debian 12 and EL 9 share one python3.11 venv, made
# here (this machine is Debian 12). The Debian 13 venv is made by trixie's python3.13 in
# a cached trixie root (packaging/build-root.sh), with the same wheels from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(debian12 debian13 el9)
for target in "${TARGETS[@]}"; do
    case $target in debian12|debian13|el9) ;; *) echo "unknown target $target: debian12, debian13 or el9" >&2; exit 2 ;; esac
done

NFPM=${NFPM:-.venv/bin/nfpm}
PREFIX=/opt/compute-endpoint
# A directory of this run's own under build/ (the build root sees the repository at /src), so
# that builds running at once (tests, molecule, make) do not share a venv being made.
mkdir -p build
WORK=$(mktemp -d build/packages.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
ROOT=$WORK/pkgroot
VENV=$ROOT$PREFIX
# PACKAGE_VERSION overrides the version (the upgrade test builds a newer one);
# DIST is where the packages go.
VERSION=${PACKAGE_VERSION:-$(sed -n 's/^__version__ = "\(.*\)"/\1/p' endpoint_pkg/compute_endpoint/_version.py)}
DIST=${DIST:-dist}
export VERSION

# A venv at $VENV made by the target's python3.X: "host" (this machine's /usr/bin/python3.11,
# or PACKAGE_PYTHON) or "trixie" (python3.13 in the trixie build root).
make_venv() {
    local where=$1
    rm -rf "$ROOT"
    if [ "$where" = host ]; then
        local python=${PACKAGE_PYTHON:-/usr/bin/python3.11}
        [ -x "$python" ] || { echo "$python is missing: apt-get install python3.11 python3.11-venv" >&2; exit 1; }
        echo "==> venv for $PREFIX (compute-endpoint $VERSION, $("$python" --version))" >&2
        "$python" -m venv "$VENV"
        "$VENV/bin/python" -m pip install -q --no-cache-dir --upgrade pip
        "$VENV/bin/python" -m pip install -q --no-cache-dir --no-compile "$WORK"/wheels/*.whl
        "$VENV/bin/python" -m pip uninstall -q -y setuptools pip
    else
        # Our wheel is pure Python: built here, installed there with its dependencies' cp313 wheels.
        echo "==> venv for $PREFIX (compute-endpoint $VERSION, trixie's python3.13)" >&2
        mkdir -p "$ROOT/opt"
        packaging/build-root.sh trixie /bin/sh -euc '
            /usr/bin/python3.13 -m venv "$1"
            "$1/bin/python" -m pip install -q --no-cache-dir --no-compile "$2"/*.whl
            "$1/bin/python" -m pip uninstall -q -y pip' sh "$VENV" "$WORK/wheels" >&2
    fi
    find "$VENV" -name __pycache__ -type d -prune -exec rm -rf {} +
    local site
    site=$(echo "$VENV"/lib/python3.*/site-packages)
    # Build-time files of the bundled distributions (C headers and sources, Cython
    # declarations, typer's notes for code agents) are not needed to run.
    find "$VENV/lib" \( -name '*.h' -o -name '*.c' -o -name '*.pyx' -o -name '*.pxd' \) -delete
    rm -rf "$site/typer/.agents"
    # Nor are the bundled distributions' own test suites, or Parsl's monitoring web UI (which
    # needs Flask, absent here, and pulls scripts from CDNs): the endpoint uses Parsl's providers only.
    find "$site" -mindepth 2 -maxdepth 2 -type d -name tests ! -path "$site/compute_endpoint/*" -exec rm -rf {} +
    rm -rf "$site/parsl/monitoring/visualization"
    # Library modules are imported, never run: a leftover "#!" line makes them look like scripts.
    find "$site" -name '*.py' -type f ! -perm -u+x -exec sed -i '1{/^#!/d}' {} +
    # Shared objects: stripped and not executable, as Debian and Fedora ship them.
    find "$VENV/lib" -name '*.so*' -type f -exec strip --strip-unneeded {} + -exec chmod 0644 {} +
    # Only our own command in bin/, beside the interpreter links.
    find "$VENV/bin" -type f ! -name 'compute-endpoint' ! -name 'python*' ! -name activate -delete
    # The venv was made at $VENV (/src/$VENV in the build root); it will live at $PREFIX.
    local made
    for made in "$(cd "$VENV" && pwd)" "/src/$VENV"; do
        { grep -rlI --null "$made" "$VENV/bin" || true; } | xargs -0 -r sed -i "s|$made|$PREFIX|g"
        sed -i "s|$made|$PREFIX|g" "$VENV/pyvenv.cfg"
    done
    rm -f "$VENV"/bin/activate.csh "$VENV"/bin/activate.fish "$VENV"/bin/Activate.ps1
    rm -f "$VENV/.gitignore"  # Python 3.13 venvs keep themselves out of git; a package has no use for it
    # The lintian overrides name the bundled interpreter's paths.
    local pyver
    pyver=$(basename "$(dirname "$site")")  # python3.X
    sed -e "s|python3\.11|$pyver|g" -e "s|cpython-311|cpython-$(echo "${pyver#python}" | tr -d .)|g" \
        packaging/debian/lintian-overrides > "$WORK/lintian-overrides"
}

# Files that do not depend on the interpreter, and our own wheel (pure Python), built from a
# copy: setuptools writes build/ and *.egg-info into the source tree, which others may be building.
cp -r endpoint_pkg "$WORK/src"
rm -rf "$WORK/src/build" "$WORK"/src/*.egg-info
.venv/bin/python -m pip wheel -q --no-deps --no-cache-dir -w "$WORK/wheels" "$WORK/src" >&2
.venv/bin/python -c 'import sys; sys.path.insert(0, "endpoint_pkg")
from compute_endpoint.config.template import TEMPLATE; print(TEMPLATE, end="")' > "$WORK/config-template.yaml"
packaging/render-units.sh "$WORK" "$PREFIX"
gzip -9n < packaging/compute-endpoint.1 > "$WORK/compute-endpoint.1.gz"
gzip -9n < CHANGELOG.md > "$WORK/changelog.gz"  # Debian's name for the upstream changelog
mkdir -p "$DIST"

# package TARGET: nfpm with the target's interpreter dependency, revision and unit directory.
package() {
    local config=$WORK/nfpm-$1.yaml format=deb units=/lib/systemd/system
    case $1 in
        debian12) export PYTHON_PACKAGE=python3.11 PACKAGE_RELEASE=1+deb12
                  rm -f "$DIST"/compute-endpoint_*+deb12_amd64.deb ;;
        debian13) export PYTHON_PACKAGE=python3.13 PACKAGE_RELEASE=1+deb13
                  rm -f "$DIST"/compute-endpoint_*+deb13_amd64.deb
                  # trixie's systemd and lintian keep units in /usr/lib (DEP17). Bookworm's
                  # package keeps /lib: moving a file across the /lib alias within an upgrade loses it.
                  units=/usr/lib/systemd/system ;;
        el9) export PYTHON_PACKAGE=python3.11 PACKAGE_RELEASE=1 format=rpm
             rm -f "$DIST"/compute-endpoint-*.rpm ;;
    esac
    # nfpm.yaml names its inputs under build/; this run's are in $WORK.
    sed -e "s|src: build/|src: $WORK/|" -e "s|dst: /lib/systemd/system/|dst: $units/|" packaging/nfpm.yaml > "$config"
    "$NFPM" package --config "$config" --packager "$format" --target "$DIST/" >&2
}

want() { [[ " ${TARGETS[*]} " == *" $1 "* ]]; }
if want debian12 || want el9; then
    make_venv host
    for target in debian12 el9; do want $target && package $target; done
fi
if want debian13; then
    make_venv trixie
    package debian13
fi
ls -1 "$DIST"/compute-endpoint*
