// app.js - the store page (index.html): hash routes #runs, #run/ID, #datasets, #dataset/KEY,
// #traces; data from the store's /api routes; metric curves drawn as SVG (no library).
'use strict';

const main = document.getElementById('main');

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'onclick' || k === 'onsubmit') e[k] = v; else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}

async function api(path) {
  const r = await fetch(path);
  const t = await r.text();
  if (!r.ok) {
    let m = t;
    try { m = JSON.parse(t).error.message; } catch (e) { /* not JSON */ }
    throw new Error(r.status + ': ' + m);
  }
  return t;
}
const apiJson = async (p) => JSON.parse(await api(p));

function show(...nodes) { main.replaceChildren(...nodes); }
function fail(e) { show(el('p', {class: 'error'}, String(e.message || e))); }

// ---- charts ----
const GROUPS = [
  ['loss', (k) => k.includes('loss')],
  ['reward', (k) => k.includes('reward')],
  ['accuracy', (k) => k.includes('acc')],
  ['kl', (k) => /(^|[^a-z])kl([^a-z]|$)/.test(k)],
];
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b'];

function chart(title, rows, keys) {
  const W = 420, H = 220, L = 50, R = 10, T = 20, B = 30;
  const series = keys.map((k) => rows.filter((r) => typeof r[k] === 'number' && isFinite(r[k]))
    .map((r) => [r.step, r[k]]));
  const pts = series.flat();
  if (!pts.length) return null;
  let [x0, x1] = [Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0]))];
  let [y0, y1] = [Math.min(...pts.map((p) => p[1])), Math.max(...pts.map((p) => p[1]))];
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) { y0 -= 0.5; y1 += 0.5; }
  const sx = (x) => L + (x - x0) / (x1 - x0) * (W - L - R);
  const sy = (y) => H - B - (y - y0) / (y1 - y0) * (H - T - B);
  const NS = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(NS, 'svg');
  const mk = (tag, a, text) => {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(a)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    svg.append(e);
    return e;
  };
  svg.setAttribute('width', W); svg.setAttribute('height', H);
  svg.setAttribute('class', 'chart'); svg.setAttribute('data-group', title);
  mk('text', {x: L, y: 13}, title);
  mk('line', {class: 'axis', x1: L, y1: H - B, x2: W - R, y2: H - B});
  mk('line', {class: 'axis', x1: L, y1: T, x2: L, y2: H - B});
  const fmt = (v) => Math.abs(v) >= 1000 || (Math.abs(v) < 0.01 && v !== 0) ? v.toExponential(1) : +v.toFixed(3);
  mk('text', {x: 2, y: sy(y1) + 4}, fmt(y1));
  mk('text', {x: 2, y: sy(y0) + 4}, fmt(y0));
  mk('text', {x: L, y: H - 12}, 'step ' + x0);
  mk('text', {x: W - R - 50, y: H - 12}, 'step ' + x1);
  series.forEach((s, i) => {
    if (!s.length) return;
    const c = COLORS[i % COLORS.length];
    mk('polyline', {class: 'line', stroke: c, 'data-key': keys[i], 'data-points': s.length,
                    points: s.map((p) => sx(p[0]).toFixed(1) + ',' + sy(p[1]).toFixed(1)).join(' ')});
    for (const p of s) mk('circle', {class: 'pt', 'data-key': keys[i], cx: sx(p[0]).toFixed(1), cy: sy(p[1]).toFixed(1), r: 2, fill: c,
                                     'data-step': p[0], 'data-value': p[1]});
    mk('text', {x: W - R - 150, y: 13 + 11 * i, fill: c}, keys[i]);
  });
  return svg;
}

function charts(rows) {
  const keys = new Set();
  for (const r of rows) for (const k of Object.keys(r)) if (k !== 'step' && typeof r[k] === 'number') keys.add(k);
  const box = el('div', {class: 'charts'});
  for (const [name, match] of GROUPS) {
    const ks = [...keys].filter((k) => match(k.toLowerCase()) && !/_s$|time|elapsed/.test(k));
    const c = ks.length ? chart(name, rows, ks) : null;
    if (c) box.append(c);
  }
  return box;
}

// ---- pages ----
async function runs() {
  const d = await apiJson('/api/runs');
  const t = el('table', {id: 'runs'}, el('tr', {}, el('th', {}, 'run'), el('th', {}, 'command'),
    el('th', {}, 'dataset'), el('th', {}, 'status'), el('th', {}, 'registered')));
  for (const r of d.runs) {
    t.append(el('tr', {}, el('td', {}, el('a', {href: '#run/' + encodeURIComponent(r.id)}, r.id)),
      el('td', {}, r.command || ''), el('td', {}, r.dataset ? r.dataset.key + ' (' + r.dataset.build_id + ')' : ''),
      el('td', {}, r.status || ''), el('td', {}, r.registered_at || '')));
  }
  show(el('h2', {}, 'Runs'), d.runs.length ? t : el('p', {class: 'muted'}, 'No runs registered yet (POST /api/runs).'));
}

