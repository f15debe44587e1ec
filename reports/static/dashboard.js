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

  /* Duration axes at steps people read: 1, 2, 5, 10, 15, 30 min, 1, 2, 3, 6, 12 h, 1, 2, 7 days. */
  var STEPS = [60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800];
  function durAxis(extra) {
    var axis = { beginAtZero: true, ticks: { callback: function (v) { return fmtDur(v); } },
      afterBuildTicks: function (scale) {
        var max = scale.max || 0, step = STEPS[STEPS.length - 1];
        for (var i = 0; i < STEPS.length; i++) { if (max / STEPS[i] <= 6) { step = STEPS[i]; break; } }
        var ticks = [];
        for (var v = 0; v <= max + 1e-9; v += step) { ticks.push({ value: v }); }
        scale.ticks = ticks;
      } };
    Object.keys(extra || {}).forEach(function (k) { axis[k] = extra[k]; });
    return axis;
  }
  function partialSegments(tr) {
    /* a week cut by the period is drawn dashed and lighter, so it does not read as a drop */
    var p = tr.partial || [];
    return { borderDash: function (ctx) { return (p[ctx.p0DataIndex] || p[ctx.p1DataIndex]) ? [5, 4] : undefined; } };
  }
  function pointStyle(tr) {
    var p = tr.partial || [];
    return function (ctx) { return p[ctx.dataIndex] ? "rectRot" : "circle"; };
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
        { label: T.created, data: tr.created, borderColor: C.blue, backgroundColor: C.blue, tension: 0.25, segment: partialSegments(tr), pointStyle: pointStyle(tr) },
        { label: T.resolved, data: tr.resolved, borderColor: C.green, backgroundColor: C.green, tension: 0.25, segment: partialSegments(tr), pointStyle: pointStyle(tr) }
      ] },
      options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } }
    });
    draw("chart-trend-time", {
      type: "line",
      data: { labels: tr.labels, datasets: [
        { label: T.first_response + ", " + T.median.toLowerCase(), data: tr.frt_median, borderColor: C.orange, backgroundColor: C.orange, tension: 0.25, yAxisID: "y", segment: partialSegments(tr), pointStyle: pointStyle(tr) },
        { label: T.resolution_short + ", " + T.median.toLowerCase(), data: tr.resolution_median, borderColor: C.violet, backgroundColor: C.violet, tension: 0.25, yAxisID: "y1", segment: partialSegments(tr), pointStyle: pointStyle(tr) }
      ] },
      options: {
        scales: {
          y: durAxis(),
          y1: durAxis({ position: "right", grid: { drawOnChartArea: false } })
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
            { pos: dist.p90_pos, color: C.red, label: "p90 " + fmtDur(dist.p90), row: 1 },
            { pos: dist.target_pos, color: C.text, label: T.target + " " + fmtDur(dist.target), row: 2 }
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

  /* --- drilldown: placed where it was opened, paged, sortable, exportable ----------------- */
  var overlay = document.getElementById("drill");
  var drill = { spec: null, page: 1, sort: "value", dir: "", anchor: null };
  function closeDrill() { overlay.classList.remove("open"); window.b24fit && window.b24fit(); }
  function cell(tr, text, cls) { var td = document.createElement("td"); td.textContent = text === null || text === undefined ? "" : String(text); if (cls) { td.className = cls; } tr.appendChild(td); return td; }

  function drillParams(spec) {
    var params = new URLSearchParams();
    Object.keys(D.query || {}).forEach(function (k) {
      var v = D.query[k];
      (Array.isArray(v) ? v : [v]).forEach(function (x) { if (x !== null && x !== undefined && x !== "") { params.append(k, x); } });
    });
    Object.keys(spec).forEach(function (k) {
      if (k !== "title" && k !== "now" && spec[k] !== null && spec[k] !== undefined) { params.set(k, spec[k]); }
    });
    if (spec.now) { params.set("item", spec.now); }
    params.set("sort", drill.sort);
    if (drill.dir) { params.set("dir", drill.dir); }
    return params;
  }

  function place(anchor) {
    /* top of the panel at the element clicked (the frame grows with the page, so its own
       viewport may be far from what the user sees); then bring it into view */
    var top = 80;
    if (anchor && anchor.getBoundingClientRect) {
      top = anchor.getBoundingClientRect().bottom + window.scrollY + 6;
    }
    overlay.style.top = Math.max(0, top) + "px";
  }

  function loadDrill() {
    var spec = drill.spec;
    var params = drillParams(spec);
    params.set("page", drill.page);
    var url = (spec.now ? D.api.now : D.api.drilldown) + "?" + params.toString();
    var body = document.getElementById("drill-rows");
    var note = document.getElementById("drill-note");
    var exp = new URLSearchParams(params); exp.set("format", "csv"); exp.delete("page"); exp.set("t", D.token);
    document.getElementById("drill-export").href = (spec.now ? D.api.now : D.api.drilldown) + "?" + exp.toString();
    note.textContent = T.loading;
    fetch(url, { headers: { "Authorization": "Bearer " + D.token, "Accept": "application/json" } })
      .then(function (r) { return r.json().then(function (j) { return { ok: r.ok, body: j }; }); })
      .then(function (res) {
        body.textContent = "";
        if (!res.ok) { note.textContent = (res.body && res.body.message) || T.error; return; }
        var b = res.body, rows = b.tickets || [];
        var first = (b.page - 1) * b.per_page;
        note.textContent = rows.length ? (first + 1) + "–" + (first + rows.length) + " / " + b.total : T.no_data;
        document.getElementById("drill-page").textContent = T.page_of + " " + b.page + " / " + b.pages;
        document.getElementById("drill-prev").disabled = b.page <= 1;
        document.getElementById("drill-next").disabled = b.page >= b.pages;
        document.getElementById("drill-value-head").textContent = b.value_label || T.value;
        drill.sort = b.sort; drill.dir = b.dir;
        Array.prototype.forEach.call(document.querySelectorAll("#drill-table th[data-sort]"), function (th) {
          th.classList.remove("sorted-asc", "sorted-desc");
          if (th.getAttribute("data-sort") === b.sort) { th.classList.add(b.dir === "desc" ? "sorted-desc" : "sorted-asc"); }
        });
        rows.forEach(function (row) {
          var tr = document.createElement("tr");
          tr.setAttribute("data-ticket", row.source + ":" + row.source_id);
          var td = document.createElement("td");
          td.className = "first";
          var a = document.createElement("a");
          a.textContent = row.title || ("#" + row.source_id);
          if (row.link) {
            a.href = row.link; a.target = "_blank"; a.rel = "noopener noreferrer";
            a.addEventListener("click", function (e) { if (window.b24openPath && window.b24openPath(row.link)) { e.preventDefault(); } });
          }
          td.appendChild(a); tr.appendChild(td);
          cell(tr, row.source_label);
          cell(tr, row.responsible);
          cell(tr, row.created, "num");
          cell(tr, row.state_label);
          cell(tr, row.value_text, "num");
          body.appendChild(tr);
        });
        window.b24fit && window.b24fit();
        var dlg = overlay.querySelector(".dialog");
        if (dlg && dlg.scrollIntoView) { dlg.scrollIntoView({ block: "nearest" }); }
        overlay.setAttribute("data-loaded", String(Date.now()));
      })
      .catch(function () { note.textContent = T.error; });
  }

  function openDrill(spec, anchor) {
    if (!overlay || !D.api || !D.api.drilldown) { return; }
    drill.spec = spec; drill.page = 1; drill.sort = "value"; drill.dir = spec.now === "at_risk" ? "asc" : "";
    document.getElementById("drill-title").textContent = spec.title || (T["kpi." + spec.kpi] || "");
    document.getElementById("drill-rows").textContent = "";
    place(anchor);
    overlay.classList.add("open");
    loadDrill();
  }
  state.openDrill = openDrill;

  document.addEventListener("click", function (e) {
    var info = e.target.closest ? e.target.closest(".info") : null;
    if (info) { e.preventDefault(); e.stopPropagation(); toggleInfo(info); return; }
    hideInfo();
    var th = e.target.closest ? e.target.closest("#drill-table th[data-sort]") : null;
    if (th && th.getAttribute("data-sort")) {
      var key = th.getAttribute("data-sort");
      drill.dir = (drill.sort === key && drill.dir === "desc") ? "asc" : (drill.sort === key ? "desc" : (key === "value" || key === "created" ? "desc" : "asc"));
      drill.sort = key; drill.page = 1; loadDrill(); return;
    }
    if (e.target.id === "drill-prev") { drill.page = Math.max(1, drill.page - 1); loadDrill(); return; }
    if (e.target.id === "drill-next") { drill.page += 1; loadDrill(); return; }
    var sth = e.target.closest ? e.target.closest("table.sortable th") : null;
    if (sth) { sortTable(sth); return; }
    var t = e.target.closest ? e.target.closest("[data-drill]") : null;
    if (t) { e.preventDefault(); openDrill(JSON.parse(t.getAttribute("data-drill")), t); return; }
    if (e.target.id === "drill-close") { closeDrill(); }
  });
  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape" && overlay) { closeDrill(); hideInfo(); }
    if (e.key === "Enter" && e.target.matches && e.target.matches("table.sortable th")) { sortTable(e.target); }
  });

  /* --- the "i" of a KPI: its one-line definition, on click (hover shows the title too) --- */
  var pop = null;
  function hideInfo() { if (pop) { pop.remove(); pop = null; } }
  function toggleInfo(btn) {
    var was = pop && pop.getAttribute("data-for") === btn.closest(".card").getAttribute("data-kpi");
    hideInfo();
    if (was) { return; }
    pop = document.createElement("div");
    pop.className = "info-pop";
    pop.id = "info-pop";
    pop.setAttribute("data-for", btn.closest(".card").getAttribute("data-kpi"));
    pop.textContent = btn.getAttribute("data-info");
    document.body.appendChild(pop);
    var r = btn.getBoundingClientRect();
    var left = Math.min(r.left + window.scrollX, document.documentElement.clientWidth - 300);
    pop.style.left = Math.max(8, left) + "px";
    pop.style.top = (r.bottom + window.scrollY + 6) + "px";
  }

  /* --- sortable tables (numbers by their raw value, text by locale) ------------------------ */
  function sortTable(th) {
    var table = th.closest("table"), col = parseInt(th.getAttribute("data-col"), 10);
    var asc = !th.classList.contains("sorted-asc");
    Array.prototype.forEach.call(table.querySelectorAll("th"), function (x) { x.classList.remove("sorted-asc", "sorted-desc"); });
    th.classList.add(asc ? "sorted-asc" : "sorted-desc");
    var tbody = table.tBodies[0];
    var rows = Array.prototype.slice.call(tbody.rows);
    rows.sort(function (a, b) {
      var x = a.cells[col].getAttribute("data-sort"), y = b.cells[col].getAttribute("data-sort");
      if (x === "" && y === "") { return 0; }
      if (x === "") { return 1; }
      if (y === "") { return -1; }
      var num = /^-?\d+(\.\d+)?(e[-+]?\d+)?$/i, r;
      if (num.test(x) && num.test(y)) { r = parseFloat(x) - parseFloat(y); }
      else { r = x.localeCompare(y, document.documentElement.lang || "ru"); }
      return asc ? r : -r;
    });
    rows.forEach(function (r) { tbody.appendChild(r); });
  }

  /* CCEI bars: widths through the CSSOM (allowed by the CSP, unlike inline style attributes). */
  Array.prototype.forEach.call(document.querySelectorAll(".fill[data-pct]"), function (f) {
    var v = parseFloat(f.getAttribute("data-pct"));
    if (!isNaN(v)) { f.style.width = Math.max(0, Math.min(100, v)) + "%"; }
  });

  /* Keep filter changes in the URL: the form is a GET to this page. Empty fields are dropped.
     A preset fills the dates (inclusive days) and is kept in the URL, so a bookmark rolls on;
     editing a date by hand drops the preset. */
  var form = document.getElementById("filters");
  if (form) {
    var preset = document.getElementById("f-preset");
    var from = document.getElementById("f-from"), to = document.getElementById("f-to");
    function submit() { if (form.requestSubmit) { form.requestSubmit(); } else { form.submit(); } }
    form.addEventListener("submit", function () {
      Array.prototype.forEach.call(form.elements, function (x) {
        if (x.name && x.name !== "t" && !x.value) { x.disabled = true; }
        if (x.name === "compare" && x.value === "previous") { x.disabled = true; }
        if (x.classList && x.classList.contains("pk-search")) { x.disabled = true; }
        if ((x.name === "from" || x.name === "to") && preset && preset.value) { x.disabled = true; }
      });
    });
    if (preset) {
      preset.addEventListener("change", function () {
        var p = (D.presets || {})[preset.value];
        if (p) { from.value = p[0]; to.value = p[1]; }
        submit();
      });
    }
    [from, to].forEach(function (x) { if (x) { x.addEventListener("change", function () { if (preset) { preset.value = ""; } }); } });
    Array.prototype.forEach.call(form.querySelectorAll("select"), function (s) {
      if (s.id === "f-preset") { return; }
      s.addEventListener("change", submit);
    });
    /* pickers: search within the list, clear, one open at a time */
    Array.prototype.forEach.call(form.querySelectorAll(".fpicker"), function (pk) {
      var search = pk.querySelector(".pk-search");
      search.addEventListener("input", function () {
        var q = search.value.trim().toLowerCase();
        Array.prototype.forEach.call(pk.querySelectorAll(".pk-item"), function (it) {
          it.classList.toggle("hidden", q !== "" && it.textContent.toLowerCase().indexOf(q) < 0);
        });
      });
      search.addEventListener("keydown", function (e) { if (e.key === "Enter") { e.preventDefault(); } });
      pk.querySelector(".pk-clear").addEventListener("click", function () {
        Array.prototype.forEach.call(pk.querySelectorAll("input[type=checkbox]"), function (c) { c.checked = false; });
      });
      pk.addEventListener("toggle", function () {
        if (pk.open) {
          Array.prototype.forEach.call(form.querySelectorAll(".fpicker"), function (o) { if (o !== pk) { o.open = false; } });
          /* a picker near the frame's right edge opens leftwards, inside the frame */
          var pop = pk.querySelector(".pk-pop");
          pop.style.left = "0px";
          var r = pop.getBoundingClientRect(), room = document.documentElement.clientWidth - 8;
          if (r.right > room) { pop.style.left = Math.round(Math.max(8 - r.left, room - r.right)) + "px"; }
          search.focus();
        }
        window.b24fit && window.b24fit();
      });
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
