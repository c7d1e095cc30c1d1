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

VAR=${MINGUS_VAR_DIR:-var}
mkdir -p "$VAR/log"
# Each in a session of its own: Ctrl-C (or a signal to this script's process group) reaches only
# the web server and this script, whose stop() then shuts the worker down warmly. A signal to the
# whole group would also hit the worker's pool children and leave its main process waiting for
# them until the kill below.
setsid .venv/bin/celery -A mingus_deploy worker --loglevel INFO -c 2 >"$VAR/log/worker.log" 2>&1 &
worker=$!
setsid .venv/bin/celery -A mingus_deploy beat --loglevel INFO -s "$VAR/celerybeat-schedule" >"$VAR/log/beat.log" 2>&1 &
beat=$!
stop() {
  # A warm shutdown lets a running job finish its step; after 20 s the worker is killed, and the
  # run it leaves behind is marked lost (re-running it resumes).
  trap - EXIT INT TERM
  kill -TERM "$worker" "$beat" 2>/dev/null || true
  for _ in $(seq 40); do kill -0 "$worker" 2>/dev/null || break; sleep 0.5; done
  kill -KILL "$worker" "$beat" 2>/dev/null || true
}
trap stop EXIT INT TERM

cat <<MSG

  mingus-deploy is running at http://127.0.0.1:$PORT/
  Worker log: $VAR/log/worker.log   (Ctrl-C stops the server and the worker)
$logins

MSG
# The same ASGI server as app-spec.yaml runs: uvicorn workers stream the live pages.
.venv/bin/gunicorn mingus_deploy.asgi --worker-class uvicorn_worker.UvicornWorker -b "127.0.0.1:$PORT" -w 2 --graceful-timeout 5 --access-logfile - --error-logfile -
