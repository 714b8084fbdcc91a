// Officer desk: the page viewer (page tabs, zoom, rotate), the sign-off confirmation,
// the code keypad, and the idle return (personal data must not stay on a shared screen).
// Plain script, no dependencies; the CSP allows no inline script.
(function () {
  "use strict";
  var body = document.body;

  // --- idle: back to the PIN keypad (log out) or, without a PIN, to the list -------
  var idleSeconds = parseInt(body.getAttribute("data-idle-seconds") || "0", 10);
  var home = body.getAttribute("data-idle-home") || "/officer";
  var last = Date.now();
  var leaving = false;
  ["pointerdown", "touchstart", "keydown", "wheel", "scroll"].forEach(function (name) {
    document.addEventListener(name, function () { last = Date.now(); },
                              { passive: true, capture: true });
  });
  setInterval(function () {
    if (!idleSeconds || leaving || (Date.now() - last) / 1000 < idleSeconds) { return; }
    leaving = true;
    var logout = document.getElementById("logout-form");
    var next = document.getElementById("logout-next");
    if (logout && next) { next.value = home; logout.submit(); }
    else { window.location.replace(home); }
  }, 500);

  // --- viewer: one page large, zoom and rotate on the same screen -----------------
  Array.prototype.forEach.call(document.querySelectorAll("[data-viewer]"), function (viewer) {
    var img = viewer.querySelector(".viewer-img");
    var frame = viewer.querySelector(".viewer-frame");
    if (!img || !frame) { return; }
    var zoom = 1;
    var turn = 0;
    function apply() {
      // Width grows with the zoom so the frame scrolls over the enlarged page.
      img.style.width = (zoom * 100) + "%";
      img.style.transform = turn ? "rotate(" + turn + "deg)" : "";
      viewer.setAttribute("data-zoom", String(zoom));
      viewer.setAttribute("data-rotation", String(turn));
    }
    viewer.addEventListener("click", function (event) {
      var button = event.target.closest && event.target.closest("button");
      if (!button) { return; }
      var action = button.getAttribute("data-action");
      if (action === "zoom-in") { zoom = Math.min(zoom * 1.5, 6); }
      else if (action === "zoom-out") { zoom = Math.max(zoom / 1.5, 0.5); }
      else if (action === "rotate") { turn = (turn + 90) % 360; }
      else if (action === "fit") { zoom = 1; turn = 0; }
      else if (button.getAttribute("data-src")) {
        img.src = button.getAttribute("data-src");
        img.alt = button.getAttribute("data-alt") || "";
        Array.prototype.forEach.call(viewer.querySelectorAll(".page-tab"), function (b) {
          b.classList.toggle("is-current", b === button);
          b.setAttribute("aria-pressed", b === button ? "true" : "false");
        });
      }
      apply();
    });
  });

  // --- sign-off: the "checked" box, then an on-screen confirmation ----------------
  var form = document.getElementById("sign-form");
  var ask = document.getElementById("sign-button");
  var box = document.getElementById("sign-confirm");
  var no = document.getElementById("sign-no");
  if (form && ask && box) {
    ask.addEventListener("click", function () {
      if (!form.reportValidity()) { return; }
      box.hidden = false;
      if (no) { no.focus(); }
    });
    if (no) { no.addEventListener("click", function () { box.hidden = true; ask.focus(); }); }
    form.addEventListener("submit", function (event) {
      if (box.hidden) { event.preventDefault(); box.hidden = false; }
    });
  }
})();
