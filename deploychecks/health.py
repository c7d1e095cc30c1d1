"""/healthz: the database, the broker and a worker's heartbeat, as JSON.

200 when the database and the broker answer; the worker's heartbeat is reported (and makes the
answer 503 only when `?worker=1` asks for it), so App Platform's health check does not restart the
web service because a worker is briefly down.
"""
import time
from datetime import timedelta

from django.conf import settings
from django.db import connection
from kombu import Connection
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from checks.redact import redact_url

from .models import WorkerHeartbeat

WORKER_STALE = timedelta(minutes=2)


def _database():
    started = time.monotonic()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"ok": True, "ms": round(1000 * (time.monotonic() - started), 2),
                "vendor": connection.vendor}
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__}


def _broker():
    url = settings.CELERY_BROKER_URL
    try:
        options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})
        with Connection(url, transport_options=options, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return {"ok": True, "url": redact_url(url)}
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__,
                "url": redact_url(url)}


def _worker():
    beat = WorkerHeartbeat.objects.order_by("-seen_at").first()
    if beat is None:
        return {"ok": False, "error": "no worker heartbeat yet"}
    age = timezone.now() - beat.seen_at
    return {"ok": age < WORKER_STALE, "host": beat.hostname, "age_seconds": round(age.total_seconds())}


@never_cache
@require_GET
def healthz(request):
    database = _database()
    checks = {"database": database, "broker": _broker()}
    checks["worker"] = _worker() if database["ok"] else {"ok": False, "error": "database down"}
    needed = ["database", "broker"] + (["worker"] if request.GET.get("worker") else [])
    ok = all(checks[name]["ok"] for name in needed)
    return JsonResponse({"ok": ok, "checks": checks}, status=200 if ok else 503)
