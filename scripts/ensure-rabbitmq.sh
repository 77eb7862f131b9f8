#!/usr/bin/env bash
# Make sure a RabbitMQ broker answers on 127.0.0.1:5672: install it with apt if it
# is missing, start a node if none runs, and wait until it serves.
set -euo pipefail

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

if ! command -v rabbitmqctl >/dev/null 2>&1; then
    echo "==> installing rabbitmq-server (apt)"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q rabbitmq-server
fi

if $SUDO rabbitmqctl -q status >/dev/null 2>&1; then
    echo "==> RabbitMQ is already running"
else
    echo "==> starting RabbitMQ"
    # Without systemd (containers, CI) the service is started directly.
    $SUDO rabbitmq-server -detached
fi

for _ in $(seq 1 90); do
    if $SUDO rabbitmqctl -q status >/dev/null 2>&1 && (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
        echo "==> RabbitMQ is serving on 127.0.0.1:5672"
        exit 0
    fi
    sleep 1
done
echo "RabbitMQ did not come up within 90 s; see /var/log/rabbitmq/" >&2
exit 1
