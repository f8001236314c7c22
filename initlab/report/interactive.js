(function () {
'use strict';
const D = JSON.parse(document.getElementById('ip-data').textContent);
const V = D.labels.length, R = D.steps.length;
function bytes(b64) {
  const s = atob(b64), a = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) a[i] = s.charCodeAt(i);
  return a;
}
const HH = D.hist_h ? bytes(D.hist_h.data) : null;
const HZ = D.hist_dz ? bytes(D.hist_dz.data) : null;
const BF = D.boundary ? bytes(D.boundary.data) : null;
const state = {v: 0, r: 0, playing: false, timer: null};
const slider = document.getElementById('ip-slider');
const out = document.getElementById('ip-step');
const play = document.getElementById('ip-play');
slider.max = String(R - 1);
const lastStep = D.steps[R - 1];

function fmt(x) {
  if (x === null || x === undefined || !isFinite(x)) return '—';
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-3 || a >= 1e4)) return x.toExponential(2);
  return String(+x.toPrecision(3));
}
function frameIndex(step) {  // latest boundary frame at or before `step`
  const s = D.boundary.steps; let k = 0;
  for (let i = 0; i < s.length; i++) if (s[i] <= step) k = i;
  return k;
}
// P(class 1) -> colour: blue (0) - white (0.5) - red (1), grey for non-finite
function pcolour(q) {
  if (q === 255) return [190, 190, 190];
  const p = q / 254, t = Math.abs(p - 0.5) * 2;
  const end = p < 0.5 ? [33, 102, 172] : [178, 24, 43];
  return [255 + (end[0] - 255) * t, 255 + (end[1] - 255) * t, 255 + (end[2] - 255) * t];
}
function drawBoundary(cv, v, step, points) {
  const [F, VV, G] = D.boundary.shape, f = frameIndex(step);
  const ctx = cv.getContext('2d'), W = cv.width, H = cv.height;
  const img = ctx.createImageData(G, G), off = (f * VV + v) * G * G;
  for (let i = 0; i < G; i++) for (let j = 0; j < G; j++) {
    const c = pcolour(BF[off + i * G + j]), o = ((G - 1 - i) * G + j) * 4;  // x2 up
    img.data[o] = c[0]; img.data[o + 1] = c[1]; img.data[o + 2] = c[2]; img.data[o + 3] = 255;
  }
  const tmp = document.createElement('canvas'); tmp.width = G; tmp.height = G;
  tmp.getContext('2d').putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = true;
  ctx.clearRect(0, 0, W, H);
  ctx.drawImage(tmp, 0, 0, W, H);
  if (!points) return;
  const lo = D.boundary.lo, hi = D.boundary.hi;
  const sx = x => (x - lo) / (hi - lo) * W, sy = y => H - (y - lo) / (hi - lo) * H;
  ctx.lineWidth = 1;
  D.data.x.forEach((p, i) => {
    const x = sx(p[0]), y = sy(p[1]);
    ctx.beginPath();
    if (D.data.y[i]) {
      ctx.moveTo(x, y - 4.5); ctx.lineTo(x + 4, y + 3); ctx.lineTo(x - 4, y + 3); ctx.closePath();
      ctx.fillStyle = '#fff'; ctx.strokeStyle = '#000';
    } else {
      ctx.arc(x, y, 3.2, 0, 2 * Math.PI); ctx.fillStyle = '#000'; ctx.strokeStyle = '#fff';
    }
    ctx.fill(); ctx.stroke();
  });
  ctx.fillStyle = '#222'; ctx.font = '12px system-ui,sans-serif';
  ctx.fillText('step ' + D.boundary.steps[f], 6, 16);
}

