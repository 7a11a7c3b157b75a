// Live updates for Alloy's pages: listen to /events (Server-Sent Events) and, on each change,
// fetch this same URL as a fragment and swap <main>. A form being edited is never swapped away:
// the swap waits until focus leaves it. Pages work without this script.
(function () {
  "use strict";
  var main = document.getElementById("live");
  var state = document.getElementById("live-state");
  if (!main || !window.EventSource || !window.fetch) { return; }
  var pending = false;
  var busy = false;

  function editing() {
    var active = document.activeElement;
    return active && main.contains(active) && active.closest("form") !== null;
  }

  function swap() {
    if (busy) { pending = true; return; }
    if (editing()) { pending = true; return; }
    busy = true;
    pending = false;
    fetch(window.location.href, { headers: { "X-Alloy-Fragment": "1" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html !== null && editing()) { pending = true; return; }  // a form got focus meanwhile
        if (html !== null) {
          main.innerHTML = html;
          main.setAttribute("data-updated", String(Date.now()));
          if (state) { state.textContent = "updated " + new Date().toLocaleTimeString(); }
        }
      })
      .catch(function () { pending = true; })
      .then(function () { busy = false; if (pending) { window.setTimeout(swap, 200); } });
  }

  document.addEventListener("focusout", function () {
    if (pending) { window.setTimeout(swap, 0); }
  });

  // The stream starts from the version this page was drawn at: a change that lands before
  // it connects is still told. A reconnect resumes from the last change told (its event id).
  var since = main.getAttribute("data-version") || "";
  var source = new EventSource(/^[0-9]+$/.test(since) ? "/events?since=" + since : "/events");
  source.addEventListener("hello", function () {
    if (state) { state.textContent = "live"; }
    document.body.setAttribute("data-live", "on");
  });
  source.addEventListener("change", function () { swap(); });
  source.onerror = function () {
    if (state) { state.textContent = "reconnecting…"; }
    document.body.setAttribute("data-live", "off");
  };
})();
