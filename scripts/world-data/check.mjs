#!/usr/bin/env node
// Self-check for web/dashboard/world.json (needs no npm packages):
//   node scripts/world-data/check.mjs
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { project, WIDTH, HEIGHT, PROJECTION } from '../../web/dashboard/projection.js';

const here = dirname(fileURLToPath(import.meta.url));
const file = join(here, '..', '..', 'web', 'dashboard', 'world.json');
const raw = readFileSync(file, 'utf8');
const world = JSON.parse(raw);

// Parse SVG path data (M/m, L/l, H/h, V/v, Z/z) into rings of absolute points.
function parsePath(d) {
  const rings = [];
  const tokens = d.match(/[MmLlHhVvZz]|-?(?:\d+\.?\d*|\.\d+)(?:e-?\d+)?/g) || [];
  let cmd = null;
  let x = 0;
  let y = 0;
  let startX = 0;
  let startY = 0;
  let ring = null;
  let i = 0;
  const num = () => {
    const t = tokens[i++];
    assert.ok(t !== undefined && !/[A-Za-z]/.test(t), `number expected in path, got ${t}`);
    return Number(t);
  };
  while (i < tokens.length) {
    if (/^[A-Za-z]$/.test(tokens[i])) cmd = tokens[i++];
    switch (cmd) {
      case 'M':
      case 'm': {
        const nx = num();
        const ny = num();
        x = cmd === 'm' ? x + nx : nx;
        y = cmd === 'm' ? y + ny : ny;
        startX = x;
        startY = y;
        ring = [[x, y]];
        rings.push(ring);
        cmd = cmd === 'm' ? 'l' : 'L'; // implicit lineto after moveto
        break;
      }
      case 'L':
      case 'l': {
        const nx = num();
        const ny = num();
        x = cmd === 'l' ? x + nx : nx;
        y = cmd === 'l' ? y + ny : ny;
        ring.push([x, y]);
        break;
      }
      case 'H':
      case 'h':
        x = cmd === 'h' ? x + num() : num();
        ring.push([x, y]);
        break;
      case 'V':
      case 'v':
        y = cmd === 'v' ? y + num() : num();
        ring.push([x, y]);
        break;
      case 'Z':
      case 'z':
        ring.push([startX, startY]); // closing segment
        x = startX;
        y = startY;
        cmd = null;
        break;
      default:
        assert.fail(`unexpected path token ${tokens[i]} (command ${cmd})`);
    }
  }
  return rings;
}

function bbox(rings) {
  const b = { minX: Infinity, minY: Infinity, maxX: -Infinity, maxY: -Infinity };
  for (const r of rings) {
    for (const [x, y] of r) {
      b.minX = Math.min(b.minX, x);
      b.minY = Math.min(b.minY, y);
      b.maxX = Math.max(b.maxX, x);
      b.maxY = Math.max(b.maxY, y);
    }
  }
  return b;
}

// Distance from a point to the nearest edge of any ring.
function distanceToOutline(rings, [px, py]) {
  let best = Infinity;
  for (const r of rings) {
    for (let i = 1; i < r.length; i++) {
      const [ax, ay] = r[i - 1];
      const [bx, by] = r[i];
      const dx = bx - ax;
      const dy = by - ay;
      const len2 = dx * dx + dy * dy;
      const t = len2 ? Math.max(0, Math.min(1, ((px - ax) * dx + (py - ay) * dy) / len2)) : 0;
      best = Math.min(best, Math.hypot(ax + t * dx - px, ay + t * dy - py));
    }
  }
  return best;
}

const inside = (b, [x, y]) => x >= b.minX && x <= b.maxX && y >= b.minY && y <= b.maxY;

// Even-odd point-in-polygon over all rings of a country.
function contains(rings, [px, py]) {
  let inPoly = false;
  for (const r of rings) {
    for (let i = 0, j = r.length - 1; i < r.length; j = i++) {
      const [xi, yi] = r[i];
      const [xj, yj] = r[j];
      if (yi > py !== yj > py && px < ((xj - xi) * (py - yi)) / (yj - yi) + xi) inPoly = !inPoly;
    }
  }
  return inPoly;
}

let checks = 0;
const check = (name, fn) => {
  fn();
  checks++;
  console.log(`ok - ${name}`);
};

check('header', () => {
  assert.equal(world.width, WIDTH);
  assert.equal(world.height, HEIGHT);
  assert.equal(world.projection, PROJECTION);
  assert.ok(raw.length <= 120 * 1024, `world.json is ${raw.length} bytes (> 120 KB)`);
});