// ---- axes helpers
// ticks at readable values: decades (or 1-2-5 steps within two decades) on log axes, 1-2-5
// steps on linear ones; never more than ~6, whatever the depth or the number of steps
function logTicks(lo, hi) {  // lo, hi in log10 units; returns log10 values
  const dec = hi - lo;
  if (dec >= 2) {
    const step = Math.max(1, Math.ceil(dec / 5)), out = [];
    for (let e = Math.ceil(lo / step) * step; e <= hi + 1e-9; e += step) out.push(e);
    return out;
  }
  for (const ms of [[1, 2, 5], [1, 2, 3, 5, 7], [1, 1.5, 2, 3, 4, 5, 6, 7, 8, 9]]) {
    const out = [];
    for (let d = Math.floor(lo) - 1; d <= Math.ceil(hi); d++) {
      for (const m of ms) {
        const t = Math.log10(m) + d;
        if (t >= lo - 1e-9 && t <= hi + 1e-9) out.push(t);
      }
    }
    if (out.length >= 3) return out;
  }
  return [lo, hi];
}
function linTicks(lo, hi, n, integer) {
  const span = (hi - lo) || 1;
  let step = Math.pow(10, Math.floor(Math.log10(span / n)));
  for (const m of [1, 2, 5, 10]) { if (span / (step * m) <= n) { step *= m; break; } }
  if (integer) step = Math.max(1, Math.round(step));
  const out = [];
  for (let t = Math.ceil(lo / step - 1e-9) * step; t <= hi + 1e-9; t += step) out.push(t);
  return out;
}
function logLabel(t) {
  const r = Math.round(t);
  if (Math.abs(t - r) < 1e-9 && Math.abs(r) >= 3) return '1e' + r;
  return fmt(+Math.pow(10, t).toPrecision(3));
}
function axes(ctx, box, xr, yr, xlab, ylab, ylog, xint) {
  const [x0, y0, w, h] = box;
  ctx.strokeStyle = '#999'; ctx.lineWidth = 1;
  ctx.strokeRect(x0, y0, w, h);
  ctx.fillStyle = '#333'; ctx.font = '11px system-ui,sans-serif';
  ctx.textAlign = 'center'; ctx.fillText(xlab, x0 + w / 2, y0 + h + 28);
  ctx.textAlign = 'left'; ctx.fillText(ylab, x0 - 30, y0 - 6);  // above the axis: no overlap
  ctx.textAlign = 'right';
  const yt = ylog ? logTicks(yr[0], yr[1]) : linTicks(yr[0], yr[1], 5, false);
  for (const t of yt) {
    const y = y0 + h - h * (t - yr[0]) / (yr[1] - yr[0]);
    ctx.fillText(ylog ? logLabel(t) : fmt(t), x0 - 4, y + 4);
    ctx.beginPath(); ctx.moveTo(x0 - 2, y); ctx.lineTo(x0, y); ctx.stroke();
  }
  ctx.textAlign = 'center';
  for (const t of linTicks(xr[0], xr[1], 6, xint)) {
    const x = x0 + w * (t - xr[0]) / ((xr[1] - xr[0]) || 1);
    ctx.fillText(fmt(t), x, y0 + h + 14);
  }
  ctx.textAlign = 'left';
}
function above(ctx, x, y) {  // an up triangle: a value above the axis
  ctx.beginPath(); ctx.moveTo(x - 4, y + 6); ctx.lineTo(x + 4, y + 6); ctx.lineTo(x, y);
  ctx.closePath(); ctx.fill();
}
function below(ctx, x, y) {  // a down triangle: a value below the axis (or exactly zero)
  ctx.beginPath(); ctx.moveTo(x - 4, y - 6); ctx.lineTo(x + 4, y - 6); ctx.lineTo(x, y);
  ctx.closePath(); ctx.fill();
}
function lg(x) { return (x !== null && x > 0 && isFinite(x)) ? Math.log10(x) : null; }
function range(vals, pad) {
  let lo = Infinity, hi = -Infinity;
  for (const x of vals) {
    if (x !== null && isFinite(x)) { lo = Math.min(lo, x); hi = Math.max(hi, x); }
  }
  if (!isFinite(lo)) { lo = 0; hi = 1; }
  if (hi - lo < 1e-9) { lo -= 0.5; hi += 0.5; }
  const p = (hi - lo) * pad; return [lo - p, hi + p];
}
// a log10 range set by the reference values (at init, theory) and the others within 6
// decades of them, at most 100 decades tall: a diverged run's 1e280 never sets the axis
function refRange(ref, others, pad) {
  const r = ref.filter(x => x !== null && isFinite(x));
  if (!r.length) return range(others, pad);
  const lo = Math.min(...r), hi = Math.max(...r);
  const near = others.filter(x => x !== null && isFinite(x) && x >= lo - 6 && x <= hi + 6);
  const out = range(r.concat(near), pad);
  return [Math.max(out[0], out[1] - 100), out[1]];
}

