// Kiosk behaviour: idle reset with a countdown, live scan progress, confirmations in the
// page (the code keypad is keyboard.js's; the server prints the receipt, never the
// browser). Plain script, no dependencies: the appliance serves everything itself,
// and the CSP allows no inline script.
(function () {
  "use strict";
  var body = document.body;
  var lang = body.getAttribute("data-lang") || "vi";
  var idleSeconds = parseInt(body.getAttribute("data-idle-seconds") || "0", 10);
  var WARN_SECONDS = 15;
  var POLL_MS = 500;

  // --- no browser menu: a long press or right-click on a kiosk offers nothing --------
  // (save image, open in a new tab, inspect: none of it is for a public screen)
  document.addEventListener("contextmenu", function (event) { event.preventDefault(); });

  // --- idle reset: wipe the session after a period without touch -------------------
  var lastTouch = Date.now();
  var warning = document.getElementById("idle-warning");
  var countdown = document.getElementById("idle-countdown");
  var resetForm = document.getElementById("idle-reset-form");
  var resetting = false;

  function touched() {
    lastTouch = Date.now();
    if (warning && !warning.hidden) { warning.hidden = true; }
  }
  ["pointerdown", "touchstart", "keydown", "wheel"].forEach(function (name) {
    document.addEventListener(name, touched, { passive: true, capture: true });
  });
  var stay = document.getElementById("idle-stay");
  if (stay) { stay.addEventListener("click", touched); }

  function checkIdle() {
    if (!idleSeconds || !resetForm || resetting) { return; }
    var idle = (Date.now() - lastTouch) / 1000;
    if (idle >= idleSeconds) {
      resetting = true;
      resetForm.submit();
      return;
    }
    var warnAt = Math.max(idleSeconds - WARN_SECONDS, idleSeconds / 2);
    if (warning && idle >= warnAt) {
      var left = String(Math.max(1, Math.ceil(idleSeconds - idle)));
      if (countdown && countdown.textContent !== left) { countdown.textContent = left; }
      if (warning.hidden) {
        warning.hidden = false;
        if (stay) { stay.focus(); }
      }
    }
  }
  setInterval(checkIdle, 250);

  // --- job progress: poll the API while a scan is queued or running ----------------
  var jobBox = document.getElementById("job");
  if (jobBox) {
    var jobId = jobBox.getAttribute("data-job-id");
    var messageEl = document.getElementById("job-message");
    var bar = document.getElementById("job-progress");
    var poll = function () {
      fetch("/api/jobs/" + encodeURIComponent(jobId) + "?lang=" + encodeURIComponent(lang),
            { cache: "no-store", credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (job) {
          if (job && messageEl && job.message && messageEl.textContent !== job.message) {
            // Progress counts as activity: a long feeder batch is not idleness, but a
            // scan that never moves (no worker) must not keep the session alive forever.
            messageEl.textContent = job.message;
            lastTouch = Date.now();
          }
          var p = job && job.progress;
          if (bar && p && p.step === "reading" && p.pages) {
            bar.max = p.pages; bar.value = p.page || 0;
          } else if (bar && p && p.step === "assembling") {
            bar.max = 1; bar.value = 1;
          }
          if (job && (job.state === "done" || job.state === "failed" || job.stalled)) {
            // A stalled worker is said at once, with what can still be done.
            window.location.reload();
            return;
          }
          setTimeout(poll, POLL_MS);
        })
        .catch(function () { setTimeout(poll, POLL_MS * 4); });
    };
    setTimeout(poll, POLL_MS);
  }

  // --- confirmations ask once more, in the page (no browser dialog on a kiosk) -----
  function confirmation(askId, boxId, noId) {
    var ask = document.getElementById(askId);
    var box = document.getElementById(boxId);
    var no = document.getElementById(noId);
    if (!ask || !box) { return; }
    ask.addEventListener("click", function () {
      box.hidden = false;
      if (no) { no.focus(); }
    });
    if (no) { no.addEventListener("click", function () { box.hidden = true; ask.focus(); }); }
  }
  confirmation("cancel-ask", "cancel-confirm", "cancel-no");
  confirmation("delete-ask", "delete-confirm", "delete-no");

  // --- the newest page in view, above the action bar --------------------------------
  var fresh = document.querySelector(".thumb-new") || document.getElementById("job-failed");
  if (fresh && fresh.scrollIntoView) { fresh.scrollIntoView({ block: "nearest" }); }

  // Back to a page kept in memory: its forms may be sent again.
  window.addEventListener("pageshow", function () {
    Array.prototype.forEach.call(document.querySelectorAll("form[data-sent]"), function (f) {
      f.removeAttribute("data-sent");
    });
    Array.prototype.forEach.call(document.querySelectorAll(".is-busy"), function (b) {
      b.classList.remove("is-busy");
    });
  });

  // --- a tapped button shows at once that the tap registered, and only once ---------
  Array.prototype.forEach.call(document.querySelectorAll("form"), function (form) {
    form.addEventListener("submit", function (event) {
      if (form.getAttribute("data-sent") === "1") { event.preventDefault(); return; }
      if (form.method.toLowerCase() === "post") { form.setAttribute("data-sent", "1"); }
      var selector = "button[type=submit][form='" + form.id + "']";
      var buttons = Array.prototype.slice.call(form.querySelectorAll("button[type=submit]"));
      if (form.id) { buttons = buttons.concat(Array.prototype.slice.call(document.querySelectorAll(selector))); }
      buttons.forEach(function (b) { b.classList.add("is-busy"); });
    });
  });
})();
