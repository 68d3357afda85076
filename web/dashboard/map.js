// footfall dashboard: world map of visitors. Plain ES module, no dependencies.
//
//   import { createMap } from '/assets/map.js';
//   const map = createMap(el, { onCountryClick: (code) => filterBy(code) });
//   map.setCountries({ DE: 12, US: 3 });               // visitors in the range
//   map.setDots([{ latitude, longitude, count, city, country }]); // live now
//
// Country outlines come from /assets/world.json (Natural Earth, public
// domain), drawn in the Equal Earth projection of ./projection.js; styles in
// /assets/map.css (colours via --map-* custom properties).

import { project, WIDTH, HEIGHT } from './projection.js';

export { project, WIDTH, HEIGHT };

const SVG_NS = 'http://www.w3.org/2000/svg';

const worldCache = new Map();

/** Fetch and parse world.json once per URL (the promise is cached). */
export function loadWorld(url = '/assets/world.json') {
  let promise = worldCache.get(url);
  if (!promise) {
    promise = fetch(url, { credentials: 'same-origin' }).then((res) => {
      if (!res.ok) throw new Error(`world map: HTTP ${res.status} for ${url}`);
      return res.json();
    });
    promise.catch(() => worldCache.delete(url)); // allow a retry later
    worldCache.set(url, promise);
  }
  return promise;
}