// ---- loss: log10 of the mean, band min-max, cursor at the step
const LS = D.loss.steps;
const lossVals = [].concat(...D.loss.mean.map(m => m.map(lg)));
const lossR = range(lossVals, 0.05);
function drawLoss(step) {
  const cv = document.getElementById('ip-loss'), ctx = cv.getContext('2d');
  ctx.clearRect(0, 0, cv.width, cv.height);
  const box = [56, 24, cv.width - 70, cv.height - 68];
  const xr = [0, Math.max(LS[LS.length - 1], 1)];
  axes(ctx, box, xr, lossR, 'step', 'loss (log scale)', true);
  const X = s => box[0] + (s - xr[0]) / (xr[1] - xr[0]) * box[2];
  const Y = l => box[1] + box[3] - (Math.min(Math.max(l, lossR[0]), lossR[1]) - lossR[0]) /
    (lossR[1] - lossR[0]) * box[3];
  const order = [...Array(V).keys()].filter(v => v !== state.v).concat([state.v]);
  for (const v of order) {
    const sel = v === state.v, c = D.colours[v];
    // band
    ctx.globalAlpha = sel ? 0.22 : 0.08; ctx.fillStyle = c; ctx.beginPath();
    let started = false;
    const up = [], dn = [];
    LS.forEach((s, i) => {
      const a = lg(D.loss.lo[v][i]), b = lg(D.loss.hi[v][i]);
      if (a !== null && b !== null) { up.push([X(s), Y(b)]); dn.push([X(s), Y(a)]); }
    });
    up.concat(dn.reverse()).forEach(([x, y]) => {
      if (!started) { ctx.moveTo(x, y); started = true; } else ctx.lineTo(x, y);
    });
    if (started) ctx.fill();
    ctx.globalAlpha = sel ? 1 : 0.45; ctx.strokeStyle = c; ctx.lineWidth = sel ? 2.2 : 1.2;
    ctx.beginPath(); started = false;
    LS.forEach((s, i) => {
      const l = lg(D.loss.mean[v][i]);
      if (l === null) { started = false; return; }
      if (!started) { ctx.moveTo(X(s), Y(l)); started = true; } else ctx.lineTo(X(s), Y(l));
    });
    ctx.stroke(); ctx.globalAlpha = 1;
  }
  ctx.strokeStyle = '#222'; ctx.setLineDash([4, 3]); ctx.lineWidth = 1;
  ctx.beginPath(); ctx.moveTo(X(step), box[1]); ctx.lineTo(X(step), box[1] + box[3]);
  ctx.stroke(); ctx.setLineDash([]);
  // legend
  ctx.font = '11px system-ui,sans-serif';
  D.labels.forEach((lab, v) => {
    ctx.fillStyle = D.colours[v];
    ctx.fillRect(box[0] + box[2] - 120, box[1] + 8 + v * 14, 10, 3);
    ctx.fillStyle = '#222'; ctx.fillText(lab, box[0] + box[2] - 106, box[1] + 12 + v * 14);
  });
}
function lossAt(v, step) {  // mean loss of variant v at the loss point nearest `step`
  let best = 0;
  for (let i = 0; i < LS.length; i++) {
    if (Math.abs(LS[i] - step) < Math.abs(LS[best] - step)) best = i;
  }
  return D.loss.mean[v][best];
}

