"""Pages of checklist templates: the list with a lead's import form, one version's page (its
phases and why each is gated, what the import changed, a lead's gating control, item bindings and
item keys).

Same habits as views.py: load what the user may see, call one action, render. A template's text
is hostile until the importer has read it: the upload is bounded in size and every refusal is a
400 page naming the line, never a 500.
"""
from django.conf import settings
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from . import actions, jobs, rules
from .binding_suggest import suggest
from .importer import ChecklistParseError
from .models import ChecklistTemplate, Group, Item, Phase
from .template_diff import diff_templates
from .views import _refused, reader_required


def _template(template_id):
    return get_object_or_404(ChecklistTemplate, pk=template_id)


def _list_context(request, **extra):
    templates = ChecklistTemplate.objects.order_by("name", "-version")
    return {"templates": templates, "may_import": bool(rules.can_import_template(request.user)),
            "max_bytes": settings.CHECKLIST_MAX_BYTES, **extra}


@require_GET
@reader_required
def template_list(request):
    return render(request, "checklist/template_list.html", _list_context(request))


@require_POST
@reader_required
def template_import(request):
    """A lead uploads a Markdown file (or pastes its text): a new template version."""
    decision = rules.can_import_template(request.user)
    if not decision:
        try:
            actions.deny(request.user, "template-import", decision)
        except actions.Refused as refused:
            return _refused(request, refused)
    upload = request.FILES.get("file")
    limit = settings.CHECKLIST_MAX_BYTES
    if upload is not None:
        if upload.size > limit:
            return _bad_upload(request, f"file: {upload.size} bytes, more than the {limit} allowed.")
        raw = upload.read(limit + 1)
    else:
        raw = request.POST.get("text", "").encode("utf-8", errors="surrogatepass")
        if len(raw) > limit:
            return _bad_upload(request, f"text: {len(raw)} bytes, more than the {limit} allowed.")
    if not raw.strip():
        return _bad_upload(request, "file: choose a Markdown file or paste the checklist's text.")
    name = request.POST.get("name", "").strip() or None
    try:
        template, created = actions.upload_template(request.user, raw, name=name)
    except actions.Refused as refused:
        return _refused(request, refused)
    except ChecklistParseError as error:
        where = getattr(upload, "name", "text")
        return _bad_upload(request, f"{where}: {error}")
    return redirect(reverse("template-detail", args=[template.pk]) +
                    ("?imported=1" if created else "?same=1"))


def _bad_upload(request, message):
    return render(request, "checklist/template_list.html",
                  _list_context(request, error=message), status=400)


def template_context(request, template):
    items = Item.objects.order_by("order")
    groups = Group.objects.order_by("order").prefetch_related(Prefetch("items", queryset=items))
    phases = list(template.phases.order_by("order").prefetch_related(
        Prefetch("groups", queryset=groups)))
    gating = rules.can_change_gating(request.user, template)
    keys = rules.can_edit_item_keys(request.user, template)
    may_bind = bool(rules.can_change_bindings(request.user, template))
    bound = jobs.template_bindings(template)
    choices = jobs.binding_choices()
    words = dict(choices)
    for phase in phases:
        for group in phase.groups.all():
            for item in group.items.all():
                item.bound = bound.get(item.pk, [])
                kinds = [value.partition("/")[0] for value, _ in item.bound]
                item.suggested = [(s, words.get(s, s)) for s in
                                  suggest(item.text, jobs.REGISTRY, kinds)] if may_bind else []
    versions = ChecklistTemplate.objects.filter(name=template.name).order_by("-version")
    against = _compared_with(request, template, versions)
    return {
        "against": against,
        "diff": diff_templates(against, template) if against is not None else None,
        "template": template,
        "phases": phases,
        "kinds": Phase.KIND_CHOICES,
        "items": sum(len(g.items.all()) for p in phases for g in p.groups.all()),
        "groups": sum(len(p.groups.all()) for p in phases),
        "versions": versions,
        "runbooks": template.runbooks.order_by("-created_at"),
        "may_change_gating": bool(gating),
        "may_bind": may_bind,
        "binding_choices": choices,
        "may_edit_keys": bool(keys),
        # Leads see why keys are fixed; members see keys read-only, without a lead's reason.
        "keys_fixed_reason": "" if keys or not rules.can_lead(request.user) else keys.reason,
        "keeping": template.runbooks.count(),
        "gating_fixed_reason": "" if gating or not rules.can_lead(request.user) else gating.reason,
        "imported": request.GET.get("imported") == "1",
        "same": request.GET.get("same") == "1",
    }


def _compared_with(request, template, versions):
    """The version the page diffs against: ?against=ID (same name), else the one before."""
    wanted = request.GET.get("against", "")
    if wanted.isdigit() and len(wanted) < 12:
        chosen = versions.filter(pk=int(wanted)).exclude(pk=template.pk).first()
        if chosen is not None:
            return chosen
    return versions.filter(version__lt=template.version).first()


@require_GET
@reader_required
def template_detail(request, template_id):
    template = _template(template_id)
    return render(request, "checklist/template.html", template_context(request, template))


@require_POST
@reader_required
def item_binding(request, template_id, item_id):
    """Bind (or with unbind=1, unbind) an item to a job kind; htmx gets the phases back."""
    item = get_object_or_404(Item, pk=item_id, group__phase__template_id=template_id)
    # "kind" or "kind/part" (a success criterion, a rollback trigger): one field, so a suggestion
    # or a choice in the list is one click.
    kind, _, part = request.POST.get("binding", request.POST.get("kind", "")).partition("/")
    try:
        actions.bind_item(request.user, item, kind, bound=request.POST.get("unbind") != "1",
                          part=part)
    except actions.Refused as refused:
        return _refused(request, refused)
    template = _template(template_id)
    if request.htmx:
        return render(request, "checklist/_template_phases.html", template_context(request, template))
    return redirect(reverse("template-detail", args=[template.pk]) + f"#titem-{item.pk}")


@require_POST
@reader_required
def item_key(request, template_id, item_id):
    """A lead sets an item's stable key (blank for none); htmx gets the phases back."""
    item = get_object_or_404(Item, pk=item_id, group__phase__template_id=template_id)
    try:
        actions.set_item_key(request.user, item, request.POST.get("key", "").strip())
    except actions.Refused as refused:
        return _refused(request, refused)
    template = _template(template_id)
    if request.htmx:
        return render(request, "checklist/_template_phases.html", template_context(request, template))
    return redirect(reverse("template-detail", args=[template.pk]) + f"#titem-{item.pk}")


@require_POST
@reader_required
def phase_gating(request, template_id, phase_id):
    phase = get_object_or_404(Phase, pk=phase_id, template_id=template_id)
    try:
        actions.set_phase_gating(request.user, phase, request.POST.get("kind", ""))
    except actions.Refused as refused:
        return _refused(request, refused)
    template = _template(template_id)
    context = template_context(request, template)
    if request.htmx:
        return render(request, "checklist/_template_phases.html", context)
    return redirect("template-detail", template_id=template.pk)
