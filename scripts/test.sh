#!/usr/bin/env bash
# `make test`: install what the suite needs and run all of it (PostgreSQL, Redis, a real Celery
# worker, Debian's Chromium). Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "$0")/venv.sh"

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "Installing Debian's chromium for the browser tests ..."
    apt-get install -y -q chromium >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
  else
    echo "chromium is missing and this is not root: install it with 'sudo apt-get install chromium'" >&2
  fi
fi
# The local services the suite talks to; start them if they stopped.
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
fi
if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true
fi
exec .venv/bin/pytest -p no:cacheprovider "$@"
