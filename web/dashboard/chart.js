// The main graph: an SVG line/area chart drawn by hand. Comparison series dashed, hover and
// keyboard crosshair with a tooltip, "nice" y ticks, the line stops at the current bucket.
import { h, svg } from './dom.js';
import { formatBucket, formatBucketLong } from './format.js';

let gradientSeq = 0;

/** Ticks 0..top with a 1/2/2.5/5 × 10^k step. */
export function niceTicks(max, integer, count = 4) {
  if (!(max > 0)) max = integer ? count : 1;
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  let step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10) * mag;
  if (integer) step = Math.max(1, Math.ceil(step));
  const top = Math.ceil(max / step - 1e-9) * step;
  const ticks = [];
  for (let v = 0; v <= top + step / 1e6; v += step) ticks.push(Math.round(v * 1e6) / 1e6);
  return ticks;
}

/** Monotone cubic path (Fritsch–Carlson): smooth, never overshoots the data. */
export function smoothPath(pts) {
  if (pts.length === 0) return '';
  if (pts.length === 1) return `M${pts[0][0]},${pts[0][1]}`;
  const n = pts.length;
  const dx = []; const m = [];
  for (let i = 0; i < n - 1; i++) {
    dx[i] = pts[i + 1][0] - pts[i][0];
    m[i] = (pts[i + 1][1] - pts[i][1]) / dx[i];
  }
  const t = [m[0]];
  for (let i = 1; i < n - 1; i++) t[i] = m[i - 1] * m[i] <= 0 ? 0 : (m[i - 1] + m[i]) / 2;
  t[n - 1] = m[n - 2];
  for (let i = 0; i < n - 1; i++) {
    if (m[i] === 0) { t[i] = 0; t[i + 1] = 0; continue; }
    const a = t[i] / m[i]; const b = t[i + 1] / m[i]; const s = a * a + b * b;
    if (s > 9) { const k = 3 / Math.sqrt(s); t[i] = k * a * m[i]; t[i + 1] = k * b * m[i]; }
  }
  const r = (v) => Math.round(v * 10) / 10;
  let d = `M${r(pts[0][0])},${r(pts[0][1])}`;
  for (let i = 0; i < n - 1; i++) {
    const [x0, y0] = pts[i]; const [x1, y1] = pts[i + 1]; const k = dx[i] / 3;
    d += `C${r(x0 + k)},${r(y0 + t[i] * k)} ${r(x1 - k)},${r(y1 - t[i + 1] * k)} ${r(x1)},${r(y1)}`;
  }
  return d;
}

function setPath(el, d) {
  el.setAttribute('d', d || 'M0,0');
  // Chromium animates the CSS `d` property between paths of the same shape: live updates glide.
  if (d) el.style.d = `path("${d}")`;
}

/**
 * createChart(container) → {update(data), destroy()}
 * data: {labels, values, compareLabels?, compareValues?, unit, nowLabel, metric:{label, format, exact, integer}}
 */
