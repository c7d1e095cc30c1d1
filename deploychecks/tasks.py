"""Celery tasks of the deployment checks (and nothing else): the worker heartbeat, monitoring,
notification delivery and the leads' digest."""
import socket

from celery import shared_task
from celery.signals import worker_ready
from django.utils import timezone

from . import delivery, monitor, notify
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
    return monitor.run_due()


# One try per run of the task (recorded on the row); a failed try raises DeliveryError while
# tries remain, and Celery queues the next one after an exponential backoff with jitter
# (about 1, 2, 4 ... seconds, at most 30). How many tries: DEPLOYCHECKS_NOTIFY_ATTEMPTS, which
# delivery.attempt() reads, so max_retries is left open here.
@shared_task(name=notify.DELIVER_TASK, ignore_result=True, autoretry_for=(delivery.DeliveryError,),
             retry_backoff=True, retry_backoff_max=30, retry_jitter=True,
             retry_kwargs={"max_retries": None})
def deliver_notification(notification_id):
    """Try to send one notification (email or webhook)."""
    delivery.attempt(notification_id)


@shared_task(name="deploychecks.digest", ignore_result=True)
def digest():
    """Beat: the leads' digest of every runbook's state."""
    notify.send_digest()