function el(name, attrs) {
  const node = document.createElementNS(SVG_NS, name);
  if (attrs) for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

function setTitle(node, text) {
  let title = node.firstElementChild;
  if (!title || title.localName !== 'title') {
    title = el('title');
    node.insertBefore(title, node.firstChild);
  }
  if (title.textContent !== text) title.textContent = text;
}

const plural = (n, one, many) => (n === 1 ? one : many);

/** Share (0..1) of the colour ramp for `value` out of `max`: log scale. */
export function shade(value, max) {
  if (!(value > 0) || !(max > 0)) return 0;
  if (max <= 1) return 1;
  return Math.min(1, Math.log1p(value) / Math.log1p(max));
}

/** Dot radius (viewBox units) for `count` live visitors at one place. */
export function dotRadius(count) {
  const n = Math.max(1, Number(count) || 1);
  return Math.min(16, 3 + 2.5 * Math.sqrt(n));
}

/**
 * Create the map inside `container` (its contents are replaced).
 * Options: onCountryClick(code) — called on click or Enter/Space on a
 * country (or a live dot: its country); worldUrl (default /assets/world.json);
 * metric — noun for the numbers, default 'visitors';
 * formatNumber(n) — default toLocaleString().
 * Returns { setCountries, setDots, setSelected, ready, svg, destroy }.
 */
export function createMap(container, options = {}) {
  const {
    onCountryClick = null,
    worldUrl = '/assets/world.json',
    metric = 'visitors',
    formatNumber = (n) => Number(n).toLocaleString(),
  } = options;
  const metricOne = metric.endsWith('s') ? metric.slice(0, -1) : metric;

  let destroyed = false;
  let world = null;
  let values = {};
  let dots = [];
  let selected = null;
  const countryNodes = new Map(); // code -> <path>
  const markerNodes = new Map(); // code -> <circle> for tiny countries
  const dotNodes = new Map(); // key -> <g>

  const root = document.createElement('div');
  root.className = 'ff-map';
  if (onCountryClick) root.classList.add('ff-map-interactive');
  const svg = el('svg', {
    class: 'ff-map-svg',
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    width: '100%',
    preserveAspectRatio: 'xMidYMid meet',
    role: onCountryClick ? 'group' : 'img',
    'aria-roledescription': 'map',
    'aria-label': 'World map of visitors by country: loading',
  });
  svg.style.display = 'block';
  svg.style.width = '100%';
  svg.style.height = 'auto';
  const gCountries = el('g', { class: 'ff-map-countries' });
  const gMarkers = el('g', { class: 'ff-map-markers' });
  const gDots = el('g', { class: 'ff-map-dots' });
  svg.append(gCountries, gMarkers, gDots);
  root.append(svg);
  container.replaceChildren(root);

  const label = (n) => `${formatNumber(n)} ${plural(n, metricOne, metric)}`;

  function countryName(code) {
    return (world && world.countries[code] && world.countries[code].name) || code;
  }

  function updateSummary() {
    const entries = Object.entries(values)
      .filter(([, n]) => n > 0)
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    let text = 'World map of visitors by country';
    if (!world) text += ': loading';
    else if (!entries.length) text += `: no ${metric} in this period`;
    else {
      const top = entries.slice(0, 5).map(([code, n]) => `${countryName(code)} ${formatNumber(n)}`);
      text += `. ${entries.length} ${plural(entries.length, 'country', 'countries')}; top: ${top.join(', ')}`;
    }
    const live = dots.reduce((s, d) => s + (Number(d.count) || 0), 0);
    if (live > 0) {
      text += `. ${formatNumber(live)} ${plural(live, 'visitor', 'visitors')} live now in ${dots.length} ${plural(dots.length, 'place', 'places')}`;
    }
    svg.setAttribute('aria-label', `${text}.`);
  }

  const colorMix =
    typeof CSS !== 'undefined' && CSS.supports && CSS.supports('color', 'color-mix(in srgb, red 50%, blue)');

  function paint(node, t) {
    if (t === null) {
      node.style.fill = '';
      node.style.fillOpacity = '';
    } else if (colorMix) {
      const pct = Math.round(t * 100);
      node.style.fill = `color-mix(in srgb, var(--ff-map-high) ${pct}%, var(--ff-map-low))`;
    } else {
      node.style.fill = 'var(--ff-map-high)';
      node.style.fillOpacity = String(0.3 + 0.7 * t);
    }
  }

  function renderCountries() {
    if (!world) return;
    let max = 0;
    for (const n of Object.values(values)) if (n > max) max = n;
    for (const [code, path] of countryNodes) {
      const n = Number(values[code]) || 0;
      const text = `${countryName(code)}: ${label(n)}`;
      const marker = markerNodes.get(code);
      const t = n > 0 ? shade(n, max) : null;
      path.classList.toggle('ff-map-has-visitors', n > 0);
      paint(path, t);
      setTitle(path, text);
      if (marker) {
        paint(marker, t);
        marker.style.display = n > 0 ? '' : 'none';
        setTitle(marker, text);
      }
      if (onCountryClick && n > 0) {
        // Only countries with visitors are clickable and in the tab order.
        path.setAttribute('role', 'button');
        path.setAttribute('tabindex', '0');
        path.setAttribute('aria-label', `${text}. Filter by this country`);
        path.setAttribute('aria-pressed', String(code === selected));
      } else {
        for (const a of ['role', 'tabindex', 'aria-label', 'aria-pressed']) path.removeAttribute(a);
      }
    }
    updateSummary();
  }

  function dotKey(d) {
    return `${d.latitude},${d.longitude},${d.country || ''},${d.city || ''}`;
  }

  function renderDots() {
    if (!world) return;
    const seen = new Set();
    // Biggest first so that small dots stay on top and hoverable.
    const list = dots
      .filter((d) => Number.isFinite(Number(d.latitude)) && Number.isFinite(Number(d.longitude)))
      .slice()
      .sort((a, b) => (Number(b.count) || 0) - (Number(a.count) || 0));
    for (const d of list) {
      const key = dotKey(d);
      if (seen.has(key)) continue;
      seen.add(key);
      const count = Math.max(1, Number(d.count) || 1);
      let [x, y] = project(Number(d.longitude), Number(d.latitude));
      y = Math.max(2, Math.min(HEIGHT - 2, y));
      let g = dotNodes.get(key);
      if (!g) {
        g = el('g', { class: 'ff-map-dot' });
        const pulse = el('circle', { class: 'ff-map-dot-pulse ff-pulse', r: 1 });
        const core = el('circle', { class: 'ff-map-dot-core', r: 1 });
        g.append(pulse, core);
        // Desynchronise pulses (stable per place, so updates don't restart them).
        let h = 0;
        for (const ch of key) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
        pulse.style.animationDelay = `${-(h % 2000)}ms`;
        dotNodes.set(key, g);
      }
      g.setAttribute('transform', `translate(${x.toFixed(1)} ${y.toFixed(1)})`);
      g.setAttribute('data-country', d.country || '');
      g.setAttribute('data-city', d.city || '');
      g.setAttribute('data-count', String(count));
      const r = dotRadius(count).toFixed(2);
      for (const c of g.querySelectorAll('circle')) c.setAttribute('r', r);
      const place = [d.city, d.country].filter(Boolean).join(', ') || 'Unknown location';
      setTitle(g, `${place} — ${formatNumber(count)} ${plural(count, 'visitor', 'visitors')} now`);
      gDots.append(g); // (re)order
    }
    for (const [key, g] of dotNodes) {
      if (!seen.has(key)) {
        g.remove();
        dotNodes.delete(key);
      }
    }
    updateSummary();
  }

  function renderSelected() {
    for (const [code, path] of countryNodes) {
      path.classList.toggle('ff-map-selected', code === selected);
      if (path.hasAttribute('aria-pressed')) path.setAttribute('aria-pressed', String(code === selected));
    }
    for (const [code, m] of markerNodes) m.classList.toggle('ff-map-selected', code === selected);
  }

  function build() {
    const frag = document.createDocumentFragment();
    const markers = document.createDocumentFragment();
    for (const [code, c] of Object.entries(world.countries)) {
      const path = el('path', { class: 'ff-map-country', d: c.d, 'data-country': code });
      countryNodes.set(code, path);
      frag.append(path);
      if (c.dot) {
        const m = el('circle', {
          class: 'ff-map-marker',
          cx: c.dot[0],
          cy: c.dot[1],
          r: 2.5,
          'data-country': code,
        });
        m.style.display = 'none';
        markerNodes.set(code, m);
        markers.append(m);
      }
    }
    gCountries.append(frag);
    gMarkers.append(markers);
    renderCountries();
    renderDots();
    renderSelected();
  }

  // Country of a clicked shaded country, tiny-country marker or live dot.
  function codeFromEvent(event) {
    const target = event.target instanceof Element ? event.target.closest('[data-country]') : null;
    if (!target || !svg.contains(target)) return null;
    const code = target.getAttribute('data-country');
    if (!code) return null;
    if (target.classList.contains('ff-map-dot')) return code;
    return Number(values[code]) > 0 ? code : null;
  }

  function onClick(event) {
    const code = codeFromEvent(event);
    if (code && onCountryClick) onCountryClick(code);
  }

  function onKeyDown(event) {
    if (event.key !== 'Enter' && event.key !== ' ') return;
    const code = codeFromEvent(event);
    if (code && onCountryClick) {
      event.preventDefault();
      onCountryClick(code);
    }
  }

  if (onCountryClick) {
    svg.addEventListener('click', onClick);
    svg.addEventListener('keydown', onKeyDown);
  }

  const ready = loadWorld(worldUrl).then(
    (data) => {
      if (destroyed) return;
      world = data;
      build();
    },
    (err) => {
      if (destroyed) return;
      root.classList.add('ff-map-failed');
      svg.setAttribute('aria-label', 'World map unavailable');
      const msg = document.createElement('p');
      msg.className = 'ff-map-error';
      msg.textContent = 'The world map could not be loaded.';
      root.append(msg);
      throw err;
    },
  );
  ready.catch(() => {}); // reported via the returned promise only

  return {
    /** The map's <svg> element. */
    svg,
    /** Resolves once the outlines are drawn (rejects if world.json fails). */
    ready,
    /** Shade countries: { "DE": 12, ... } (ISO alpha-2 -> visitors). */
    setCountries(map) {
      values = {};
      if (map) {
        for (const [code, n] of Object.entries(map)) {
          const v = Number(n);
          if (v > 0) values[String(code).toUpperCase()] = v;
        }
      }
      renderCountries();
      if (!world) updateSummary();
    },
    /** Live visitors: [{ latitude, longitude, count, city, country }]. */
    setDots(list) {
      dots = Array.isArray(list) ? list : [];
      renderDots();
      if (!world) updateSummary();
    },
    /** Outline one country as the active filter (null clears). */
    setSelected(code) {
      selected = code ? String(code).toUpperCase() : null;
      renderSelected();
    },
    destroy() {
      destroyed = true;
      svg.removeEventListener('click', onClick);
      svg.removeEventListener('keydown', onKeyDown);
      countryNodes.clear();
      markerNodes.clear();
      dotNodes.clear();
      root.remove();
    },
  };
}
