#!/usr/bin/env node
// Generates web/dashboard/world.json: country outlines as SVG path data in the
// coordinate space of web/dashboard/projection.js (Equal Earth), keyed by
// ISO 3166-1 alpha-2 code.
//
// Source: Natural Earth (public domain, "Made with Natural Earth") via the npm
// package world-atlas. The 1:110m countries give the base map; countries that
// only exist at 1:50m (Singapore, Malta, Bahrain, Hong Kong, small island
// states, ...) are added from the 1:50m file so every visitor country can be
// shaded. Antarctica is dropped.
//
// Usage: cd scripts/world-data && npm ci && node build.mjs
// The output is deterministic: the same packages give a byte-identical file.

import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import * as topojson from 'topojson-client';
import {
  project,
  WIDTH,
  HEIGHT,
  PROJECTION,
  LAT_MIN,
  LAT_MAX,
} from '../../web/dashboard/projection.js';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const countries = require('i18n-iso-countries');
countries.registerLocale(require('i18n-iso-countries/langs/en.json'));

const OUT = join(here, '..', '..', 'web', 'dashboard', 'world.json');

// Tuning (viewBox units; the map is WIDTH = 1000 units wide).
const PRECISION = 10; // coordinates are rounded to 1/PRECISION units
const SIMPLIFY_TOLERANCE = 0.2; // Douglas-Peucker tolerance
const MIN_RING_AREA = 2.0; // rings smaller than this are dropped...
const MIN_EXTRA_RING_AREA = 0.4; // ...except in small (1:50m-only) countries
const DOT_BELOW = 3; // countries whose largest ring is smaller than this get a "dot" marker

// Features without an ISO numeric id in world-atlas.
const BY_NAME = {
  Kosovo: 'XK', // user-assigned code used by GeoIP databases
  'N. Cyprus': 'CY', // GeoIP databases report Cyprus
  Somaliland: 'SO', // GeoIP databases report Somalia
  'Siachen Glacier': null, // disputed, uninhabited
  'Indian Ocean Ter.': null, // Christmas Island + Cocos Islands, one feature
};
const SKIP = new Set(['AQ']); // Antarctica

// Polygons drawn under another code than Natural Earth's de facto one, so
// shading follows ISO 3166 and what GeoIP databases report for visitors.
// Each is found by a point (lon, lat) inside it.
const REASSIGN = [
  { from: 'RU', to: 'UA', point: [34.1, 44.95] }, // Crimea (ISO 3166-2:UA-43)
];

// Short, familiar English names where the ISO table's are long or formal.
const NAMES = {
  BA: 'Bosnia and Herzegovina',
  BN: 'Brunei',
  BO: 'Bolivia',
  CD: 'DR Congo',
  CG: 'Congo',
  CI: "Côte d'Ivoire",
  CZ: 'Czechia',
  FK: 'Falkland Islands',
  FM: 'Micronesia',
  GB: 'United Kingdom',
  HM: 'Heard Island and McDonald Islands',
  IR: 'Iran',
  KP: 'North Korea',
  KR: 'South Korea',
  LA: 'Laos',
  MD: 'Moldova',
  MF: 'Saint Martin',
  MK: 'North Macedonia',
  PS: 'Palestine',
  RU: 'Russia',
  SX: 'Sint Maarten',
  SY: 'Syria',
  TW: 'Taiwan',
  TZ: 'Tanzania',
  US: 'United States',
  VA: 'Vatican City',
  VE: 'Venezuela',
  VG: 'British Virgin Islands',
  VI: 'U.S. Virgin Islands',
  XK: 'Kosovo',
};

function loadFeatures(file) {
  const topo = JSON.parse(readFileSync(require.resolve(`world-atlas/${file}`), 'utf8'));
  return topojson.feature(topo, topo.objects.countries).features;
}

