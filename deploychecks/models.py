"""What the deployment checks keep: worker heartbeats, per-runbook check settings, baselines,
monitoring samples, rollback-trigger firings and notifications."""
from django.conf import settings
from django.db import models
from django.utils import timezone


class WorkerHeartbeat(models.Model):
    """One row per worker host, touched by beat; /healthz reads it."""

    hostname = models.CharField(max_length=200, unique=True)
    seen_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"{self.hostname} @ {self.seen_at:%H:%M:%S}"
