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
    // The page's poller and the run panels' progress polls: the stream brings what they would
    // (a run's progress is a change of its runbook: its panels, item and run pages are sent).
    if (live && elt && elt.matches && elt.matches(".poller, .run-panel")) e.preventDefault();
  });
  // A write from a page whose stream is open is answered with its row alone: the headings,
  // counts and status block it changed come over the stream, rendered once for every page.
  document.addEventListener("htmx:configRequest", function (e) {
    if (live && e.detail.verb && e.detail.verb.toLowerCase() === "post") {
      e.detail.headers["X-Mingus-Live"] = "open";
    }
  });
  // Each event's id is the revision it brought the page to: a reconnect (the extension opens a
  // new EventSource, which sends no Last-Event-ID) resumes from there, not from the first load.
  document.addEventListener("htmx:sseMessage", function (e) {
    applyPhaseOrder();
    var id = e.detail && e.detail.lastEventId;
    var el = source();
    if (!id || !el) return;
    var url = new URL(el.getAttribute("sse-connect"), window.location.href);
    url.searchParams.set("rev", id);
    el.setAttribute("sse-connect", url.pathname + url.search);
  });
  // A sign-off or a withdrawal moves the phase in focus. Its event carries the phases' order
  // (#phase-order, the phase in focus first) instead of the body: put the sections in that
  // order, give each its state, open the phase in focus (a collapsed one loads its items as it
  // opens), collapse the phases that became signed off or locked, and reload the item lists
  // this page shows of the phases whose state changed (their rows' choices changed with it).
  function applyPhaseOrder() {
    var order = document.getElementById("phase-order");
    if (!order || order.hasAttribute("data-applied")) return;
    order.setAttribute("data-applied", "");
    function list(name) { return (order.getAttribute(name) || "").split(" ").filter(Boolean); }
    var states = {};
    list("data-states").forEach(function (pair) {
      var i = pair.indexOf(":");
      if (i > 0) states[pair.slice(0, i)] = pair.slice(i + 1);
    });
    var sections = list("data-order").map(function (id) {
      return document.getElementById("phase-" + id);
    }).filter(Boolean);
    if (!sections.length) return;
    var parent = sections[0].parentNode;
    var first = parent.querySelector("section.phase");
    var inPlace = sections.every(function (s, i) { return parent.children[i] === s; });
    if (!inPlace && first) {
      var mark = document.createElement("span");
      parent.insertBefore(mark, first);
      // moveBefore keeps a moved section's state (focus, what is being typed) where supported.
      sections.forEach(function (s) {
        if (parent.moveBefore) parent.moveBefore(s, mark); else parent.insertBefore(s, mark);
      });
      parent.removeChild(mark);
    }
    sections.forEach(function (s) {
      var state = states[s.id.slice("phase-".length)];
      if (state) s.className = s.className.replace(/(^|\s)phase-[\w-]+/, "$1phase-" + state);
    });
    var focus = order.getAttribute("data-focus");
    list("data-reload").forEach(function (id) {
      var box = document.getElementById("phase-box-" + id);
      var items = document.getElementById("phase-items-" + id);
      var section = document.getElementById("phase-" + id);
      if (!box || !items || !section) return;
      if (id !== focus && (states[id] === "signed-off" || states[id] === "locked")) box.open = false;
      // Shown (loaded) lists are reloaded; the others load when opened.
      if (items.querySelector(".group, .phase-jobs")) {
        htmx.ajax("GET", section.getAttribute("data-items"), {target: items, swap: "innerHTML"});
      }
    });
    var focusBox = focus && document.getElementById("phase-box-" + focus);
    if (focusBox && !focusBox.open) focusBox.open = true;
  }
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
