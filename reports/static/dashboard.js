/* The dashboard's charts and drilldown. Data come from a JSON block rendered by the server
   (never executed, escaped by Jinja's tojson); every ticket text is inserted with textContent. */
(function () {
  "use strict";
  var el = document.getElementById("b24desk-data");
  if (!el) { return; }
  var D = JSON.parse(el.textContent);
  var T = D.i18n || {};
  var state = { charts: {}, drawn: 0 };
  window.b24desk = state;

  var C = { blue: "#2fc6f6", green: "#9dcf00", orange: "#ffa900", red: "#ff5752", grey: "#a8adb4",
            text: "#525c69", line: "#e4e8eb", violet: "#a77bde" };

  function fmtDur(s) {
    if (s === null || s === undefined) { return "—"; }
    s = Math.round(s);
    var d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    var parts = [];
    if (d) { parts.push(d + " " + T.days_short); }
    if (h && parts.length < 2) { parts.push(h + " " + T.hours_short); }
    if (m && parts.length < 2) { parts.push(m + " " + T.minutes_short); }
    if (!parts.length || (sec && parts.length < 2 && !d && !h)) { parts.push(sec + " " + T.seconds_short); }
    return parts.join(" ");
  }

  function setupDefaults() {
    Chart.defaults.font.family = '"Open Sans", "Helvetica Neue", Helvetica, Arial, sans-serif';
    Chart.defaults.font.size = 12;
    Chart.defaults.color = C.text;
    Chart.defaults.borderColor = C.line;
    Chart.defaults.animation = false;
    Chart.defaults.maintainAspectRatio = false;
    Chart.defaults.plugins.legend.labels.boxWidth = 12;
  }

  /* Vertical marker lines (median, p90) on a histogram, at a fractional bin position. */
  var markers = {
    id: "b24markers",
    afterDatasetsDraw: function (chart, args, opts) {
      var list = (opts && opts.lines) || [];
      var x = chart.scales.x, area = chart.chartArea, ctx = chart.ctx;
      list.forEach(function (m) {
        if (m.pos === null || m.pos === undefined) { return; }
        var i = Math.floor(m.pos), f = m.pos - i;
        var px = x.getPixelForValue(i) + f * (x.getPixelForValue(i + 1) - x.getPixelForValue(i)) - (x.getPixelForValue(1) - x.getPixelForValue(0)) / 2;
        ctx.save();
        ctx.strokeStyle = m.color; ctx.lineWidth = 2; ctx.setLineDash([5, 4]);
        ctx.beginPath(); ctx.moveTo(px, area.top); ctx.lineTo(px, area.bottom); ctx.stroke();
        ctx.setLineDash([]); ctx.fillStyle = m.color; ctx.textAlign = "left";
        ctx.fillText(m.label, Math.min(px + 4, area.right - 80), area.top + 12 + (m.row || 0) * 14);
        ctx.restore();
      });
    }
  };

  function draw(id, cfg) {
    var canvas = document.getElementById(id);
    if (!canvas) { return; }
    state.charts[id] = new Chart(canvas, cfg);
    state.drawn += 1;
  }

  function trendCharts() {
    var tr = D.trend;
    if (!tr || !tr.labels || !tr.labels.length) { return; }
    draw("chart-trend-volume", {
      type: "line",
      data: { labels: tr.labels, datasets: [
        { label: T.created, data: tr.created, borderColor: C.blue, backgroundColor: C.blue, tension: 0.25 },
        { label: T.resolved, data: tr.resolved, borderColor: C.green, backgroundColor: C.green, tension: 0.25 }
      ] },
      options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } }
    });
    draw("chart-trend-time", {
      type: "line",
      data: { labels: tr.labels, datasets: [
        { label: T["kpi.first_response_time"] + " (" + T.median + ")", data: tr.frt_median, borderColor: C.orange, backgroundColor: C.orange, tension: 0.25, yAxisID: "y" },
        { label: T["kpi.resolution_time"] + " (" + T.median + ")", data: tr.resolution_median, borderColor: C.violet, backgroundColor: C.violet, tension: 0.25, yAxisID: "y1" }
      ] },
      options: {
        scales: {
          y: { beginAtZero: true, ticks: { callback: function (v) { return fmtDur(v); } } },
          y1: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false }, ticks: { callback: function (v) { return fmtDur(v); } } }
        },
        plugins: { tooltip: { callbacks: { label: function (c) { return c.dataset.label + ": " + fmtDur(c.parsed.y); } } } }
      }
    });
  }

  function histogram(id, dist, color) {
    if (!dist || !dist.counts || !dist.counts.length) { return; }
    draw(id, {
      type: "bar",
      data: { labels: dist.labels, datasets: [{ label: T.tickets, data: dist.counts, backgroundColor: color, barPercentage: 1.0, categoryPercentage: 0.92 }] },
      options: {
        onClick: function (evt, items) {
          if (!items.length || !dist.bins) { return; }
          var b = dist.bins[items[0].index];
          openDrill({ kpi: dist.kpi, min: b[0], max: b[1], title: (T["kpi." + dist.kpi] || dist.kpi) + ": " + dist.labels[items[0].index] });
        },
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
        plugins: {
          legend: { display: false },
          b24markers: { lines: [
            { pos: dist.median_pos, color: C.green, label: T.median + " " + fmtDur(dist.median), row: 0 },
            { pos: dist.p90_pos, color: C.red, label: "p90 " + fmtDur(dist.p90), row: 1 }
          ] }
        }
      },
      plugins: [markers]
    });
  }

  function priorityChart() {
    var p = D.by_priority;
    if (!p || !p.labels || !p.labels.length) { return; }
    draw("chart-priority", {
      type: "bar",
      data: { labels: p.labels, datasets: [
        { label: T.created, data: p.created, backgroundColor: C.blue },
        { label: T.resolved, data: p.resolved, backgroundColor: C.green }
      ] },
      options: {
        onClick: function (evt, items) {
          if (!items.length) { return; }
          var prio = p.keys[items[0].index];
          openDrill({ kpi: items[0].datasetIndex === 0 ? "tickets_total" : "resolved_count", priority: prio,
                      title: T["kpi.resolved_by_priority"] + ": " + p.labels[items[0].index] });
        },
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } } }
      }
    });
  }

  /* --- drilldown -------------------------------------------------------------------------- */
  var overlay = document.getElementById("drill");
  function closeDrill() { overlay.classList.remove("open"); window.b24fit && window.b24fit(); }
  function cell(tr, text, cls) { var td = document.createElement("td"); td.textContent = text === null || text === undefined ? "" : String(text); if (cls) { td.className = cls; } tr.appendChild(td); return td; }

  function openDrill(spec) {
    if (!overlay || !D.api || !D.api.drilldown) { return; }
    var params = new URLSearchParams();
    Object.keys(D.query || {}).forEach(function (k) {
      var v = D.query[k];
      (Array.isArray(v) ? v : [v]).forEach(function (x) { if (x !== null && x !== undefined && x !== "") { params.append(k, x); } });
    });
    Object.keys(spec).forEach(function (k) { if (k !== "title" && spec[k] !== null && spec[k] !== undefined) { params.set(k, spec[k]); } });
    var title = document.getElementById("drill-title");
    var body = document.getElementById("drill-rows");
    var note = document.getElementById("drill-note");
    title.textContent = spec.title || (T["kpi." + spec.kpi] || spec.kpi);
    body.textContent = "";
    note.textContent = T.loading;
    overlay.classList.add("open");
    fetch(D.api.drilldown + "?" + params.toString(), { headers: { "Authorization": "Bearer " + D.token, "Accept": "application/json" } })
      .then(function (r) { return r.json().then(function (j) { return { ok: r.ok, body: j }; }); })
      .then(function (res) {
        if (!res.ok) { note.textContent = (res.body && res.body.message) || T.error; return; }
        var rows = res.body.tickets || [];
        note.textContent = rows.length + " / " + (res.body.total === undefined ? rows.length : res.body.total);
        rows.forEach(function (row) {
          var tr = document.createElement("tr");
          tr.setAttribute("data-ticket", row.source + ":" + row.source_id);
          var td = document.createElement("td");
          var a = document.createElement("a");
          a.textContent = row.title || ("#" + row.source_id);
          if (row.link) {
            a.href = row.link; a.target = "_blank"; a.rel = "noopener noreferrer";
            a.addEventListener("click", function (e) { if (window.b24openPath && window.b24openPath(row.link)) { e.preventDefault(); } });
          }
          td.appendChild(a); tr.appendChild(td);
          cell(tr, row.source_label || row.source);
          cell(tr, row.responsible);
          cell(tr, row.created);
          cell(tr, row.state_label || row.state);
          cell(tr, row.value_text, "num");
          body.appendChild(tr);
        });
        window.b24fit && window.b24fit();
      })
      .catch(function () { note.textContent = T.error; });
  }
  state.openDrill = openDrill;

  document.addEventListener("click", function (e) {
    var t = e.target.closest ? e.target.closest("[data-drill]") : null;
    if (t) { e.preventDefault(); openDrill(JSON.parse(t.getAttribute("data-drill"))); return; }
    if (e.target.id === "drill-close" || e.target === overlay) { closeDrill(); }
  });
  document.addEventListener("keydown", function (e) { if (e.key === "Escape" && overlay) { closeDrill(); } });

  /* CCEI bars: widths through the CSSOM (allowed by the CSP, unlike inline style attributes). */
  Array.prototype.forEach.call(document.querySelectorAll(".fill[data-pct]"), function (f) {
    var v = parseFloat(f.getAttribute("data-pct"));
    if (!isNaN(v)) { f.style.width = Math.max(0, Math.min(100, v)) + "%"; }
  });

  /* Keep filter changes in the URL: the form is a GET to this page. Empty fields are dropped. */
  var form = document.getElementById("filters");
  if (form) {
    form.addEventListener("submit", function () {
      Array.prototype.forEach.call(form.elements, function (x) { if (x.name && x.name !== "t" && !x.value) { x.disabled = true; } });
    });
    Array.prototype.forEach.call(form.querySelectorAll("select"), function (s) {
      s.addEventListener("change", function () { if (form.requestSubmit) { form.requestSubmit(); } else { form.submit(); } });
    });
  }

  try {
    setupDefaults();
    trendCharts();
    histogram("chart-frt", D.frt_dist, C.orange);
    histogram("chart-resolution", D.resolution_dist, C.violet);
    priorityChart();
  } finally {
    document.body.setAttribute("data-charts", String(state.drawn));
    document.body.setAttribute("data-ready", "1");
    window.b24fit && window.b24fit();
  }
})();
