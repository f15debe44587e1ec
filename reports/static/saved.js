/* Saved reports: the builder's live preview and save, delete, pin and digest, the report page's
   charts and heatmap. Data come from a JSON block (tojson, never executed); texts are inserted
   with textContent; every call carries the viewer token as a Bearer header. */
(function () {
  "use strict";
  var bootEl = document.getElementById("sr-boot");
  if (!bootEl) { return; }
  var B = JSON.parse(bootEl.textContent);
  var T = B.i18n || {};
  var state = { previews: 0, lastPreview: null };
  window.b24saved = state;

  function api(method, url, body) {
    var opts = { method: method, headers: { "Authorization": "Bearer " + B.token } };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    return fetch(url, opts).then(function (r) {
      if (r.status === 204) { return { ok: true, status: 204, data: null }; }
      return r.json().then(function (d) { return { ok: r.ok, status: r.status, data: d }; },
                           function () { return { ok: r.ok, status: r.status, data: {} }; });
    });
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = text; }
    return e;
  }

  function reportUrl(id) { return B.report_url.replace("__ID__", encodeURIComponent(id)); }

  function confirmDelete(id, name) {
    if (!window.confirm((T.confirm_delete || "Delete?").replace("{name}", name))) { return; }
    api("DELETE", "/api/reports/" + encodeURIComponent(id)).then(function (r) {
      if (r.ok) { window.location.href = B.list_url; }
      else { window.alert((r.data && r.data.error) || r.status); }
    });
  }

  /* --- list page ----------------------------------------------------------------------------- */
  Array.prototype.forEach.call(document.querySelectorAll(".sr-delete"), function (a) {
    a.addEventListener("click", function (ev) { ev.preventDefault(); confirmDelete(a.dataset.id, a.dataset.name); });
  });

  /* --- builder ------------------------------------------------------------------------------- */
  var form = document.getElementById("builder");
  if (form) {
    var preview = document.getElementById("preview");
    var previewState = document.getElementById("preview-state");
    var errBox = document.getElementById("b-error");
    var timer = null;

    function checked(name) {
      return Array.prototype.map.call(form.querySelectorAll("input[name='" + name + "']:checked"),
                                      function (i) { return i.value; });
    }
    function val(id) { var e = document.getElementById(id); return e ? e.value : ""; }

    function definition() {
      var preset = val("b-preset");
      var filters = {};
      ["department", "agent", "priority", "type", "source", "channel", "line"].forEach(function (k) {
        var v = val("b-" + k);
        if (v) { filters[k] = v; }
      });
      return {
        name: val("b-name").trim() || (T.preview || "Preview"),
        kpis: checked("kpis"),
        group_by: val("b-group_by") || null,
        filters: filters,
        period: preset === "fixed" ? { from: val("b-from"), to: val("b-to") } : { preset: preset },
        compare: val("b-compare") || null,
        chart: val("b-chart"),
        share: { roles: checked("share_roles"), departments: checked("share_departments"), users: checked("share_users") }
      };
    }

    function syncDates() {
      var fixed = val("b-preset") === "fixed";
      Array.prototype.forEach.call(form.querySelectorAll(".sr-dates"), function (e) { e.hidden = !fixed; });
    }

    function showError(data) {
      Array.prototype.forEach.call(form.querySelectorAll(".sr-bad"), function (e) { e.classList.remove("sr-bad"); });
      if (!data) { errBox.hidden = true; errBox.textContent = ""; return; }
      errBox.hidden = false;
      errBox.textContent = data.error || String(data);
      var f = data.field || "";
      var target = form.querySelector("[data-field='" + f + "']") ||
                   form.querySelector("[data-field='" + f.split(".")[0] + "']");
      if (target) { target.classList.add("sr-bad"); }
    }

    function renderTable(table) {
      var t = el("table", "data sr-table");
      var head = el("tr");
      head.appendChild(el("th", null, table.dim_label || ""));
      table.columns.forEach(function (c) { head.appendChild(el("th", "num", c.label)); });
      var thead = el("thead"); thead.appendChild(head); t.appendChild(thead);
      var body = el("tbody");
      table.rows.forEach(function (r) {
        var tr = el("tr", r.total ? "sr-total" : "");
        tr.appendChild(el("td", null, r.label));
        r.cells.forEach(function (c) {
          var td = el("td", "num", c.text);
          if (c.sub) { td.appendChild(el("div", "sr-sub " + (c.good === true ? "good" : c.good === false ? "bad" : ""), c.sub)); }
          tr.appendChild(td);
        });
        body.appendChild(tr);
      });
      t.appendChild(body);
      preview.textContent = "";
      preview.appendChild(t);
    }

    function runPreview() {
      var d = definition();
      if (!d.kpis.length) { showError({ error: T.kpis, field: "kpis" }); return; }
      previewState.textContent = T.loading || "…";
      var mine = ++state.previews;
      api("POST", "/api/reports/preview", d).then(function (r) {
        if (mine !== state.previews) { return; }            /* a newer preview is on its way */
        if (!r.ok) { showError(r.data); previewState.textContent = ""; return; }
        showError(null);
        state.lastPreview = r.data;
        renderTable(r.data.table);
        document.getElementById("preview-period").textContent =
          (T.period_of || "") + ": " + r.data.period_text;
        previewState.textContent = T.preview_hint || "";
        previewState.dataset.done = String(mine);
      });
    }

    function schedule() { clearTimeout(timer); timer = setTimeout(runPreview, 350); }
    form.addEventListener("change", function () { syncDates(); schedule(); });
    form.addEventListener("input", function (ev) { if (ev.target.type === "text") { schedule(); } });
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var d = definition();
      d.name = val("b-name").trim();
      var req = B.id ? api("PUT", "/api/reports/" + encodeURIComponent(B.id), d) : api("POST", "/api/reports", d);
      req.then(function (r) {
        if (!r.ok) { showError(r.data); return; }
        window.location.href = reportUrl(B.id || r.data.id);
      });
    });
    syncDates();
    runPreview();
  }

  /* --- report page ------------------------------------------------------------------------- */
  var del = document.getElementById("delete-report");
  if (del) { del.addEventListener("click", function () { confirmDelete(del.dataset.id, del.dataset.name); }); }
  var ctl = document.getElementById("controls-state");
  var pin = document.getElementById("pin");
  if (pin) {
    pin.addEventListener("change", function () {
      api("POST", "/api/reports/" + encodeURIComponent(B.id) + "/pin", { pinned: pin.checked }).then(function (r) {
        ctl.textContent = r.ok ? (T.saved_ok || "OK") : ((r.data && r.data.error) || r.status);
      });
    });
  }
  var dig = document.getElementById("digest");
  if (dig) {
    dig.addEventListener("change", function () {
      api("POST", "/api/reports/" + encodeURIComponent(B.id) + "/digest", { digest: dig.value || null }).then(function (r) {
        ctl.textContent = r.ok ? (T.saved_ok || "OK") : ((r.data && r.data.error) || r.status);
      });
    });
  }

  var heat = document.getElementById("heatmap");
  if (heat) {
    var cells = heat.querySelectorAll("td[data-n]");
    var max = 0;
    Array.prototype.forEach.call(cells, function (c) { max = Math.max(max, +c.dataset.n); });
    Array.prototype.forEach.call(cells, function (c) {
      var a = max ? (+c.dataset.n / max) : 0;
      c.style.backgroundColor = "rgba(47, 198, 246, " + (a * 0.9).toFixed(3) + ")";
      if (a > 0.6) { c.style.color = "#fff"; }
    });
  }

  if (window.Chart && (B.charts || B.long)) {
    Chart.defaults.font.family = '"Open Sans", "Helvetica Neue", Helvetica, Arial, sans-serif';
    Chart.defaults.font.size = 12;
    Chart.defaults.color = "#525c69";
    Chart.defaults.animation = false;
    Chart.defaults.maintainAspectRatio = false;
    Chart.defaults.plugins.legend.labels.boxWidth = 12;
    Chart.defaults.locale = B.lang === "ru" ? "ru-RU" : "en-GB";
    (B.charts || []).forEach(function (c, i) {
      var canvas = document.getElementById("chart-" + i);
      if (!canvas) { return; }
      var sets = [{ label: T.value || "", data: c.values, backgroundColor: "#2fc6f6", borderColor: "#2fc6f6",
                    spanGaps: true, tension: 0.2 }];
      if (c.previous) {
        sets.push({ label: T.previous || "", data: c.previous, backgroundColor: "#c6cdd3", borderColor: "#a8adb4",
                    borderDash: B.chart === "line" ? [4, 4] : undefined, spanGaps: true, tension: 0.2 });
      }
      new Chart(canvas, { type: B.chart === "line" ? "line" : "bar", data: { labels: c.labels, datasets: sets },
                          options: { scales: { y: { beginAtZero: true } } } });
    });
    if (B.long) {
      var lc = document.getElementById("chart-long");
      var scale = B.long.kind === "share" ? 100 : B.long.kind === "duration" ? 1 / 60 : 1;
      var conv = function (v) { return v === null || v === undefined ? null : Math.round(v * scale * 100) / 100; };
      if (lc) {
        new Chart(lc, { type: "line", data: { labels: B.long.labels, datasets: [
          { label: T.value || "", data: B.long.values.map(conv), borderColor: "#2fc6f6", backgroundColor: "#2fc6f6", spanGaps: true },
          { label: T.year_ago || "", data: B.long.year.map(conv), borderColor: "#a8adb4", backgroundColor: "#a8adb4",
            borderDash: [4, 4], spanGaps: true }] }, options: { scales: { y: { beginAtZero: true } } } });
      }
    }
  }
  if (window.b24fit) { window.b24fit(); }
  document.body.setAttribute("data-ready", "1");
})();