// ---- variance vs depth: two panels, Var(h) with theory, Var(dL/dz)
const L = D.depth || D.var.act[0][0].length, VL = D.var_layers || D.layers;
function allLog(a) { return [].concat(...a.map(r => [].concat(...r.map(x => x.map(lg))))); }
const theoryLog = D.var.theory ? [].concat(...D.var.theory.map(t => t.map(lg))) : [];
const actR = refRange(allLog([D.var.act[0]]).concat(theoryLog), allLog(D.var.act), 0.05);
const gradR = D.var.grad ? refRange(allLog([D.var.grad[0]]), allLog(D.var.grad), 0.05)
  : [0, 1];
function drawVar(r) {
  const cv = document.getElementById('ip-var'), ctx = cv.getContext('2d');
  ctx.clearRect(0, 0, cv.width, cv.height);
  const half = (cv.width - 40) / 2;
  const panels = [[D.var.act, actR, 'Var(h), log scale', D.var.theory],
                  [D.var.grad, gradR, 'Var(dL/dz), log scale', null]];
  panels.forEach(([arr, yr, name, theory], k) => {
    if (!arr) return;
    const box = [60 + k * (half + 20), 24, half - 50, cv.height - 68];
    axes(ctx, box, [1, Math.max(L, 2)], yr, 'layer', name, true, true);
    const X = l => box[0] + (l - 1) / Math.max(L - 1, 1) * box[2];
    const Y = y => box[1] + box[3] -
      (Math.min(Math.max(y, yr[0]), yr[1]) - yr[0]) / (yr[1] - yr[0]) * box[3];
    const order = [...Array(V).keys()].filter(v => v !== state.v).concat([state.v]);
    for (const v of order) {
      const sel = v === state.v;
      ctx.strokeStyle = D.colours[v]; ctx.fillStyle = D.colours[v];
      ctx.globalAlpha = sel ? 1 : 0.4; ctx.lineWidth = sel ? 2.2 : 1.2;
      const series = [[arr[r][v], []]];
      if (theory && sel) series.push([theory[v], [5, 4]]);
      for (const [ys, dash] of series) {
        ctx.setLineDash(dash); ctx.beginPath(); let started = false;
        const zeros = [], tops = [];
        ys.forEach((y, i) => {
          const t = lg(y), l = VL[i];
          if (y === 0 || (t !== null && t < yr[0])) zeros.push(l);  // marked, not a line
          if (t !== null && t > yr[1]) tops.push(l);
          if (t === null || t < yr[0] || t > yr[1]) { started = false; return; }
          if (!started) { ctx.moveTo(X(l), Y(t)); started = true; } else ctx.lineTo(X(l), Y(t));
        });
        ctx.stroke(); ctx.setLineDash([]);
        if (!dash.length) {
          zeros.forEach(l => below(ctx, X(l), box[1] + box[3]));
          tops.forEach(l => above(ctx, X(l), box[1]));
        }
      }
      ctx.globalAlpha = 1;
    }
  });
}