function isoCode(feature) {
  const name = feature.properties && feature.properties.name;
  if (name in BY_NAME) return BY_NAME[name];
  if (feature.id === undefined) throw new Error(`no ISO id for ${name}; add it to BY_NAME`);
  const code = countries.numericToAlpha2(feature.id);
  if (!code) throw new Error(`unknown ISO numeric ${feature.id} (${name})`);
  return code;
}

function polygonsOf(geometry) {
  if (!geometry) return [];
  if (geometry.type === 'Polygon') return [geometry.coordinates];
  if (geometry.type === 'MultiPolygon') return geometry.coordinates;
  throw new Error(`unexpected geometry ${geometry.type}`);
}

// --- antimeridian -----------------------------------------------------------

// Make a ring's longitudes continuous (no jumps of more than 180 degrees).
function unwrap(ring) {
  const out = [[ring[0][0], ring[0][1]]];
  for (let i = 1; i < ring.length; i++) {
    let lon = ring[i][0];
    const prev = out[i - 1][0];
    while (lon - prev > 180) lon -= 360;
    while (lon - prev < -180) lon += 360;
    out.push([lon, ring[i][1]]);
  }
  return out;
}

// Sutherland-Hodgman clip of a closed ring (first point not repeated) to the
// half-plane keep(lon) where the boundary is the meridian `edge`.
function clipRing(ring, edge, keepBelow) {
  const inside = (p) => (keepBelow ? p[0] <= edge : p[0] >= edge);
  const out = [];
  for (let i = 0; i < ring.length; i++) {
    const cur = ring[i];
    const prev = ring[(i + ring.length - 1) % ring.length];
    const curIn = inside(cur);
    const prevIn = inside(prev);
    if (curIn !== prevIn) {
      const t = (edge - prev[0]) / (cur[0] - prev[0]);
      out.push([edge, prev[1] + t * (cur[1] - prev[1])]);
    }
    if (curIn) out.push(cur);
  }
  return out;
}

// Split a lon/lat ring that crosses the antimeridian into pieces that each
// lie within [-180, 180]. Returns open rings (first point not repeated).
function splitAtAntimeridian(ring) {
  let pts = ring.slice();
  const first = pts[0];
  const last = pts[pts.length - 1];
  if (first[0] === last[0] && first[1] === last[1]) pts = pts.slice(0, -1);
  const u = unwrap(pts);
  const closing = unwrap([u[u.length - 1], pts[0]])[1][0];
  if (Math.abs(closing - u[0][0]) > 1e-9) {
    throw new Error('ring encircles a pole (only Antarctica does; it is skipped)');
  }
  let min = Infinity;
  let max = -Infinity;
  for (const p of u) {
    min = Math.min(min, p[0]);
    max = Math.max(max, p[0]);
  }
  const eps = 1e-9;
  if (min >= -180 - eps && max <= 180 + eps) return [u];
  const pieces = [];
  for (let k = Math.floor((min + 180) / 360); k * 360 - 180 < max; k++) {
    const lo = k * 360 - 180;
    const hi = k * 360 + 180;
    let piece = clipRing(clipRing(u, lo, false), hi, true);
    if (piece.length < 3) continue;
    piece = piece.map(([lon, lat]) => [lon - k * 360, lat]);
    pieces.push(piece);
  }
  return pieces;
}

// --- projection, simplification, rounding ----------------------------------

// Project an open lon/lat ring; edges running along the antimeridian are
// densified so they follow the map's curved outline.
function projectRing(ring) {
  const out = [];
  for (let i = 0; i < ring.length; i++) {
    const a = ring[i];
    const b = ring[(i + 1) % ring.length];
    if (a[1] < LAT_MIN || a[1] > LAT_MAX) {
      throw new Error(`latitude ${a[1]} outside the map (${LAT_MIN}..${LAT_MAX})`);
    }
    out.push(project(a[0], a[1]));
    if (Math.abs(a[0]) === 180 && a[0] === b[0]) {
      const steps = Math.floor(Math.abs(b[1] - a[1]));
      for (let s = 1; s < steps; s++) {
        out.push(project(a[0], a[1] + ((b[1] - a[1]) * s) / steps));
      }
    }
  }
  return out;
}

