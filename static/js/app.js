// Small behaviours htmx does not give by itself. No inline script anywhere (the CSP forbids it).
(function () {
  "use strict";

  // --- Messages: every refusal and error shows in the message area AND next to what was
  // clicked, and stays until the person dismisses it (a later poll or write does not wipe it).
  var notices = [];  // {box, inline, anchorId}: the two copies of one message

  function dismissButton() {
    var b = document.createElement("button");
    b.type = "button";
    b.className = "dismiss";
    b.textContent = "Dismiss";
    return b;
  }
  function textNotice(text) {
    var p = document.createElement("div");
    p.className = "notice refused";
    p.setAttribute("role", "alert");
    var span = document.createElement("span");
    span.textContent = text;
    p.appendChild(span);
    p.appendChild(dismissButton());
    return p;
  }
  // The element a message belongs beside: the item row, form or section the click came from.
  function anchorOf(elt) {
    if (!elt || !elt.closest) return null;
    return elt.closest(".item, form[id], section[id], [id]:not(input):not(button)");
  }
  function place(notice) {
    var anchor = notice.anchorId && document.getElementById(notice.anchorId);
    if (!anchor || !notice.inline) return;
    if (notice.inline.isConnected && anchor.contains(notice.inline)) return;
    if (anchor.tagName === "LI" || anchor.tagName === "SECTION" || anchor.tagName === "DIV") {
      anchor.appendChild(notice.inline);
    } else {
      anchor.insertAdjacentElement("afterend", notice.inline);
    }
  }
  function say(text, elt, inlineNode) {
    var box = document.getElementById("messages");
    var notice = { box: textNotice(text), inline: null, anchorId: null };
    if (box) box.insertBefore(notice.box, box.firstChild);
    var anchor = anchorOf(elt);
    if (anchor && anchor.id && anchor.id !== "messages") {
      notice.anchorId = anchor.id;
      notice.inline = inlineNode || textNotice(text);
      notice.inline.classList.add("inline-notice");
      place(notice);
      if (window.htmx) window.htmx.process(notice.inline);
    }
    notices.push(notice);
    return notice;
  }
  function dismiss(notice) {
    [notice.box, notice.inline].forEach(function (n) { if (n && n.parentNode) n.parentNode.removeChild(n); });
    notices = notices.filter(function (n) { return n !== notice; });
  }
  function noticeOf(node) {
    for (var i = 0; i < notices.length; i++) {
      var n = notices[i];
      if ((n.box && n.box.contains(node)) || (n.inline && n.inline.contains(node))) return n;
    }
    return null;
  }
  document.addEventListener("click", function (e) {
    var b = e.target.closest && e.target.closest("button.dismiss");
    if (!b) return;
    var notice = noticeOf(b);
    if (notice) dismiss(notice);
    else if (b.parentNode) b.parentNode.remove();
  });

  function isWrite(detail) {
    var verb = (detail.requestConfig && detail.requestConfig.verb) || "";
    return verb.toLowerCase() === "post";
  }
  function headerText(xhr) {
    var raw = xhr.getResponseHeader("X-Mingus-Message-Text");
    if (!raw) return "";
    try { return decodeURIComponent(raw); } catch (err) { return raw; }
  }

  // The server marks refusals and conflicts it wants shown (X-Mingus-Message): htmx 2 does not
  // swap 4xx responses by default. A refusal is shown here (both places); a conflict swaps in
  // the latest state of the runbook, and its message is shown once that is in place.
  var pendingConflict = null;
  document.addEventListener("htmx:beforeSwap", function (e) {
    var xhr = e.detail.xhr;
    var kind = xhr.getResponseHeader("X-Mingus-Message");
    if (xhr.status < 400 || !kind) return;
    e.detail.isError = false;
    var elt = e.detail.requestConfig ? e.detail.requestConfig.elt : e.detail.elt;
    var text = headerText(xhr) || "The server refused the request (" + xhr.status + ").";
    if (kind === "refused") {
      e.detail.shouldSwap = false;
      var holder = document.createElement("div");
      holder.innerHTML = xhr.responseText;
      var inline = holder.querySelector(".refusal") || textNotice(text);
      inline.appendChild(dismissButton());
      say(text, elt, inline);
    } else {
      e.detail.shouldSwap = true;
      var anchor = anchorOf(elt);
      pendingConflict = { text: text, anchorId: anchor && anchor.id };
    }
  });

  // A lost connection or a server error shows a plain message instead of failing silently.
  document.addEventListener("htmx:sendError", function (e) {
    if (isWrite(e.detail)) {
      say("Could not reach the server. Check your connection; your change was not saved. Try again.", e.detail.elt);
    } else {
      say("Lost the connection to the server; this page may be out of date. It will catch up when the connection is back.");
    }
  });
  document.addEventListener("htmx:timeout", function (e) {
    say("The server took too long to answer. Check the page before trying again.", e.detail.elt);
  });
  document.addEventListener("htmx:responseError", function (e) {
    var status = e.detail.xhr.status;
    var elt = isWrite(e.detail) ? e.detail.elt : null;
    if (status >= 500) {
      say("The server had a problem (" + status + "). Your change may not have been saved; check the page, try again, and tell an admin if it persists.", elt);
    } else if (status === 404) {
      say("That item or runbook no longer exists (404).", elt);
    } else if (status === 403) {
      say("Not allowed (403). If your session expired or the page is old, reload it and try again.", elt);
    } else if (status === 429) {
      say("Too many requests (429). Wait a moment and try again.", elt);
    } else {
      say("The server refused the request (" + status + "). Reload the page and try again.", elt);
    }
  });

  // Clear a note box after its note was saved. The box is preserved across the row's swap
  // (hx-preserve) and the form itself is gone by then, so what to clear is remembered on the
  // request before it leaves.
  var CLEARS = ".note-form, .na-form, .override-form, .sign-off, .confirm-withdraw";
  document.addEventListener("htmx:beforeRequest", function (e) {
    var form = e.detail.elt, xhr = e.detail.xhr;
    if (!xhr || form.tagName !== "FORM") return;
    if (form.matches(CLEARS)) {
      xhr._clearIds = Array.prototype.map.call(
        form.querySelectorAll("input[id]:not([type=hidden])"), function (i) { return i.id; });
    }
    xhr._notice = noticeOf(form);
  });
  document.addEventListener("htmx:afterRequest", function (e) {
    var xhr = e.detail.xhr;
    if (!xhr || !e.detail.successful || xhr.status >= 400) return;
    (xhr._clearIds || []).forEach(function (id) {
      var input = document.getElementById(id);
      if (input) input.value = "";
    });
    // A confirmation that went through has done its job: its message goes too.
    if (xhr._notice) dismiss(xhr._notice);
  });

  // A swap that moves a preserved input (someone typing a note while the page refreshes) can
  // drop its focus: give it back, with the caret where it was. Open phases stay open.
  var focused = null, openPhases = null;
  document.addEventListener("htmx:beforeSwap", function (e) {
    var el = document.activeElement;
    focused = el && el.id && el.tagName === "INPUT"
      ? { id: el.id, start: el.selectionStart, end: el.selectionEnd } : null;
    openPhases = Array.prototype.map.call(
      document.querySelectorAll("details.phase-box[open]"), function (d) { return d.id; });
  });
  document.addEventListener("htmx:afterSettle", function () {
    if (openPhases) {
      openPhases.forEach(function (id) {
        var d = document.getElementById(id);
        if (d && !d.open) d.open = true;
      });
      openPhases = null;
    }
    if (pendingConflict) {
      var c = pendingConflict;
      pendingConflict = null;
      say(c.text, c.anchorId && document.getElementById(c.anchorId));
    }
    notices.forEach(place);  // rows swapped since keep their messages
    if (!focused) return;
    var el = document.getElementById(focused.id);
    if (el && document.activeElement !== el) {
      el.focus();
      try { el.setSelectionRange(focused.start, focused.end); } catch (err) { /* not a text input */ }
    }
    focused = null;
  });
})();