export function createChart(container) {
  const gid = `ff-grad-${++gradientSeq}`;
  const root = h('div', { class: 'ff-chart', tabindex: '0', role: 'img' });
  const svgEl = svg('svg', { class: 'ff-chart-svg', 'aria-hidden': 'true' });
  const defs = svg('defs', {}, svg('linearGradient', { id: gid, x1: '0', y1: '0', x2: '0', y2: '1' },
    svg('stop', { offset: '0%', class: 'ff-grad-top' }), svg('stop', { offset: '100%', class: 'ff-grad-bottom' })));
  const grid = svg('g', { class: 'ff-chart-grid' });
  const xAxis = svg('g', { class: 'ff-chart-x' });
  const area = svg('path', { class: 'ff-chart-area', fill: `url(#${gid})` });
  const compareLine = svg('path', { class: 'ff-chart-compare' });
  const line = svg('path', { class: 'ff-chart-line' });
  const nowDot = svg('g', { class: 'ff-chart-now' }, svg('circle', { r: '9', class: 'ff-chart-now-pulse' }), svg('circle', { r: '4' }));
  const cross = svg('line', { class: 'ff-chart-cross' });
  const hoverDot = svg('circle', { class: 'ff-chart-hover-dot', r: '5' });
  const hoverCmp = svg('circle', { class: 'ff-chart-hover-cmp', r: '4' });
  const hoverLayer = svg('g', { class: 'ff-chart-hover' }, cross, hoverCmp, hoverDot);
  svgEl.append(defs, grid, xAxis, area, compareLine, line, nowDot, hoverLayer);
  const tip = h('div', { class: 'ff-chart-tip', role: 'presentation' });
  const empty = h('div', { class: 'ff-chart-empty' });
  root.append(svgEl, tip, empty);
  container.append(root);

  let data = null;
  let geom = null;
  let hoverIndex = -1;

  function draw() {
    const W = root.clientWidth; const H = root.clientHeight;
    if (!data || !W || !H) return;
    svgEl.setAttribute('viewBox', `0 0 ${W} ${H}`);
    svgEl.setAttribute('width', W); svgEl.setAttribute('height', H);
    const { labels, values, compareValues, metric } = data;
    const n = labels.length;
    let last = labels.indexOf(data.nowLabel);
    if (last < 0) last = data.nowLabel && labels[0] > data.nowLabel ? -1 : n - 1;
    const shown = values.slice(0, last + 1);
    const max = Math.max(0, ...shown, ...(compareValues || []));
    const ticks = niceTicks(max, metric.integer);
    const top = ticks[ticks.length - 1] || 1;
    const tickText = ticks.map((v) => metric.format(v));
    const padL = Math.max(28, Math.max(...tickText.map((t) => t.length)) * 7 + 14);
    const padR = 14; const padT = 14; const padB = 30;
    const pw = Math.max(10, W - padL - padR); const ph = Math.max(10, H - padT - padB);
    const x = (i) => padL + (n <= 1 ? pw / 2 : (i * pw) / (n - 1));
    const y = (v) => padT + ph * (1 - (v || 0) / top);
    geom = { x, y, padL, padT, ph, pw, n, last, W };

    grid.replaceChildren(...ticks.map((v, i) => svg('g', {},
      svg('line', { x1: padL, x2: W - padR, y1: y(v), y2: y(v), class: i === 0 ? 'is-base' : '' }),
      svg('text', { x: padL - 10, y: y(v), dy: '0.32em', 'text-anchor': 'end', text: tickText[i] }))));

    const every = Math.max(1, Math.ceil(n / Math.max(1, Math.floor(pw / 70))));
    const xs = [];
    for (let i = 0; i < n; i += every) {
      const anchor = n === 1 ? 'middle' : i === 0 ? 'start' : i === n - 1 ? 'end' : 'middle';
      xs.push(svg('text', { x: x(i), y: H - 8, 'text-anchor': anchor, text: formatBucket(labels[i], data.unit) }));
    }
    xAxis.replaceChildren(...xs);

    const pts = shown.map((v, i) => [x(i), y(v)]);
    const d = smoothPath(pts);
    setPath(line, d);
    setPath(area, pts.length ? `${d}L${pts[pts.length - 1][0]},${y(0)}L${pts[0][0]},${y(0)}Z` : '');
    area.style.display = pts.length > 1 ? '' : 'none';
    if (compareValues) {
      setPath(compareLine, smoothPath(compareValues.slice(0, n).map((v, i) => [x(i), y(v)])));
      compareLine.style.display = '';
    } else compareLine.style.display = 'none';

    const live = data.live && last >= 0 && last < n && labels[last] === data.nowLabel;
    nowDot.style.display = live ? '' : 'none';
    if (live) nowDot.setAttribute('transform', `translate(${x(last)},${y(shown[last])})`);

    const total = shown.every((v) => !v) && !(compareValues || []).some((v) => v);
    empty.textContent = total ? 'No data for this period yet' : '';
    empty.hidden = !total;
    root.setAttribute('aria-label', `${metric.label} over time, ${labels.length} points`);
    if (hoverIndex >= 0) showHover(Math.min(hoverIndex, n - 1));
  }

  function showHover(i) {
    if (!data || !geom) return;
    hoverIndex = i;
    const { x, y, padT, ph, last, W } = geom;
    const { labels, values, compareValues, compareLabels, metric, unit } = data;
    const cx = x(i);
    cross.setAttribute('x1', cx); cross.setAttribute('x2', cx);
    cross.setAttribute('y1', padT); cross.setAttribute('y2', padT + ph);
    const hasMain = i <= last;
    hoverDot.style.display = hasMain ? '' : 'none';
    if (hasMain) { hoverDot.setAttribute('cx', cx); hoverDot.setAttribute('cy', y(values[i])); }
    const hasCmp = compareValues && i < compareValues.length;
    hoverCmp.style.display = hasCmp ? '' : 'none';
    if (hasCmp) { hoverCmp.setAttribute('cx', cx); hoverCmp.setAttribute('cy', y(compareValues[i])); }
    hoverLayer.classList.add('is-on');

    const rows = [h('div', { class: 'ff-tip-title', text: formatBucketLong(labels[i], unit) }),
      h('div', { class: 'ff-tip-row' }, h('span', { class: 'ff-tip-swatch' }), h('span', { text: metric.label }),
        h('strong', { text: hasMain ? metric.exact(values[i]) : '–' }))];
    if (hasCmp) {
      const cv = compareValues[i];
      rows.push(h('div', { class: 'ff-tip-row is-cmp' }, h('span', { class: 'ff-tip-swatch is-cmp' }),
        h('span', { text: compareLabels?.[i] ? formatBucketLong(compareLabels[i], unit) : 'Previous' }),
        h('strong', { text: metric.exact(cv) })));
    }
    tip.replaceChildren(...rows);
    tip.classList.add('is-on');
    const tw = tip.offsetWidth;
    const left = cx + 14 + tw > W ? cx - 14 - tw : cx + 14;
    tip.style.transform = `translate(${Math.max(0, left)}px, ${padT}px)`;
  }

  function hideHover() {
    hoverIndex = -1;
    hoverLayer.classList.remove('is-on');
    tip.classList.remove('is-on');
  }

  function indexAt(clientX) {
    const r = root.getBoundingClientRect();
    const { padL, pw, n } = geom;
    const px = clientX - r.left;
    return Math.max(0, Math.min(n - 1, Math.round(n <= 1 ? 0 : ((px - padL) / pw) * (n - 1))));
  }

  root.addEventListener('pointermove', (e) => { if (geom) showHover(indexAt(e.clientX)); });
  root.addEventListener('pointerleave', hideHover);
  root.addEventListener('focus', () => { if (geom && root.matches(':focus-visible')) showHover(Math.max(0, geom.last)); });
  root.addEventListener('blur', hideHover);
  root.addEventListener('keydown', (e) => {
    if (!geom) return;
    const step = { ArrowLeft: -1, ArrowRight: 1, Home: -Infinity, End: Infinity }[e.key];
    if (step === undefined) return;
    e.preventDefault();
    const next = Math.max(0, Math.min(geom.n - 1, (hoverIndex < 0 ? geom.last : hoverIndex) + step));
    showHover(next);
  });

  const ro = new ResizeObserver(() => draw());
  ro.observe(root);

  return {
    el: root,
    update(next) {
      data = next;
      root.classList.remove('is-loading');
      draw();
    },
    loading() { root.classList.add('is-loading'); },
    destroy() { ro.disconnect(); root.remove(); },
  };
}
