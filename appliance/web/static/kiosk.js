// Kiosk behaviour: idle reset, live scan progress, cancel confirmation.
// Plain script, no dependencies: the appliance serves everything itself.
(function () {
  "use strict";
  var body = document.body;
  var lang = body.getAttribute("data-lang") || "vi";
  var idleSeconds = parseInt(body.getAttribute("data-idle-seconds") || "0", 10);
  var WARN_SECONDS = 15;
  var POLL_MS = 500;

  // --- idle reset: wipe the session after a period without touch -------------------
  var lastTouch = Date.now();
  var warning = document.getElementById("idle-warning");
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
    } else if (warning && idleSeconds > 2 * WARN_SECONDS && idle >= idleSeconds - WARN_SECONDS) {
      warning.hidden = false;
    }
  }
  setInterval(checkIdle, 250);

  // --- job progress: poll the API while a scan is queued or running ----------------
  var jobBox = document.getElementById("job");
  if (jobBox) {
    var jobId = jobBox.getAttribute("data-job-id");
    var messageEl = document.getElementById("job-message");
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
          if (job && (job.state === "done" || job.state === "failed")) {
            window.location.reload();
            return;
          }
          setTimeout(poll, POLL_MS);
        })
        .catch(function () { setTimeout(poll, POLL_MS * 4); });
    };
    setTimeout(poll, POLL_MS);
  }

  // --- cancel asks once more, in the page (no browser dialog on a kiosk) -----------
  var ask = document.getElementById("cancel-ask");
  var confirmBox = document.getElementById("cancel-confirm");
  var no = document.getElementById("cancel-no");
  if (ask && confirmBox) {
    ask.addEventListener("click", function () { confirmBox.hidden = false; ask.hidden = true; });
  }
  if (no && confirmBox && ask) {
    no.addEventListener("click", function () { confirmBox.hidden = true; ask.hidden = false; });
  }

  // --- a tapped button shows at once that the tap registered ----------------------
  Array.prototype.forEach.call(document.querySelectorAll("form"), function (form) {
    form.addEventListener("submit", function () {
      Array.prototype.forEach.call(form.querySelectorAll("button[type=submit]"), function (b) {
        b.classList.add("is-busy");
      });
    });
  });
})();
