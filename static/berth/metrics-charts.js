/* The app's metrics page: four uPlot charts (CPU and memory per replica, requests per second by status,
 * response time) from the page's json_script.
 *
 * Points come only where there are figures; each chart gets every bin of the period on its x axis, and
 * null where a series has no figure, which uPlot draws as a gap. Like the usage chart, it runs on a
 * full load and after a boosted navigation, and clears what a cached copy of the page left first. */
(function () {
  "use strict";
  var source = document.getElementById("metrics-data");
  if (!source || typeof uPlot === "undefined") return;
  var data = JSON.parse(source.textContent);
  var palette = ["#1d4ed8", "#b45309", "#047857", "#7c3aed", "#be123c", "#0e7490", "#4d7c0f", "#a21caf"];
  var times = [];
  for (var t = data.start; t < data.end; t += data.bin) times.push(t);
  var position = {};
  times.forEach(function (time, i) { position[time] = i; });

  function column(points, at) {
    var values = times.map(function () { return null; });
    points.forEach(function (point) {
      if (point[0] in position) values[position[point[0]]] = point[at];
    });
    return values;
  }

  // A figure with a gap on either side has no line to be part of: drawn as a dot instead.
  function isolated(u, seriesIdx, show) {
    if (show) return null;
    var ys = u.data[seriesIdx], found = [];
    for (var i = 0; i < ys.length; i++) {
      if (ys[i] != null && (i === 0 || ys[i - 1] == null) && (i === ys.length - 1 || ys[i + 1] == null)) found.push(i);
    }
    return found.length ? found : null;
  }

  function draw(id, series, columns) {
    var target = document.getElementById(id);
    if (!target) return;
    target.replaceChildren();
    var width = function () { return Math.max(target.clientWidth, 280); };
    var chart = new uPlot({
      width: width(),
      height: 200,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },
      scales: { x: { time: true }, y: { range: function (self, min, max) { return [0, Math.max(max || 0, 1) * 1.1]; } } },
      cursor: { drag: { x: false, y: false } },
      series: [{}].concat(series.map(function (s, i) {
        return { label: s.label, stroke: s.stroke || palette[i % palette.length], width: 1.5, spanGaps: false,
                 dash: s.dash, points: { show: false, size: 5, filter: isolated } };
      })),
    }, [times].concat(columns), target);
    if (typeof ResizeObserver !== "undefined") {
      new ResizeObserver(function () { chart.setSize({ width: width(), height: 200 }); }).observe(target);
    }
  }

  var processes = data.processes;
  // The size's limits as dashed lines, once per distinct limit.
  var cpuLimits = Array.from(new Set(processes.map(function (p) { return p.cpu_limit; }).filter(Boolean)));
  var memoryLimits = Array.from(new Set(processes.map(function (p) { return p.memory_limit_mb; }).filter(Boolean)));
  var flat = function (value) { return times.map(function () { return value; }); };
  var limit = function (value, unit) { return { label: "limit " + value + unit, stroke: "#6b7280", dash: [6, 4] }; };

  draw("cpu-chart",
    processes.map(function (p) { return { label: p.name }; }).concat(cpuLimits.map(function (v) { return limit(v, ""); })),
    processes.map(function (p) { return column(p.points, 1); }).concat(cpuLimits.map(flat)));
  draw("memory-chart",
    processes.map(function (p) { return { label: p.name }; }).concat(memoryLimits.map(function (v) { return limit(v, " MB"); })),
    processes.map(function (p) { return column(p.points, 2); }).concat(memoryLimits.map(flat)));
  draw("requests-chart",
    [{ label: "all" , stroke: "#111827" }, { label: "2xx", stroke: "#047857" }, { label: "3xx", stroke: "#0e7490" },
     { label: "4xx", stroke: "#b45309" }, { label: "5xx", stroke: "#be123c" }],
    [1, 2, 3, 4, 5].map(function (at) { return column(data.requests, at); }));
  draw("latency-chart", [{ label: "ms", stroke: "#7c3aed" }], [column(data.requests, 6)]);
})();
