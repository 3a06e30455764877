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

  // One namespace's picture at a time (large graphs): the others wait in <template>s and
  // are moved in when picked, the one shown before moved back out.
  function setupDrilldown(select) {
    var target = document.getElementById(select.getAttribute("data-drilldown"));
    if (!target) { return; }
    var shown = "0";
    function stored(index) {
      return document.querySelector('template[data-drilldown-for="' + target.id +
        '"][data-index="' + index + '"]');
    }
    select.addEventListener("change", function () {
      var next = stored(select.value);
      if (!next || select.value === shown) { return; }
      var keep = document.createElement("template");
      keep.setAttribute("data-drilldown-for", target.id);
      keep.setAttribute("data-index", shown);
      while (target.firstChild) { keep.content.appendChild(target.firstChild); }
      target.parentNode.insertBefore(keep, target.nextSibling);
      target.appendChild(document.importNode(next.content, true));
      next.parentNode.removeChild(next);
      shown = select.value;
      var box = target.querySelector(".graph-box[id]");
      if (box) { setupGraph(box); }
    });
  }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function badge(text, css) { return element("span", "badge " + css, text); }

  // Workload sections of a large report, drawn from the embedded JSON when found. Text
  // goes in through textContent only: names and reasons come from the cluster.
  function setupFinder(root) {
    var script = document.getElementById(root.getAttribute("data-workloads"));
    if (!script) { return; }
    var data = JSON.parse(script.textContent);
    var S = data.strings, W = data.workloads, LIMIT = 50;
    var search = root.querySelector("[data-role=wl-search]");
    var namespace = root.querySelector("[data-role=wl-namespace]");
    var flagged = root.querySelector("[data-role=wl-flagged]");
    var results = root.querySelector("[data-role=wl-results]");
    var shown = root.querySelector("[data-role=wl-shown]");
    var counter = root.querySelector("[data-role=wl-count]");
    var haystacks = null;
    var VERDICTS = [["allowed", "b-allowed"], ["denied", "b-denied"], ["not governed", "b-none"]];

    function label(w) { return S[w[0]] + "/" + S[w[1]] + "/" + S[w[2]]; }
    function line(pieces) { return pieces.map(function (p) { return S[p]; }).join(""); }
    // A workload's edges: five numbers each (direction*3+verdict, peer, port, connections,
    // reason), kept flat in the data.
    function edges(w) {
      if (!w.edges) {
        w.edges = [];
        for (var k = 0; k < w[8].length; k += 5) { w.edges.push(w[8].slice(k, k + 5)); }
      }
      return w.edges;
    }
    function denied(w) { return edges(w).filter(function (e) { return e[0] % 3 === 1; }).length; }
    function haystack(i) {
      if (!haystacks) {
        haystacks = W.map(function (w) {
          var words = [label(w)].concat(w[4].map(function (s) { return S[s]; }),
            w[7].map(function (s) { return S[s]; }), edges(w).map(function (e) { return S[e[1]]; }));
          return words.join(" ").toLowerCase();
        });
      }
      return haystacks[i];
    }

    function table(w, index) {
      var id = "wl-edges-" + index;
      var tools = element("div", "table-tools");
      var input = element("input");
      input.type = "search"; input.placeholder = "filter this workload's edges";
      input.setAttribute("data-filter", id); input.setAttribute("aria-label", input.placeholder);
      var count = element("span", "count"); count.setAttribute("data-count", id);
      tools.appendChild(input); tools.appendChild(count);
      var t = element("table", "data"); t.id = id;
      var head = t.createTHead().insertRow();
      ["direction", "peer", "port", "connections", "decision"].forEach(function (h) {
        head.appendChild(element("th", "", h));
      });
      var body = t.createTBody();
      edges(w).forEach(function (e) {
        var row = body.insertRow();
        row.insertCell().textContent = e[0] < 3 ? "ingress" : "egress";
        row.insertCell().textContent = S[e[1]];
        row.insertCell().textContent = S[e[2]];
        var n = row.insertCell(); n.className = "num"; n.setAttribute("data-sort", String(e[3]));
        n.textContent = e[3].toLocaleString("en-US");
        var verdict = VERDICTS[e[0] % 3], cell = row.insertCell();
        cell.setAttribute("data-sort", verdict[0]);
        cell.appendChild(badge(verdict[0], verdict[1]));
        cell.appendChild(document.createTextNode(" " + S[e[4]]));
      });
      var scroll = element("div", "scroll"); scroll.appendChild(t);
      return [tools, scroll, t];
    }

    function list(title, lines) {
      var box = element("div");
      box.appendChild(element("h4", "", title));
      var ul = element("ul", "plain");
      lines.forEach(function (line) { ul.appendChild(element("li", "", line)); });
      box.appendChild(ul);
      return box;
    }

    function show(index) {
      var w = W[index];
      var section = element("div", "wl wl-open");
      section.id = "wl-" + label(w).replace(/[^A-Za-z0-9._-]/g, "_");
      var head = element("h3");
      head.appendChild(element("b", "", S[w[2]]));
      head.appendChild(document.createTextNode(" "));
      head.appendChild(badge(S[w[1]], "b-kind"));
      var ingress = edges(w).filter(function (e) { return e[0] < 3; }).length;
      head.appendChild(element("span", "muted", " " + S[w[0]] + " · " + (w[7].length ?
        w[7].length + (w[7].length === 1 ? " policy" : " policies") + " · " + ingress +
        " ingress, " + (edges(w).length - ingress) + " egress edge(s)" :
        "no own policy (the namespace default applies, or NetworkPolicy does not apply to it)")));
      if (!w[3]) { head.appendChild(badge("no traffic seen", "b-none")); }
      if (denied(w)) { head.appendChild(badge(denied(w) + " denied on purpose", "sev-warning")); }
      w[4].forEach(function (s) { head.appendChild(badge(S[s], "sev-warning")); });
      section.appendChild(head);
      if (w[5].length) { section.appendChild(list("Newly denied", w[5].map(line))); }
      if (w[6].length) { section.appendChild(list("Outside the cluster", w[6].map(line))); }
      if (w[7].length) {
        section.appendChild(list("Proposed policy (rules with evidence and YAML in policies.yaml)",
          w[7].map(function (s) { return "NetworkPolicy " + S[s]; })));
      }
      shown.textContent = "";
      shown.appendChild(section);
      if (edges(w).length) {
        section.appendChild(element("h4", "", "Observed edges and their rules"));
        var parts = table(w, index);
        section.appendChild(parts[0]); section.appendChild(parts[1]);
        setupTable(parts[2]);
      }
    }

    function update() {
      var words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
      var ns = namespace.value, onlyFlagged = flagged.checked, found = [];
      for (var i = 0; i < W.length; i++) {
        var w = W[i];
        if (ns && S[w[0]] !== ns) { continue; }
        if (onlyFlagged && !w[4].length && !denied(w)) { continue; }
        var text = words.length ? haystack(i) : "";
        if (words.every(function (word) { return text.indexOf(word) !== -1; })) { found.push(i); }
      }
      results.textContent = "";
      found.slice(0, LIMIT).forEach(function (i) {
        var li = element("li"), button = element("button", "link", label(W[i]));
        button.type = "button";
        button.addEventListener("click", function () { show(i); });
        li.appendChild(button);
        results.appendChild(li);
      });
      counter.textContent = found.length + " of " + W.length + " workloads" +
        (found.length > LIMIT ? " (the first " + LIMIT + " listed)" : "");
      // One match, or a workload named exactly: its section opens at once.
      var query = search.value.trim().toLowerCase();
      var exact = found.filter(function (i) { return label(W[i]).toLowerCase() === query; });
      if (exact.length === 1) { show(exact[0]); } else if (found.length === 1) { show(found[0]); }
    }

    search.addEventListener("input", update);
    namespace.addEventListener("change", update);
    flagged.addEventListener("change", update);
    update();
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("table.data[id]"), setupTable);
    Array.prototype.forEach.call(document.querySelectorAll(".graph-box[id]"), setupGraph);
    Array.prototype.forEach.call(document.querySelectorAll("select[data-drilldown]"),
      setupDrilldown);
    Array.prototype.forEach.call(document.querySelectorAll("[data-workloads]"), setupFinder);
  });
}());
