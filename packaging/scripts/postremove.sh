#!/bin/sh
# After removal (dpkg: remove|purge|upgrade|...; rpm: 0 erase, 1 upgrade).
set -e

case "$1" in
    purge)
        # Remove keeps configuration and state; purge removes both, and what
        # workers left in their home. The accounts stay, so that their uids are
        # never reused for other files.
        rm -rf /etc/compute-endpoint /var/lib/compute-endpoint /var/lib/compute-endpoint-workers
        ;;
esac
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
fi
exit 0