// ---- histograms of the selected variant, one row of two per hidden layer
function drawHist(r) {
  const cv = document.getElementById('ip-hist'), ctx = cv.getContext('2d');
  const nl = D.layers.length, rowH = 74;
  const want = 20 + nl * rowH + 20;
  if (cv.height !== want) cv.height = want;
  ctx.clearRect(0, 0, cv.width, cv.height);
  const sets = [[D.hist_h, HH, 'h'], [D.hist_dz, HZ, 'log10 |dL/dz|']];
  const left = 80;  // room for 'layer 10000' beside the first column
  const colW = (cv.width - left - 10) / 2;
  sets.forEach(([meta, buf, name], k) => {
    if (!meta) return;
    const [RR, VV, LL, B] = meta.shape, e = meta.edges;
    for (let l = 0; l < nl; l++) {
      const box = [left + k * (colW + 10), 10 + l * rowH, colW - 10, rowH - 22];
      ctx.strokeStyle = '#ccc'; ctx.strokeRect(box[0], box[1], box[2], box[3]);
      const off = ((r * VV + state.v) * LL + l) * B;
      ctx.fillStyle = D.colours[state.v];
      for (let b = 0; b < B; b++) {
        const hgt = buf[off + b] / 255 * box[3];
        ctx.fillRect(box[0] + b * box[2] / B, box[1] + box[3] - hgt,
                     Math.max(box[2] / B - 0.5, 0.5), hgt);
      }
      ctx.fillStyle = '#333'; ctx.font = '11px system-ui,sans-serif';
      ctx.textAlign = 'right';
      if (k === 0) ctx.fillText('layer ' + D.layers[l], box[0] - 4, box[1] + box[3] / 2 + 4);
      ctx.textAlign = 'left'; ctx.fillText(fmt(e[0]), box[0], box[1] + box[3] + 12);
      ctx.textAlign = 'right';
      ctx.fillText(fmt(e[e.length - 1]), box[0] + box[2], box[1] + box[3] + 12);
      ctx.textAlign = 'center'; ctx.fillText(name, box[0] + box[2] / 2, box[1] + box[3] + 12);
      ctx.textAlign = 'left';
    }
  });
}

// ---- variant buttons with thumbnails
const group = document.getElementById('ip-variants');
const buttons = D.labels.map((lab, v) => {
  const b = document.createElement('button');
  b.type = 'button'; b.setAttribute('aria-pressed', v === 0 ? 'true' : 'false');
  b.dataset.variant = String(v); b.style.setProperty('--c', D.colours[v]);
  if (D.boundary) {
    const c = document.createElement('canvas'); c.width = 72; c.height = 72;
    c.setAttribute('aria-hidden', 'true'); b.appendChild(c);
  }
  const t = document.createElement('span'); t.textContent = lab; b.appendChild(t);
  b.setAttribute('aria-label', 'Show ' + lab + ' (' + (D.diagnosis[v] || '') + ')');
  b.addEventListener('click', () => select(v));
  group.appendChild(b);
  return b;
});
function select(v) {
  state.v = v;
  buttons.forEach((b, i) => b.setAttribute('aria-pressed', i === v ? 'true' : 'false'));
  render();
}

function render() {
  const r = state.r, step = D.steps[r];
  slider.value = String(r);
  const text = 'step ' + step + ' of ' + lastStep;
  slider.setAttribute('aria-valuetext', text);
  out.textContent = text; out.dataset.step = String(step);
  if (D.boundary) {
    drawBoundary(document.getElementById('ip-boundary'), state.v, step, true);
    buttons.forEach((b, v) => drawBoundary(b.querySelector('canvas'), v, step, false));
  }
  drawLoss(step); drawVar(r); drawHist(r);
  const l = lossAt(state.v, step);
  document.getElementById('ip-status').textContent = D.labels[state.v] + ': loss ' + fmt(l) +
    ' at step ' + step + (D.diagnosis[state.v] ? ' — diagnosis: ' + D.diagnosis[state.v] : '');
}
function stop() {
  state.playing = false; clearInterval(state.timer); state.timer = null;
  play.textContent = '▶ Play'; play.setAttribute('aria-pressed', 'false');
}
play.addEventListener('click', () => {
  if (state.playing) { stop(); return; }
  if (state.r >= R - 1) state.r = 0;
  state.playing = true; play.textContent = '❚❚ Pause'; play.setAttribute('aria-pressed', 'true');
  state.timer = setInterval(() => {
    if (state.r >= R - 1) { stop(); return; }
    state.r += 1; render();
  }, Math.max(30, Math.round(6000 / R)));
});
slider.addEventListener('input', () => { state.r = +slider.value; render(); });
render();
window.initlabInteractive = {state: state, render: render, select: select, data: D};
})();
