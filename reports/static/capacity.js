/* The capacity page's forecast chart: weekly actuals, the forecast and its 80 % band. Data come
   from a JSON block rendered by the server (escaped by Jinja's tojson, never executed). */
(function () {
  "use strict";
  var el = document.getElementById("capacity-data");
  var canvas = document.getElementById("chart-forecast");
  if (!el || !canvas || typeof Chart === "undefined") { return; }
  var D = JSON.parse(el.textContent);
  var T = D.i18n || {};
  var labels = [], actual = [], point = [], low = [], high = [];
  D.history.forEach(function (r) { labels.push(r.week); actual.push(r.created); point.push(null); low.push(null); high.push(null); });
  if (D.history.length && D.forecast.length) {       // join the forecast line to the last actual week
    var last = D.history.length - 1;
    point[last] = actual[last]; low[last] = actual[last]; high[last] = actual[last];
  }
  D.forecast.forEach(function (r) {
    labels.push(r.week); actual.push(null); point.push(r.created);
    low.push(r.low === null ? r.created : r.low); high.push(r.high === null ? r.created : r.high);
  });
  Chart.defaults.font.family = '"Open Sans", "Helvetica Neue", Helvetica, Arial, sans-serif';
  Chart.defaults.font.size = 12;
  Chart.defaults.color = "#525c69";
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  window.b24capacity = new Chart(canvas, {
    type: "line",
    data: { labels: labels, datasets: [
      { label: T.interval, data: low, borderWidth: 0, pointRadius: 0, fill: false, backgroundColor: "rgba(47,198,246,.18)" },
      { label: T.interval + " ", data: high, borderWidth: 0, pointRadius: 0, fill: "-1", backgroundColor: "rgba(47,198,246,.18)" },
      { label: T.actual, data: actual, borderColor: "#525c69", backgroundColor: "#525c69", tension: 0.2 },
      { label: T.forecast, data: point, borderColor: "#1ea3d3", backgroundColor: "#1ea3d3", borderDash: [6, 4], tension: 0.2 }
    ] },
    options: {
      plugins: { legend: { labels: { boxWidth: 12, filter: function (item) { return item.text !== T.interval + " "; } } } },
      scales: { y: { beginAtZero: true }, x: { ticks: { maxRotation: 0, autoSkip: true } } },
      spanGaps: false
    }
  });
}());
