// The one in-page keyboard of every face: the PIN pad (digits only), the code pad of the
// kiosk lookup and the officer search, and the Vietnamese text keyboard (officer name,
// field corrections, reasons). On-screen OS keyboards are unreliable under a full-screen
// kiosk browser and know nothing of Vietnamese tone marks, so the page brings its own.
//
// Markup (templates/_keyboard.html writes it):
//   <div class="keypad" data-for="INPUT-ID"> ... <button data-key="K"> ... </div>
//     an inline pad, always shown, typing into one input;
//   <div class="osk" id="osk" hidden> ... </div>
//     the text keyboard, one per page, shown under whichever input with
//     data-keyboard="text" has the focus.
// data-case on the input: "upper" starts in capitals (names as papers print them),
// "words" capitalises each word's first letter (an officer's name).
// Keys: a character (typed at the caret), "back", "clear", "space", "shift", "done",
// or data-tone="acute|grave|hook|tilde|dot": the tone goes onto the right vowel of the
// syllable before the caret (the Vietnamese rules, old style: hòa, thủy), replacing the
// tone it had; the same tone again takes it off. The value is always NFC, so what the
// officer types compares equal to what the records and the OCR hold.
// Plain script, no dependencies; the CSP allows no inline script.
(function () {
  "use strict";

  var TONES = { acute: "\u0301", grave: "\u0300", hook: "\u0309", tilde: "\u0303", dot: "\u0323" };
  var TONE_MARKS = /[\u0300\u0301\u0303\u0309\u0323]/g;
  var VOWELS = "aăâeêioôơuưy";
  var HATTED = "ăâêôơư"; // vowels with their own mark: the tone goes on them
  var LETTER = /[\p{L}\p{M}]/u;

  function nfc(s) { return s.normalize("NFC"); }
  function bare(ch) { return nfc(ch.normalize("NFD").replace(TONE_MARKS, "")); }
  function toneOf(ch) {
    var m = ch.normalize("NFD").match(TONE_MARKS);
    return m ? m[0] : "";
  }

  // Where the tone of `word` (a syllable, tones removed, any case) goes: an index or -1.
  function tonePosition(word) {
    var low = word.toLowerCase();
    var start = 0;
    // "qu" and "gi" before another vowel: the u / i belong to the consonant.
    if ((low.indexOf("qu") === 0 || low.indexOf("gi") === 0) && low.length > 2 &&
        VOWELS.indexOf(low.charAt(2)) >= 0) { start = 2; }
    var first = -1;
    for (var i = start; i < low.length; i++) {
      if (VOWELS.indexOf(low.charAt(i)) >= 0) { first = i; break; }
    }
    if (first < 0) { return -1; }
    var end = first;
    while (end < low.length && VOWELS.indexOf(low.charAt(end)) >= 0) { end++; }
    var cluster = low.slice(first, end);
    for (var j = cluster.length - 1; j >= 0; j--) {
      if (HATTED.indexOf(cluster.charAt(j)) >= 0) { return first + j; }
    }
    if (cluster.length === 1) { return first; }
    if (cluster.length >= 3) { return first + 1; }
    return end < low.length ? first + 1 : first; // "toán" but "hòa", "mùa", "thủy"
  }

  // The text with `tone` put onto the syllable that ends at `caret`: [text, caret].
  function applyTone(text, caret, tone) {
    var from = caret;
    while (from > 0 && LETTER.test(text.charAt(from - 1))) { from--; }
    if (from === caret) { return null; }
    var chars = Array.from(text.slice(from, caret));
    var had = "";
    var plain = chars.map(function (ch) {
      var t = toneOf(ch);
      if (t) { had = t; }
      return bare(ch);
    });
    var at = tonePosition(plain.join(""));
    if (at < 0) { return null; }
    var mark = TONES[tone];
    if (had !== mark) { plain[at] = nfc(plain[at].normalize("NFD") + mark); }
    var word = nfc(plain.join(""));
    return [text.slice(0, from) + word + text.slice(caret), from + word.length];
  }

  function caretOf(input) {
    try {
      if (typeof input.selectionStart === "number") {
        return [input.selectionStart, input.selectionEnd];
      }
    } catch (e) { /* inputs without a caret */ }
    return [input.value.length, input.value.length];
  }

  function setValue(input, value, caret) {
    var max = input.maxLength > 0 ? input.maxLength : 200;
    if (Array.from(value).length > max) { return; }
    input.value = value;
    try { input.setSelectionRange(caret, caret); } catch (e) { /* no caret */ }
    input.dispatchEvent(new Event("input", { bubbles: true }));
  }

  // One key on one input; `upper` types letters in capitals. Exported for the tests.
  function press(input, key, tone, upper) {
    var sel = caretOf(input);
    var text = input.value;
    var a = sel[0];
    var b = sel[1];
    if (tone) {
      var done = applyTone(text, a, tone);
      if (done) { setValue(input, done[0], done[1]); }
      return;
    }
    if (key === "clear") { setValue(input, "", 0); return; }
    if (key === "back") {
      if (a !== b) { setValue(input, text.slice(0, a) + text.slice(b), a); return; }
      if (a === 0) { return; }
      var before = Array.from(text.slice(0, a));
      before.pop();
      var head = before.join("");
      setValue(input, head + text.slice(a), head.length);
      return;
    }
    var ch = key === "space" ? " " : key;
    if (upper) { ch = ch.toUpperCase(); }
    var value = nfc(text.slice(0, a) + ch + text.slice(b));
    setValue(input, value, nfc(text.slice(0, a) + ch).length);
  }

  // Keys never take the focus from the input they type into.
  function keepFocus(pad) {
    pad.addEventListener("mousedown", function (event) {
      if (event.target.closest("button[data-key], button[data-tone]")) { event.preventDefault(); }
    });
  }

  function keyOf(event) {
    return event.target.closest && event.target.closest("button[data-key], button[data-tone]");
  }

  // --- inline pads: PIN, code -------------------------------------------------------------
  Array.prototype.forEach.call(document.querySelectorAll(".keypad[data-for]"), function (pad) {
    var input = document.getElementById(pad.getAttribute("data-for"));
    if (!input) { return; }
    keepFocus(pad);
    pad.addEventListener("click", function (event) {
      var button = keyOf(event);
      if (!button) { return; }
      press(input, button.getAttribute("data-key"), button.getAttribute("data-tone"),
            pad.getAttribute("data-case") === "upper");
    });
  });

  // --- the text keyboard, under the input that has the focus ------------------------------
  var osk = document.getElementById("osk");
  var target = null;
  var upper = false;
  function setUpper(on) {
    upper = on;
    if (!osk) { return; }
    osk.classList.toggle("osk-upper", on);
    var shift = osk.querySelector("[data-key=shift]");
    if (shift) { shift.setAttribute("aria-pressed", on ? "true" : "false"); }
  }
  function show(input) {
    if (!osk) { return; }
    if (target !== input) { setUpper(input.getAttribute("data-case") === "upper"); }
    target = input;
    var label = osk.querySelector(".osk-target");
    var own = input.labels && input.labels[0];
    if (label) { label.textContent = own ? own.textContent.trim() : ""; }
    osk.hidden = false;
    document.body.classList.add("osk-open");
    document.body.style.setProperty("--osk-height", osk.offsetHeight + "px");
    // The input stays in view above the keyboard.
    var rect = input.getBoundingClientRect();
    var room = window.innerHeight - osk.offsetHeight - 8;
    if (rect.bottom > room || rect.top < 0) {
      window.scrollBy(0, rect.top < 0 ? rect.top - 8 : rect.bottom - room);
    }
  }
  function hide() {
    if (!osk) { return; }
    osk.hidden = true;
    target = null;
    document.body.classList.remove("osk-open");
  }
  if (osk) {
    keepFocus(osk);
    Array.prototype.forEach.call(document.querySelectorAll("input[data-keyboard=text]"), function (input) {
      input.setAttribute("inputmode", "none"); // no OS keyboard over ours
      input.addEventListener("focus", function () { show(input); });
      input.addEventListener("click", function () { show(input); });
    });
    // A field focused before this script ran (autofocus on a refused value) gets it too.
    var focused = document.activeElement;
    if (focused && focused.matches && focused.matches("input[data-keyboard=text]")) {
      show(focused);
    }
    osk.addEventListener("click", function (event) {
      var button = keyOf(event);
      if (!button || !target) { return; }
      var key = button.getAttribute("data-key");
      if (key === "shift") { setUpper(!upper); return; }
      if (key === "done") { // closed: the form's own button comes into view
        var was = target;
        hide();
        was.blur();
        var send = was.form && was.form.querySelector("button[type=submit], button.btn-primary");
        if (send && send.scrollIntoView) { send.scrollIntoView({ block: "nearest" }); }
        return;
      }
      var caps = upper;
      if (!caps && target.getAttribute("data-case") === "words") { // names: "Nguyễn Văn A"
        var at = caretOf(target)[0];
        caps = at === 0 || /\s/.test(target.value.charAt(at - 1));
      }
      press(target, key, button.getAttribute("data-tone"), caps);
      target.focus();
    });
    document.addEventListener("pointerdown", function (event) {
      if (osk.hidden || osk.contains(event.target) || event.target === target) { return; }
      if (event.target.matches && event.target.matches("input[data-keyboard=text]")) { return; }
      hide();
    }, true);
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && !osk.hidden) { hide(); }
    });
  }

  window.applianceKeyboard = { press: press, applyTone: applyTone, show: show, hide: hide };
})();
