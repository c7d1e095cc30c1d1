from django.urls import path

from . import api, views

urlpatterns = [
    path("", views.runbook_list, name="runbook-list"),
    path("runbooks/start/", views.runbook_start, name="runbook-start"),
    path("runbooks/<int:runbook_id>/", views.runbook_page, name="runbook"),
    path("runbooks/<int:runbook_id>/poll/", views.runbook_poll, name="runbook-poll"),
    path("runbooks/<int:runbook_id>/items/<int:state_id>/tick/", views.item_tick, name="item-tick"),
    path("runbooks/<int:runbook_id>/items/<int:state_id>/untick/", views.item_untick,
         name="item-untick"),
    path("runbooks/<int:runbook_id>/items/<int:state_id>/note/", views.item_note, name="item-note"),
    path("runbooks/<int:runbook_id>/items/<int:state_id>/not-applicable/",
         views.item_not_applicable, name="item-not-applicable"),
    path("runbooks/<int:runbook_id>/items/<int:state_id>/applicable/", views.item_applicable,
         name="item-applicable"),
    path("runbooks/<int:runbook_id>/phases/<int:phase_id>/sign-off/", views.phase_sign_off,
         name="phase-sign-off"),
    path("runbooks/<int:runbook_id>/go-live/", views.go_live_page, name="go-live"),
    path("runbooks/<int:runbook_id>/go-live/request/", views.go_live_request,
         name="go-live-request"),
    path("runbooks/<int:runbook_id>/go-live/approve/", views.go_live_approve,
         name="go-live-approve"),
    path("runbooks/<int:runbook_id>/contacts/<int:field_id>/", views.contact_edit,
         name="contact-edit"),
    path("api/runbooks/<int:runbook_id>/", api.runbook_detail, name="api-runbook"),
]
