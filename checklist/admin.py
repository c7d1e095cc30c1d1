from django.contrib import admin

from .models import (
    ApiToken, AuditEvent, ChecklistTemplate, CommandSpec, ContactField, Evidence, Group, Item,
    ItemState, JobBinding, Phase, Runbook, RunbookSource, SignOff, TaskRun,
)


class PhaseInline(admin.TabularInline):
    model = Phase
    extra = 0


@admin.register(ChecklistTemplate)
class ChecklistTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "version", "sha256", "imported_at"]
    readonly_fields = ["source_text", "sha256"]
    inlines = [PhaseInline]


@admin.register(Group)
class GroupAdmin(admin.ModelAdmin):
    list_display = ["title", "phase", "section", "order"]
    list_filter = ["phase__template"]


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ["text", "group", "if_applicable"]
    list_filter = ["group__phase__template", "group__phase"]
    search_fields = ["text"]


admin.site.register(ContactField)


class ItemStateInline(admin.TabularInline):
    model = ItemState
    extra = 0
    can_delete = False
    fields = ["item", "checked", "checked_by", "checked_at", "not_applicable"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Runbook)
class RunbookAdmin(admin.ModelAdmin):
    list_display = ["name", "template", "created_at", "created_by"]
    # State changes go through the app, which applies the rules and writes the audit log.
    readonly_fields = ["template", "revision", "created_at", "created_by"]
    inlines = [ItemStateInline]


@admin.register(SignOff)
class SignOffAdmin(admin.ModelAdmin):
    list_display = ["runbook", "phase", "lead", "created_at", "withdrawn_at"]

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["seq", "created_at", "actor_label", "action", "object_type", "object_id"]
    list_filter = ["action"]
    search_fields = ["actor_label", "object_id"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "created_at", "last_used_at"]
    readonly_fields = ["key_sha256"]


@admin.register(JobBinding)
class JobBindingAdmin(admin.ModelAdmin):
    """Which job kind earns which item: data, editable here."""

    list_display = ["kind", "item"]
    list_filter = ["kind", "item__group__phase__template"]
    search_fields = ["item__text", "kind"]
    autocomplete_fields = ["item"]


@admin.register(CommandSpec)
class CommandSpecAdmin(admin.ModelAdmin):
    """Only admins configure which commands exist; members just run them."""

    list_display = ["name", "argv", "workdir", "timeout_seconds"]

    def has_module_permission(self, request):
        return request.user.is_superuser

    has_view_permission = has_add_permission = has_module_permission

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    has_delete_permission = has_change_permission


class EvidenceInline(admin.TabularInline):
    model = Evidence
    extra = 0
    can_delete = False
    fields = readonly_fields = ["name", "kind", "sha256", "size", "created_at"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(TaskRun)
class TaskRunAdmin(admin.ModelAdmin):
    list_display = ["pk", "runbook", "kind", "state", "started_by", "created_at", "finished_at"]
    list_filter = ["state", "kind"]
    inlines = [EvidenceInline]

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False


@admin.register(RunbookSource)
class RunbookSourceAdmin(admin.ModelAdmin):
    list_display = ["runbook", "name", "path"]
