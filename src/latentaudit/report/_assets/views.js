/* latentaudit: the interactive views of an audit report.
 *
 * Every element with a data-la-view attribute holds its data as JSON (a script element of
 * type application/json); this script draws it:
 *   - "map": every subject a point on a 2-D canvas, coloured by any column; hover shows the
 *     subject's thumbnail (from sprite sheets embedded in the page), id and metadata; click
 *     pins it; wheel zooms and drag pans; label issues, outliers and synthetic subjects can
 *     be shown; groups drawn with a lasso or polygon are exported as a delineation file.
 *   - "curves": lines with bands and marked positions (sensitivity curves), values on hover.
 * Plain JavaScript, no library, nothing loaded from anywhere: the page works from a file.
 * The views are listed in window.latentauditViews (tests read their timings there).
 */
(function () {
  "use strict";

  var VIEWS = [];
  var PICK_PX = 8;            // how close (CSS px) the pointer must be to a point
  var DRAG_PX = 4;            // a press that moves further is a drag, not a click
  var GROUP_COLOURS = ["#0b6e99", "#c2185b", "#2e7d32", "#ef6c00", "#6a1b9a", "#00838f",
                       "#5d4037", "#455a64"];

  // -- small helpers ---------------------------------------------------------------------
  function bytes(b64) {
    var text = atob(b64), out = new Uint8Array(text.length);
    for (var i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
    return out;
  }
  function f32(b64) { return new Float32Array(bytes(b64).buffer); }
  function u16(b64) { return new Uint16Array(bytes(b64).buffer); }
  function u32(b64) { return new Uint32Array(bytes(b64).buffer); }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) {
      for (var key in attrs) {
        if (key === "text") node.textContent = attrs[key];
        else if (key === "cls") node.className = attrs[key];
        else node.setAttribute(key, attrs[key]);
      }
    }
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  function rgb(hex) {
    var v = parseInt(hex.slice(1), 16);
    return [(v >> 16) & 255, (v >> 8) & 255, v & 255];
  }
  // little-endian RGBA packed in one 32-bit word, as ImageData's bytes read as Uint32
  function pack(c) { return ((255 << 24) | (c[2] << 16) | (c[1] << 8) | c[0]) >>> 0; }

  function fmt(v) {
    if (v === null || v === undefined || !isFinite(v)) return "";
    var a = Math.abs(v);
    if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(2);
    if (a >= 100) return v.toFixed(1);
    return String(Number(v.toPrecision(3)));
  }

  function niceTicks(lo, hi, count) {
    var span = hi - lo;
    if (!(span > 0)) return [lo];
    var step = Math.pow(10, Math.floor(Math.log10(span / count)));
    var err = span / count / step;
    step *= err >= 7.5 ? 10 : err >= 3.5 ? 5 : err >= 1.5 ? 2 : 1;
    var ticks = [];
    for (var t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) {
      ticks.push(Math.abs(t) < step * 1e-9 ? 0 : t);
    }
    return ticks;
  }

  // a seeded permutation, so that no group of points always hides another
  function permutation(n) {
    var order = new Uint32Array(n), state = 2463534242;
    for (var i = 0; i < n; i++) order[i] = i;
    for (var j = n - 1; j > 0; j--) {
      state ^= state << 13; state >>>= 0; state ^= state >>> 17; state ^= state << 5;
      state >>>= 0;
      var k = state % (j + 1), t = order[j];
      order[j] = order[k]; order[k] = t;
    }
    return order;
  }

  // the point-in-polygon rule of latentaudit.audit.points_in_polygon, written the same
  // way (even-odd crossings, the boundary counts as inside) so both select the same points
  function polygonTest(poly) {
    var n = poly.length, xs = new Float64Array(n), ys = new Float64Array(n);
    var x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (var k = 0; k < n; k++) {
      xs[k] = poly[k][0]; ys[k] = poly[k][1];
      x0 = Math.min(x0, xs[k]); x1 = Math.max(x1, xs[k]);
      y0 = Math.min(y0, ys[k]); y1 = Math.max(y1, ys[k]);
    }
    var tol = 1e-12 * Math.max(Math.max(x1 - x0, y1 - y0), 1e-300);
    return function (px, py) {
      if (px < x0 - tol || px > x1 + tol || py < y0 - tol || py > y1 + tol) return false;
      var inside = false;
      for (var k = 0; k < n; k++) {
        var a = xs[k], b = ys[k], c = xs[(k + 1) % n], d = ys[(k + 1) % n];
        if ((b > py) !== (d > py) && px < a + (py - b) * (c - a) / (d - b)) inside = !inside;
        if (px >= Math.min(a, c) - tol && px <= Math.max(a, c) + tol &&
            py >= Math.min(b, d) - tol && py <= Math.max(b, d) + tol) {
          var cross = (c - a) * (py - b) - (d - b) * (px - a);
          if (Math.abs(cross) <= tol * Math.max(Math.hypot(c - a, d - b), 1e-300)) return true;
        }
      }
      return inside;
    };
  }

  // numpy.allclose(a, b): a ring that ends on its first vertex is stored open, as
  // latentaudit.audit.delineate reads it
  function closeTo(p, q) {
    return Math.abs(p[0] - q[0]) <= 1e-8 + 1e-5 * Math.abs(q[0]) &&
           Math.abs(p[1] - q[1]) <= 1e-8 + 1e-5 * Math.abs(q[1]);
  }

  function download(name, text) {
    var url = URL.createObjectURL(new Blob([text], {type: "application/json"}));
    var link = el("a", {href: url, download: name});
    document.body.appendChild(link);
    link.click();
    setTimeout(function () { URL.revokeObjectURL(url); link.remove(); }, 1000);
  }

  function onFrame(view) {
    if (view.frameRequested) return;
    view.frameRequested = true;
    requestAnimationFrame(function () { view.frameRequested = false; view.frame(); });
  }

  // -- the map ------------------------------------------------------------------------------
  function MapView(root, data) {
    var start = performance.now();
    this.kind = "map";
    this.root = root;
    this.data = data;
    this.n = data.n;
    this.x = f32(data.x);
    this.y = f32(data.y);
    this.ids = data.ids;
    this.stats = {n: data.n, draws: 0, draw_ms: [], hover_ms: [], thumb_ms: []};
    this.lut = [];
    for (var k = 0; k < 256; k++) this.lut.push(rgb("#" + data.lut.slice(6 * k, 6 * k + 6)));
    this.columns = data.columns.map(function (c) {
      var col = Object.assign({}, c);
      if (c.kind === "category") col.codes = u16(c.codes);
      if (c.kind === "number") col.values = f32(c.values);
      return col;
    });
    this.highlights = data.highlights.map(function (h) {
      var rows = u32(h.rows), notes = new Map();
      for (var i = 0; i < rows.length; i++) notes.set(rows[i], h.notes[i] || "");
      return {name: h.name, colour: h.colour, rows: rows, notes: notes, on: false};
    });
    this.synthetic = null;
    if (data.synthetic) {
      var a = u32(data.synthetic.a), b = u32(data.synthetic.b), w = f32(data.synthetic.weight);
      var sx = new Float32Array(a.length), sy = new Float32Array(a.length);
      for (var s = 0; s < a.length; s++) {
        sx[s] = this.x[a[s]] + w[s] * (this.x[b[s]] - this.x[a[s]]);
        sy[s] = this.y[a[s]] + w[s] * (this.y[b[s]] - this.y[a[s]]);
      }
      this.synthetic = {a: a, b: b, w: w, x: sx, y: sy, on: false};
    }
    this.thumbs = data.thumbs || null;
    this.sheets = [];
    this.hidden = new Uint8Array(this.n);
    this.rgba = new Uint32Array(this.n);
    this.permuted = permutation(this.n);
    this.groups = [];
    this.member = new Int32Array(this.n).fill(-1);
    this.mode = "explore";
    this.drawing = null;      // vertices (map coordinates) of the shape being drawn
    this.cursor = null;
    this.hover = null;        // {kind: "point" | "synthetic", index}
    this.pinned = -1;
    this.bounds();
    this.index();
    this.build();
    var initial = data.colour_by || (this.colourable()[0] || {}).name;
    this.setColour(initial);
    this.stats.init_ms = performance.now() - start;
    this.stats.since_load_ms = performance.now();
  }

  MapView.prototype.colourable = function () {
    return this.columns.filter(function (c) { return c.colour; });
  };

  MapView.prototype.bounds = function () {
    var x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (var i = 0; i < this.n; i++) {
      var x = this.x[i], y = this.y[i];
      if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
    }
    if (!(x1 > x0)) { x0 -= 1; x1 += 1; }
    if (!(y1 > y0)) { y0 -= 1; y1 += 1; }
    this.box = {x0: x0, x1: x1, y0: y0, y1: y1};
  };

  // a uniform grid over the map: each cell lists its points, so a hover looks at a few
  // cells instead of every point
  MapView.prototype.index = function () {
    var g = Math.max(1, Math.min(512, Math.ceil(Math.sqrt(this.n / 2))));
    var box = this.box, cw = (box.x1 - box.x0) / g, ch = (box.y1 - box.y0) / g;
    var cell = new Uint32Array(this.n), start = new Uint32Array(g * g + 1);
    for (var i = 0; i < this.n; i++) {
      var cx = Math.min(g - 1, Math.floor((this.x[i] - box.x0) / cw));
      var cy = Math.min(g - 1, Math.floor((this.y[i] - box.y0) / ch));
      cell[i] = cy * g + cx;
      start[cell[i] + 1]++;
    }
    for (var c = 0; c < g * g; c++) start[c + 1] += start[c];
    var fill = start.slice(0, g * g), items = new Uint32Array(this.n);
    for (var j = 0; j < this.n; j++) items[fill[cell[j]]++] = j;
    this.grid = {g: g, cw: cw, ch: ch, start: start, items: items};
  };

  MapView.prototype.build = function () {
    var self = this, root = this.root;
    root.classList.add("la-map");
    var select = el("select", {cls: "la-colour", "aria-label": "colour by"});
    var groups = {};
    this.colourable().forEach(function (c) {
      var label = c.group === "audit" ? "audit" : "metadata";
      if (!groups[label]) groups[label] = select.appendChild(el("optgroup", {label: label}));
      groups[label].appendChild(el("option", {value: c.name, text: c.name}));
    });
    select.addEventListener("change", function () { self.setColour(select.value); });
    this.select = select;
    var toggles = el("span", {cls: "la-toggles"});
    this.highlights.forEach(function (h) {
      toggles.appendChild(self.toggle(h.name + " (" + h.rows.length + ")", h.colour,
                                      function (on) { h.on = on; self.redraw(false); }));
    });
    if (this.synthetic) {
      toggles.appendChild(this.toggle("synthetic subjects (" + this.synthetic.a.length + ")",
                                      "#444444", function (on) {
                                        self.synthetic.on = on; self.redraw(false); }));
    }
    var modes = el("span", {cls: "la-modes", role: "group", "aria-label": "pointer mode"});
    [["explore", "Explore", "hover, click to pin, drag to pan, wheel to zoom"],
     ["lasso", "Lasso", "press and drag around a group"],
     ["polygon", "Polygon", "click the corners; click the first one, double-click or press " +
      "Enter to close; Escape cancels"]].forEach(function (m) {
      var button = el("button", {type: "button", "data-mode": m[0], title: m[2], text: m[1]});
      button.addEventListener("click", function () { self.setMode(m[0]); });
      modes.appendChild(button);
    });
    this.modes = modes;
    var reset = el("button", {type: "button", cls: "la-reset", text: "Reset view"});
    reset.addEventListener("click", function () { self.fit(); self.redraw(true); });
    root.appendChild(el("div", {cls: "la-toolbar"}, [
      el("label", {text: "Colour by "}, [select]), toggles, modes, reset]));

    this.stage = el("div", {cls: "la-stage", tabindex: "0"});
    this.base = this.stage.appendChild(el("canvas", {cls: "la-points"}));
    this.over = this.stage.appendChild(el("canvas", {cls: "la-overlay"}));
    this.tip = this.stage.appendChild(el("div", {cls: "la-tip", hidden: ""}));
    this.status = this.stage.appendChild(el("div", {cls: "la-status"}));
    this.legend = el("div", {cls: "la-legend"});
    this.card = el("div", {cls: "la-pinned", hidden: ""});
    var side = el("div", {cls: "la-side"}, [this.legend, this.card, this.buildGroups()]);
    root.appendChild(el("div", {cls: "la-body"}, [this.stage, side]));
    this.setMode("explore");
    this.updateGroups();
    this.listen();
    if (window.ResizeObserver) {
      new ResizeObserver(function () { self.resize(); }).observe(this.stage);
    }
    this.resize();
  };

  MapView.prototype.toggle = function (text, colour, change) {
    var box = el("input", {type: "checkbox"});
    box.addEventListener("change", function () { change(box.checked); });
    var swatch = el("span", {cls: "la-ring"});
    swatch.style.borderColor = colour;
    return el("label", {cls: "la-check"}, [box, swatch, document.createTextNode(text)]);
  };

  MapView.prototype.buildGroups = function () {
    var self = this;
    this.groupList = el("ol", {cls: "la-group-list"});
    this.into = el("select", {cls: "la-into", "aria-label": "draw into"});
    this.rest = el("input", {type: "checkbox", cls: "la-rest"});
    this.rest.checked = true;
    this.rest.addEventListener("change", function () { self.updateGroups(); });
    var exportButton = el("button", {type: "button", cls: "la-export",
                                     text: "Export delineation (JSON)"});
    exportButton.addEventListener("click", function () { self.exportGroups(true); });
    var clear = el("button", {type: "button", cls: "la-clear", text: "Clear"});
    clear.addEventListener("click", function () {
      self.groups = []; self.member.fill(-1); self.updateGroups(); self.redraw(false);
    });
    this.json = el("textarea", {cls: "la-json", readonly: "", rows: "6",
                                "aria-label": "delineation JSON"});
    var help = el("p", {cls: "la-help", text: "Draw groups with the lasso or polygon, then " +
      "export them and run: latentaudit explain --delineation delineation.json (or audit)."});
    return el("div", {cls: "la-groups"}, [
      el("h4", {text: "Delineation"}), help, this.groupList,
      el("label", {cls: "la-check"}, [this.rest,
        document.createTextNode("the rest is a group (0)")]),
      el("label", {text: "draw into "}, [this.into]),
      el("div", {cls: "la-buttons"}, [exportButton, clear]),
      el("details", {}, [el("summary", {text: "delineation JSON"}), this.json])]);
  };

  MapView.prototype.setMode = function (mode) {
    this.mode = mode;
    this.drawing = null;
    Array.prototype.forEach.call(this.modes.children, function (b) {
      b.classList.toggle("on", b.getAttribute("data-mode") === mode);
      b.setAttribute("aria-pressed", b.getAttribute("data-mode") === mode ? "true" : "false");
    });
    this.stage.setAttribute("data-mode", mode);
    this.redraw(false);
  };

  // -- colours and legend -------------------------------------------------------------------
  MapView.prototype.column = function (name) {
    for (var k = 0; k < this.columns.length; k++) {
      if (this.columns[k].name === name) return this.columns[k];
    }
    return null;
  };

  MapView.prototype.setColour = function (name) {
    var col = this.column(name), n = this.n, missing = pack(rgb(this.columns.length ?
      (col || this.columns[0]).missing : "#bbbbbb"));
    this.colour = col;
    this.hidden.fill(0);
    var isMissing = new Uint8Array(n);
    if (!col) {
      this.rgba.fill(pack([11, 110, 153]));
    } else if (col.kind === "category") {
      var palette = col.colours.map(function (c) { return pack(rgb(c)); });
      for (var i = 0; i < n; i++) {
        var code = col.codes[i];
        if (code === 65535) { this.rgba[i] = missing; isMissing[i] = 1; }
        else this.rgba[i] = palette[code];
      }
    } else {
      var lo = col.min, span = (col.max - col.min) || 1, lut = this.lut;
      var packed = lut.map(pack);
      for (var j = 0; j < n; j++) {
        var v = col.values[j];
        if (!isFinite(v)) { this.rgba[j] = missing; isMissing[j] = 1; continue; }
        this.rgba[j] = packed[Math.max(0, Math.min(255, Math.round((v - lo) / span * 255)))];
      }
    }
    // points without a value first, beneath the others; the rest in a shuffled order
    var order = new Uint32Array(n), k = 0;
    for (var a = 0; a < n; a++) if (isMissing[this.permuted[a]]) order[k++] = this.permuted[a];
    for (var b = 0; b < n; b++) if (!isMissing[this.permuted[b]]) order[k++] = this.permuted[b];
    this.order = order;
    this.isMissing = isMissing;
    if (col) this.select.value = col.name;
    this.buildLegend();
    this.redraw(true);
  };

  MapView.prototype.buildLegend = function () {
    var self = this, col = this.colour, legend = this.legend;
    legend.textContent = "";
    if (!col) return;
    legend.appendChild(el("h4", {text: col.name}));
    var missing = 0;
    for (var i = 0; i < this.n; i++) missing += this.isMissing[i];
    var list = el("ul", {});
    if (col.kind === "category") {
      var counts = new Uint32Array(col.levels.length);
      for (var j = 0; j < this.n; j++) if (col.codes[j] !== 65535) counts[col.codes[j]]++;
      col.levels.forEach(function (level, code) {
        var item = el("li", {title: "click to hide or show"}, [
          el("span", {cls: "la-swatch"}), document.createTextNode(level + " (" + counts[code] +
                                                                     ")")]);
        item.firstChild.style.background = col.colours[code];
        item.addEventListener("click", function () {
          var hide = !item.classList.contains("off");
          item.classList.toggle("off", hide);
          for (var p = 0; p < self.n; p++) if (col.codes[p] === code) self.hidden[p] = hide;
          self.redraw(true);
        });
        list.appendChild(item);
      });
    } else {
      var bar = el("canvas", {cls: "la-ramp", width: "256", height: "1"});
      var ctx = bar.getContext("2d"), img = ctx.createImageData(256, 1);
      for (var k = 0; k < 256; k++) {
        img.data.set([this.lut[k][0], this.lut[k][1], this.lut[k][2], 255], 4 * k);
      }
      ctx.putImageData(img, 0, 0);
      legend.appendChild(bar);
      legend.appendChild(el("div", {cls: "la-range"}, [
        el("span", {text: fmt(col.min)}), el("span", {text: fmt(col.max)})]));
    }
    if (missing) {
      var item = el("li", {}, [el("span", {cls: "la-swatch"}),
                               document.createTextNode("missing (" + missing + ")")]);
      item.firstChild.style.background = col.missing;
      list.appendChild(item);
    }
    legend.appendChild(list);
  };

  // -- view and drawing ---------------------------------------------------------------------
  MapView.prototype.resize = function () {
    var w = this.stage.clientWidth, h = this.stage.clientHeight;
    if (!w || !h) return;
    var dpr = window.devicePixelRatio || 1;
    var first = !this.width;
    if (!first && w === this.width && h === this.height && dpr === this.dpr) return;
    var centre = first ? null : this.toMap(this.width / 2, this.height / 2);
    this.width = w; this.height = h; this.dpr = dpr;
    var pw = Math.round(w * dpr), ph = Math.round(h * dpr);
    [this.base, this.over].forEach(function (c) {
      c.width = pw; c.height = ph; c.style.width = w + "px"; c.style.height = h + "px";
    });
    this.ctx = this.base.getContext("2d");
    this.image = this.ctx.createImageData(pw, ph);
    this.buffer = new Uint32Array(this.image.data.buffer);
    if (first) this.fit();
    else {
      this.tx = w / 2 - centre[0] * this.scale;
      this.ty = h / 2 + centre[1] * this.scale;
    }
    this.redraw(true);
  };

  MapView.prototype.fit = function () {
    var box = this.box, pad = 16;
    this.scale = Math.min((this.width - 2 * pad) / (box.x1 - box.x0),
                          (this.height - 2 * pad) / (box.y1 - box.y0));
    this.fitScale = this.scale;
    this.tx = this.width / 2 - (box.x0 + box.x1) / 2 * this.scale;
    this.ty = this.height / 2 + (box.y0 + box.y1) / 2 * this.scale;
  };

  MapView.prototype.toScreen = function (x, y) {
    return [x * this.scale + this.tx, this.ty - y * this.scale];
  };
  MapView.prototype.toMap = function (sx, sy) {
    return [(sx - this.tx) / this.scale, (this.ty - sy) / this.scale];
  };
  // where a subject is drawn, in CSS pixels from the map's top-left corner
  MapView.prototype.pointOnScreen = function (i) { return this.toScreen(this.x[i], this.y[i]); };

  MapView.prototype.radius = function () {
    var base = this.n <= 3000 ? 2.5 : this.n <= 30000 ? 1.6 : 1.1;
    var zoom = Math.sqrt(this.scale / this.fitScale);
    return base * Math.max(1, Math.min(3, zoom));
  };

  MapView.prototype.redraw = function (points) {
    if (points) this.pointsDirty = true;
    this.overlayDirty = true;
    onFrame(this);
  };

  MapView.prototype.frame = function () {
    if (!this.width) return;
    if (this.pointsDirty) { this.pointsDirty = false; this.drawPoints(); }
    if (this.hoverAt) { var at = this.hoverAt; this.hoverAt = null; this.doHover(at); }
    if (this.overlayDirty) { this.overlayDirty = false; this.drawOverlay(); }
  };

  MapView.prototype.drawPoints = function () {
    var t0 = performance.now();
    var dpr = this.dpr, pw = this.base.width, ph = this.base.height, buf = this.buffer;
    buf.fill(0);
    var s = this.scale * dpr, tx = this.tx * dpr, ty = this.ty * dpr;
    var r = Math.max(1, Math.round(this.radius() * dpr)), lim = r * r + 0.8 * r;
    var dxs = [], dys = [], offsets = [];
    for (var dy = -r; dy <= r; dy++) {
      for (var dx = -r; dx <= r; dx++) {
        if (dx * dx + dy * dy <= lim) { dxs.push(dx); dys.push(dy); offsets.push(dy * pw + dx); }
      }
    }
    var m = offsets.length, off = Int32Array.from(offsets);
    var x = this.x, y = this.y, rgba = this.rgba, hidden = this.hidden, order = this.order;
    for (var k = 0; k < order.length; k++) {
      var i = order[k];
      if (hidden[i]) continue;
      var px = Math.round(x[i] * s + tx), py = Math.round(ty - y[i] * s);
      if (px < -r || py < -r || px >= pw + r || py >= ph + r) continue;
      var c = rgba[i];
      if (px >= r && py >= r && px < pw - r && py < ph - r) {
        var at = py * pw + px;
        for (var q = 0; q < m; q++) buf[at + off[q]] = c;
      } else {
        for (var e = 0; e < m; e++) {
          var qx = px + dxs[e], qy = py + dys[e];
          if (qx >= 0 && qy >= 0 && qx < pw && qy < ph) buf[qy * pw + qx] = c;
        }
      }
    }
    this.ctx.putImageData(this.image, 0, 0);
    var ms = performance.now() - t0;
    this.stats.draws++;
    this.stats.draw_ms.push(ms);
    if (this.stats.first_draw_at === undefined) this.stats.first_draw_at = performance.now();
    this.status.textContent = this.n.toLocaleString("en") + " subjects · zoom " +
      (this.scale / this.fitScale).toFixed(1) + "×";
  };

  MapView.prototype.drawOverlay = function () {
    var self = this, ctx = this.over.getContext("2d"), dpr = this.dpr;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, this.width, this.height);
    var r = this.radius();
    this.groups.forEach(function (group, k) {
      var colour = GROUP_COLOURS[k % GROUP_COLOURS.length];
      ctx.fillStyle = colour + "22";
      ctx.strokeStyle = colour;
      ctx.lineWidth = 1.5;
      group.polygons.forEach(function (poly) {
        ctx.beginPath();
        poly.forEach(function (p, j) {
          var q = self.toScreen(p[0], p[1]);
          if (j) ctx.lineTo(q[0], q[1]); else ctx.moveTo(q[0], q[1]);
        });
        ctx.closePath();
        ctx.fill();
        ctx.stroke();
      });
      var first = self.toScreen(group.polygons[0][0][0], group.polygons[0][0][1]);
      ctx.fillStyle = colour;
      ctx.font = "600 12px sans-serif";
      ctx.fillText(String(group.label), first[0] + 4, first[1] - 4);
    });
    this.highlights.forEach(function (h) {
      if (!h.on) return;
      ctx.strokeStyle = h.colour;
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      for (var k = 0; k < h.rows.length; k++) {
        var i = h.rows[k];
        if (self.hidden[i]) continue;
        var q = self.pointOnScreen(i);
        ctx.moveTo(q[0] + r + 3, q[1]);
        ctx.arc(q[0], q[1], r + 3, 0, 2 * Math.PI);
      }
      ctx.stroke();
    });
    var syn = this.synthetic;
    if (syn && syn.on) {
      ctx.strokeStyle = "#444444";
      ctx.lineWidth = 1;
      ctx.beginPath();
      for (var k = 0; k < syn.a.length; k++) {
        var q = this.toScreen(syn.x[k], syn.y[k]);
        ctx.moveTo(q[0] - 3, q[1] - 3); ctx.lineTo(q[0] + 3, q[1] + 3);
        ctx.moveTo(q[0] - 3, q[1] + 3); ctx.lineTo(q[0] + 3, q[1] - 3);
      }
      ctx.stroke();
    }
    var hover = this.hover;
    if (hover && hover.kind === "synthetic") {
      var at = this.toScreen(syn.x[hover.index], syn.y[hover.index]);
      ctx.strokeStyle = "#111111";
      ctx.setLineDash([4, 3]);
      ctx.beginPath();
      [syn.a[hover.index], syn.b[hover.index]].forEach(function (parent) {
        var q = self.pointOnScreen(parent);
        ctx.moveTo(at[0], at[1]); ctx.lineTo(q[0], q[1]);
      });
      ctx.stroke();
      ctx.setLineDash([]);
    }
    if (this.pinned >= 0) this.ring(ctx, this.pointOnScreen(this.pinned), r + 5, 2.5);
    if (hover && hover.kind === "point") this.ring(ctx, this.pointOnScreen(hover.index), r + 4, 1.5);
    if (this.drawing && this.drawing.length) {
      ctx.strokeStyle = "#111111";
      ctx.lineWidth = 1.5;
      ctx.setLineDash([5, 4]);
      ctx.beginPath();
      this.drawing.forEach(function (p, j) {
        var q = self.toScreen(p[0], p[1]);
        if (j) ctx.lineTo(q[0], q[1]); else ctx.moveTo(q[0], q[1]);
      });
      if (this.cursor) ctx.lineTo(this.cursor[0], this.cursor[1]);
      ctx.stroke();
      ctx.setLineDash([]);
      if (this.mode === "polygon") {
        this.drawing.forEach(function (p) {
          var q = self.toScreen(p[0], p[1]);
          ctx.fillStyle = "#111111";
          ctx.fillRect(q[0] - 2.5, q[1] - 2.5, 5, 5);
        });
      }
    }
  };

  MapView.prototype.ring = function (ctx, q, radius, width) {
    ctx.lineWidth = width + 2;
    ctx.strokeStyle = "#ffffff";
    ctx.beginPath(); ctx.arc(q[0], q[1], radius, 0, 2 * Math.PI); ctx.stroke();
    ctx.lineWidth = width;
    ctx.strokeStyle = "#111111";
    ctx.beginPath(); ctx.arc(q[0], q[1], radius, 0, 2 * Math.PI); ctx.stroke();
  };

  // -- hover, pin, zoom, pan and drawing ------------------------------------------------------
  MapView.prototype.pick = function (sx, sy) {
    var p = this.toMap(sx, sy), R = PICK_PX / this.scale, grid = this.grid, box = this.box;
    var best = -1, bestD = R * R, g = grid.g;
    var c0 = Math.max(0, Math.floor((p[0] - R - box.x0) / grid.cw));
    var c1 = Math.min(g - 1, Math.floor((p[0] + R - box.x0) / grid.cw));
    var r0 = Math.max(0, Math.floor((p[1] - R - box.y0) / grid.ch));
    var r1 = Math.min(g - 1, Math.floor((p[1] + R - box.y0) / grid.ch));
    for (var row = r0; row <= r1; row++) {
      for (var col = c0; col <= c1; col++) {
        var c = row * g + col;
        for (var j = grid.start[c]; j < grid.start[c + 1]; j++) {
          var i = grid.items[j];
          if (this.hidden[i]) continue;
          var dx = this.x[i] - p[0], dy = this.y[i] - p[1], d = dx * dx + dy * dy;
          if (d <= bestD) { best = i; bestD = d; }
        }
      }
    }
    var syn = this.synthetic;
    if (syn && syn.on) {
      for (var k = 0; k < syn.a.length; k++) {
        var ex = syn.x[k] - p[0], ey = syn.y[k] - p[1], e = ex * ex + ey * ey;
        if (e < bestD) return {kind: "synthetic", index: k};
      }
    }
    return best >= 0 ? {kind: "point", index: best} : null;
  };

  MapView.prototype.listen = function () {
    var self = this, stage = this.stage;
    function local(e) {
      var box = stage.getBoundingClientRect();
      return [e.clientX - box.left, e.clientY - box.top];
    }
    stage.addEventListener("pointerdown", function (e) {
      if (e.button !== 0) return;
      stage.focus({preventScroll: true});
      try { stage.setPointerCapture(e.pointerId); } catch (err) { /* synthetic events */ }
      var at = local(e);
      self.press = {start: at, last: at, moved: false};
      if (self.mode === "lasso") self.drawing = [self.toMap(at[0], at[1])];
      e.preventDefault();
    });
    stage.addEventListener("pointermove", function (e) {
      var at = local(e), press = self.press;
      self.cursor = at;
      if (press) {
        if (Math.hypot(at[0] - press.start[0], at[1] - press.start[1]) > DRAG_PX) press.moved = true;
        if (self.mode === "explore" && press.moved) {
          self.tx += at[0] - press.last[0];
          self.ty += at[1] - press.last[1];
          self.redraw(true);
        } else if (self.mode === "lasso") {
          var last = self.toScreen.apply(self, self.drawing[self.drawing.length - 1]);
          if (Math.hypot(at[0] - last[0], at[1] - last[1]) >= 3) {
            self.drawing.push(self.toMap(at[0], at[1]));
          }
          self.redraw(false);
        }
        press.last = at;
        return;
      }
      if (self.drawing && self.drawing.length) { self.hideTip(); self.redraw(false); return; }
      self.hoverAt = {at: at, since: performance.now()};
      onFrame(self);
    });
    stage.addEventListener("pointerup", function (e) {
      var press = self.press;
      self.press = null;
      if (!press) return;
      var at = local(e);
      if (self.mode === "lasso") self.finishShape();
      else if (!press.moved) self.click(at);
    });
    stage.addEventListener("pointerleave", function () {
      if (self.press) return;
      self.cursor = null;
      self.hover = null;
      self.hideTip();
      self.redraw(false);
    });
    stage.addEventListener("dblclick", function (e) {
      if (self.mode === "polygon") { e.preventDefault(); self.finishShape(); }
    });
    stage.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && self.mode === "polygon") { self.finishShape(); e.preventDefault(); }
      if (e.key === "Escape") {
        if (self.drawing) self.drawing = null; else self.pin(-1);
        self.redraw(false);
      }
    });
    stage.addEventListener("wheel", function (e) {
      e.preventDefault();
      var at = local(e), factor = Math.exp(-e.deltaY * (e.deltaMode === 1 ? 0.05 : 0.0015));
      var scale = Math.max(self.fitScale * 0.5, Math.min(self.fitScale * 5000,
                                                          self.scale * factor));
      factor = scale / self.scale;
      self.tx = at[0] - (at[0] - self.tx) * factor;
      self.ty = at[1] - (at[1] - self.ty) * factor;
      self.scale = scale;
      self.hover = null;
      self.hideTip();
      self.redraw(true);
    }, {passive: false});
  };

  MapView.prototype.click = function (at) {
    if (this.mode === "polygon") {
      var drawing = this.drawing || (this.drawing = []);
      if (drawing.length >= 3) {
        var first = this.toScreen(drawing[0][0], drawing[0][1]);
        if (Math.hypot(at[0] - first[0], at[1] - first[1]) <= PICK_PX) {
          this.finishShape();
          return;
        }
      }
      var last = drawing.length ? this.toScreen(drawing[drawing.length - 1][0],
                                                drawing[drawing.length - 1][1]) : null;
      if (!last || Math.hypot(at[0] - last[0], at[1] - last[1]) > 3) {
        drawing.push(this.toMap(at[0], at[1]));
      }
      this.redraw(false);
      return;
    }
    if (this.mode === "explore") {
      var hit = this.pick(at[0], at[1]);
      this.pin(hit && hit.kind === "point" ? hit.index : -1);
    }
  };

  MapView.prototype.doHover = function (request) {
    var hit = this.pick(request.at[0], request.at[1]);
    var same = hit && this.hover && hit.kind === this.hover.kind && hit.index === this.hover.index;
    this.hover = hit;
    if (!hit) this.hideTip();
    else {
      if (!same) this.fillCard(this.tip, hit, 96, request.since);
      this.placeTip(request.at);
    }
    this.overlayDirty = true;
    this.stats.hover_ms.push(performance.now() - request.since);
  };

  MapView.prototype.hideTip = function () {
    this.tip.hidden = true;
    this.tip.removeAttribute("data-id");
    this.tip.removeAttribute("data-row");
  };

  MapView.prototype.placeTip = function (at) {
    var tip = this.tip;
    tip.hidden = false;
    var w = tip.offsetWidth, h = tip.offsetHeight;
    var left = at[0] + 14, top = at[1] + 14;
    if (left + w > this.width) left = Math.max(0, at[0] - 14 - w);
    if (top + h > this.height) top = Math.max(0, this.height - h);
    tip.style.left = left + "px";
    tip.style.top = top + "px";
  };

  MapView.prototype.value = function (col, i) {
    if (col.kind === "category") return col.codes[i] === 65535 ? "" : col.levels[col.codes[i]];
    if (col.kind === "number") return fmt(col.values[i]);
    return col.text[i] === null ? "" : col.text[i];
  };

  // the card of a subject (or a synthetic subject): thumbnail, id, metadata and notes
  MapView.prototype.fillCard = function (card, hit, size, since) {
    var self = this;
    card.textContent = "";
    if (hit.kind === "synthetic") {
      var syn = this.synthetic, a = syn.a[hit.index], b = syn.b[hit.index];
      card.setAttribute("data-id", "synthetic " + hit.index);
      card.setAttribute("data-row", "");
      var pair = el("div", {cls: "la-pair"});
      [a, b].forEach(function (parent) { pair.appendChild(self.thumbCanvas(parent, size / 1.5)); });
      card.appendChild(pair);
      card.appendChild(el("div", {cls: "la-id", text: "synthetic subject " + (hit.index + 1)}));
      card.appendChild(el("div", {cls: "la-note", text: "between " + this.ids[a] + " and " +
                                  this.ids[b] + ", weight " + fmt(syn.w[hit.index])}));
      return;
    }
    var i = hit.index;
    card.setAttribute("data-id", this.ids[i]);
    card.setAttribute("data-row", String(i));
    if (this.thumbs) card.appendChild(this.thumbCanvas(i, size, since));
    var text = el("div", {cls: "la-text"});
    text.appendChild(el("div", {cls: "la-id", text: this.ids[i]}));
    var table = el("table", {});
    this.columns.forEach(function (col) {
      if (!col.card) return;
      var value = self.value(col, i);
      table.appendChild(el("tr", {}, [el("th", {text: col.name}), el("td", {text: value})]));
    });
    text.appendChild(table);
    this.highlights.forEach(function (h) {
      if (!h.notes.has(i)) return;
      var note = el("div", {cls: "la-note", text: h.name + (h.notes.get(i) ? ": " +
                                                          h.notes.get(i) : "")});
      note.style.borderColor = h.colour;
      text.appendChild(note);
    });
    if (this.member[i] >= 0) {
      text.appendChild(el("div", {cls: "la-note", text: "in drawn group " + this.member[i]}));
    }
    card.appendChild(text);
  };

  MapView.prototype.thumbCanvas = function (i, size, since) {
    var self = this, canvas = el("canvas", {cls: "la-thumb", width: String(Math.round(size)),
                                            height: String(Math.round(size))});
    if (!this.thumbs) return canvas;
    var per = this.thumbs.tiles * this.thumbs.tiles, sheet = Math.floor(i / per);
    var k = i % per, t = this.thumbs.size, tiles = this.thumbs.tiles;
    this.sheet(sheet, function (img) {
      var ctx = canvas.getContext("2d");
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(img, (k % tiles) * t, Math.floor(k / tiles) * t, t, t, 0, 0,
                    canvas.width, canvas.height);
      canvas.setAttribute("data-row", String(i));
      if (since !== undefined) self.stats.thumb_ms.push(performance.now() - since);
    });
    return canvas;
  };

  // sprite sheets are decoded when first needed; a few stay decoded
  MapView.prototype.sheet = function (k, ready) {
    var entry = this.sheets[k];
    if (!entry) {
      entry = this.sheets[k] = {image: new Image(), waiting: [], loaded: false};
      entry.image.onload = function () {
        entry.loaded = true;
        entry.waiting.forEach(function (f) { f(entry.image); });
        entry.waiting = [];
      };
      entry.image.src = this.thumbs.sheets[k];
      var kept = this.sheets.filter(function (s) { return s; });
      if (kept.length > 12) {
        for (var j = 0; j < this.sheets.length; j++) {
          if (this.sheets[j] && j !== k && this.sheets[j].loaded) { this.sheets[j] = null; break; }
        }
      }
    }
    if (entry.loaded) ready(entry.image); else entry.waiting.push(ready);
  };

  MapView.prototype.pin = function (i) {
    this.pinned = i;
    var card = this.card;
    if (i < 0) { card.hidden = true; card.textContent = ""; this.redraw(false); return; }
    card.hidden = false;
    this.fillCard(card, {kind: "point", index: i}, 160);
    var self = this, close = el("button", {type: "button", cls: "la-unpin", text: "unpin"});
    close.addEventListener("click", function () { self.pin(-1); });
    card.insertBefore(close, card.firstChild);
    this.redraw(false);
  };

  MapView.prototype.finishShape = function () {
    var poly = (this.drawing || []).slice();
    this.drawing = null;
    while (poly.length > 3 && closeTo(poly[poly.length - 1], poly[0])) poly.pop();
    if (poly.length < 3) { this.redraw(false); return; }
    var into = this.into.value, group = null;
    for (var k = 0; k < this.groups.length; k++) {
      if (String(this.groups[k].label) === into) group = this.groups[k];
    }
    if (group) group.polygons.push(poly);
    else {
      var label = 1;
      this.groups.forEach(function (g) { label = Math.max(label, g.label + 1); });
      this.groups.push({label: label, polygons: [poly]});
    }
    this.assign();
    this.updateGroups();
    this.redraw(false);
  };

  // each point to the first group (in drawing order) with a polygon around it
  MapView.prototype.assign = function () {
    var member = this.member, n = this.n, x = this.x, y = this.y;
    member.fill(-1);
    this.groups.forEach(function (group) {
      var tests = group.polygons.map(polygonTest), count = 0;
      for (var i = 0; i < n; i++) {
        if (member[i] !== -1) continue;
        for (var t = 0; t < tests.length; t++) {
          if (tests[t](x[i], y[i])) { member[i] = group.label; count++; break; }
        }
      }
      group.count = count;
    });
  };

  MapView.prototype.updateGroups = function () {
    var self = this, list = this.groupList, into = this.into, chosen = into.value;
    list.textContent = "";
    into.textContent = "";
    into.appendChild(el("option", {value: "new", text: "a new group"}));
    this.groups.forEach(function (group, k) {
      var swatch = el("span", {cls: "la-swatch"});
      swatch.style.background = GROUP_COLOURS[k % GROUP_COLOURS.length];
      var remove = el("button", {type: "button", cls: "la-remove", title: "remove",
                                 text: "×"});
      remove.addEventListener("click", function () {
        self.groups.splice(self.groups.indexOf(group), 1);
        self.assign(); self.updateGroups(); self.redraw(false);
      });
      var shapes = group.polygons.length > 1 ? ", " + group.polygons.length + " shapes" : "";
      list.appendChild(el("li", {"data-label": String(group.label)}, [
        swatch, document.createTextNode("group " + group.label + ": " + group.count +
                                        " subjects" + shapes + " "), remove]));
      into.appendChild(el("option", {value: String(group.label), text: "group " + group.label}));
    });
    into.value = Array.prototype.some.call(into.options, function (o) {
      return o.value === chosen; }) ? chosen : "new";
    if (this.groups.length) {
      var rest = 0;
      for (var i = 0; i < this.n; i++) rest += this.member[i] === -1;
      list.appendChild(el("li", {cls: "la-rest-line", text: this.rest.checked ?
        "group 0 (the rest): " + rest + " subjects" : rest + " subjects in no group (left out)"}));
    }
    this.json.value = this.groups.length ? this.exportGroups(false) : "";
  };

  // the delineation file: read by latentaudit.audit.Delineation
  MapView.prototype.exportGroups = function (save) {
    var self = this, data = this.data;
    var record = {
      format: "latentaudit.delineation", version: 1,
      map: data.identity.map, embeddings: data.identity.embeddings,
      outside: this.rest.checked ? 0 : -1,
      groups: this.groups.map(function (group) {
        var ids = [];
        for (var i = 0; i < self.n; i++) if (self.member[i] === group.label) ids.push(self.ids[i]);
        return {label: group.label, polygons: group.polygons, ids: ids, n: ids.length};
      }),
      source: Object.assign({}, data.source, {drawn: new Date().toISOString()})
    };
    var text = JSON.stringify(record, null, 1);
    if (save) {
      this.json.value = text;
      if (this.groups.length) download("delineation.json", text);
    }
    return text;
  };

  // -- line charts ----------------------------------------------------------------------------
  function CurveView(root, data) {
    var self = this;
    this.kind = "curves";
    this.root = root;
    this.data = data;
    this.stats = {draws: 0};
    this.hidden = data.series.map(function () { return false; });
    root.classList.add("la-curves");
    this.stage = el("div", {cls: "la-chart"});
    this.canvas = this.stage.appendChild(el("canvas", {}));
    this.tip = this.stage.appendChild(el("div", {cls: "la-tip", hidden: ""}));
    var legend = el("ul", {cls: "la-series"});
    data.series.forEach(function (s, k) {
      var item = el("li", {title: "click to hide or show"}, [el("span", {cls: "la-swatch"}),
                                                            document.createTextNode(s.name)]);
      item.firstChild.style.background = s.colour;
      item.addEventListener("click", function () {
        self.hidden[k] = !self.hidden[k];
        item.classList.toggle("off", self.hidden[k]);
        onFrame(self);
      });
      legend.appendChild(item);
    });
    root.appendChild(this.stage);
    root.appendChild(legend);
    this.range();
    this.canvas.addEventListener("pointermove", function (e) {
      var box = self.canvas.getBoundingClientRect();
      self.hoverAt = [e.clientX - box.left, e.clientY - box.top];
      onFrame(self);
    });
    this.canvas.addEventListener("pointerleave", function () {
      self.hoverAt = null; self.hover = null; self.tip.hidden = true; onFrame(self);
    });
    if (window.ResizeObserver) new ResizeObserver(function () { onFrame(self); }).observe(this.stage);
    onFrame(this);
  }

  CurveView.prototype.range = function () {
    var xs = [], ys = [], data = this.data;
    data.series.forEach(function (s) {
      s.x.forEach(function (v) { if (v !== null) xs.push(v); });
      ["y", "lower", "upper"].forEach(function (key) {
        (s[key] || []).forEach(function (v) { if (v !== null) ys.push(v); });
      });
    });
    Object.keys(data.markers).forEach(function (key) {
      if (data.markers[key] !== null) xs.push(data.markers[key]);
    });
    var x0 = Math.min.apply(null, xs), x1 = Math.max.apply(null, xs);
    var y0 = Math.min.apply(null, ys), y1 = Math.max.apply(null, ys);
    if (data.y_range) { y0 = data.y_range[0]; y1 = data.y_range[1]; }
    if (!(x1 > x0)) { x0 -= 1; x1 += 1; }
    if (!(y1 > y0)) { y0 -= 1; y1 += 1; }
    var px = (x1 - x0) * 0.03, py = data.y_range ? 0 : (y1 - y0) * 0.05;
    this.xr = [x0 - px, x1 + px];
    this.yr = [y0 - py, y1 + py];
  };

  CurveView.prototype.frame = function () {
    var w = this.stage.clientWidth, h = this.stage.clientHeight;
    if (!w || !h) return;
    var dpr = window.devicePixelRatio || 1, canvas = this.canvas;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
      canvas.style.width = w + "px"; canvas.style.height = h + "px";
    }
    var m = {l: 58, r: 16, t: 16, b: 42}, self = this, data = this.data;
    var sx = function (v) { return m.l + (v - self.xr[0]) / (self.xr[1] - self.xr[0]) * (w - m.l - m.r); };
    var sy = function (v) { return h - m.b - (v - self.yr[0]) / (self.yr[1] - self.yr[0]) * (h - m.t - m.b); };
    var ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    ctx.font = "12px sans-serif";
    ctx.strokeStyle = "#dfe3ea";
    ctx.fillStyle = "#5b6475";
    ctx.lineWidth = 1;
    niceTicks(this.yr[0], this.yr[1], 5).forEach(function (t) {
      ctx.beginPath(); ctx.moveTo(m.l, sy(t)); ctx.lineTo(w - m.r, sy(t)); ctx.stroke();
      ctx.textAlign = "right"; ctx.fillText(fmt(t), m.l - 6, sy(t) + 4);
    });
    niceTicks(this.xr[0], this.xr[1], 6).forEach(function (t) {
      ctx.textAlign = "center"; ctx.fillText(fmt(t), sx(t), h - m.b + 16);
    });
    ctx.textAlign = "center";
    ctx.fillText(data.x_label, m.l + (w - m.l - m.r) / 2, h - 6);
    ctx.save(); ctx.translate(14, m.t + (h - m.t - m.b) / 2); ctx.rotate(-Math.PI / 2);
    ctx.fillText(data.y_label, 0, 0); ctx.restore();
    Object.keys(data.markers).forEach(function (name) {
      var v = data.markers[name];
      if (v === null) return;
      ctx.strokeStyle = "#5b6475"; ctx.setLineDash([4, 4]);
      ctx.beginPath(); ctx.moveTo(sx(v), m.t); ctx.lineTo(sx(v), h - m.b); ctx.stroke();
      ctx.setLineDash([]); ctx.textAlign = "left"; ctx.fillText(name, sx(v) + 4, m.t + 10);
    });
    data.series.forEach(function (s, k) {
      if (self.hidden[k]) return;
      if (s.lower && s.upper) {
        ctx.fillStyle = s.colour + "26";
        ctx.beginPath();
        s.x.forEach(function (v, j) { var f = j ? "lineTo" : "moveTo"; ctx[f](sx(v), sy(s.upper[j])); });
        for (var j = s.x.length - 1; j >= 0; j--) ctx.lineTo(sx(s.x[j]), sy(s.lower[j]));
        ctx.closePath(); ctx.fill();
      }
      ctx.strokeStyle = s.colour; ctx.fillStyle = s.colour; ctx.lineWidth = 2;
      ctx.beginPath();
      s.x.forEach(function (v, j) { var f = j ? "lineTo" : "moveTo"; ctx[f](sx(v), sy(s.y[j])); });
      ctx.stroke();
      s.x.forEach(function (v, j) {
        ctx.beginPath(); ctx.arc(sx(v), sy(s.y[j]), 3, 0, 2 * Math.PI); ctx.fill();
      });
    });
    ctx.strokeStyle = "#5b6475";
    ctx.beginPath(); ctx.moveTo(m.l, m.t); ctx.lineTo(m.l, h - m.b); ctx.lineTo(w - m.r, h - m.b);
    ctx.stroke();
    if (this.hoverAt) {
      var best = null, bestD = 144, at = this.hoverAt;
      data.series.forEach(function (s, k) {
        if (self.hidden[k]) return;
        s.x.forEach(function (v, j) {
          var d = Math.pow(sx(v) - at[0], 2) + Math.pow(sy(s.y[j]) - at[1], 2);
          if (d < bestD) { bestD = d; best = [k, j]; }
        });
      });
      this.hover = best;
      if (best) {
        var s = data.series[best[0]], j = best[1];
        ctx.strokeStyle = "#111111"; ctx.lineWidth = 2;
        ctx.beginPath(); ctx.arc(sx(s.x[j]), sy(s.y[j]), 6, 0, 2 * Math.PI); ctx.stroke();
        var band = s.lower && s.upper ? " [" + fmt(s.lower[j]) + ", " + fmt(s.upper[j]) + "]" : "";
        this.tip.textContent = "";
        this.tip.appendChild(el("div", {cls: "la-id", text: s.name}));
        this.tip.appendChild(el("div", {text: data.x_label + " = " + fmt(s.x[j]) + ", " +
                                        data.y_label + " = " + fmt(s.y[j]) + band}));
        if (s.notes && s.notes[j]) this.tip.appendChild(el("div", {cls: "la-note", text: s.notes[j]}));
        this.tip.hidden = false;
        this.tip.style.left = Math.min(w - this.tip.offsetWidth, sx(s.x[j]) + 10) + "px";
        this.tip.style.top = Math.max(0, sy(s.y[j]) - this.tip.offsetHeight - 10) + "px";
      } else this.tip.hidden = true;
    }
    this.stats.draws++;
  };

  // -- start ----------------------------------------------------------------------------------
  function start() {
    var kinds = {map: MapView, curves: CurveView};
    Array.prototype.forEach.call(document.querySelectorAll("[data-la-view]"), function (root) {
      var kind = root.getAttribute("data-la-view"), script = root.querySelector(".la-data");
      if (!kinds[kind] || !script || root.laView) return;
      try {
        root.laView = new kinds[kind](root, JSON.parse(script.textContent));
        VIEWS.push(root.laView);
      } catch (error) {
        root.appendChild(el("p", {cls: "note failed", text: "This view could not be drawn: " +
                                  error}));
        VIEWS.push({kind: kind, error: String(error)});
      }
    });
  }

  window.latentauditViews = VIEWS;
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
