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
  // A lost connection or a server error shows a plain message instead of failing silently.
  document.addEventListener("htmx:sendError", function () {
    say("Could not reach the server. Check your connection; nothing was changed. Try again.");
  });
  document.addEventListener("htmx:responseError", function (e) {
    var status = e.detail.xhr.status;
    if (status >= 500) {
      say("The server had a problem (" + status + "). Nothing was lost; try again, and tell an admin if it persists.");
    } else if (status === 404) {
      say("That item or runbook no longer exists (404).");
    }
  });
  // Clear a note box after its note was saved; polling leaves a note being typed alone
  // (hx-preserve), so only the sender's own submit clears it.
  document.addEventListener("htmx:afterRequest", function (e) {
    var form = e.detail.elt;
    if (e.detail.successful && form.tagName === "FORM" && form.matches(".note-form, .na-form, .sign-off")) {
      var input = document.getElementById(form.querySelector("input").id);
      if (input) input.value = "";
    }
  });
})();
