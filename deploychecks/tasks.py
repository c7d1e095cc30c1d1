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
