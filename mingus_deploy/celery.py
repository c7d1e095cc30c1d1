"""The Celery app.

With no CELERY_BROKER_URL the broker is kombu's filesystem transport under var/: tasks still run in
a separate worker process (`celery -A mingus_deploy worker`), and nothing needs a server. With
CELERY_BROKER_URL=redis://... the same code runs on Redis with any number of workers.
"""
import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mingus_deploy.settings")

app = Celery("mingus_deploy")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


# Audit events a task records carry the task's id as their request id (there is no client).
_origin_tokens = {}


@task_prerun.connect
def _audit_origin_start(task_id=None, **kwargs):
    from checklist import audit

    _origin_tokens[task_id] = audit.set_origin(f"task-{task_id}", "")


@task_postrun.connect
def _audit_origin_end(task_id=None, **kwargs):
    from checklist import audit

    token = _origin_tokens.pop(task_id, None)
    if token is not None:
        audit.reset_origin(token)
