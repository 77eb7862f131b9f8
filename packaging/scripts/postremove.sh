#!/bin/sh
# After removal (dpkg: remove|purge|upgrade|...; rpm: 0 erase, 1 upgrade).
set -e

case "$1" in
    purge)
        # Remove keeps configuration and state; purge removes both. The
        # compute-endpoint account stays, so its uid is never reused for other files.
        rm -rf /etc/compute-endpoint /var/lib/compute-endpoint
        ;;
esac
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
fi
exit 0
