/* netpol-discover report: sortable/filterable tables and graph controls. No network. */
(function () {
  "use strict";

  function cellValue(row, index) {
    var cell = row.cells[index];
    if (!cell) { return ""; }
    return cell.getAttribute("data-sort") || cell.textContent.trim();
  }

  function compare(a, b) {
    var x = parseFloat(a), y = parseFloat(b);
    if (!isNaN(x) && !isNaN(y) && String(x) === a.replace(/^0+(?=\d)/, "") &&
        String(y) === b.replace(/^0+(?=\d)/, "")) {
      return x - y;
    }
    return a.localeCompare(b, undefined, { numeric: true });
  }

  function setupTable(table) {
    var body = table.tBodies[0];
    if (!body) { return; }
    var headers = table.tHead ? table.tHead.rows[0].cells : [];
    Array.prototype.forEach.call(headers, function (th, index) {
      th.addEventListener("click", function () {
        var ascending = !th.classList.contains("asc");
        Array.prototype.forEach.call(headers, function (h) { h.classList.remove("asc", "desc"); });
        th.classList.add(ascending ? "asc" : "desc");
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (r1, r2) {
          var order = compare(cellValue(r1, index), cellValue(r2, index));
          return ascending ? order : -order;
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
    var input = document.querySelector('input[data-filter="' + table.id + '"]');
    var counter = document.querySelector('[data-count="' + table.id + '"]');
    function count(shown) {
      if (counter) { counter.textContent = shown + " of " + body.rows.length + " rows"; }
    }
    count(body.rows.length);
    if (input) {
      input.addEventListener("input", function () {
        var words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
        var shown = 0;
        Array.prototype.forEach.call(body.rows, function (row) {
          var text = row.textContent.toLowerCase();
          var match = words.every(function (w) { return text.indexOf(w) !== -1; });
          row.style.display = match ? "" : "none";
          if (match) { shown += 1; }
        });
        count(shown);
      });
    }
  }

  function setupGraph(box) {
    var svg = box.querySelector("svg");
    if (!svg) { return; }
    var tools = document.querySelector('[data-graph-tools="' + box.id + '"]');
    if (!tools) { return; }
    var nodes = Array.prototype.slice.call(svg.querySelectorAll("g.node"));
    var edges = Array.prototype.slice.call(svg.querySelectorAll("g.edge"));
    var baseWidth = svg.viewBox && svg.viewBox.baseVal ? svg.viewBox.baseVal.width : 0;
    var scale = 1;
    var focus = null;
    var select = tools.querySelector("select[data-role=namespace]");
    var search = tools.querySelector("input[data-role=search]");
    var flagged = tools.querySelector("input[data-role=flagged]");
    var hubs = tools.querySelector("input[data-role=hubs]");

    function titleOf(g) {
      var t = g.querySelector("title");
      return t ? t.textContent.toLowerCase() : "";
    }

    function apply() {
      var ns = select ? select.value : "";
      var words = search ? search.value.toLowerCase().split(/\s+/).filter(Boolean) : [];
      var onlyFlagged = flagged ? flagged.checked : false;
      var visible = {};
      var any = ns || words.length || onlyFlagged || focus;
      nodes.forEach(function (g) {
        var ok = true;
        if (ns) { ok = g.classList.contains("ns-" + ns); }
        if (ok && words.length) {
          var text = titleOf(g);
          ok = words.every(function (w) { return text.indexOf(w) !== -1; });
        }
        if (ok && onlyFlagged) { ok = g.classList.contains("flagged"); }
        if (ok && focus) { ok = g.id === focus; }
        if (ok) { visible[g.id] = true; }
      });
      var shownNodes = {};
      edges.forEach(function (g) {
        var ends = [];
        g.classList.forEach(function (c) {
          if (c.indexOf("from-") === 0 || c.indexOf("to-") === 0) { ends.push(c.split("-").slice(1).join("-")); }
        });
        var ok = !any || ends.some(function (id) { return visible[id]; });
        if (ok && onlyFlagged && !focus) { ok = g.classList.contains("flagged") || ends.every(function (id) { return visible[id]; }); }
        g.classList.toggle("dim", !ok);
        if (ok) { ends.forEach(function (id) { shownNodes[id] = true; }); }
      });
      nodes.forEach(function (g) {
        g.classList.toggle("dim", !!any && !visible[g.id] && !shownNodes[g.id]);
      });
    }

    function fitScale() {
      return Math.min(1, (box.clientWidth - 4) / baseWidth);
    }

    function zoom(factor) {
      if (!baseWidth) { return; }
      scale = factor === 0 ? fitScale() : scale * factor;
      svg.style.width = Math.round(baseWidth * scale) + "px";
    }

    function reveal(ns) {
      var cluster = ns ? svg.querySelector("g.namespace.ns-" + ns) : null;
      if (!cluster) { return; }
      var r = cluster.getBoundingClientRect(), b = box.getBoundingClientRect();
      box.scrollLeft += r.left - b.left - 16;
      box.scrollTop += r.top - b.top - 16;
    }

    if (select) {
      select.addEventListener("change", function () { apply(); reveal(select.value); });
    }
    if (search) { search.addEventListener("input", apply); }
    if (flagged) { flagged.addEventListener("change", apply); }
    if (hubs) {
      var syncHubs = function () { box.classList.toggle("hide-hubs", !hubs.checked); };
      hubs.addEventListener("change", syncHubs);
      syncHubs();
    }
    Array.prototype.forEach.call(tools.querySelectorAll("button[data-zoom]"), function (button) {
      button.addEventListener("click", function () { zoom(parseFloat(button.getAttribute("data-zoom"))); });
    });
    nodes.forEach(function (g) {
      g.addEventListener("click", function () {
        focus = focus === g.id ? null : g.id;
        apply();
      });
    });
    // Fit a picture that stays legible when fitted; a big one opens at full size and
    // scrolls ("fit" still shows it whole).
    if (baseWidth && fitScale() >= 0.6) { zoom(0); } else if (baseWidth) { zoom(1); }
    apply();
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("table.data[id]"), setupTable);
    Array.prototype.forEach.call(document.querySelectorAll(".graph-box[id]"), setupGraph);
  });
}());
