// Technician panel: refresh the figures every 10 s, with a control to pause it (a timed
// refresh the reader cannot stop fails WCAG 2.2.1; the CSP forbids inline scripts).
(function () {
  "use strict";
  var button = document.getElementById("auto-refresh");
  if (!button) { return; }
  var seconds = parseInt(button.getAttribute("data-seconds") || "10", 10);
  var paused = window.sessionStorage.getItem("tech-refresh-paused") === "1";
  function label() {
    button.textContent = button.getAttribute(paused ? "data-resume" : "data-pause");
  }
  button.addEventListener("click", function () {
    paused = !paused;
    window.sessionStorage.setItem("tech-refresh-paused", paused ? "1" : "0");
    label();
  });
  label();
  setInterval(function () { if (!paused) { window.location.reload(); } }, seconds * 1000);
})();
