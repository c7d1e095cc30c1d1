"""The Django admin: a window on the data, and writes only through audited actions.

Every model the admin may change goes through `AuditedAdmin`, whose saves and deletes call
`actions.admin_save` / `actions.admin_delete` (one transaction, the runbook's lock when the object
has a runbook, the `can_admin_write` rule, an audit event with before and after). Models whose
state belongs to the app's own actions (runbooks and their item states, sign-offs, runs, evidence,
the audit log) are read-only here. A template version a runbook uses is read-only too.
"""
from django.contrib import admin
from django.core.exceptions import PermissionDenied

from . import actions, rules
from .models import (
    ApiToken, AuditEvent, ChecklistTemplate, CommandSpec, ContactField, Evidence, Group, Item,
    ItemState, JobBinding, Phase, Runbook, RunbookSource, SignOff, TaskRun,
)


def _call(action, *args):
    try:
        return action(*args)
    except actions.Refused as refused:
        raise PermissionDenied(str(refused)) from None


class AuditedWrites:
    """Route the admin's writes (its own form, its inlines, bulk delete) through the actions, and
    offer no write the rule would refuse."""

    def _writable(self, request, obj):
        return obj is None or bool(rules.can_admin_write(request.user, obj))

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._writable(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._writable(request, obj)


class AuditedInline(AuditedWrites, admin.TabularInline):
    extra = 0

    def has_add_permission(self, request, obj=None):
        return super().has_add_permission(request, obj) and self._writable(request, obj)


class AuditedAdmin(AuditedWrites, admin.ModelAdmin):
    def save_model(self, request, obj, form, change):
        _call(actions.admin_save, request.user, obj, change)

    def delete_model(self, request, obj):
        _call(actions.admin_delete, request.user, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            _call(actions.admin_delete, request.user, obj)

    def save_formset(self, request, form, formset, change):
        instances = formset.save(commit=False)
        for obj in formset.deleted_objects:
            _call(actions.admin_delete, request.user, obj)
        for obj in instances:
            _call(actions.admin_save, request.user, obj, obj.pk is not None)
        formset.save_m2m()


class ReadOnlyAdmin(admin.ModelAdmin):
    """State the app's own actions write (with their rules and audit events): view only."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class PhaseInline(AuditedInline):
    model = Phase


@admin.register(ChecklistTemplate)
class ChecklistTemplateAdmin(AuditedAdmin):
    list_display = ["name", "version", "sha256", "imported_at"]
    readonly_fields = ["source_text", "sha256"]
    inlines = [PhaseInline]


@admin.register(Group)
class GroupAdmin(AuditedAdmin):
    list_display = ["title", "phase", "section", "order"]
    list_filter = ["phase__template"]


@admin.register(Item)
class ItemAdmin(AuditedAdmin):
    list_display = ["text", "key", "group", "if_applicable"]
    list_filter = ["group__phase__template", "group__phase"]
    search_fields = ["text", "key"]


@admin.register(ContactField)
class ContactFieldAdmin(AuditedAdmin):
    list_display = ["label", "template", "section"]


class ItemStateInline(admin.TabularInline):
    model = ItemState
    extra = 0
    can_delete = False
    fields = ["item", "checked", "checked_by", "checked_at", "not_applicable"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Runbook)
class RunbookAdmin(ReadOnlyAdmin):
    # State changes go through the app, which applies the rules and writes the audit log.
    list_display = ["name", "template", "created_at", "created_by"]
    inlines = [ItemStateInline]


@admin.register(SignOff)
class SignOffAdmin(ReadOnlyAdmin):
    list_display = ["runbook", "phase", "lead", "created_at", "withdrawn_at"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["seq", "created_at", "actor_label", "action", "object_type", "object_id",
                    "client_addr"]
    list_filter = ["action"]
    search_fields = ["actor_label", "object_id", "request_id"]


@admin.register(ApiToken)
class ApiTokenAdmin(AuditedAdmin):
    """Tokens are made by `create_api_token` (which prints the key once); here they are renamed
    or revoked (deleted), both audited."""

    list_display = ["name", "user", "created_at", "last_used_at"]
    readonly_fields = ["user", "key_sha256", "created_at", "last_used_at"]

    def has_add_permission(self, request):
        return False


@admin.register(JobBinding)
class JobBindingAdmin(AuditedAdmin):
    """Which job kind earns which item: data, editable here, audited."""

    list_display = ["kind", "item"]
    list_filter = ["kind", "item__group__phase__template"]
    search_fields = ["item__text", "kind"]
    autocomplete_fields = ["item"]


@admin.register(CommandSpec)
class CommandSpecAdmin(AuditedAdmin):
    """Only admins configure which commands exist; members just run them."""

    list_display = ["name", "argv", "workdir", "timeout_seconds"]

    def has_module_permission(self, request):
        return request.user.is_superuser

    # Django calls these with the object too (has_view_permission(request, obj)): one shared
    # one-argument method made the change list a 500.
    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser and super().has_delete_permission(request, obj)


class EvidenceInline(admin.TabularInline):
    model = Evidence
    extra = 0
    can_delete = False
    fields = readonly_fields = ["name", "kind", "sha256", "size", "created_at"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(TaskRun)
class TaskRunAdmin(ReadOnlyAdmin):
    list_display = ["pk", "runbook", "kind", "state", "started_by", "created_at", "finished_at"]
    list_filter = ["state", "kind"]
    inlines = [EvidenceInline]


@admin.register(RunbookSource)
class RunbookSourceAdmin(AuditedAdmin):
    list_display = ["runbook", "name", "path"]