function segDist2(p, a, b) {
  const dx = b[0] - a[0];
  const dy = b[1] - a[1];
  const len2 = dx * dx + dy * dy;
  let t = len2 === 0 ? 0 : ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len2;
  t = Math.max(0, Math.min(1, t));
  const x = a[0] + t * dx - p[0];
  const y = a[1] + t * dy - p[1];
  return x * x + y * y;
}

function douglasPeucker(points, tol2) {
  const keep = new Uint8Array(points.length);
  keep[0] = 1;
  keep[points.length - 1] = 1;
  const stack = [[0, points.length - 1]];
  while (stack.length) {
    const [s, e] = stack.pop();
    let best = -1;
    let bestD = tol2;
    for (let i = s + 1; i < e; i++) {
      const d = segDist2(points[i], points[s], points[e]);
      if (d > bestD) {
        bestD = d;
        best = i;
      }
    }
    if (best >= 0) {
      keep[best] = 1;
      stack.push([s, best], [best, e]);
    }
  }
  return points.filter((_, i) => keep[i]);
}

// Simplify a closed (open-listed) projected ring: split it at the point
// farthest from the first so both halves have distinct end points.
function simplifyRing(ring, tol) {
  if (ring.length <= 4) return ring;
  let far = 0;
  let farD = -1;
  for (let i = 1; i < ring.length; i++) {
    const d = (ring[i][0] - ring[0][0]) ** 2 + (ring[i][1] - ring[0][1]) ** 2;
    if (d > farD) {
      farD = d;
      far = i;
    }
  }
  const tol2 = tol * tol;
  const a = douglasPeucker(ring.slice(0, far + 1), tol2);
  const b = douglasPeucker(ring.slice(far).concat([ring[0]]), tol2);
  return a.concat(b.slice(1, -1));
}

// Round to integers in units of 1/PRECISION and drop repeated points.
function roundRing(ring) {
  const out = [];
  for (const [x, y] of ring) {
    const p = [Math.round(x * PRECISION), Math.round(y * PRECISION)];
    const q = out[out.length - 1];
    if (!q || q[0] !== p[0] || q[1] !== p[1]) out.push(p);
  }
  while (out.length > 1 && out[0][0] === out[out.length - 1][0] && out[0][1] === out[out.length - 1][1]) {
    out.pop();
  }
  return out;
}

// Area in viewBox units squared (ring in rounded integer units).
function ringArea(ring) {
  let s = 0;
  for (let i = 0; i < ring.length; i++) {
    const a = ring[i];
    const b = ring[(i + 1) % ring.length];
    s += a[0] * b[1] - b[0] * a[1];
  }
  return Math.abs(s) / 2 / (PRECISION * PRECISION);
}

function fmt(n) {
  // n is an integer in 1/PRECISION units
  const neg = n < 0;
  const a = Math.abs(n);
  const int = Math.floor(a / PRECISION);
  const frac = a % PRECISION;
  let s = frac ? `${int || ''}.${frac}` : `${int}`;
  return neg ? `-${s}` : s;
}

function joinNumbers(nums) {
  let s = '';
  for (const n of nums) {
    const t = fmt(n);
    s += s && !t.startsWith('-') ? ` ${t}` : t;
  }
  return s;
}

// "M x y l dx dy dx dy ... z" with deltas computed on rounded coordinates, so
// relative steps add up exactly.
function ringPath(ring) {
  const nums = [];
  for (let i = 1; i < ring.length; i++) {
    nums.push(ring[i][0] - ring[i - 1][0], ring[i][1] - ring[i - 1][1]);
  }
  return `M${joinNumbers([ring[0][0], ring[0][1]])}l${joinNumbers(nums)}z`;
}

// --- build ------------------------------------------------------------------

