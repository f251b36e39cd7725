/*
 * convlens report: the interactive embedding scatter. Reads the points from the container's
 * data-scatter attribute (column arrays, see src/lib/report.ts scatterData), draws them on a
 * canvas on requestAnimationFrame, zooms with the wheel (or + / - keys), pans by dragging (or the
 * arrow keys), colours by label or prediction, hides all but the misclassified on request, shows
 * the thumbnail, label and prediction of the point under the pointer (found through a uniform
 * grid over the data, so hovering stays cheap at 10,000 points) and opens its image on click.
 * Without JavaScript the page shows the pipeline's static scatter PNG instead.
 * Classic script (no modules): it also runs when the report is opened from disk.
 */
(function () {
  'use strict';

  var HIT_PX = 8;

  function init(root) {
    var data;
    try {
      data = JSON.parse(root.getAttribute('data-scatter') || '');
    } catch (e) {
      return;
    }
    var n = data.n;
    var canvas = root.querySelector('canvas');
    var ctx = canvas && canvas.getContext('2d');
    if (!ctx || !n) return;
    var tip = root.querySelector('.scatter-tip');
    var tipImg = document.createElement('img');
    tipImg.width = 64;
    tipImg.height = 64;
    tipImg.className = 'pixelated';
    tipImg.hidden = true;
    var tipText = tip.querySelector('.scatter-tip-text');
    var select = root.querySelector('[data-color-by]');
    var onlyWrong = root.querySelector('[data-only-wrong]');
    var countEl = root.querySelector('[data-count]');
    var resetBtn = root.querySelector('[data-reset]');
    var zoomIn = root.querySelector('[data-zoom-in]');
    var zoomOut = root.querySelector('[data-zoom-out]');
    var legends = (root.closest('section') || root.parentNode).querySelectorAll('[data-legend]');

    var X = Float64Array.from(data.x);
    var Y = Float64Array.from(data.y);

    // ---- labels, misclassified -------------------------------------------------------------
    var wrong = new Uint8Array(n);
    var nWrong = 0;
    var nLabelled = 0;
    for (var i = 0; i < n; i++) {
      var l = data.label[i];
      var lc = l >= 0 ? data.labelClass[l] : -1;
      if (lc >= 0) {
        nLabelled++;
        if (lc !== data.prediction[i]) {
          wrong[i] = 1;
          nWrong++;
        }
      }
    }

    // ---- extent and grid -------------------------------------------------------------------
    var x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (i = 0; i < n; i++) {
      if (X[i] < x0) x0 = X[i];
      if (X[i] > x1) x1 = X[i];
      if (Y[i] < y0) y0 = Y[i];
      if (Y[i] > y1) y1 = Y[i];
    }
    var span = Math.max(x1 - x0, y1 - y0) || 1;
    var G = Math.max(1, Math.min(256, Math.ceil(Math.sqrt(n / 4))));
    var cell = span / G;
    var gridW = Math.floor((x1 - x0) / cell) + 1;
    var gridH = Math.floor((y1 - y0) / cell) + 1;
    var cells = new Map();
    for (i = 0; i < n; i++) {
      var key = Math.floor((X[i] - x0) / cell) + Math.floor((Y[i] - y0) / cell) * gridW;
      var list = cells.get(key);
      if (list) list.push(i);
      else cells.set(key, [i]);
    }

    // ---- view ------------------------------------------------------------------------------
    var W = 0, H = 0, dpr = 1;
    var view = { k: 1, cx: (x0 + x1) / 2, cy: (y0 + y1) / 2 };
    var fitted = false;
    var fitK = 1;

    function fit() {
      var margin = 16;
      view.k = Math.max(1e-9, (Math.min(W, H) - 2 * margin) / span);
      view.cx = (x0 + x1) / 2;
      view.cy = (y0 + y1) / 2;
      fitK = view.k;
      fitted = true;
    }
    function sx(x) { return W / 2 + (x - view.cx) * view.k; }
    function sy(y) { return H / 2 - (y - view.cy) * view.k; }
    function wx(px) { return view.cx + (px - W / 2) / view.k; }
    function wy(py) { return view.cy - (py - H / 2) / view.k; }

    function resize() {
      var rect = canvas.getBoundingClientRect();
      var w = Math.max(1, Math.round(rect.width));
      var h = Math.max(1, Math.round(rect.height));
      dpr = window.devicePixelRatio || 1;
      if (w === W && h === H && canvas.width === Math.round(w * dpr)) return;
      W = w;
      H = h;
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
      if (!fitted) fit();
      request();
    }

    // ---- colours ---------------------------------------------------------------------------
    var mode = 'label';
    var groups = [];
    function colourOf(i) {
      if (mode === 'prediction') return data.colors.prediction[data.prediction[i]] || data.colors.none;
      var l = data.label[i];
      return l >= 0 ? data.colors.label[l] || data.colors.none : data.colors.none;
    }
    function regroup() {
      var byColour = new Map();
      for (var i = 0; i < n; i++) {
        var c = colourOf(i);
        var g = byColour.get(c);
        if (g) g.push(i);
        else byColour.set(c, [i]);
      }
      groups = [];
      byColour.forEach(function (idx, colour) { groups.push({ colour: colour, idx: idx }); });
      for (var j = 0; j < legends.length; j++) legends[j].hidden = legends[j].getAttribute('data-legend') !== mode;
    }

    // ---- drawing ---------------------------------------------------------------------------
    var pending = false;
    var hovered = -1;
    function request() {
      if (pending) return;
      pending = true;
      window.requestAnimationFrame(function () {
        pending = false;
        draw();
      });
    }
    function visible(i) {
      return !onlyWrong || !onlyWrong.checked || wrong[i] === 1;
    }
    function draw() {
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.clearRect(0, 0, W, H);
      var base = n > 5000 ? 2 : n > 1000 ? 2.5 : n > 200 ? 3.5 : 5;
      var r = Math.min(3 * base, base * Math.sqrt(Math.max(1, view.k / fitK)));
      var squares = n > 3000;
      var filter = onlyWrong && onlyWrong.checked;
      ctx.globalAlpha = 0.8;
      for (var g = 0; g < groups.length; g++) {
        var idx = groups[g].idx;
        ctx.fillStyle = groups[g].colour;
        ctx.beginPath();
        for (var j = 0; j < idx.length; j++) {
          var i = idx[j];
          if (filter && !wrong[i]) continue;
          var px = sx(X[i]);
          var py = sy(Y[i]);
          if (px < -r || py < -r || px > W + r || py > H + r) continue;
          if (squares) ctx.rect(px - r, py - r, 2 * r, 2 * r);
          else {
            ctx.moveTo(px + r, py);
            ctx.arc(px, py, r, 0, 2 * Math.PI);
          }
        }
        ctx.fill();
      }
      ctx.globalAlpha = 1;
      if (hovered >= 0 && visible(hovered)) {
        ctx.lineWidth = 2;
        ctx.strokeStyle = getComputedStyle(root).getPropertyValue('--fg') || '#000';
        ctx.beginPath();
        ctx.arc(sx(X[hovered]), sy(Y[hovered]), r + 3, 0, 2 * Math.PI);
        ctx.stroke();
      }
    }

    // ---- hit testing -----------------------------------------------------------------------
    function nearest(px, py) {
      var x = wx(px), y = wy(py);
      var rad = HIT_PX / view.k;
      var ca = Math.floor((x - rad - x0) / cell), cb = Math.floor((x + rad - x0) / cell);
      var ra = Math.floor((y - rad - y0) / cell), rb = Math.floor((y + rad - y0) / cell);
      ca = Math.max(0, ca); ra = Math.max(0, ra);
      cb = Math.min(gridW - 1, cb); rb = Math.min(gridH - 1, rb);
      if ((cb - ca + 1) * (rb - ra + 1) > 4 * G * G) return -1;
      var best = -1, bestD = rad * rad;
      for (var r = ra; r <= rb; r++) {
        for (var c = ca; c <= cb; c++) {
          var list = cells.get(c + r * gridW);
          if (!list) continue;
          for (var j = 0; j < list.length; j++) {
            var i = list[j];
            if (!visible(i)) continue;
            var dx = X[i] - x, dy = Y[i] - y;
            var d = dx * dx + dy * dy;
            if (d <= bestD) {
              bestD = d;
              best = i;
            }
          }
        }
      }
      return best;
    }

    function thumbOf(i) {
      var mid = data.thumb.mid[i];
      return mid === null || mid === undefined ? '' : data.thumb.prefix + mid + data.thumb.suffix;
    }

    function showTip(i, px, py) {
      if (i < 0) {
        tip.hidden = true;
        canvas.style.cursor = dragging ? 'grabbing' : 'grab';
        return;
      }
      var l = data.label[i];
      var p = data.prediction[i];
      var conf = data.confidence[i];
      var url = thumbOf(i);
      if (url) {
        if (!tipImg.parentNode) tip.insertBefore(tipImg, tip.firstChild);
        if (tipImg.getAttribute('src') !== url) tipImg.src = url;
        tipImg.alt = 'Thumbnail of ' + (data.source[i] || 'the image');
        tipImg.hidden = false;
      } else {
        tipImg.hidden = true;
      }
      var lines = [
        data.source[i] || '',
        'label: ' + (l >= 0 ? data.labels[l] : 'none'),
        'prediction: ' + (data.classes[p] !== undefined ? data.classes[p] : String(p)) + (conf !== null && conf !== undefined ? ' (' + (conf * 100).toFixed(1) + ' %)' : ''),
      ];
      if (wrong[i]) lines.push('misclassified');
      tipText.textContent = '';
      for (var j = 0; j < lines.length; j++) {
        var line = document.createElement('span');
        line.textContent = lines[j];
        if (j === 3) line.className = 'bad';
        tipText.appendChild(line);
      }
      tip.hidden = false;
      var tw = tip.offsetWidth, th = tip.offsetHeight;
      var left = px + 14, top = py + 14;
      if (left + tw > W) left = Math.max(0, px - tw - 14);
      if (top + th > H) top = Math.max(0, py - th - 14);
      tip.style.left = left + 'px';
      tip.style.top = top + 'px';
      canvas.style.cursor = url ? 'pointer' : 'default';
    }

    function hover(px, py) {
      var i = nearest(px, py);
      if (i !== hovered) {
        hovered = i;
        request();
      }
      showTip(i, px, py);
    }

    // ---- interaction -----------------------------------------------------------------------
    function zoomAt(px, py, factor) {
      var x = wx(px), y = wy(py);
      view.k = Math.min(1e9, Math.max(1e-9, view.k * factor));
      view.cx = x - (px - W / 2) / view.k;
      view.cy = y + (py - H / 2) / view.k;
      request();
    }
    function local(ev) {
      var rect = canvas.getBoundingClientRect();
      return [ev.clientX - rect.left, ev.clientY - rect.top];
    }

    var dragging = false, moved = false, last = null;
    canvas.addEventListener('wheel', function (ev) {
      ev.preventDefault();
      var p = local(ev);
      zoomAt(p[0], p[1], Math.exp(-ev.deltaY * (ev.deltaMode === 1 ? 0.05 : 0.002)));
      hover(p[0], p[1]);
    }, { passive: false });
    canvas.addEventListener('pointerdown', function (ev) {
      if (ev.button !== 0) return;
      dragging = true;
      moved = false;
      last = local(ev);
      canvas.setPointerCapture(ev.pointerId);
    });
    canvas.addEventListener('pointermove', function (ev) {
      var p = local(ev);
      if (dragging && last) {
        var dx = p[0] - last[0], dy = p[1] - last[1];
        if (Math.abs(dx) + Math.abs(dy) > 0) {
          if (moved || Math.abs(dx) + Math.abs(dy) > 3) {
            moved = true;
            view.cx -= dx / view.k;
            view.cy += dy / view.k;
            last = p;
            tip.hidden = true;
            request();
          }
        }
        return;
      }
      hover(p[0], p[1]);
    });
    function endDrag(ev) {
      if (!dragging) return;
      dragging = false;
      if (canvas.hasPointerCapture && canvas.hasPointerCapture(ev.pointerId)) canvas.releasePointerCapture(ev.pointerId);
      if (!moved && ev.type === 'pointerup') {
        var p = local(ev);
        var i = nearest(p[0], p[1]);
        var url = i >= 0 ? thumbOf(i) : '';
        if (url) window.location.href = url;
      }
    }
    canvas.addEventListener('pointerup', endDrag);
    canvas.addEventListener('pointercancel', endDrag);
    canvas.addEventListener('pointerleave', function () {
      if (dragging) return;
      hovered = -1;
      tip.hidden = true;
      request();
    });
    canvas.addEventListener('keydown', function (ev) {
      var step = 40 / view.k;
      var handled = true;
      switch (ev.key) {
        case '+': case '=': zoomAt(W / 2, H / 2, 1.25); break;
        case '-': case '_': zoomAt(W / 2, H / 2, 0.8); break;
        case 'ArrowLeft': view.cx -= step; break;
        case 'ArrowRight': view.cx += step; break;
        case 'ArrowUp': view.cy += step; break;
        case 'ArrowDown': view.cy -= step; break;
        case '0': fit(); break;
        default: handled = false;
      }
      if (handled) {
        ev.preventDefault();
        request();
      }
    });
    if (resetBtn) resetBtn.addEventListener('click', function () { fit(); request(); });
    if (zoomIn) zoomIn.addEventListener('click', function () { zoomAt(W / 2, H / 2, 1.5); });
    if (zoomOut) zoomOut.addEventListener('click', function () { zoomAt(W / 2, H / 2, 1 / 1.5); });
    if (select) {
      select.addEventListener('change', function () {
        mode = select.value === 'prediction' ? 'prediction' : 'label';
        regroup();
        request();
      });
      mode = select.value === 'prediction' ? 'prediction' : 'label';
    }
    function updateCount() {
      if (!countEl) return;
      countEl.textContent = nLabelled === 0
        ? 'no labels, so no point can be misclassified'
        : nWrong + ' of ' + nLabelled + ' labelled images misclassified' + (onlyWrong && onlyWrong.checked ? '; showing only those' : '');
    }
    if (onlyWrong) {
      onlyWrong.disabled = nLabelled === 0;
      onlyWrong.addEventListener('change', function () {
        updateCount();
        hovered = -1;
        tip.hidden = true;
        request();
      });
    }

    regroup();
    updateCount();
    root.hidden = false;
    var fallback = root.parentNode.querySelector('[data-scatter-static]');
    if (fallback) fallback.hidden = true;
    if (window.ResizeObserver) new window.ResizeObserver(resize).observe(canvas);
    else window.addEventListener('resize', resize);
    resize();

    var api = {
      n: n,
      misclassified: nWrong,
      /** Client (viewport) coordinates of point i in the current view. */
      toClient: function (i) {
        var rect = canvas.getBoundingClientRect();
        return { x: rect.left + sx(X[i]), y: rect.top + sy(Y[i]) };
      },
      thumb: thumbOf,
    };
    window.convlensScatters = window.convlensScatters || [];
    window.convlensScatters.push(api);
  }

  function start() {
    var roots = document.querySelectorAll('[data-scatter]');
    for (var i = 0; i < roots.length; i++) init(roots[i]);
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
