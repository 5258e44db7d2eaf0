// DEER stats view: draws SVG charts from the data the extension posts (src/editor/statsView.ts).
// No libraries, nothing remote; all text goes in through textContent.
// @ts-check
(function () {
  const vscode = acquireVsCodeApi();
  const SVG = 'http://www.w3.org/2000/svg';
  const W = 320;
  const H = 160;
  const PAD = { left: 34, right: 8, top: 8, bottom: 18 };

  function el(name, attrs, parent) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (parent) parent.appendChild(node);
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function niceMax(x) {
    if (!(x > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(x)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= x) return m * p;
    return 10 * p;
  }

  function axes(svg, yMax, xLabel, labelOnTop) {
    svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
    el('line', { class: 'axis', x1: PAD.left, y1: H - PAD.bottom, x2: W - PAD.right, y2: H - PAD.bottom }, svg);
    el('line', { class: 'axis', x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: H - PAD.bottom }, svg);
    for (const f of [0, 0.5, 1]) {
      const y = H - PAD.bottom - f * (H - PAD.top - PAD.bottom);
      const t = el('text', { x: PAD.left - 4, y: y + 3, 'text-anchor': 'end' }, svg);
      t.textContent = (yMax * f).toFixed(yMax * f < 10 && f > 0 ? 1 : 0);
    }
    const t = el('text', { x: W - PAD.right, y: labelOnTop ? PAD.top + 4 : H - 4, 'text-anchor': 'end' }, svg);
    t.textContent = xLabel;
  }

  /** One polyline per drafter over the run index. */
  function lineChart(svg, runs, key) {
    clear(svg);
    const yMax = niceMax(Math.max(0, ...runs.map((r) => r[key])));
    axes(svg, yMax, `last ${runs.length} completions`);
    const drafters = [...new Set(runs.map((r) => r.drafter))];
    const n = Math.max(1, runs.length - 1);
    const x = (i) => PAD.left + (i / n) * (W - PAD.left - PAD.right);
    const y = (v) => H - PAD.bottom - (v / yMax) * (H - PAD.top - PAD.bottom);
    drafters.forEach((d, s) => {
      const pts = [];
      runs.forEach((r, i) => {
        if (r.drafter !== d) return;
        pts.push(`${x(i).toFixed(1)},${y(r[key]).toFixed(1)}`);
        el('circle', { class: `series-${s % 4}`, cx: x(i), cy: y(r[key]), r: 2 }, svg);
      });
      el('polyline', { class: `series-${s % 4}`, points: pts.join(' ') }, svg);
    });
    legend(svg, drafters);
  }

  function legend(svg, drafters) {
    const fig = svg.parentElement;
    let box = fig.querySelector('.legend');
    if (!box) {
      box = document.createElement('div');
      box.className = 'legend';
      fig.appendChild(box);
    }
    clear(box);
    drafters.forEach((d, s) => {
      const span = document.createElement('span');
      span.className = `series-${s % 4}`;
      span.textContent = d;
      box.appendChild(span);
    });
  }

  /** Grouped bars: share of verifier passes that accepted n drafted tokens, per drafter. */
  function histogram(svg, histograms) {
    clear(svg);
    const drafters = Object.keys(histograms);
    const len = Math.max(1, ...drafters.map((d) => histograms[d].length));
    const shares = drafters.map((d) => {
      const h = histograms[d];
      const total = h.reduce((a, b) => a + b, 0) || 1;
      return Array.from({ length: len }, (_, i) => (h[i] || 0) / total);
    });
    const yMax = niceMax(Math.max(0, ...shares.flat()));
    axes(svg, yMax, 'share of passes by accepted tokens', true);
    const slot = (W - PAD.left - PAD.right) / len;
    const bw = Math.max(1, (slot - 2) / Math.max(1, drafters.length));
    shares.forEach((row, s) => {
      row.forEach((v, i) => {
        const h = (v / yMax) * (H - PAD.top - PAD.bottom);
        el('rect', { class: `series-${s % 4}`, x: PAD.left + i * slot + 1 + s * bw, y: H - PAD.bottom - h, width: bw, height: h }, svg);
      });
    });
    for (let i = 0; i < len; i += Math.max(1, Math.ceil(len / 8))) {
      const t = el('text', { x: PAD.left + i * slot + slot / 2, y: H - PAD.bottom + 10, 'text-anchor': 'middle' }, svg);
      t.textContent = String(i);
    }
    legend(svg, drafters);
  }

  function table(node, perDrafter) {
    clear(node);
    const head = node.insertRow();
    for (const h of ['drafter', 'runs', 'tok/s', 'tokens per pass']) {
      const th = document.createElement('th');
      th.textContent = h;
      head.appendChild(th);
    }
    for (const d of perDrafter) {
      const row = node.insertRow();
      for (const v of [d.drafter, d.runs, Math.round(d.tokensPerSecond), d.tokensPerPass.toFixed(2)]) {
        row.insertCell().textContent = String(v);
      }
    }
  }

  function metric(parent, value, label) {
    const box = document.createElement('div');
    box.className = 'metric';
    const v = document.createElement('span');
    v.className = 'value';
    v.textContent = value;
    const l = document.createElement('span');
    l.className = 'label';
    l.textContent = label;
    box.append(v, l);
    parent.appendChild(box);
  }

  function render(data) {
    const status = document.getElementById('status');
    status.textContent = data.error ? `Error: ${data.error}` : data.status;
    status.className = data.error ? 'error' : '';
    const actions = document.getElementById('actions');
    clear(actions);
    for (const a of data.actions || []) {
      const button = document.createElement('button');
      button.textContent = a.title;
      button.dataset.command = a.command;
      button.addEventListener('click', () => vscode.postMessage({ type: 'command', command: a.command }));
      actions.appendChild(button);
    }
    const runs = data.runs.slice(-100);
    const empty = runs.length === 0;
    document.getElementById('empty').className = empty ? 'empty' : 'hidden';
    document.querySelector('.charts').className = empty ? 'charts hidden' : 'charts';
    const summary = document.getElementById('summary');
    clear(summary);
    if (empty) return;
    const tokens = runs.reduce((a, r) => a + r.newTokens, 0);
    const passes = runs.reduce((a, r) => a + r.passes, 0);
    const lat = runs.filter((r) => r.kind === 'inline').map((r) => r.latencyMs).sort((a, b) => a - b);
    metric(summary, (tokens / Math.max(1, passes)).toFixed(2), 'tokens per verifier pass');
    const decodeMs = runs.reduce((a, r) => a + r.decodeMs, 0);
    metric(summary, String(Math.round(decodeMs > 0 ? (tokens * 1000) / decodeMs : 0)), 'tokens/s while decoding');
    metric(summary, String(runs.length), 'completions');
    if (lat.length) metric(summary, `${Math.round(lat[Math.floor(lat.length / 2)])} ms`, 'inline latency p50');
    lineChart(document.getElementById('tpp'), runs, 'tokensPerPass');
    lineChart(document.getElementById('tps'), runs, 'tokensPerSecond');
    histogram(document.getElementById('hist'), data.histograms);
    table(document.getElementById('drafters'), data.perDrafter);
  }

  window.addEventListener('message', (event) => {
    if (event.data && event.data.type === 'data') render(event.data.data);
  });
  vscode.postMessage({ type: 'ready' });
})();
