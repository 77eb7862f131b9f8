#!/usr/bin/env bash
# The systemd units and the command wrapper have one source: the compute_common
# role's templates, which the wheel install path renders with Ansible. The
# packages ship the same templates rendered here for their own prefix.
#   render-units.sh OUTDIR [PREFIX]   writes OUTDIR/systemd/* and OUTDIR/bin/compute-endpoint
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$1
PREFIX=${2:-/opt/compute-endpoint}
mkdir -p "$OUT/systemd" "$OUT/bin"
for template in roles/compute_common/templates/*.j2; do
    name=$(basename "$template" .j2)
    case $name in
        compute-endpoint.sh) target=$OUT/bin/compute-endpoint ;;
        *) target=$OUT/systemd/$name ;;
    esac
    # Only two expressions appear in these templates: Ansible's header, and the prefix.
    sed -e '/{{ ansible_managed | comment }}/d' -e "s|{{ compute_common_prefix }}|$PREFIX|g" "$template" > "$target"
    if grep -nE '\{\{|\{%' "$target" >&2; then
        echo "$template uses template syntax that $0 does not render" >&2
        exit 1
    fi
done
