#!/usr/bin/env bash
# `make run`: set up and start mingus-deploy locally with embedded defaults (SQLite for the app's
# data, a filesystem Celery broker under var/): the web server and a worker process, no Redis.
set -euo pipefail
source "$(dirname "$0")/venv.sh"
export DEBUG=${DEBUG:-true}
PORT=${PORT:-8000}
SEED=${MINGUS_SEED:-../shared/seed/mingus-deployment-checklist.md}
FIXTURES=${MINGUS_FIXTURES:-../shared/fixtures/mingus}
PY=.venv/bin/python

$PY manage.py migrate --noinput -v 0
if [ -f "$SEED" ]; then
  $PY manage.py import_checklist "$SEED" --name MINGUS
else
  echo "No checklist at $SEED (set MINGUS_SEED=path to import one)."
fi
logins=$($PY manage.py seed_demo ${DEMO_PASSWORD:+--password "$DEMO_PASSWORD"})
$PY manage.py demo_runbook --fixtures "$FIXTURES"

mkdir -p var/log
.venv/bin/celery -A mingus_deploy worker --loglevel INFO -c 2 >var/log/worker.log 2>&1 &
worker=$!
.venv/bin/celery -A mingus_deploy beat --loglevel INFO -s var/celerybeat-schedule >var/log/beat.log 2>&1 &
beat=$!
trap 'kill $worker $beat 2>/dev/null; wait 2>/dev/null' EXIT INT TERM

cat <<MSG

  mingus-deploy is running at http://127.0.0.1:$PORT/
  Worker log: var/log/worker.log   (Ctrl-C stops the server and the worker)
$logins

MSG
.venv/bin/gunicorn mingus_deploy.wsgi -b "127.0.0.1:$PORT" -w 2 --access-logfile - --error-logfile -
