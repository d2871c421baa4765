/* The usage page's chart: cost by day, drawn with uPlot from the page's json_script.
 *
 * It runs on a full load and after every swap that brings the page in (a boosted navigation, a
 * history restore), so it clears what a cached copy of the page left in the chart first. The same
 * numbers are in the table under the chart, which is what a screen reader and a browser without
 * JavaScript get. */
(function () {
  "use strict";
  var target = document.getElementById("usage-chart");
  var source = document.getElementById("usage-by-day");
  if (!target || !source || typeof uPlot === "undefined") return;
  var data = JSON.parse(source.textContent);
  var days = data.days.map(function (day) { return Date.parse(day + "T00:00:00Z") / 1000; });
  var cost = data.cost.map(Number);
  var months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  var money = function (self, ticks) { return ticks.map(function (value) { return value.toFixed(2); }); };
  var dayOf = function (self, ticks) {
    return ticks.map(function (ts) { var d = new Date(ts * 1000); return months[d.getUTCMonth()] + " " + d.getUTCDate(); });
  };

  function width() { return Math.max(target.clientWidth, 280); }

  target.replaceChildren();
  var chart = new uPlot({
    width: width(),
    height: 240,
    tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },
    scales: { x: { time: true, range: function (self, min, max) { return [min - 43200, max + 43200]; } } },
    legend: { show: false },
    cursor: { drag: { x: false, y: false } },
    // Ticks on whole days (UTC), every day or every few as the width allows.
    axes: [{ incrs: [86400, 2 * 86400, 7 * 86400], values: dayOf, space: 44 }, { values: money, size: 60 }],
    series: [
      {},
      {
        label: "Cost (" + data.currency + ")",
        stroke: "#1d4ed8",
        fill: "rgba(29, 78, 216, 0.35)",
        paths: uPlot.paths.bars({ size: [0.7, 40] }),
        points: { show: false },
      },
    ],
  }, [days, cost], target);

  if (typeof ResizeObserver !== "undefined") {
    new ResizeObserver(function () { chart.setSize({ width: width(), height: 240 }); }).observe(target);
  }
})();
