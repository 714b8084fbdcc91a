// In-page PIN keypad: on-screen OS keyboards are unreliable under a full-screen kiosk.
(function () {
  "use strict";
  var input = document.getElementById("pin");
  var pad = document.getElementById("keypad");
  if (!input || !pad) { return; }
  pad.addEventListener("click", function (event) {
    var key = event.target.getAttribute && event.target.getAttribute("data-key");
    if (!key) { return; }
    if (key === "clear") { input.value = ""; }
    else if (input.value.length < 12) { input.value += key; }
  });
})();
