"""The Celery app.

With no CELERY_BROKER_URL the broker is kombu's filesystem transport under var/: tasks still run in
a separate worker process (`celery -A mingus_deploy worker`), and nothing needs a server. With
CELERY_BROKER_URL=redis://... the same code runs on Redis with any number of workers.
"""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mingus_deploy.settings")

app = Celery("mingus_deploy")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
