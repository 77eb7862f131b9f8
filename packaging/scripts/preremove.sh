#!/bin/sh
# Before removal (dpkg: remove|upgrade|deconfigure; rpm: 0 erase, 1 upgrade).
set -e

case "$1" in
    remove|0)
        if [ -d /run/systemd/system ]; then
            systemctl stop 'compute-endpoint-stack@*.target' 'compute-endpoint@*.service' \
                'compute-interchange@*.service' 'compute-manager@*.service' || true
            for link in /etc/systemd/system/*.wants/compute-endpoint-stack@*.target \
                        /etc/systemd/system/*.wants/compute-manager@*.service; do
                [ -L "$link" ] && systemctl disable "$(basename "$link")" || true
            done
        fi
        find /opt/compute-endpoint -name __pycache__ -type d -prune -exec rm -rf {} + 2>/dev/null || true
        ;;
esac
exit 0
