"""Celery tasks of the deployment checks."""
import socket

from celery import shared_task
from celery.signals import worker_ready
from django.utils import timezone

from .models import WorkerHeartbeat


@shared_task(name="deploychecks.worker_heartbeat", ignore_result=True)
def worker_heartbeat():
    """Proves a worker is consuming the queue: /healthz reports its age."""
    WorkerHeartbeat.objects.update_or_create(hostname=socket.gethostname(),
                                             defaults={"seen_at": timezone.now()})


@worker_ready.connect
def _beat_at_start(**kwargs):
    worker_heartbeat()


@shared_task(name="deploychecks.monitor_due", ignore_result=True)
def monitor_due():
    """Beat: sample the runbooks whose monitoring interval has passed; evaluate triggers."""
    from .monitor import run_due

    return run_due()


@shared_task(name="deploychecks.deliver_notification", ignore_result=True)
def deliver_notification(notification_id):
    """Send one notification (email or webhook), with bounded retries recorded on its row."""
    from .notify import deliver

    deliver(notification_id)


@shared_task(name="deploychecks.digest", ignore_result=True)
def digest():
    """Beat: the leads' digest of every runbook's state."""
    from .notify import send_digest

    send_digest()
