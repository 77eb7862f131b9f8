#!/usr/bin/env bash
# A container image with this checkout's compute-endpoint in it, built offline (no registry):
# a debootstrapped Debian 12 root with a venv at /opt/compute-endpoint.
#   worker-image.sh            build (once per source tree) and print the directory image's path
#   worker-image.sh --podman   the same, also imported into podman; prints the podman image name
# The directory image is what Charliecloud's ch-run runs; podman gets the same tree.
# The dependencies' root is cached by the package list and pyproject.toml; the package
# itself is installed into a copy of it for each source tree (keyed by its content).
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES="python3,python3-venv,ca-certificates,procps"
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${COMPUTE_NSPAWN_CACHE:-/var/cache/compute-endpoint-tests}
DEPS_KEY=$( (echo "$PACKAGES v1"; cat endpoint_pkg/pyproject.toml) | sha256sum | cut -c1-12)
DEPS=$CACHE/worker-deps-$DEPS_KEY
SOURCE_KEY=$( (echo "$DEPS_KEY"; find endpoint_pkg/compute_endpoint -name '*.py' -print0 | sort -z |
               xargs -0 cat) | sha256sum | cut -c1-12)
IMAGE=$CACHE/worker-image-$SOURCE_KEY
PODMAN_NAME=localhost/compute-endpoint-worker:$SOURCE_KEY

mkdir -p "$CACHE"
exec 9>"$CACHE/.worker-image.lock"
flock 9

if [ ! -f "$DEPS/.complete" ]; then
    command -v debootstrap >/dev/null || { echo "debootstrap is missing: apt-get install debootstrap" >&2; exit 1; }
    rm -rf "$DEPS.tmp"
    echo "==> debootstrap the worker image's root into $DEPS (once; a few minutes)" >&2
    debootstrap --variant=minbase --include="$PACKAGES" bookworm "$DEPS.tmp" "$MIRROR" >&2
    chroot "$DEPS.tmp" python3 -m venv /opt/compute-endpoint
    # Dependencies only, from pyproject.toml: the package comes per source tree, below. They are
    # built here (this host's pip settings reach the index) and installed in the root offline.
    python3 - > "$DEPS.tmp/tmp/requirements.txt" <<'PY'
import tomllib
print("\n".join(tomllib.load(open("endpoint_pkg/pyproject.toml", "rb"))["project"]["dependencies"]))
PY
    mkdir -p "$DEPS.tmp/tmp/wheels"
    "${PYTHON:-python3}" -m pip wheel -q -r "$DEPS.tmp/tmp/requirements.txt" -w "$DEPS.tmp/tmp/wheels" >&2
    chroot "$DEPS.tmp" /opt/compute-endpoint/bin/pip install -q --no-index --find-links /tmp/wheels \
        -r /tmp/requirements.txt >&2
    rm -rf "$DEPS.tmp/tmp/requirements.txt" "$DEPS.tmp/tmp/wheels" "$DEPS.tmp/root/.cache" "$DEPS.tmp/var/cache/apt/archives"/*.deb
    touch "$DEPS.tmp/.complete"
    mv "$DEPS.tmp" "$DEPS"
fi

if [ ! -f "$IMAGE/.complete" ]; then
    rm -rf "$IMAGE.tmp" "$CACHE"/worker-image-*  # one source tree's image at a time
    echo "==> installing this source tree into $IMAGE" >&2
    cp -a "$DEPS" "$IMAGE.tmp"
    rm -f "$IMAGE.tmp/.complete"
    wheels=$(mktemp -d)
    "${PYTHON:-python3}" -m pip wheel -q --no-deps ./endpoint_pkg -w "$wheels" >&2
    cp "$wheels"/compute_endpoint-*.whl "$IMAGE.tmp/tmp/"
    rm -rf "$wheels" endpoint_pkg/build
    chroot "$IMAGE.tmp" sh -c '/opt/compute-endpoint/bin/pip install -q --no-deps /tmp/compute_endpoint-*.whl && rm /tmp/*.whl' >&2
    # Where the package is, for whoever runs the image: python3 on PATH is the venv's.
    ln -sf /opt/compute-endpoint/bin/compute-endpoint "$IMAGE.tmp/usr/local/bin/compute-endpoint"
    printf 'compute-endpoint worker image %s\n' "$SOURCE_KEY" > "$IMAGE.tmp/etc/compute-endpoint-image"
    touch "$IMAGE.tmp/.complete"
    mv "$IMAGE.tmp" "$IMAGE"
fi

if [ "${1:-}" = "--podman" ]; then
    if ! podman image exists "$PODMAN_NAME"; then
        echo "==> podman import $PODMAN_NAME" >&2
        # Images of older source trees go first: one is kept, as for the directory images.
        podman images --filter=reference=localhost/compute-endpoint-worker --format '{{.Repository}}:{{.Tag}}' |
            xargs -r podman rmi --force >/dev/null 2>&1 || true
        tar -C "$IMAGE" --exclude=./.complete -c . |
            podman import --change 'ENV PATH=/opt/compute-endpoint/bin:/usr/local/bin:/usr/bin:/bin' - "$PODMAN_NAME" >&2
    fi
    echo "$PODMAN_NAME"
else
    echo "$IMAGE"
fi
