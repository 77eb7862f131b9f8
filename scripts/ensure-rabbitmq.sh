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

# Without systemd (containers, CI) the node is started directly, with the open-file limit its systemd unit
# gives it (LimitNOFILE=65536). Started through `su` (as /usr/sbin/rabbitmq-server does), it would get PAM's
# 1024: once a few hundred quorum queues exist it runs out, and new connections hang in the AMQP handshake.
start_node() {
    $SUDO sh -c 'ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"; cd /var/lib/rabbitmq &&
        exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups env HOME=/var/lib/rabbitmq \
            /usr/lib/rabbitmq/bin/rabbitmq-server -detached'
}

if $SUDO rabbitmqctl -q status >/dev/null 2>&1; then
    echo "==> RabbitMQ is already running"
    pid=$(pgrep -u rabbitmq -f 'beam.*rabbit' | head -1 || true)
    limit=$(awk '/Max open files/ {print $4}' "/proc/${pid:-0}/limits" 2>/dev/null || echo 65536)
    if [ "${limit:-65536}" -lt 10000 ]; then
        echo "warning: RabbitMQ (pid $pid) may open only $limit files; quorum queues need more." \
             "Restart it: rabbitmqctl stop; $0" >&2
    fi
else
    echo "==> starting RabbitMQ"
    start_node
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
