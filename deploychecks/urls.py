"""Include under "deploychecks/": path("deploychecks/", include("deploychecks.urls"))."""
from django.urls import path

from . import views

urlpatterns = [
    path("runbooks/<int:runbook_id>/settings/", views.settings_page, name="check-settings"),
    path("runbooks/<int:runbook_id>/proof-settings/", views.proof_settings_page,
         name="proof-settings"),
    path("runbooks/<int:runbook_id>/triggers/", views.banner_partial, name="trigger-banner"),
    path("runbooks/<int:runbook_id>/criteria/", views.criteria_partial, name="success-criteria"),
    path("runbooks/<int:runbook_id>/monitoring/", views.monitoring_partial,
         name="monitoring"),
]
