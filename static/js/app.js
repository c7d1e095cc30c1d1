// Small behaviours htmx does not give by itself. No inline script anywhere (the CSP forbids it).
(function () {
  "use strict";
  function say(text) {
    var box = document.getElementById("messages");
    if (!box) return;
    box.innerHTML = "";
    var p = document.createElement("p");
    p.className = "notice refused";
    p.setAttribute("role", "alert");
    p.textContent = text;
    box.appendChild(p);
  }
  function clearMessages() {
    var box = document.getElementById("messages");
    if (box) box.innerHTML = "";
  }
  function isWrite(detail) {
    var verb = (detail.requestConfig && detail.requestConfig.verb) || "";
    return verb.toLowerCase() === "post";
  }
  // The server marks refusals and conflicts it wants shown (X-Mingus-Message): htmx 2 does not
  // swap 4xx responses by default, so let those through and keep every other error out of the page.
  document.addEventListener("htmx:beforeSwap", function (e) {
    var xhr = e.detail.xhr;
    if (xhr.status >= 400 && xhr.getResponseHeader("X-Mingus-Message")) {
      e.detail.shouldSwap = true;
      e.detail.isError = false;
    }
  });
  // A lost connection or a server error shows a plain message instead of failing silently.
  document.addEventListener("htmx:sendError", function (e) {
    if (isWrite(e.detail)) {
      say("Could not reach the server. Check your connection; your change was not saved. Try again.");
    } else {
      say("Lost the connection to the server; this page may be out of date. It will catch up when the connection is back.");
    }
  });
  document.addEventListener("htmx:timeout", function () {
    say("The server took too long to answer. Check the page before trying again.");
  });
  document.addEventListener("htmx:responseError", function (e) {
    var status = e.detail.xhr.status;
    if (status >= 500) {
      say("The server had a problem (" + status + "). Your change may not have been saved; check the page, try again, and tell an admin if it persists.");
    } else if (status === 404) {
      say("That item or runbook no longer exists (404).");
    } else if (status === 403) {
      say("Not allowed (403). If your session expired or the page is old, reload it and try again.");
    } else if (status === 429) {
      say("Too many requests (429). Wait a moment and try again.");
    } else {
      say("The server refused the request (" + status + "). Reload the page and try again.");
    }
  });
  document.addEventListener("htmx:afterRequest", function (e) {
    var form = e.detail.elt;
    if (!e.detail.successful) return;
    // A successful write replaces any earlier error message; a poll leaves messages alone.
    if (isWrite(e.detail)) clearMessages();
    // Clear a note box after its note was saved; polling leaves a note being typed alone
    // (hx-preserve), so only the sender's own submit clears it.
    if (form.tagName === "FORM" && form.matches(".note-form, .na-form, .sign-off")) {
      var input = document.getElementById(form.querySelector("input").id);
      if (input) input.value = "";
    }
  });
  // A swap that moves a preserved input (someone typing a note while the page refreshes) can
  // drop its focus: give it back, with the caret where it was.
  var focused = null;
  document.addEventListener("htmx:beforeSwap", function () {
    var el = document.activeElement;
    focused = el && el.id && el.tagName === "INPUT"
      ? { id: el.id, start: el.selectionStart, end: el.selectionEnd } : null;
  });
  document.addEventListener("htmx:afterSettle", function () {
    if (!focused) return;
    var el = document.getElementById(focused.id);
    if (el && document.activeElement !== el) {
      el.focus();
      try { el.setSelectionRange(focused.start, focused.end); } catch (err) { /* not a text input */ }
    }
    focused = null;
  });
})();