// Even-odd point-in-polygon test in lon/lat.
function polygonContains(polygon, [x, y]) {
  let inside = false;
  for (const r of polygon) {
    for (let i = 0, j = r.length - 1; i < r.length; j = i++) {
      const [xi, yi] = r[i];
      const [xj, yj] = r[j];
      if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
    }
  }
  return inside;
}

function collect(features, minArea, filter) {
  const byCode = new Map();
  for (const f of features) {
    const featureCode = isoCode(f);
    if (!featureCode || SKIP.has(featureCode) || !filter(featureCode)) continue;
    for (const polygon of polygonsOf(f.geometry)) {
      const moved = REASSIGN.find((r) => r.from === featureCode && polygonContains(polygon, r.point));
      const code = moved ? moved.to : featureCode;
      const entry = byCode.get(code) || { rings: [], minArea, points: [] };
      byCode.set(code, entry);
      for (const ring of polygon) {
        for (const piece of splitAtAntimeridian(ring)) {
          const projected = projectRing(piece);
          entry.points.push(...projected);
          let rounded = roundRing(simplifyRing(projected, SIMPLIFY_TOLERANCE));
          if (rounded.length < 3) rounded = roundRing(projected); // tiny islands
          if (rounded.length >= 3) entry.rings.push({ ring: rounded, area: ringArea(rounded) });
        }
      }
    }
  }
  return byCode;
}

const base = collect(loadFeatures('countries-110m.json'), MIN_RING_AREA, () => true);
const extra = collect(
  loadFeatures('countries-50m.json'),
  MIN_EXTRA_RING_AREA,
  (code) => !base.has(code),
);

const entries = [];
function bbox(points) {
  let minX = Infinity;
  let minY = Infinity;
  let maxX = -Infinity;
  let maxY = -Infinity;
  for (const [x, y] of points) {
    minX = Math.min(minX, x);
    minY = Math.min(minY, y);
    maxX = Math.max(maxX, x);
    maxY = Math.max(maxY, y);
  }
  return { minX, minY, maxX, maxY, size: Math.max(maxX - minX, maxY - minY) };
}

for (const [code, { rings, minArea, points }] of [...base, ...extra]) {
  rings.sort((a, b) => b.area - a.area);
  const kept = rings.filter((r, i) => i === 0 || r.area >= minArea);
  const area = kept.reduce((s, r) => s + r.area, 0);
  const name = NAMES[code] || countries.getName(code, 'en');
  if (!name) throw new Error(`${code}: no name`);
  const entry = { name, d: kept.map((r) => ringPath(r.ring)).join('') };
  // Countries too small to see or click (largest island under DOT_BELOW
  // units) get a marker point; the map draws a dot there when they have
  // visitors. Vatican City & co. have no outline left at all (d = "").
  const box = kept.length
    ? bbox(kept[0].ring.map(([x, y]) => [x / PRECISION, y / PRECISION]))
    : bbox(points);
  if (box.size < DOT_BELOW) {
    entry.dot = [
      Math.round(((box.minX + box.maxX) / 2) * PRECISION) / PRECISION,
      Math.round(((box.minY + box.maxY) / 2) * PRECISION) / PRECISION,
    ];
  }
  entries.push({ code, area, entry });
}

// Largest first, so that small countries drawn later stay on top (enclaves
// such as San Marino, Vatican City or Hong Kong over their neighbours).
entries.sort((a, b) => b.area - a.area || (a.code < b.code ? -1 : 1));

const world = {
  width: WIDTH,
  height: HEIGHT,
  projection: PROJECTION,
  source: 'Made with Natural Earth (public domain), via world-atlas 1:110m + 1:50m',
  countries: Object.fromEntries(entries.map((e) => [e.code, e.entry])),
};

const json = `${JSON.stringify(world)}\n`;
writeFileSync(OUT, json);
console.log(
  `wrote ${OUT}: ${entries.length} countries (${base.size} from 1:110m, ${extra.size} from 1:50m), ${json.length} bytes`,
);
