"""`{% live_events runbook "runbook" %}`: the element that opens a page's live stream
(checklist/live_views.py) through the htmx SSE extension; nothing under a server that does not
stream (the page then polls)."""
from django import template
from django.urls import reverse
from django.utils.html import format_html

register = template.Library()


@register.simple_tag(takes_context=True)
def live_events(context, runbook, page="runbook", pk=None):
    """`page` is runbook, go-live, item (pk: the item state) or run (pk: the run)."""
    from checklist.live_views import streams

    request = context.get("request")
    if request is None or not streams(request):
        return ""
    url = f"{reverse('runbook-events', args=[runbook.pk])}?page={page}&rev={runbook.revision}"
    if pk is not None:
        param = {"item": "state", "run": "run"}[page]
        url += f"&{param}={int(pk)}"
    # hx-swap="none": an event holds only out-of-band swaps, each finding its element by id
    # (the "live" extension in live.js drops those the page does not show).
    return format_html('<div id="live" hidden hx-ext="sse,live" sse-connect="{}" '
                       'sse-swap="message" hx-swap="none" data-live="closed"></div>', url)
