// Officer desk: the page viewer (page tabs, zoom, rotate, each field's box over the
// page), the sign-off and return confirmations, and the idle return (personal data
// must not stay on a shared screen).
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

  // --- viewer: one page large, zoom and rotate; each field's box drawn over it -------
  // The boxes sit in a stage with the image and are placed in percent of the page's
  // pixel size, so the zoom (the stage's width) and the rotation (the stage's
  // transform) carry them along with the page.
  Array.prototype.forEach.call(document.querySelectorAll("[data-viewer]"), function (viewer) {
    var img = viewer.querySelector(".viewer-img");
    var frame = viewer.querySelector(".viewer-frame");
    var stage = viewer.querySelector(".viewer-stage");
    var paper = viewer.closest(".paper");
    if (!img || !frame || !stage) { return; }
    var zoom = 1;
    var turn = 0;
    var current = 0;
    var tabs = Array.prototype.slice.call(viewer.querySelectorAll(".page-tab"));
    var boxes = Array.prototype.slice.call(stage.querySelectorAll(".field-box"));
    function pageSize(index) {
      var tab = tabs[index];
      return tab ? [parseFloat(tab.getAttribute("data-width")) || img.naturalWidth,
                    parseFloat(tab.getAttribute("data-height")) || img.naturalHeight]
                 : [img.naturalWidth, img.naturalHeight];
    }
    function place() {
      var size = pageSize(current);
      boxes.forEach(function (box) {
        var on = parseInt(box.getAttribute("data-page"), 10) === current;
        box.classList.toggle("on-page", on);
        if (!on || !size[0] || !size[1]) { return; }
        var c = box.getAttribute("data-box").split(" ").map(parseFloat);
        box.style.left = (100 * c[0] / size[0]) + "%";
        box.style.top = (100 * c[1] / size[1]) + "%";
        box.style.width = (100 * (c[2] - c[0]) / size[0]) + "%";
        box.style.height = (100 * (c[3] - c[1]) / size[1]) + "%";
      });
    }
    // The page as shown is `zoom` times the frame's width, turned or not; the sizer
    // takes the turned page's size, so the frame scrolls over all of it, and the stage
    // is turned about its corner and moved back into the sizer.
    var sizer = viewer.querySelector(".viewer-sizer");
    viewer.classList.add("js-sized");
    function apply() {
      var size = pageSize(current);
      var across = zoom * Math.max(frame.clientWidth - 4, 100);
      var quarter = turn % 180 !== 0;
      var w = quarter ? across * size[0] / size[1] : across;
      var h = w * size[1] / size[0];
      stage.style.width = w + "px";
      if (sizer) {
        sizer.style.width = (quarter ? h : w) + "px";
        sizer.style.height = (quarter ? w : h) + "px";
      }
      var move = { 0: "", 90: "translate(" + h + "px, 0) ", 180: "translate(" + w + "px, " + h +
                   "px) ", 270: "translate(0, " + w + "px) " }[turn];
      stage.style.transform = turn ? move + "rotate(" + turn + "deg)" : "";
      viewer.setAttribute("data-zoom", String(zoom));
      viewer.setAttribute("data-rotation", String(turn));
    }
    window.addEventListener("resize", apply);
    function show(index) {
      var tab = tabs[index];
      if (!tab) { return; }
      current = index;
      stage.setAttribute("data-page", String(index));
      var size = pageSize(index);
      img.setAttribute("width", String(size[0]));
      img.setAttribute("height", String(size[1]));
      img.src = tab.getAttribute("data-src");
      img.alt = tab.getAttribute("data-alt") || "";
      tabs.forEach(function (b) {
        b.classList.toggle("is-current", b === tab);
        b.setAttribute("aria-pressed", b === tab ? "true" : "false");
      });
      // The page edits act on the page in view (a paper splits before it, not its first).
      if (paper) {
        Array.prototype.forEach.call(paper.querySelectorAll("[data-current-page]"), function (i) {
          i.value = tab.getAttribute("data-page-id");
        });
        Array.prototype.forEach.call(paper.querySelectorAll("[data-current-label]"), function (l) {
          l.textContent = tab.getAttribute("data-page-n");
        });
        Array.prototype.forEach.call(paper.querySelectorAll("[data-split]"), function (b) {
          b.disabled = index === 0;
        });
      }
      apply();
      place();
    }
    // The picked field's box, outlined and scrolled into the frame's view.
    function pick(name) {
      var box = null;
      boxes.forEach(function (b) {
        var hit = b.getAttribute("data-field") === name;
        b.classList.toggle("is-selected", hit);
        if (hit) { box = b; }
      });
      if (paper) {
        Array.prototype.forEach.call(paper.querySelectorAll("[data-pick]"), function (b) {
          var hit = b.getAttribute("data-pick") === name;
          b.setAttribute("aria-pressed", hit ? "true" : "false");
          b.closest(".rf").classList.toggle("is-selected", hit);
        });
      }
      if (!box) { return; }
      var page = parseInt(box.getAttribute("data-page"), 10);
      if (page !== current) { show(page); }
      reveal();
    }
    // The picked box in the middle of the frame, whatever the zoom and turn.
    function reveal() {
      var box = stage.querySelector(".field-box.is-selected.on-page");
      if (!box) { return; }
      var f = frame.getBoundingClientRect();
      var r = box.getBoundingClientRect();
      frame.scrollLeft += (r.left + r.width / 2) - (f.left + f.width / 2);
      frame.scrollTop += (r.top + r.height / 2) - (f.top + f.height / 2);
    }
    viewer.addEventListener("click", function (event) {
      var button = event.target.closest && event.target.closest("button");
      if (!button) { return; }
      var action = button.getAttribute("data-action");
      if (action === "zoom-in") { zoom = Math.min(zoom * 1.5, 6); }
      else if (action === "zoom-out") { zoom = Math.max(zoom / 1.5, 0.5); }
      else if (action === "rotate") { turn = (turn + 90) % 360; }
      else if (action === "fit") { zoom = 1; turn = 0; }
      else if (button.hasAttribute("data-page")) { show(tabs.indexOf(button)); }
      apply();
      reveal();
    });
    if (paper) {
      paper.addEventListener("click", function (event) {
        var button = event.target.closest && event.target.closest("[data-pick]");
        if (button) { pick(button.getAttribute("data-pick")); }
      });
    }
    img.addEventListener("load", place);
    apply();
    place();
    // Back from a correction (or a refused one): its field picked again.
    var hash = window.location.hash.replace(/^#/, "");
    var target = hash && document.getElementById(hash);
    var refused = paper && paper.querySelector(".rf-refused [data-pick]");
    var chosen = refused || (target && paper && paper.contains(target) &&
                             target.querySelector("[data-pick]"));
    if (chosen) { pick(chosen.getAttribute("data-pick")); }
  });

  // --- sign-off and return: a required field first, then an on-screen confirmation -
  function confirmation(formId, askId, boxId, noId) {
    var form = document.getElementById(formId);
    var ask = document.getElementById(askId);
    var box = document.getElementById(boxId);
    var no = document.getElementById(noId);
    if (!form || !ask || !box) { return; }
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
  confirmation("sign-form", "sign-button", "sign-confirm", "sign-no");
  confirmation("return-form", "return-button", "return-confirm", "return-no");
})();
