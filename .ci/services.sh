#!/usr/bin/env bash
# Start the services the tests use if they are down. Tests talk to 127.0.0.1 only.
set -euo pipefail
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  if command -v pg_ctlcluster >/dev/null; then
    echo "starting PostgreSQL" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
    for _ in $(seq 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
  fi
fi
if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  echo "PostgreSQL is up" >&2
else
  echo "PostgreSQL is not available: its tests will be skipped" >&2
fi

# RabbitMQ (the machine starts it) with its STOMP plugin on 61613, for the notification tests
if command -v rabbitmqctl >/dev/null; then
  if ! rabbitmqctl -q status >/dev/null 2>&1; then
    echo "starting RabbitMQ" >&2
    rabbitmq-server -detached || true
    rabbitmqctl -q wait --timeout 60 /var/lib/rabbitmq/mnesia/rabbit@"$(hostname -s)".pid >/dev/null 2>&1 || true
  fi
  if ! rabbitmq-plugins -q is_enabled rabbitmq_stomp >/dev/null 2>&1; then
    echo "enabling the RabbitMQ STOMP plugin" >&2
    rabbitmq-plugins -q enable rabbitmq_stomp || true
  fi
  for _ in $(seq 30); do (exec 3<>/dev/tcp/127.0.0.1/61613) 2>/dev/null && break; sleep 1; done
  if (exec 3<>/dev/tcp/127.0.0.1/61613) 2>/dev/null; then
    echo "RabbitMQ STOMP is up on 61613" >&2
  else
    echo "RabbitMQ STOMP is not available on 61613: its tests will be skipped" >&2
  fi
fi