async function run(id) {
  const r = await apiJson('/api/runs/' + encodeURIComponent(id));
  const rep = el('div', {id: 'report'});
  const nodes = [el('h2', {}, 'Run ' + r.id),
    el('p', {}, 'command: ' + (r.command || '?') + ' · directory: ' + r.run_dir +
      (r.dataset ? ' · dataset: ' + r.dataset.key + ' build ' + r.dataset.build_id : '')),
    el('h3', {}, 'Metrics (' + r.metrics.length + ' rows of metrics.jsonl)'), charts(r.metrics),
    el('h3', {}, 'Before/after report'), rep,
    el('h3', {}, 'Manifest'), el('pre', {}, JSON.stringify(r.manifest, null, 2))];
  show(...nodes);
  if (r.eval_before && r.eval_after) {
    try {
      const m = await apiJson('/api/runs/' + encodeURIComponent(id) + '/report?format=json');
      rep.replaceChildren(el('pre', {id: 'report-md'}, m.markdown));
    } catch (e) { rep.replaceChildren(el('p', {class: 'error'}, e.message)); }
  } else {
    rep.replaceChildren(el('p', {class: 'muted'}, 'No eval_before/eval_after files registered for this run.'));
  }
}

async function datasets() {
  const d = await apiJson('/api/datasets');
  const t = el('table', {id: 'datasets'}, el('tr', {}, el('th', {}, 'dataset'), el('th', {}, 'build'),
    el('th', {}, 'strategy'), el('th', {}, 'traces'), el('th', {}, 'created')));
  for (const m of d.datasets) {
    t.append(el('tr', {}, el('td', {}, el('a', {href: '#dataset/' + encodeURIComponent(m.key)}, m.key)),
      el('td', {}, m.build_id), el('td', {}, m.selection_strategy), el('td', {}, m.counts.traces), el('td', {}, m.created_at)));
  }
  show(el('h2', {}, 'Datasets'), d.datasets.length ? t : el('p', {class: 'muted'}, 'No datasets built yet.'));
}

async function dataset(key) {
  const d = await apiJson('/api/datasets/' + encodeURIComponent(key));
  const ex = (f) => el('a', {href: '/api/datasets/' + encodeURIComponent(key) + '/export.jsonl?format=' + f}, f);
  show(el('h2', {}, 'Dataset ' + key),
    el('p', {}, 'export: ', ex('tunix_sft'), ' · ', ex('messages'), ' · ', ex('prompt_completion'), ' · ', ex('dpo')),
    el('h3', {}, 'Manifest'), el('pre', {id: 'manifest'}, JSON.stringify(d.manifest, null, 2)),
    el('h3', {}, 'Preview (first ' + d.preview.length + ' traces)'), el('pre', {id: 'preview'}, JSON.stringify(d.preview, null, 2)));
}

async function traces(params) {
  const q = new URLSearchParams(params);
  if (!q.get('limit')) q.set('limit', '20');
  const d = await apiJson('/api/traces?' + q.toString());
  const input = (n) => el('label', {}, n, el('input', {name: n, value: q.get(n) || '', size: 14}));
  const form = el('form', {class: 'filters', id: 'trace-filters'}, input('source'), input('game'), input('since'),
    input('limit'), el('button', {type: 'submit'}, 'Filter'));
  form.onsubmit = (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    for (const i of form.querySelectorAll('input')) if (i.value) p.set(i.name, i.value);
    location.hash = 'traces?' + p.toString();
  };
  const t = el('table', {id: 'traces'}, el('tr', {}, el('th', {}, 'id'), el('th', {}, 'source'), el('th', {}, 'game'),
    el('th', {}, 'created'), el('th', {}, 'score'), el('th', {}, 'last message')));
  for (const tr of d.traces) {
    const last = tr.messages ? tr.messages[tr.messages.length - 1].content : tr.completion;
    t.append(el('tr', {}, el('td', {}, tr.id), el('td', {}, tr.source), el('td', {}, tr.game || ''),
      el('td', {}, tr.created_at), el('td', {}, tr.score ?? ''), el('td', {}, String(last).slice(0, 120))));
  }
  const nodes = [el('h2', {}, 'Traces'), form, t];
  if (d.next_cursor) {
    q.set('cursor', d.next_cursor);
    nodes.push(el('p', {}, el('a', {href: '#traces?' + q.toString(), id: 'next-page'}, 'next page')));
  }
  show(...nodes);
}

async function route() {
  const h = decodeURIComponent(location.hash.slice(1)) || 'runs';
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', h.startsWith(a.id.slice(4)));
  try {
    if (h.startsWith('run/')) await run(h.slice(4));
    else if (h.startsWith('dataset/')) await dataset(h.slice(8));
    else if (h.startsWith('datasets')) await datasets();
    else if (h.startsWith('traces')) await traces(h.includes('?') ? h.slice(h.indexOf('?') + 1) : '');
    else await runs();
    document.body.dataset.loaded = h;
  } catch (e) { fail(e); document.body.dataset.loaded = 'error'; }
}
window.addEventListener('hashchange', route);
route();
