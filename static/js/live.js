// Live pages: the htmx SSE extension (htmx-ext-sse.js) keeps one stream open per page
// (checklist/live_views.py); each event is a set of out-of-band swaps of what changed. While the
// stream is open the page's poller stays quiet; when it breaks, the poller takes over until the
// extension reconnects. No inline script anywhere (the CSP forbids it).
(function () {
  "use strict";
  var live = false;
  function source() { return document.querySelector("[sse-connect]"); }
  function setLive(on) {
    live = on;
    var el = source();
    if (el) el.setAttribute("data-live", on ? "open" : "closed");
  }
  document.addEventListener("htmx:sseOpen", function () { setLive(true); });
  document.addEventListener("htmx:sseError", function () { setLive(false); });
  document.addEventListener("htmx:sseClose", function () { setLive(false); });
  document.addEventListener("htmx:beforeRequest", function (e) {
    var elt = e.detail.elt;
    // The runbook's poller: the stream brings what it would. (Run panels keep their progress
    // polls: the job panels of a phase are not in the stream's deltas.)
    if (live && elt && elt.matches && elt.matches(".poller")) e.preventDefault();
  });
  // Each event's id is the revision it brought the page to: a reconnect (the extension opens a
  // new EventSource, which sends no Last-Event-ID) resumes from there, not from the first load.
  document.addEventListener("htmx:sseMessage", function (e) {
    var id = e.detail && e.detail.lastEventId;
    var el = source();
    if (!id || !el) return;
    var url = new URL(el.getAttribute("sse-connect"), window.location.href);
    url.searchParams.set("rev", id);
    el.setAttribute("sse-connect", url.pathname + url.search);
  });
  // An event may carry rows the page does not show (a collapsed phase loads its rows when it is
  // opened): drop the pieces with no element to replace, before htmx looks for them.
  htmx.defineExtension("live", {
    transformResponse: function (text) {
      var box = document.createElement("template");
      box.innerHTML = text;
      var kept = [];
      for (var i = 0; i < box.content.children.length; i++) {
        var piece = box.content.children[i];
        if (!piece.id || document.getElementById(piece.id)) kept.push(piece.outerHTML);
      }
      return kept.join("\n");
    }
  });
  // A swapped row keeps the panels its reader opened or closed (the server renders defaults).
  document.addEventListener("htmx:oobBeforeSwap", function (e) {
    var target = e.detail.target, fragment = e.detail.fragment;
    if (!target || !fragment || !target.querySelectorAll) return;
    var before = target.querySelectorAll("details");
    if (!before.length) return;
    var after = fragment.querySelectorAll("details");
    for (var i = 0; i < after.length; i++) {
      var d = after[i];
      var old = d.id ? document.getElementById(d.id) : before[i];
      if (!old || old.tagName !== "DETAILS" || !target.contains(old)) continue;
      if (old.open) d.setAttribute("open", ""); else d.removeAttribute("open");
    }
  });
})();
