from django.apps import AppConfig


class DeployChecksConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "deploychecks"
