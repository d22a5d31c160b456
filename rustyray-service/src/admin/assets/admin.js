// RustyRay admin: keeps the pages current from the service's event stream.
// Every page reads fine without this script; it only spares the reloads.
(function () {
  "use strict";
  var body = document.body;
  var status = document.getElementById("live-status");
  function say(text) { if (status) { status.textContent = text; } }

  // The list's "select every job on this page" box.
  var all = document.getElementById("select-all");
  if (all) {
    all.hidden = false;
    all.addEventListener("change", function () {
      document.querySelectorAll('#job-rows input[name="id"]').forEach(function (box) { box.checked = all.checked; });
    });
  }

  var source = body.dataset.events;
  if (!source || !window.EventSource) { return; }
  var stopped = "Live updates stopped: reload the page, or sign in again.";
  say("Connecting for live updates…");
  var stream = new EventSource(source);
  stream.onopen = function () { say("Live: this page follows the jobs as they change."); };
  stream.onerror = function () {
    say(stream.readyState === EventSource.CLOSED ? stopped : "Reconnecting for live updates…");
  };

  // Several events in a burst cause one fetch.
  var pending = {};
  function soon(key, work) {
    if (pending[key]) { return; }
    pending[key] = setTimeout(function () { pending[key] = null; work(); }, 200);
  }
  // Fetches a piece of the page again; null when the session has ended.
  function fetchHtml(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } }).then(function (response) {
      if (!response.ok || response.redirected) { say(stopped); stream.close(); return null; }
      return response.text();
    });
  }

  var refresh = body.dataset.refresh;
  var rows = document.getElementById("job-rows");
  var kinds = ["submitted", "started", "retried", "released", "succeeded", "failed", "cancelled", "lost"];
  kinds.forEach(function (kind) {
    stream.addEventListener(kind, function (message) {
      var event;
      try { event = JSON.parse(message.data); } catch (e) { return; }
      if (!/^[0-9a-f-]{36}$/.test(event.job_id)) { return; }
      if (refresh) { soon("job", refreshJob); }
      if (rows) { listEvent(event); soon("stats", refreshStats); }
    });
  });

  function badge(state) {
    var span = document.createElement("span");
    span.className = "badge state-" + state.toLowerCase();
    span.textContent = state;
    return span;
  }

  function cell(label, content) {
    var td = document.createElement("td");
    td.dataset.label = label;
    if (typeof content === "string") { td.textContent = content; } else if (content) { td.appendChild(content); }
    return td;
  }

  function changed(row) {
    row.classList.remove("changed");
    void row.offsetWidth;
    row.classList.add("changed");
  }

  // The list: a known row changes state in place; a new job is added on
  // the first page of an unfiltered list, counted anywhere else.
  var added = 0;
  function listEvent(event) {
    var row = rows.querySelector('tr[data-job="' + event.job_id + '"]');
    if (row) {
      var state = row.querySelector('[data-field="state"]');
      state.replaceChildren(badge(event.state));
      if (event.error) { row.querySelector('[data-field="error"]').textContent = event.error; }
      changed(row);
      return;
    }
    if (event.kind !== "submitted") { return; }
    var table = rows.closest("table");
    if (table.dataset.liveInsert !== "true") {
      added += 1;
      var note = document.getElementById("new-jobs");
      note.hidden = false;
      note.textContent = added + " new job(s) since this page was loaded: reload to see them.";
      return;
    }
    row = document.createElement("tr");
    row.dataset.job = event.job_id;
    if (table.dataset.admin === "true") {
      var box = document.createElement("input");
      box.type = "checkbox";
      box.name = "id";
      box.value = event.job_id;
      box.setAttribute("aria-label", "Select job " + event.job_id.slice(0, 13));
      var select = document.createElement("td");
      select.className = "select";
      select.appendChild(box);
      row.appendChild(select);
    }
    var link = document.createElement("a");
    link.href = "/admin/jobs/" + event.job_id;
    var code = document.createElement("code");
    code.textContent = event.job_id.slice(0, 13);
    link.appendChild(code);
    var job = cell("Job", link);
    job.className = "job";
    var fn = document.createElement("code");
    fn.textContent = event.function;
    var state = cell("State", badge(event.state));
    state.dataset.field = "state";
    var error = cell("Last error", "");
    error.className = "error";
    error.dataset.field = "error";
    [job, cell("Function", fn), cell("Queue", event.queue), state, cell("Attempts", "0"), cell("Created", "just now"), error]
      .forEach(function (td) { row.appendChild(td); });
    rows.insertBefore(row, rows.firstChild);
    var empty = document.getElementById("no-jobs");
    if (empty) { empty.remove(); }
    changed(row);
  }

  function refreshStats() {
    fetchHtml("/admin/stats").then(function (html) {
      var stats = document.getElementById("stats");
      if (html !== null && stats) { stats.outerHTML = html; }
    });
  }

  // A job's page: its changing part again, keeping open backtraces open
  // and the keyboard focus where it was.
  function refreshJob() {
    fetchHtml(refresh).then(function (html) {
      var live = document.getElementById("live");
      if (html === null || !live) { return; }
      var open = {};
      live.querySelectorAll("details[data-key]").forEach(function (d) { open[d.dataset.key] = d.open; });
      var focused = document.activeElement && live.contains(document.activeElement) ? document.activeElement.id : "";
      live.innerHTML = html;
      live.querySelectorAll("details[data-key]").forEach(function (d) {
        if (open[d.dataset.key]) { d.open = true; }
      });
      var again = focused && document.getElementById(focused);
      if (again) { again.focus(); }
    });
  }
})();
