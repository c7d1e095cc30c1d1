from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from checklist import api
from deploychecks.health import healthz

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("api/runbooks/<int:runbook_id>/", api.runbook_detail, name="api-runbook"),
    path("api/runbooks/<int:runbook_id>/jobs/", api.runbook_jobs, name="api-runbook-jobs"),
    path("api/items/<int:item_id>/key/", api.item_key, name="api-item-key"),
    path("deploychecks/", include("deploychecks.urls")),
    path("", include("checklist.urls")),
]
