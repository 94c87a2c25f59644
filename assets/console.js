/* vpn-shop web console: the one script of the pages, written for them (no library).
 * Progressive enhancement only: every page works without it.
 *  - [data-poll="URL"]: replaced every second by the HTML fragment at URL (the same partial the
 *    page was rendered with) until the fragment comes back without data-poll (the work ended).
 *  - form[data-preview="URL"]: while the admin types, the form is posted to URL (a fragment
 *    endpoint; the form's own CSRF field goes with it) and the element #preview is replaced by
 *    the answer.
 * No inline script, no eval: allowed by the pages' Content-Security-Policy (script-src 'self'). */
(function () {
  "use strict";

  function fragment(html) {
    var t = document.createElement("template");
    t.innerHTML = html.trim();
    return t.content.firstElementChild;
  }

  function poll(el) {
    var url = el.getAttribute("data-poll");
    var failures = 0;
    function tick() {
      fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: "text/html" } })
        .then(function (r) {
          // A redirect is the login page (the session ended): not a fragment.
          if (!r.ok || r.redirected) { throw new Error(String(r.status)); }
          return r.text();
        })
        .then(function (html) {
          var next = fragment(html);
          if (!next || next.id !== el.id) { throw new Error("not the fragment"); }
          el.replaceWith(next);
          el = next;
          failures = 0;
          if (el.hasAttribute("data-poll")) { setTimeout(tick, 1000); }
        })
        .catch(function () {
          // A lost session or a restart: try a few more times, more slowly, then leave the
          // numbers as they are (a reload shows the current ones).
          failures += 1;
          if (failures < 10) { setTimeout(tick, 1000 * failures); }
        });
    }
    setTimeout(tick, 1000);
  }

  function livePreview(form) {
    var url = form.getAttribute("data-preview");
    var timer = null;
    var seq = 0;
    function send() {
      var mine = ++seq;
      var body = new URLSearchParams(new FormData(form));
      fetch(url, { method: "POST", credentials: "same-origin", body: body, headers: { Accept: "text/html" } })
        .then(function (r) { return r.ok && !r.redirected ? r.text() : null; })
        .then(function (html) {
          var old = document.getElementById("preview");
          if (html === null || !old || mine !== seq) { return; }
          var next = fragment(html);
          if (next && next.id === "preview") { old.replaceWith(next); }
        })
        .catch(function () { /* the Preview button still works */ });
    }
    function later() {
      clearTimeout(timer);
      timer = setTimeout(send, 400);
    }
    form.addEventListener("input", later);
    form.addEventListener("change", later);
  }

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll("[data-poll]"), poll);
    Array.prototype.forEach.call(document.querySelectorAll("form[data-preview]"), livePreview);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
