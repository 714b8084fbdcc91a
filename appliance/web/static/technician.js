// Technician panel. Figures refresh every 10 s by polling /api/technician/status (with a
// control to pause it: a timed update the reader cannot stop fails WCAG 2.2.1); the
// scanner list and the test scan are worker jobs, polled until they end; the broker
// test, the model check and the journal are one request each. No inline script (the
// CSP forbids it); texts come from the page, already translated.
(function () {
  "use strict";
  var main = document.getElementById("main");
  if (!main) { return; }
  var csrf = main.getAttribute("data-csrf") || "";
  var lang = main.getAttribute("data-lang") || "vi";
  var API = "/api/technician";

  function $(id) { return document.getElementById(id); }
  function text(id) { var e = $(id); return e ? e.textContent : ""; }
  function request(method, path, body) {
    var sep = path.indexOf("?") < 0 ? "?" : "&";
    var options = { method: method, credentials: "same-origin",
                    headers: { "Accept": "application/json" } };
    if (method !== "GET") {
      options.headers["Content-Type"] = "application/json";
      options.headers["X-CSRFToken"] = csrf;
      options.body = JSON.stringify(body || {});
    }
    return fetch(API + path + sep + "lang=" + encodeURIComponent(lang), options)
      .then(function (r) {
        return r.json().then(function (data) {
          if (!r.ok) { throw new Error(data.message || String(r.status)); }
          return data;
        });
      });
  }
  function busy(button, on) {
    if (!button) { return; }
    button.disabled = on;
    button.classList.toggle("is-busy", on);
  }
  function show(el, message, kind) {
    el.hidden = false;
    el.textContent = message;
    el.className = "notice notice-" + kind;
  }

  // --- status, polled --------------------------------------------------------------
  var refresh = $("auto-refresh");
  var paused = window.sessionStorage.getItem("tech-refresh-paused") === "1";
  // Polling is a request like any other and would keep the technician's session alive
  // for ever on an abandoned screen: it stops after a while without a touch or a key,
  // so the session lapses as the staff sessions do.
  var idleMs = parseInt((refresh && refresh.getAttribute("data-idle-seconds")) || "300", 10) * 1000;
  var lastActivity = Date.now();
  var idle = false;
  var resumedAt = 0;
  function label() {
    refresh.textContent = refresh.getAttribute(paused || idle ? "data-resume" : "data-pause");
    var note = $("refresh-idle");
    if (note) { note.hidden = !idle; }
  }
  ["pointerdown", "keydown", "wheel"].forEach(function (type) {
    document.addEventListener(type, function () {
      lastActivity = Date.now();
      if (idle) { idle = false; resumedAt = lastActivity; label(); }
    }, { passive: true, capture: true });
  });
  // The doctor's table, rebuilt from /api/technician/doctor: the same records that
  // `appliance doctor` prints, their summaries and next steps in the panel's language
  // (the command's English in the tooltip), or in English where a line has no key.
  function badge(verdict, label) {
    var b = document.createElement("span");
    b.className = "badge doctor-" + verdict;
    b.textContent = label;
    return b;
  }
  function showDoctor(data) {
    var body = document.querySelector("#doctor tbody");
    if (!body) { return; }
    [$("doctor-overall"), $("doctor-link-verdict")].forEach(function (b) {
      if (b) { b.className = "badge doctor-" + data.verdict; b.textContent = data.verdict_text; }
    });
    var overall = $("doctor-verdict");
    if (overall) { overall.setAttribute("data-verdict", data.verdict); }
    var rows = data.rows.map(function (c) {
      var tr = document.createElement("tr");
      tr.setAttribute("data-check", c.name);
      tr.setAttribute("data-verdict", c.verdict);
      var th = document.createElement("th");
      th.scope = "row";
      th.textContent = c.label;
      var verdict = document.createElement("td");
      verdict.appendChild(badge(c.verdict, c.verdict_text));
      var detail = document.createElement("td");
      detail.lang = c.summary_lang || "en";
      var summary = document.createElement("span");
      summary.className = "mono";
      summary.textContent = c.summary;
      if (detail.lang !== "en" && c.summary_en) { summary.title = c.summary_en; }
      detail.appendChild(summary);
      if (c.as_of) {
        var when = document.createElement("span");
        when.className = "muted doctor-as-of";
        when.lang = lang;
        when.textContent = "(" + c.as_of_text + ")";
        detail.appendChild(document.createTextNode(" "));
        detail.appendChild(when);
      }
      var next = document.createElement("td");
      next.lang = c.next_step_lang || "en";
      next.className = "doctor-next";
      next.textContent = c.next_step;
      if (next.lang !== "en" && c.next_step_en) { next.title = c.next_step_en; }
      [th, verdict, detail, next].forEach(function (cell) { tr.appendChild(cell); });
      return tr;
    });
    body.replaceChildren.apply(body, rows);
  }
  function pollStatus() {
    request("GET", "/status").then(function (data) {
      data.rows.forEach(function (row) {
        var tr = document.querySelector('#status tr[data-key="' + row.key + '"] td');
        if (tr) { tr.textContent = row.value; }
      });
    }).catch(function () { /* the next poll tries again */ });
    request("GET", "/doctor").then(showDoctor)
      .catch(function () { /* the next poll tries again */ });
    request("GET", "/queue").then(function (data) {
      Object.keys(data.counts).forEach(function (state) {
        var td = document.querySelector('#queue-counts td[data-count="' + state + '"]');
        if (td) { td.textContent = data.counts[state]; }
      });
    }).catch(function () { /* the next poll tries again */ });
  }
  if (refresh) {
    refresh.addEventListener("click", function () {
      if (Date.now() - resumedAt < 1500) { return; }  // that tap only woke the screen
      paused = !paused;
      window.sessionStorage.setItem("tech-refresh-paused", paused ? "1" : "0");
      label();
    });
    label();
    var seconds = parseInt(refresh.getAttribute("data-seconds") || "10", 10);
    setInterval(function () {
      if (!idle && Date.now() - lastActivity > idleMs) { idle = true; label(); }
      if (!paused && !idle) { pollStatus(); }
    }, seconds * 1000);
  }

  // --- scanner jobs ----------------------------------------------------------------
  var jobBox = $("scanner-job");
  var list = $("scanner-list");
  var result = $("scanner-result");
  var buttons = [$("scanner-search"), $("scanner-test")];

  function setBusy(on) { buttons.forEach(function (b) { busy(b, on); }); }

  function stepDetail(step) {
    var skip = { step: 1, seconds: 1, error: 1, error_text: 1, message: 1 };
    var parts = [];
    Object.keys(step).forEach(function (k) {
      if (!skip[k]) { parts.push(k + ": " + JSON.stringify(step[k])); }
    });
    if (step.error_text) { parts.unshift(step.error_text); }
    return parts.join(", ");
  }

  function drawSteps(job) {
    var body = document.querySelector("#scanner-steps tbody");
    body.textContent = "";
    job.steps.forEach(function (step) {
      var tr = document.createElement("tr");
      if (step.error) { tr.className = "step-error"; }
      [step.step, (step.seconds * 1000).toFixed(1), stepDetail(step)].forEach(function (v) {
        var td = document.createElement("td");
        td.textContent = v;
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    result.hidden = job.steps.length === 0 && !job.thumbnail_url;
  }

  function drawDevices(job) {
    var body = list.querySelector("tbody");
    body.textContent = "";
    var devices = (job.result && job.result.devices) || [];
    list.hidden = devices.length === 0;
    devices.forEach(function (d) {
      var tr = document.createElement("tr");
      var model = document.createElement("td");
      model.textContent = [d.vendor, d.model].join(" ") + (d.serial ? " (" + d.serial + ")" : "");
      var name = document.createElement("td");
      name.className = "mono";
      name.textContent = d.name;
      var act = document.createElement("td");
      if (d.chosen) {
        var tag = document.createElement("strong");
        tag.textContent = text("txt-in-use");
        act.appendChild(tag);
      } else {
        var choose = $("tpl-choose").content.firstElementChild.cloneNode(true);
        choose.addEventListener("click", function () { chooseScanner(d.identity, choose); });
        act.appendChild(choose);
      }
      var test = $("tpl-test-this").content.firstElementChild.cloneNode(true);
      test.addEventListener("click", function () { startTest(d.identity); });
      act.appendChild(test);
      tr.appendChild(model); tr.appendChild(name); tr.appendChild(act);
      body.appendChild(tr);
    });
    if (devices.length === 0 && job.state === "done") {
      show(jobBox, text("txt-found-none"), "warn");
    }
  }

  function finish(job) {
    setBusy(false);
    if (job.kind === "scanner_list") {
      drawDevices(job);
      if (job.state === "done" && job.result.devices && job.result.devices.length) {
        jobBox.hidden = true;
      }
    } else {
      drawSteps(job);
      if (job.thumbnail_url) {
        var img = $("scanner-thumb");
        img.src = job.thumbnail_url + "?t=" + job.id;
        $("scanner-thumb-caption").textContent = (job.result.label || "") + " · " +
          (job.result.pages || 0) + " ×";
        $("scanner-thumb-box").hidden = false;
      }
      if (job.state === "done") { show(jobBox, text("txt-test-ok"), "ok"); }
    }
    if (job.state === "failed") { show(jobBox, job.message, "error"); }
  }

  function follow(jobId) {
    request("GET", "/jobs/" + jobId).then(function (job) {
      if (job.kind === "scanner_test") { drawSteps(job); }
      if (job.state === "done" || job.state === "failed") { finish(job); return; }
      show(jobBox, job.stalled ? text("txt-stalled") : job.message,
           job.stalled ? "warn" : "info");
      setTimeout(function () { follow(jobId); }, 400);
    }).catch(function (e) { setBusy(false); show(jobBox, e.message, "error"); });
  }

  function startJob(path, body) {
    setBusy(true);
    request("POST", path, body).then(function (data) { follow(data.job_id); })
      .catch(function (e) { setBusy(false); show(jobBox, e.message, "error"); });
  }

  function startTest(device) {
    $("scanner-thumb-box").hidden = true;
    document.querySelector("#scanner-steps tbody").textContent = "";
    startJob("/scanners/test", { device: device || "", source: $("test-source").value });
  }

  function chooseScanner(identity, button) {
    busy(button, true);
    request("POST", "/scanners/choose", { identity: identity }).then(function (data) {
      $("chosen").textContent = data.label;
      $("chosen").title = data.chosen;
      startJob("/scanners/search", {});
    }).catch(function (e) { busy(button, false); show(jobBox, e.message, "error"); });
  }

  if ($("scanner-search")) {
    $("scanner-search").addEventListener("click", function () {
      startJob("/scanners/search", {});
    });
    $("scanner-test").addEventListener("click", function () { startTest(""); });
  }

  // --- broker ----------------------------------------------------------------------
  var brokerButton = $("broker-test");
  if (brokerButton) {
    brokerButton.addEventListener("click", function () {
      var out = $("broker-result");
      busy(brokerButton, true);
      request("POST", "/broker/test", {}).then(function (data) {
        show(out, data.message + (data.ok || !data.detail ? "" : " (" + data.detail + ")"),
             data.ok ? "ok" : "error");
      }).catch(function (e) { show(out, e.message, "error"); })
        .then(function () { busy(brokerButton, false); });
    });
  }

  // --- models ----------------------------------------------------------------------
  var verify = $("models-verify");
  if (verify) {
    verify.addEventListener("click", function () {
      busy(verify, true);
      request("GET", "/models?verify=true").then(function (rows) {
        rows.forEach(function (m) {
          var cell = document.querySelector('#models tr[data-file="' + m.file + '"] .model-check');
          if (cell) {
            cell.textContent = m.check_text;
            cell.className = "model-check check-" + m.check;
          }
        });
      }).catch(function () { /* the cells keep "not checked" */ })
        .then(function () { busy(verify, false); });
    });
  }

  // --- journal ---------------------------------------------------------------------
  var journalButton = $("journal-refresh");
  if (journalButton) {
    journalButton.addEventListener("click", function () {
      busy(journalButton, true);
      request("GET", "/journal").then(function (data) {
        var box = $("journal");
        box.textContent = "";
        data.entries.forEach(function (e) {
          var line = document.createElement("div");
          line.className = "journal-line prio-" + e.priority;
          line.textContent = e.time + " " + e.unit + " " + e.message;
          box.appendChild(line);
        });
        var msg = $("journal-message");
        msg.textContent = data.message;
        msg.hidden = !data.message;
      }).catch(function () { /* keep what is shown */ })
        .then(function () { busy(journalButton, false); });
    });
  }
})();