const codes = Object.keys(world.countries);
const parsed = Object.fromEntries(
  Object.entries(world.countries).map(([code, c]) => [code, parsePath(c.d)]),
);

check(`${codes.length} countries (>= 170), alpha-2 keys, names, no Antarctica`, () => {
  assert.ok(codes.length >= 170, `only ${codes.length} countries`);
  for (const code of codes) {
    assert.match(code, /^[A-Z]{2}$/);
    const c = world.countries[code];
    assert.equal(typeof c.name, 'string');
    assert.ok(c.name.length > 0);
    assert.equal(typeof c.d, 'string');
    assert.ok(c.d.length > 0 || c.dot, `${code} has neither outline nor dot`);
    if (c.dot) {
      assert.ok(Array.isArray(c.dot) && c.dot.length === 2);
      assert.ok(inside({ minX: 0, minY: 0, maxX: WIDTH, maxY: HEIGHT }, c.dot), `${code} dot off map`);
    }
  }
  for (const code of ['US', 'DE', 'BR', 'JP', 'AU', 'IN', 'ZA', 'GB', 'FR', 'CN', 'RU', 'CA', 'XK', 'SG']) {
    assert.ok(world.countries[code], `missing ${code}`);
  }
  assert.equal(world.countries.AQ, undefined, 'Antarctica should be dropped');
});

check('every point lies within the map', () => {
  const all = bbox(Object.values(parsed).flat());
  assert.ok(all.minX >= 0 && all.minY >= 0, JSON.stringify(all));
  assert.ok(all.maxX <= WIDTH && all.maxY <= HEIGHT, JSON.stringify(all));
});

const cities = [
  ['Berlin', 13.4, 52.5, 'DE'],
  ['New York', -74, 40.7, 'US'],
  ['Paris', 2.35, 48.86, 'FR'],
  ['Tokyo', 139.7, 35.7, 'JP'],
  ['São Paulo', -46.6, -23.5, 'BR'],
  ['Sydney', 151.2, -33.9, 'AU'],
  ['Delhi', 77.2, 28.6, 'IN'],
  ['Johannesburg', 28.0, -26.2, 'ZA'],
  ['Moscow', 37.6, 55.75, 'RU'],
  ['Anadyr', 177.5, 64.7, 'RU'],
  ['Suva', 178.44, -18.1, 'FJ'],
  ['Simferopol', 34.1, 44.95, 'UA'],
  ['Singapore', 103.85, 1.29, 'SG'],
  ['Pristina', 21.17, 42.67, 'XK'],
];
for (const [city, lon, lat, code] of cities) {
  check(`${city} projects into ${code}`, () => {
    const p = project(lon, lat);
    const rings = parsed[code];
    assert.ok(inside(bbox(rings), p), `${city} ${p} outside ${code} bbox ${JSON.stringify(bbox(rings))}`);
    // Coastal cities may fall just offshore of the generalised 1:110m coast.
    const off = contains(rings, p) ? 0 : distanceToOutline(rings, p);
    assert.ok(off <= 3, `${city} ${p} is ${off} units outside the ${code} outline`);
  });
}

check('no path segment jumps more than half the map width (antimeridian)', () => {
  for (const [code, rings] of Object.entries(parsed)) {
    for (const r of rings) {
      for (let i = 1; i < r.length; i++) {
        const dx = Math.abs(r[i][0] - r[i - 1][0]);
        assert.ok(dx <= WIDTH / 2, `${code}: segment jumps ${dx} units`);
      }
    }
  }
  // Russia spans the antimeridian: Chukotka must reach the map's right edge,
  // and its bit east of 180° must be drawn at the far left.
  const ru = bbox(parsed.RU);
  assert.ok(ru.maxX >= project(179, 66)[0], `Chukotka missing on the right edge (${ru.maxX})`);
  assert.ok(ru.minX <= project(-179, 66)[0], `Chukotka's eastern tip missing on the left edge (${ru.minX})`);
});

check('deterministic projection samples', () => {
  const [x0, y0] = project(0, 0);
  assert.ok(Math.abs(x0 - WIDTH / 2) < 1e-9, `lon 0 should be centred, got ${x0}`);
  const [xw] = project(-180, 0);
  const [xe] = project(180, 0);
  assert.ok(xw >= 0 && xe <= WIDTH && xw < 10 && xe > WIDTH - 10);
  assert.ok(y0 > 0 && y0 < HEIGHT);
});

console.log(`${checks} passed, 0 failed`);
