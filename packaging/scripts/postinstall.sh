#!/bin/sh
# After install or upgrade (dpkg: configure [old-version]; rpm: 1 install, 2 upgrade).
set -e

systemd-sysusers compute-endpoint.conf
systemd-tmpfiles --create compute-endpoint.conf

# The key that encrypts stored broker credentials: root's alone. The units
# receive it as a systemd credential (LoadCredential=).
if [ ! -e /etc/compute-endpoint/credentials.key ]; then
    (umask 077 && /opt/compute-endpoint/bin/python3 -c \
        'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())' \
        > /etc/compute-endpoint/credentials.key)
fi

# Byte-compile once here: the services may not write to /opt (ProtectSystem=strict).
/opt/compute-endpoint/bin/python3 -m compileall -q /opt/compute-endpoint/lib >/dev/null 2>&1 || true

if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    upgrade=
    case "$1" in
        configure) [ -n "$2" ] && upgrade=1 ;;
        2) upgrade=1 ;;
    esac
    if [ -n "$upgrade" ]; then
        # Running endpoints restart on the new code. Each drains its tasks in
        # flight (up to stop_timeout) and returns the rest to the broker, where
        # queued tasks wait: none is lost.
        systemctl try-restart 'compute-endpoint-stack@*.target' || true
    fi
fi
exit 0
