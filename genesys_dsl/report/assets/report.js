// genesys report: sortable tables, the fitness chart (uPlot) and the lineage graph
// (dagre layout, drawn as SVG). Data comes from the page's <script id="report-data">
// JSON. Archived text is untrusted: it only ever reaches the page as textContent.
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg"; // the SVG namespace name, not a resource
  var COLORS = ["#2f5fb3", "#c0392b", "#1e7b34", "#a05a00", "#7b3fa0", "#0b6e74"];

  function reportData() {
    var el = document.getElementById("report-data");
    return el ? JSON.parse(el.textContent) : {};
  }

  // ------------------------------------------------------------ sortable tables

  // Sort state lives in the address (#sort=TABLE:COLUMN:asc|desc), so a sorted view
  // can be shared, reloaded, and checked by tests in a headless browser.
  function sortTable(table, key, direction) {
    var headers = table.querySelectorAll("th[data-key]");
    var column = -1, numeric = false;
    headers.forEach(function (th, i) {
      if (th.dataset.key === key) { column = i; numeric = th.dataset.type === "num"; }
      th.removeAttribute("aria-sort");
    });
    if (column < 0) return false;
    headers[column].setAttribute("aria-sort", direction === "desc" ? "descending" : "ascending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var sign = direction === "desc" ? -1 : 1;
    function value(row) {
      var raw = row.cells[column].dataset.sort;
      if (raw === undefined) raw = row.cells[column].textContent;
      if (!numeric) return raw.toLowerCase();
      return raw === "" ? null : Number(raw);
    }
    rows.map(function (row, i) { return { row: row, v: value(row), i: i }; })
      .sort(function (a, b) {
        if (a.v === b.v) return a.i - b.i;
        if (a.v === null) return 1; // missing values last, whichever the direction
        if (b.v === null) return -1;
        return (a.v < b.v ? -1 : 1) * sign;
      })
      .forEach(function (item) { body.appendChild(item.row); });
    return true;
  }

  function sortFromAddress() {
    var match = /(?:^#|&)sort=([\w-]+):([\w-]+)(?::(asc|desc))?/.exec(location.hash);
    if (!match) return;
    var table = document.getElementById(match[1]);
    if (table && table.classList.contains("sortable")) sortTable(table, match[2], match[3] || "asc");
  }

  function sortableTables() {
    document.querySelectorAll("table.sortable").forEach(function (table) {
      table.querySelectorAll("th[data-key]").forEach(function (th) {
        th.addEventListener("click", function () {
          var direction = th.getAttribute("aria-sort") === "ascending" ? "desc" : "asc";
          sortTable(table, th.dataset.key, direction);
          if (table.id) history.replaceState(null, "", "#sort=" + table.id + ":" + th.dataset.key + ":" + direction);
        });
      });
    });
    sortFromAddress();
  }

  // ------------------------------------------------------------ fitness chart

  function fitnessChart(el, series) {
    if (!series || !series.x.length || typeof uPlot === "undefined") return;
    var names = {};
    series.x.forEach(function (x, i) { names[x] = series.names[i]; });
    var data = [series.x], opts = [{
      label: "design",
      value: function (u, x) { return x == null ? "--" : "#" + x + " " + names[x]; }
    }];
    series.series.forEach(function (s, i) {
      var color = COLORS[i % COLORS.length];
      data.push(s.mean);
      opts.push({ label: s.rung, stroke: color, width: 0, paths: function () { return null; },
                  points: { show: true, size: 8, fill: color, stroke: color },
                  value: function (u, v) { return v == null ? "--" : v.toFixed(4); } });
      data.push(s.best);
      opts.push({ label: "best so far at " + s.rung, stroke: color, width: 1.5, dash: [6, 4],
                  paths: uPlot.paths.stepped({ align: 1 }), points: { show: false }, spanGaps: true,
                  value: function (u, v) { return v == null ? "--" : v.toFixed(4); } });
    });

    // the 95% interval of each dot, as a vertical bar
    function intervals(u) {
      var ctx = u.ctx, ratio = window.devicePixelRatio || 1;
      ctx.save();
      ctx.lineWidth = 1.5 * ratio;
      series.series.forEach(function (s, k) {
        if (!u.series[1 + 2 * k].show) return;
        ctx.strokeStyle = COLORS[k % COLORS.length];
        ctx.beginPath();
        series.x.forEach(function (x, i) {
          if (s.ci_low[i] == null || s.ci_high[i] == null) return;
          var px = u.valToPos(x, "x", true);
          ctx.moveTo(px, u.valToPos(s.ci_low[i], "y", true));
          ctx.lineTo(px, u.valToPos(s.ci_high[i], "y", true));
        });
        ctx.stroke();
      });
      ctx.restore();
    }

    function size() { return { width: Math.max(320, el.clientWidth || 900), height: 340 }; }
    var plot = new uPlot(Object.assign(size(), {
      // design numbers are whole: integer ticks, half a step of room at either end
      scales: { x: { time: false, range: function (u, lo, hi) { return [lo - 0.5, hi + 0.5]; } } },
      axes: [{ label: "design number", incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000] },
             { label: "fitness" }],
      series: opts,
      hooks: { draw: [intervals] }
    }), data, el);
    window.addEventListener("resize", function () { plot.setSize(size()); });
    el.dataset.rendered = "uplot";
  }

  // ------------------------------------------------------------ lineage graph

  function svg(tag, attrs, parent) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (parent) parent.appendChild(node);
    return node;
  }

  function text(parent, attrs, content) {
    var node = svg("text", attrs, parent);
    node.textContent = content;
    return node;
  }

  function clip(s, n) { return s.length > n ? s.slice(0, n - 1) + "…" : s; }

  function lineageGraph(el, lineage) {
    if (!lineage || !lineage.nodes.length || typeof dagre === "undefined") return;
    var g = new dagre.graphlib.Graph({ multigraph: true });
    g.setGraph({ rankdir: "LR", nodesep: 12, ranksep: 70, edgesep: 6, marginx: 12, marginy: 12 });
    g.setDefaultEdgeLabel(function () { return {}; });
    lineage.nodes.forEach(function (n) {
      var label = clip(n.name, 30);
      g.setNode(n.id, { width: Math.max(110, 7.2 * label.length + 20), height: 40, data: n, label: label });
    });
    lineage.edges.forEach(function (e, i) {
      var label = clip(e.label || "", 34);
      g.setEdge(e.from, e.to, { label: label, width: 6 * label.length, height: 12, labelpos: "c" }, "e" + i);
    });
    dagre.layout(g);

    var size = g.graph();
    var root = svg("svg", { "class": "lineage", width: Math.ceil(size.width), height: Math.ceil(size.height),
                            viewBox: "0 0 " + Math.ceil(size.width) + " " + Math.ceil(size.height) });
    var marker = svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7,
                                 markerHeight: 7, orient: "auto-start-reverse" }, svg("defs", {}, root));
    svg("path", { d: "M 0 0 L 10 5 L 0 10 z" }, marker);

    g.edges().forEach(function (ref) {
      var e = g.edge(ref);
      var d = e.points.map(function (p, i) { return (i ? "L" : "M") + p.x.toFixed(1) + " " + p.y.toFixed(1); });
      svg("path", { "class": "edge", d: d.join(" "), "marker-end": "url(#arrow)" }, root);
      if (e.label) {
        text(root, { "class": "edge-label-bg", x: e.x, y: e.y + 4, "text-anchor": "middle" }, e.label);
        text(root, { "class": "edge-label", x: e.x, y: e.y + 4, "text-anchor": "middle" }, e.label);
      }
    });

    g.nodes().forEach(function (id) {
      var v = g.node(id), n = v.data;
      var link = svg("a", { href: "designs/" + encodeURIComponent(n.page),
                            "class": "node " + n.origin + " status-" + n.status }, root);
      svg("title", {}, link).textContent = n.name + " (" + n.origin + ", " + n.status + ")";
      svg("rect", { x: v.x - v.width / 2, y: v.y - v.height / 2, width: v.width, height: v.height, rx: 5 }, link);
      text(link, { x: v.x, y: v.y - 3, "text-anchor": "middle" }, v.label);
      var sub = n.fitness == null ? n.status : n.fitness.toFixed(4) + " @ " + n.rung;
      text(link, { "class": "sub", x: v.x, y: v.y + 12, "text-anchor": "middle" }, clip(sub, 34));
    });
    el.appendChild(root);
    el.dataset.rendered = lineage.nodes.length + " nodes, " + lineage.edges.length + " edges";
  }

  document.addEventListener("DOMContentLoaded", function () {
    var data = reportData();
    sortableTables();
    var chart = document.getElementById("fitness-chart");
    if (chart) fitnessChart(chart, data.series);
    var graph = document.getElementById("lineage-graph");
    if (graph) lineageGraph(graph, data.lineage);
  });
})();
