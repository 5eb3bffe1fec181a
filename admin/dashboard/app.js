// ssecluster admin dashboard. Vanilla JS, no libraries, no external
// requests: everything comes from the node's admin API (GET v1/nodes every
// 2 s, POST v1/nodes/{id}/drain), with the token the operator entered sent
// only in the Authorization header. The page itself holds no data.
'use strict';

(function () {
  const REFRESH_MS = 2000;
  const REQUEST_TIMEOUT_MS = 5000;
  const KEEP_MS = 15 * 60 * 1000; // latency and connection history kept while the page is open
  const MIN_SPAN_MS = 60 * 1000; // a time chart spans at least this much
  const STALE_MS = 3 * REFRESH_MS;
  const TOKEN_KEY = 'ssecluster.admin.token';
  const SURVIVAL_AT = ['10s', '1m', '5m', '30m', '1h']; // after t = 0, where S = 1
  const CLOSE_REASONS = ['client_gone', 'write_error', 'write_timeout', 'slow_consumer', 'drain', 'kicked', 'token_expired', 'shutdown', 'shed', 'broker_error'];
  const REFUSALS = ['early', 'too_many', 'draining', 'capacity', 'admission', 'addr_streams', 'addr_rate'];
  const NODE_COLORS = ['#2563eb', '#16a34a', '#d97706', '#9333ea', '#0891b2', '#db2777', '#65a30d', '#dc2626'];
  const SVGNS = 'http://www.w3.org/2000/svg';

  const state = {
    token: '',
    gen: 0, // bumped when the token changes: answers to older requests are dropped
    timer: 0,
    last: null, // last answer of v1/nodes
    lastAt: 0, // when it arrived (ms)
    series: new Map(), // 'cluster' or a node id -> [{t, p50, p99, p999, conns}]
    colors: new Map(), // node id -> colour, fixed once seen
    cards: new Map(), // node id -> card elements
    status: { source: '', timer: 0 },
  };

  const $ = (id) => document.getElementById(id);

  // ---- DOM helpers ------------------------------------------------------

  function h(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    setAttrs(e, attrs);
    append(e, kids);
    return e;
  }

  function s(tag, attrs, ...kids) {
    const e = document.createElementNS(SVGNS, tag);
    setAttrs(e, attrs);
    append(e, kids);
    return e;
  }

  function setAttrs(e, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== undefined && v !== null && v !== false) e.setAttribute(k, String(v));
    }
  }

  function append(e, kids) {
    for (const k of kids.flat()) {
      if (k === null || k === undefined || k === false) continue;
      e.append(typeof k === 'string' || typeof k === 'number' ? document.createTextNode(String(k)) : k);
    }
  }

  function replace(e, ...kids) {
    e.replaceChildren();
    append(e, kids);
  }

  // ---- formatting -------------------------------------------------------

  const intFmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

  function num(v) {
    return typeof v === 'number' && isFinite(v) ? v : null;
  }

  function fmtInt(v) {
    v = num(v);
    return v === null ? '–' : intFmt.format(v);
  }

  function short(x) {
    return x < 10 ? String(Math.round(x * 10) / 10) : String(Math.round(x));
  }

  function fmtUs(v) {
    v = num(v);
    if (v === null) return '–';
    if (v < 1000) return Math.round(v) + 'µs';
    if (v < 1e6) return short(v / 1000) + 'ms';
    return short(v / 1e6) + 's';
  }

  function fmtDur(sec) {
    sec = num(sec);
    if (sec === null) return '–';
    if (sec < 60) return short(sec) + 's';
    const m = Math.floor(sec / 60);
    if (m < 60) return m + 'm' + (Math.floor(sec % 60) ? ' ' + Math.floor(sec % 60) + 's' : '');
    const hrs = Math.floor(m / 60);
    if (hrs < 48) return hrs + 'h' + (m % 60 ? ' ' + (m % 60) + 'm' : '');
    const days = Math.floor(hrs / 24);
    return days + 'd' + (hrs % 24 ? ' ' + (hrs % 24) + 'h' : '');
  }

  function fmtPct(v, digits) {
    v = num(v);
    return v === null ? '–' : (v * 100).toFixed(digits) + '%';
  }

  function two(n) {
    return n < 10 ? '0' + n : String(n);
  }

  function clock(t, secs) {
    const d = new Date(t);
    return two(d.getHours()) + ':' + two(d.getMinutes()) + (secs ? ':' + two(d.getSeconds()) : '');
  }

  // ---- status line ------------------------------------------------------

  // setStatus shows text; source 'refresh' messages are cleared by the next
  // good refresh, 'action' messages fade after a while.
  function setStatus(text, kind, source) {
    const el = $('status');
    clearTimeout(state.status.timer);
    state.status.source = text ? source : '';
    el.className = 'status' + (kind ? ' ' + kind : '');
    el.textContent = text;
    if (text && source === 'action') {
      state.status.timer = setTimeout(() => setStatus('', '', ''), 10000);
    }
  }

  // ---- API --------------------------------------------------------------

  class APIError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // api calls the admin API at a path relative to the page (/admin/), with
  // the token in the Authorization header and nowhere else.
  async function api(path, method, body) {
    const headers = { Accept: 'application/json' };
    if (state.token) headers.Authorization = 'Bearer ' + state.token;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), REQUEST_TIMEOUT_MS);
    let resp, text;
    try {
      resp = await fetch(path, {
        method: method || 'GET',
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
        credentials: 'omit',
        redirect: 'error', // never replay the header to wherever a redirect points
        referrerPolicy: 'no-referrer',
        signal: ctl.signal,
      });
      text = await resp.text();
    } catch (e) {
      throw new APIError(0, e.name === 'AbortError' ? 'the admin API did not answer within 5 s' : 'cannot reach the admin API');
    } finally {
      clearTimeout(timer);
    }
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (_) {
      if (resp.ok) throw new APIError(resp.status, 'the admin API answered something that is not JSON');
    }
    if (resp.status === 401) {
      throw new APIError(401, state.token ? 'wrong token' : 'enter the admin token');
    }
    if (!resp.ok) {
      const msg = data && data.error && (data.error.message || data.error.code);
      throw new APIError(resp.status, 'HTTP ' + resp.status + (msg ? ': ' + msg : ''));
    }
    return data;
  }

  // ---- token ------------------------------------------------------------

  // initialToken takes #token=... from the URL (then removes it from the
  // address bar and history entry), else the session's stored token.
  function initialToken() {
    const params = new URLSearchParams(location.hash.replace(/^#/, ''));
    const raw = params.get('token');
    if (raw !== null) {
      const fromHash = raw.trim();
      params.delete('token');
      const rest = params.toString();
      history.replaceState(null, '', location.pathname + location.search + (rest ? '#' + rest : ''));
      storeToken(fromHash);
      return fromHash;
    }
    try {
      return sessionStorage.getItem(TOKEN_KEY) || '';
    } catch (_) {
      return '';
    }
  }

  function storeToken(t) {
    try {
      if (t) sessionStorage.setItem(TOKEN_KEY, t);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch (_) {
      // storage disabled: the token lives as long as the page
    }
  }

  function useToken(t) {
    state.token = t.trim();
    storeToken(state.token);
    state.gen++;
    clearTimeout(state.timer);
    refresh();
  }

  // ---- refresh loop -----------------------------------------------------

  async function refresh() {
    const gen = state.gen;
    const started = Date.now();
    clearTimeout(state.timer);
    let data;
    try {
      data = await api('v1/nodes');
    } catch (e) {
      if (gen !== state.gen) return;
      setStatus(e.message, 'error', 'refresh');
      if (e.status === 401) {
        // Figures read with another token are not shown under a wrong one.
        state.last = null;
        render();
        return; // until another token is entered
      }
      renderSummary();
    }
    if (gen !== state.gen) return;
    if (data !== undefined) {
      state.last = data || {};
      state.lastAt = Date.now();
      if (state.status.source === 'refresh') setStatus('', '', '');
      record(state.last, state.lastAt);
      render();
    }
    if (gen === state.gen) {
      state.timer = setTimeout(refresh, Math.max(200, REFRESH_MS - (Date.now() - started)));
    }
  }

  function nodesOf(data) {
    const list = Array.isArray(data && data.nodes) ? data.nodes.filter((n) => n && n.node_id) : [];
    return list.sort((a, b) => (a.node_id < b.node_id ? -1 : a.node_id > b.node_id ? 1 : 0));
  }

  function sample(rep, t) {
    const lat = (rep && rep.push_latency && rep.push_latency.last_1m) || null;
    const has = lat && num(lat.count) !== 0;
    return {
      t,
      p50: has ? num(lat.p50_us) : null,
      p99: has ? num(lat.p99_us) : null,
      p999: has ? num(lat.p999_us) : null,
      conns: num(rep && rep.connections && rep.connections.current),
    };
  }

  function push(key, smp) {
    let list = state.series.get(key);
    if (!list) state.series.set(key, (list = []));
    list.push(smp);
    while (list.length && list[0].t < smp.t - KEEP_MS) list.shift();
  }

  function record(data, t) {
    push('\u0000cluster', sample(data.cluster, t));
    const seen = new Set();
    for (const n of nodesOf(data)) {
      seen.add(n.node_id);
      push(n.node_id, sample(n, t));
      if (!state.colors.has(n.node_id)) {
        state.colors.set(n.node_id, NODE_COLORS[state.colors.size % NODE_COLORS.length]);
      }
    }
    // A node that left keeps its line until its last sample ages out.
    for (const [key, list] of state.series) {
      if (key !== '\u0000cluster' && !seen.has(key) && (!list.length || list[list.length - 1].t < t - KEEP_MS)) {
        state.series.delete(key);
      }
    }
  }

  // ---- charts -----------------------------------------------------------

  function width(el, fallback) {
    return Math.max(160, Math.floor(el.clientWidth || fallback));
  }

  function niceStep(raw) {
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    const f = raw / p;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
  }

  function linearScale(max, integer) {
    if (!(max > 0)) max = 1;
    let step = niceStep(max / 4);
    if (integer) step = Math.max(1, Math.round(step));
    const top = Math.ceil(max / step) * step;
    const ticks = [];
    for (let v = 0; v <= top + step / 2; v += step) ticks.push(v);
    return { lo: 0, hi: top, ticks, map: (v) => v / top };
  }

  // logScale spans whole decades; with room (height in px) for them it
  // also ticks 2× and 5×.
  function logScale(min, max, height) {
    const lo = Math.pow(10, Math.floor(Math.log10(min)));
    let hi = Math.pow(10, Math.ceil(Math.log10(max)));
    if (hi <= lo) hi = lo * 10;
    const decades = Math.round(Math.log10(hi / lo));
    const minor = height / (decades * 3) >= 18;
    const ticks = [];
    for (let d = lo; d <= hi * 1.001; d *= 10) {
      ticks.push(d);
      if (minor && d < hi * 0.999) ticks.push(2 * d, 5 * d);
    }
    const l0 = Math.log10(lo);
    const span = Math.log10(hi) - l0;
    return { lo, hi, ticks, map: (v) => (Math.log10(Math.max(v, lo)) - l0) / span };
  }

  const TIME_STEPS = [5, 10, 15, 30, 60, 120, 300, 600, 900, 1800].map((x) => x * 1000);

  // timeChart draws series of [t, v] samples (v null: gap) against the
  // clock. opts: width, height, series [{key, label, color|cls, pts}], log,
  // fmt (tick labels), integer, chart (data-chart), node (data-node),
  // empty (text when nothing to draw).
  function timeChart(opts) {
    const W = opts.width;
    const H = opts.height;
    const m = { l: 50, r: 12, t: 8, b: 20 };
    const pw = W - m.l - m.r;
    const ph = H - m.t - m.b;
    const vals = [];
    let first = Infinity;
    let points = 0;
    for (const se of opts.series) {
      let n = 0;
      for (const [t, v] of se.pts) {
        if (v === null || v === undefined) continue;
        vals.push(v);
        first = Math.min(first, t);
        n++;
      }
      points = Math.max(points, n);
    }
    const svg = s('svg', {
      class: 'plot', width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: 'img',
      'data-chart': opts.chart, 'data-node': opts.node, 'data-points': points,
      'aria-label': opts.label,
    });
    const t1 = opts.now;
    const t0 = Math.min(first, t1 - MIN_SPAN_MS);
    const x = (t) => m.l + ((t - t0) / (t1 - t0)) * pw;
    let sc;
    if (opts.log) {
      const pos = vals.filter((v) => v > 0);
      sc = pos.length ? logScale(Math.min(...pos), Math.max(...pos), ph) : logScale(100, 1000, ph);
    } else {
      sc = linearScale(vals.length ? Math.max(...vals) : 0, opts.integer);
    }
    const y = (v) => m.t + ph - sc.map(v) * ph;

    const grid = s('g', { class: 'grid' });
    for (const v of sc.ticks) {
      const yy = Math.round(y(v)) + 0.5;
      grid.append(s('line', { x1: m.l, x2: m.l + pw, y1: yy, y2: yy }));
      grid.append(s('text', { x: m.l - 6, y: yy + 4, 'text-anchor': 'end' }, opts.fmt(v)));
    }
    const span = t1 - t0;
    const step = TIME_STEPS.find((st) => span / st <= Math.max(2, Math.floor(pw / 80))) || TIME_STEPS[TIME_STEPS.length - 1];
    for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
      const xx = Math.round(x(t)) + 0.5;
      if (xx < m.l + 22) continue; // its label would run into the y axis labels
      grid.append(s('line', { class: 'xtick', x1: xx, x2: xx, y1: m.t + ph, y2: m.t + ph + 4 }));
      grid.append(s('text', { x: xx, y: H - 5, 'text-anchor': 'middle' }, clock(t, step < 60000)));
    }
    grid.append(s('line', { class: 'axis', x1: m.l, x2: m.l + pw, y1: m.t + ph + 0.5, y2: m.t + ph + 0.5 }));
    svg.append(grid);

    if (!points) {
      svg.append(s('text', { class: 'empty', x: m.l + pw / 2, y: m.t + ph / 2, 'text-anchor': 'middle' }, opts.empty || 'waiting for data'));
      return svg;
    }
    for (const se of opts.series) {
      const g = s('g', { class: 'series ' + (se.cls || ''), 'data-series': se.key, stroke: se.color, fill: se.color });
      let seg = [];
      const flush = () => {
        if (seg.length > 1) g.append(s('polyline', { points: seg.join(' '), fill: 'none' }));
        seg = [];
      };
      const pts = se.pts.filter(([, v]) => v !== null && v !== undefined);
      for (const [t, v] of se.pts) {
        if (v === null || v === undefined) {
          flush();
          continue;
        }
        seg.push(x(t).toFixed(1) + ',' + y(v).toFixed(1));
      }
      flush();
      const dots = pts.length <= 90 ? pts : pts.slice(-1);
      for (const [t, v] of dots) {
        g.append(s('circle', { class: 'pt', cx: x(t).toFixed(1), cy: y(v).toFixed(1), r: 2.2 },
          s('title', {}, `${se.label} ${opts.fmt(v)} at ${clock(t, true)}`)));
      }
      svg.append(g);
    }
    return svg;
  }

  // survivalValue reads S(t) as a fraction (tolerating percentages).
  function survivalValue(obj, key) {
    const v = num(obj && obj[key]);
    if (v === null) return null;
    return v > 1.0001 ? v / 100 : v;
  }

  // survivalChart draws S(t) as steps: 1 at t = 0, then the value at 10 s,
  // 1 min, 5 min, 30 min and 1 h, each holding until the next point. A
  // missing value ends the line (nothing lived long enough to know).
  function survivalChart(opts) {
    const W = opts.width;
    const H = opts.height;
    const m = { l: 40, r: 16, t: 10, b: 20 };
    const pw = W - m.l - m.r;
    const ph = H - m.t - m.b;
    const labels = ['0'].concat(SURVIVAL_AT);
    const x = (i) => m.l + (i / (labels.length - 1)) * (pw - 10);
    const y = (v) => m.t + ph - v * ph;
    let points = 0;
    const svg = s('svg', {
      class: 'plot', width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: 'img',
      'data-chart': 'survival', 'data-node': opts.node, 'aria-label': opts.label,
    });
    const grid = s('g', { class: 'grid' });
    for (const v of [0, 0.25, 0.5, 0.75, 1]) {
      const yy = Math.round(y(v)) + 0.5;
      grid.append(s('line', { x1: m.l, x2: m.l + pw, y1: yy, y2: yy }));
      grid.append(s('text', { x: m.l - 6, y: yy + 4, 'text-anchor': 'end' }, v * 100 + '%'));
    }
    labels.forEach((lab, i) => {
      grid.append(s('text', { x: x(i), y: H - 5, 'text-anchor': 'middle' }, lab));
    });
    svg.append(grid);
    const labelRoom = (pw - 10) / (labels.length - 1) >= 34;
    for (const se of opts.series) {
      const g = s('g', { class: 'series ' + se.cls, 'data-series': se.key });
      let d = `M${x(0)},${y(1)}`;
      const dots = [];
      for (let i = 0; i < SURVIVAL_AT.length; i++) {
        const v = survivalValue(se.s, SURVIVAL_AT[i]);
        if (v === null) break;
        d += `H${x(i + 1).toFixed(1)}V${y(v).toFixed(1)}`;
        dots.push([i + 1, v]);
      }
      if (!dots.length) continue;
      d += `H${(x(dots[dots.length - 1][0]) + 10).toFixed(1)}`;
      g.append(s('path', { d, fill: 'none' }));
      let prev = 1;
      for (const [i, v] of dots) {
        g.append(s('circle', { class: 'pt', cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: 2.5 },
          s('title', {}, `${se.label}: S(${labels[i]}) = ${fmtPct(v, 1)}`)));
        // Label the steps only: a flat stretch repeats its value.
        const step = prev - v >= 0.0005;
        prev = v;
        if (se.values && labelRoom && step) {
          g.append(s('text', { class: 'val', x: x(i).toFixed(1), y: (y(v) + 13).toFixed(1), 'text-anchor': 'middle' }, fmtPct(v, v >= 0.995 || v < 0.1 ? 1 : 0)));
        }
      }
      points = Math.max(points, dots.length);
      svg.append(g);
    }
    svg.setAttribute('data-points', points);
    if (!points) {
      svg.append(s('text', { class: 'empty', x: m.l + pw / 2, y: m.t + ph / 2, 'text-anchor': 'middle' }, 'no closed streams yet'));
    }
    return svg;
  }

  // barChart draws the non-zero counts of groups [{title, counts, order,
  // cls}] as horizontal bars, known names in their fixed order first.
  function barChart(opts) {
    const W = opts.width;
    const row = 16;
    const labelW = opts.labelWidth || 96;
    const numW = 52;
    const rows = [];
    for (const gr of opts.groups) {
      const counts = gr.counts && typeof gr.counts === 'object' ? gr.counts : {};
      const names = gr.order.concat(Object.keys(counts).filter((k) => !gr.order.includes(k)).sort());
      const items = names.map((k) => [k, num(counts[k]) || 0]).filter(([, v]) => v > 0);
      rows.push({ title: gr.title, cls: gr.cls, items, max: Math.max(1, ...items.map(([, v]) => v)) });
    }
    const nrows = rows.reduce((n, r) => n + 1 + Math.max(1, r.items.length), 0);
    const H = nrows * row + 4;
    const svg = s('svg', { class: 'plot bars', width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: 'img', 'data-chart': 'reasons', 'data-node': opts.node, 'aria-label': opts.label });
    let yy = 0;
    const bw = W - labelW - numW - 4;
    for (const r of rows) {
      svg.append(s('text', { class: 'group', x: 0, y: yy + 12 }, r.title));
      yy += row;
      if (!r.items.length) {
        svg.append(s('text', { class: 'none', x: labelW, y: yy + 12 }, 'none'));
        yy += row;
        continue;
      }
      for (const [k, v] of r.items) {
        const w = Math.max(1.5, (v / r.max) * bw);
        svg.append(s('text', { class: 'label', x: labelW - 6, y: yy + 12, 'text-anchor': 'end' }, k));
        svg.append(s('rect', { class: 'bar ' + r.cls, x: labelW, y: yy + 3, width: w.toFixed(1), height: row - 5, rx: 2 },
          s('title', {}, `${k}: ${fmtInt(v)}`)));
        svg.append(s('text', { class: 'count', x: labelW + w + 4, y: yy + 12 }, fmtInt(v)));
        yy += row;
      }
    }
    return svg;
  }

  // progressBar shows the streams closed (solid) over the window elapsed
  // (light), both fractions.
  function progressBar(closed, elapsed, done) {
    const pct = (f) => (Math.min(1, Math.max(0, f || 0)) * 100).toFixed(2);
    const svg = s('svg', {
      class: 'progress', width: '100%', height: 10, viewBox: '0 0 100 10', preserveAspectRatio: 'none', role: 'img',
      'data-chart': 'drain', 'aria-label': `${fmtPct(closed, 0)} of the streams closed, ${fmtPct(elapsed, 0)} of the window elapsed`,
    });
    svg.append(s('rect', { class: 'track', x: 0, y: 0, width: 100, height: 10 }));
    svg.append(s('rect', { class: 'time', x: 0, y: 0, width: pct(elapsed), height: 10 }));
    svg.append(s('rect', { class: 'fill' + (done ? ' done' : ''), x: 0, y: 2, width: pct(closed), height: 6 }));
    return svg;
  }

  // ---- rendering --------------------------------------------------------

  function latencySeries(key) {
    const list = state.series.get(key) || [];
    return [
      { key: 'p50', label: 'p50', cls: 'p50', pts: list.map((p) => [p.t, p.p50]) },
      { key: 'p99', label: 'p99', cls: 'p99', pts: list.map((p) => [p.t, p.p99]) },
      { key: 'p999', label: 'p99.9', cls: 'p999', pts: list.map((p) => [p.t, p.p999]) },
    ];
  }

  function latencyNow(rep) {
    const l = rep && rep.push_latency && rep.push_latency.last_1m;
    if (!l || !num(l.count)) return 'no pushes in the last minute';
    return `p50 ${fmtUs(l.p50_us)} · p99 ${fmtUs(l.p99_us)} · p99.9 ${fmtUs(l.p999_us)} · ${fmtInt(l.count)} pushes`;
  }

  function survivalCaption(sv) {
    if (!sv) return 'no survival figures';
    const f = sv.failures || {};
    // No median: S(t) stayed above 50% over the whole window.
    const med = (v) => (num(v) !== null ? fmtDur(v) : num(sv.window_s) ? '> ' + fmtDur(sv.window_s) : 'not reached');
    return `${fmtInt(sv.opened)} opened · ${fmtInt(sv.closed)} closed · ${fmtInt(sv.failed)} failed (${fmtPct(sv.failure_ratio, 2)}) · median ${med(sv.median_s)}, failures ${med(f.median_s)}` +
      (num(sv.window_s) ? ` · last ${fmtDur(sv.window_s)}` : '');
  }

  function survivalSeries(sv) {
    return [
      { key: 'all', label: 'all closes', cls: 'all', s: sv && sv.s, values: true },
      { key: 'failures', label: 'failures only', cls: 'fail', s: sv && sv.failures && sv.failures.s },
    ];
  }

  function render() {
    $('cluster').hidden = !state.last;
    $('nodes').hidden = !state.last;
    try {
      renderSummary();
      if (state.last) {
        renderCluster();
        renderNodes();
      }
    } catch (e) {
      // A bug of this page, not an API error: say so, keep refreshing.
      setStatus('dashboard error: ' + e.message, 'error', 'script');
    }
  }

  function renderSummary() {
    const el = $('summary');
    const data = state.last;
    if (!data) {
      replace(el);
      return;
    }
    const c = data.cluster || {};
    const stale = Date.now() - state.lastAt > STALE_MS;
    const nodes = nodesOf(data);
    const lat = c.push_latency && c.push_latency.last_1m;
    replace(el,
      item(fmtInt(num(c.nodes) !== null ? c.nodes : nodes.length), 'nodes'),
      item(fmtInt(c.connections && c.connections.current), 'connections'),
      item(fmtInt(c.published), 'published'),
      item(fmtInt(c.deliveries), 'deliveries'),
      item(lat && num(lat.count) ? fmtUs(lat.p99_us) : '–', 'p99, 1 min'),
      h('span', { class: 'updated' + (stale ? ' stale' : '') }, (stale ? 'stale, last update ' : 'updated ') + clock(state.lastAt, true)));
  }

  function item(value, label) {
    return h('span', { class: 'figure' }, h('b', {}, value), ' ' + label);
  }

  function renderCluster() {
    const data = state.last;
    const c = data.cluster || {};
    const now = state.lastAt;
    const nodes = nodesOf(data);

    const connEl = $('cluster-conns');
    const connSeries = [{ key: 'total', label: 'total', cls: 'total', pts: (state.series.get('\u0000cluster') || []).map((p) => [p.t, p.conns]) }];
    for (const n of nodes) {
      connSeries.push({ key: n.node_id, label: n.node_id, color: state.colors.get(n.node_id), pts: (state.series.get(n.node_id) || []).map((p) => [p.t, p.conns]) });
    }
    replace(connEl, timeChart({ width: width(connEl, 290), height: 190, series: connSeries, fmt: fmtInt, integer: true, chart: 'connections', node: 'cluster', now, label: 'live connections over time' }));
    replace($('conn-legend'),
      h('span', { class: 'li' }, h('i', { class: 'k total' }), `total ${fmtInt(c.connections && c.connections.current)}`),
      nodes.map((n) => h('span', { class: 'li' }, h('i', { class: 'k', 'data-color': state.colors.get(n.node_id) }), `${n.node_id} ${fmtInt(n.connections && n.connections.current)}`)));
    for (const k of $('conn-legend').querySelectorAll('i[data-color]')) k.style.background = k.dataset.color;

    const latEl = $('cluster-latency');
    replace(latEl,
      timeChart({ width: width(latEl, 290), height: 172, series: latencySeries('\u0000cluster'), log: true, fmt: fmtUs, chart: 'latency', node: 'cluster', now, label: 'cluster push latency percentiles over time', empty: 'no pushes yet' }),
      h('p', { class: 'caption' }, latencyNow(c)));

    const survEl = $('cluster-survival');
    replace(survEl,
      survivalChart({ width: width(survEl, 290), height: 172, series: survivalSeries(c.survival), node: 'cluster', label: 'cluster stream survival' }),
      h('p', { class: 'caption' }, survivalCaption(c.survival)));

    const reasonsEl = $('cluster-reasons');
    const conns = c.connections || {};
    replace(reasonsEl, barChart({
      width: width(reasonsEl, 290), node: 'cluster', label: 'cluster close reasons and refusals',
      groups: [
        { title: 'closed', counts: conns.closed, order: CLOSE_REASONS, cls: 'close' },
        { title: 'refused', counts: conns.refused, order: REFUSALS, cls: 'refuse' },
      ],
    }));
  }

  function renderNodes() {
    const nodes = nodesOf(state.last);
    const box = $('nodes');
    const ids = new Set(nodes.map((n) => n.node_id));
    for (const [id, card] of state.cards) {
      if (!ids.has(id)) {
        card.root.remove();
        state.cards.delete(id);
      }
    }
    if (!nodes.length) {
      if (!box.querySelector('.no-nodes')) box.append(h('p', { class: 'no-nodes' }, 'No node reported.'));
      return;
    }
    const none = box.querySelector('.no-nodes');
    if (none) none.remove();
    for (const n of nodes) {
      let card = state.cards.get(n.node_id);
      if (!card) {
        card = newCard(n.node_id);
        state.cards.set(n.node_id, card);
      }
      box.append(card.root); // keeps cards in node id order
      renderCard(card, n);
    }
  }

  function newCard(id) {
    const c = {};
    c.title = h('h3', {}, h('i', { class: 'k' }), id);
    c.badges = h('span', { class: 'badges' });
    c.stats = h('div', { class: 'stats' });
    c.latency = h('div', { class: 'chart' });
    c.latCaption = h('span', { class: 'now' });
    c.survival = h('div', { class: 'chart' });
    c.survCaption = h('p', { class: 'caption' });
    c.reasons = h('div', { class: 'chart' });
    c.drainState = h('div', { class: 'drain-state' });
    c.window = h('input', { type: 'number', min: 1, max: 86400, step: 1, value: 30, 'aria-label': 'drain window of ' + id + ' in seconds' });
    c.button = h('button', { type: 'button', class: 'danger' }, 'Drain');
    c.button.addEventListener('click', () => drain(id, c));
    c.windowLabel = h('label', { class: 'window' }, 'window ', c.window, ' s');
    c.root = h('article', { class: 'node', 'data-node': id },
      h('header', {}, c.title, c.badges),
      c.stats,
      h('div', { class: 'cell' }, h('h4', {}, 'Push latency, last 1 min ', c.latCaption), c.latency),
      h('div', { class: 'two' },
        h('div', { class: 'cell' }, h('h4', {}, 'Survival S(t)'), c.survival),
        h('div', { class: 'cell' }, h('h4', {}, 'Closes and refusals'), c.reasons)),
      c.survCaption,
      h('footer', { class: 'drain' }, c.drainState, c.windowLabel, c.button));
    return c;
  }

  function badge(text, cls, title) {
    return h('span', { class: 'badge ' + (cls || ''), title }, text);
  }

  function renderCard(c, n) {
    const now = state.lastAt;
    const color = state.colors.get(n.node_id);
    c.title.firstChild.style.background = color;
    const b = n.broker || {};
    const d = n.drain || {};
    const draining = !!(n.draining || d.draining);
    replace(c.badges,
      draining ? badge(d.done ? 'drained' : 'draining', 'warn') : badge('serving', 'ok'),
      b.reachable === false ? badge('broker unreachable', 'bad') : badge('broker lag ' + (num(b.read_lag_ms) === null ? '–' : short(b.read_lag_ms) + ' ms'), 'plain', 'broker read lag'),
      n.mode ? badge(n.mode, 'plain') : null,
      n.version ? badge(n.version, 'plain') : null);

    const conns = n.connections || {};
    const cache = n.cache || {};
    const lookups = (num(cache.hits) || 0) + (num(cache.misses) || 0);
    replace(c.stats,
      h('span', { class: 'big' }, h('b', {}, fmtInt(conns.current)), ' connections'),
      h('span', {}, h('b', {}, fmtInt(conns.opened)), ' opened'),
      h('span', {}, h('b', {}, fmtInt(n.deliveries)), ' deliveries'),
      h('span', {}, h('b', {}, fmtInt(n.published)), ' published'),
      h('span', { title: 'replay cache hits / resumes' }, h('b', {}, lookups ? fmtPct(cache.hits / lookups, 0) : '–'), ' cache hits'),
      h('span', {}, 'up ', h('b', {}, fmtDur(n.uptime_s))));

    c.latCaption.textContent = latencyNow(n);
    replace(c.latency, timeChart({
      width: width(c.latency, 380), height: 120, series: latencySeries(n.node_id), log: true, fmt: fmtUs,
      chart: 'latency', node: n.node_id, now, label: `push latency percentiles of ${n.node_id}`, empty: 'no pushes yet',
    }));
    replace(c.survival, survivalChart({ width: width(c.survival, 190), height: 130, series: survivalSeries(n.survival), node: n.node_id, label: `stream survival on ${n.node_id}` }));
    c.survCaption.textContent = survivalCaption(n.survival);
    replace(c.reasons, barChart({
      width: width(c.reasons, 190), labelWidth: 86, node: n.node_id, label: `close reasons and refusals of ${n.node_id}`,
      groups: [
        { title: 'closed', counts: conns.closed, order: CLOSE_REASONS, cls: 'close' },
        { title: 'refused', counts: conns.refused, order: REFUSALS, cls: 'refuse' },
      ],
    }));

    if (draining) {
      const total = num(d.streams) || 0;
      const closed = num(d.closed) || 0;
      // Elapsed by the node's clock (its start plus its uptime), not the
      // browser's, which may be off by more than a drain window.
      const started = d.started_at ? Date.parse(d.started_at) : NaN;
      const nodeStart = n.started_at ? Date.parse(n.started_at) : NaN;
      const nodeNow = isFinite(nodeStart) && num(n.uptime_s) !== null ? nodeStart + n.uptime_s * 1000 : state.lastAt;
      const elapsed = isFinite(started) ? Math.max(0, (nodeNow - started) / 1000) : null;
      const closedFrac = d.done ? 1 : total ? closed / total : 0;
      const timeFrac = d.done ? 1 : elapsed !== null && num(d.window_s) ? elapsed / d.window_s : 0;
      replace(c.drainState,
        h('span', { class: 'drain-text' }, d.done
          ? `drained: ${fmtInt(closed)} of ${fmtInt(total)} streams closed`
          : `draining: ${fmtInt(closed)} of ${fmtInt(total)} closed` + (elapsed !== null && num(d.window_s) ? `, ${fmtDur(Math.min(elapsed, d.window_s))} of ${fmtDur(d.window_s)}` : '')),
        progressBar(closedFrac, timeFrac, d.done));
    } else {
      replace(c.drainState, h('span', { class: 'drain-text muted' }, 'not draining'));
    }
    c.button.disabled = draining || c.busy;
    c.windowLabel.hidden = draining; // a node drains once
  }

  async function drain(id, card) {
    const w = Number(card.window.value);
    if (!Number.isFinite(w) || w <= 0 || w > 86400) {
      setStatus('drain window must be between 1 and 86400 seconds', 'error', 'action');
      card.window.focus();
      return;
    }
    const n = nodesOf(state.last).find((x) => x.node_id === id);
    const cur = n && n.connections ? fmtInt(n.connections.current) : 'its';
    if (!window.confirm(`Drain ${id} over ${w} s?\n\nIt stops accepting streams at once and closes ${cur} open streams spread over the window. This cannot be undone; the node must be restarted to serve again.`)) {
      return;
    }
    card.busy = true;
    card.button.disabled = true;
    try {
      await api('v1/nodes/' + encodeURIComponent(id) + '/drain', 'POST', { window_s: w });
      setStatus(`drain of ${id} started over ${w} s`, 'ok', 'action');
    } catch (e) {
      setStatus(`drain of ${id} failed: ${e.message}`, 'error', 'action');
    } finally {
      card.busy = false;
    }
    refresh();
  }

  // ---- start ------------------------------------------------------------

  function start() {
    window.addEventListener('error', (e) => setStatus('dashboard error: ' + e.message, 'error', 'script'));
    window.addEventListener('unhandledrejection', (e) => setStatus('dashboard error: ' + (e.reason && e.reason.message), 'error', 'script'));
    const input = $('token');
    state.token = initialToken().trim();
    input.value = state.token;
    $('token-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      useToken(input.value);
    });
    let resizeTimer = 0;
    window.addEventListener('resize', () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => state.last && render(), 150);
    });
    setInterval(() => state.last && renderSummary(), 1000); // turns "updated" stale when refreshes fail
    refresh();
  }

  start();
})();
