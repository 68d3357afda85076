#!/usr/bin/env node
// How long the web dashboard takes to be fully populated in headless Chromium, against an
// already-running footfall server. Nothing is started or written on the server side: the
// script only opens pages (and, with --user, logs in).
//
// How to run
//   1. Once: install the browser-test dependencies (playwright-core drives the system Chromium):
//        (cd tests/browser && npm ci)
//      Chromium is /usr/bin/chromium unless CHROMIUM points elsewhere.
//   2. Start a server, e.g. the demo (its demo.example is public, a month of history):
//        footfall serve --demo --data-dir /tmp/bench-demo --listen 127.0.0.1:8095 --admin-token T
//      and wait for "demo: a month of history added" in its log.
//   3. From the repository root:
//        node scripts/bench/dashboard-browser.mjs --url http://127.0.0.1:8095 --site demo.example \
//          --ranges day,7d,30d,12mo --loads 5 [--compare] [--filter visit:country=US]
//      Access: a public site needs nothing; a share link: --share TOKEN (opens /share/TOKEN,
//      --site is then optional and only checked); a private site: --user NAME --password PW
//      (logs in with POST /api/dashboard/login, as the login form does).
//
// Options
//   --url URL          the server (default http://127.0.0.1:8080)
//   --site DOMAIN      the site (opens /s/DOMAIN)
//   --ranges LIST      comma-separated: day, yesterday, 7d, 30d, month, 12mo (default 7d)
//   --loads N          measured loads per range, after one warm-up load (default 5)
//   --compare          comparison with the previous period on (the dashboard's own default);
//                      without it the URL carries compare=0
//   --filter F         repeatable: DIM=VALUE (is), DIM!=VALUE (is not), DIM~VALUE (contains),
//                      or the URL form DIM:OP:VALUE; e.g. visit:country=US, event:page=/pricing
//   --share TOKEN | --user NAME --password PW
//   --timeout MS       per load (default 30000)
//   --verbose          also list each load's API requests (start -> settled ms, time queued in
//                      the browser, server time to first byte) and when each part was filled
//
// Output: per load the ms, the wall time seen from node (adds the CDP round trip), the /api/
// requests started before the fill (the live EventSource not counted) with their summed
// server time (request -> first byte) and any identical repeats, DOMContentLoaded, how many
// assets came from the HTTP cache, and which part of the page was filled last; then p50/min/max
// per range. With --compare the graph waits for a second, serial query (the previous period).
//
// What is measured: each load opens a new tab in one browser context (so the HTTP cache,
// cookies and localStorage are those of a returning user; nothing is bypassed), and the time
// is from navigation start (page.goto) to the first moment the page is "filled" (see FILLED
// below), taken inside the page with performance.now(), so it does not include the polling
// delay. Waits poll page state (waitForFunction on requestAnimationFrame), never a fixed sleep.
// Exit status: 0 ok, 1 the dashboard showed an error or did not fill in time, 2 bad usage.

import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import { existsSync } from 'node:fs';

const require = createRequire(new URL('../../tests/browser/package.json', import.meta.url));
let chromium;
try {
  ({ chromium } = require('playwright-core'));
} catch {
  fail('playwright-core is not installed: run `(cd tests/browser && npm ci)` first', 2);
}

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// As tests/browser/harness.mjs: the server drops "HeadlessChrome" as a bot.
const CHROME_UA =
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';
const RANGE_IDS = ['day', 'yesterday', '7d', '30d', 'month', '12mo'];
const PANELS = ['pages', 'sources', 'locations', 'devices', 'current', 'events'];

const FILLED =
  'filled = no error banner; the 7 number cards (Active now from the live stream + 6 range metrics) ' +
  'out of their loading state; the graph drawn (not loading, x-axis labels, line path); the panels ' +
  `${PANELS.join(', ')} each showing rows or their empty text; the map's outlines drawn and ` +
  'countries shaded (or, with none to shade, its country query answered)';

function fail(message, code = 1) {
  console.error(`dashboard-browser: ${message}`);
  process.exit(code);
}

// ---------------------------------------------------------------------------------------------
// arguments

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      url: { type: 'string', default: 'http://127.0.0.1:8080' },
      site: { type: 'string' },
      ranges: { type: 'string', default: '7d' },
      loads: { type: 'string', default: '5' },
      compare: { type: 'boolean', default: false },
      filter: { type: 'string', multiple: true, default: [] },
      share: { type: 'string' },
      user: { type: 'string' },
      password: { type: 'string' },
      timeout: { type: 'string', default: '30000' },
      verbose: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  }));
} catch (e) {
  fail(`${e.message} (see --help)`, 2);
}
if (args.help) {
  const { readFileSync } = await import('node:fs');
  const text = readFileSync(new URL(import.meta.url), 'utf8');
  console.log(text.split('\n').slice(1).filter((l) => l.startsWith('//')).map((l) => l.replace(/^\/\/ ?/, '')).join('\n'));
  process.exit(0);
}

const baseUrl = args.url.replace(/\/+$/, '');
const ranges = args.ranges.split(',').map((s) => s.trim()).filter(Boolean);
const loads = Number(args.loads);
const timeout = Number(args.timeout);
for (const r of ranges) if (!RANGE_IDS.includes(r)) fail(`unknown range ${r}: use ${RANGE_IDS.join(', ')}`, 2);
if (!ranges.length) fail('--ranges is empty', 2);
if (!Number.isInteger(loads) || loads < 1) fail('--loads must be a positive integer', 2);
if (!(timeout > 0)) fail('--timeout must be a positive number of ms', 2);
if (!args.site && !args.share) fail('give --site DOMAIN (and --user/--password for a private site) or --share TOKEN', 2);
if (args.share && args.user) fail('--share and --user are exclusive', 2);
if (!!args.user !== (args.password !== undefined)) fail('--user and --password go together', 2);
try {
  new URL(baseUrl);
} catch {
  fail(`--url ${args.url} is not a URL`, 2);
}

/** --filter to the dashboard's URL form (f=DIM:OP:VALUE). */
function filterParam(s) {
  const m = s.match(/^([a-z_]+:[a-z_]+(?::[^=!~]+)?)(!=|=|~)(.*)$/);
  if (m) return `${m[1]}:${{ '=': 'is', '!=': 'is_not', '~': 'contains' }[m[2]]}:${m[3]}`;
  if (/^[a-z_]+:[a-z_]+(:[^:]+)?:(is|is_not|contains):/.test(s)) return s;
  fail(`--filter ${s}: use DIM=VALUE, DIM!=VALUE, DIM~VALUE or DIM:OP:VALUE (e.g. visit:country=US)`, 2);
}
const filters = args.filter.map(filterParam);

function dashboardUrl(range) {
  const path = args.share ? `/share/${encodeURIComponent(args.share)}` : `/s/${encodeURIComponent(args.site)}`;
  const p = new URLSearchParams();
  p.set('range', range);
  if (!args.compare) p.set('compare', '0');
  for (const f of filters) p.append('f', f);
  return `${baseUrl}${path}?${p}`;
}

// ---------------------------------------------------------------------------------------------
// in the page

// Before any page script: count the dashboard's /api/ fetches (started, settled) and remember
// whether the map's country query (dimension visit:country, limit 300) has been answered.
function instrument() {
  const st = { started: [], settled: 0, mapAnswered: false, filledAt: null, partAt: {} };
  window.__ffBench = st;
  const orig = window.fetch;
  window.fetch = function (input, init) {
    const url = new URL(typeof input === 'string' ? input : input.url, location.href);
    if (!url.pathname.startsWith('/api/')) return orig.call(this, input, init);
    const body = typeof init?.body === 'string' ? init.body : '';
    let isMap = false;
    try {
      const q = body ? JSON.parse(body) : null;
      // One query, or the dashboard's batch of them.
      isMap = (q?.queries || [q]).some((x) => x?.dimensions?.[0] === 'visit:country' && x?.pagination?.limit === 300);
    } catch { /* not JSON */ }
    const rec = { t: performance.now(), end: null, method: init?.method || 'GET', path: url.pathname, body };
    st.started.push(rec);
    const done = () => { st.settled++; rec.end = performance.now(); };
    const p = orig.call(this, input, init);
    // Settled = the body has been read and the page's own handlers (microtasks) have run.
    p.then((res) => res.clone().text().then(() => setTimeout(() => {
      if (isMap && res.ok) st.mapAnswered = true;
      done();
    }, 0)), () => setTimeout(done, 0)).catch(() => setTimeout(done, 0));
    return p;
  };
}

// The page's state: {error} | {done: false, missing: [...]} | {done: true, at, ...}.
// As the predicate for waitForFunction (asPredicate): false until done or failed.
function pageState(asPredicate = false) {
  const q = (s, root = document) => root.querySelector(s);
  const qa = (s, root = document) => [...root.querySelectorAll(s)];
  const st = window.__ffBench;
  const text = (el) => (el?.textContent || '').trim().replace(/\s+/g, ' ');
  if (location.pathname.startsWith('/login')) {
    return { error: 'the dashboard sent us to /login: the site is not public or does not exist (use --share TOKEN or --user/--password)' };
  }
  const message = q('.ff-message');
  if (message) return { error: `the dashboard shows "${[...message.children].map(text).filter(Boolean).join(': ')}"` };
  const banner = q('.ff-banner.is-error');
  if (banner && !banner.hidden) return { error: `error banner: "${text(banner)}"` };
  const dash = q('main.ff-dash');
  if (!dash) return asPredicate ? false : { done: false, missing: ['the dashboard itself'] };

  const missing = [];
  const loadingCards = qa('.ff-stat[data-metric]')
    .filter((c) => c.classList.contains('is-loading') || !text(q('.ff-stat-value', c)))
    .map((c) => c.dataset.metric);
  if (qa('.ff-stat[data-metric]').length < 7) missing.push('cards (not all there)');
  else if (loadingCards.length) missing.push(`cards ${loadingCards.join(',')}`);
  const parts = { active: !loadingCards.includes('active'), cards: loadingCards.filter((m) => m !== 'active').length === 0 };

  const chart = q('.ff-chart');
  if (!chart || chart.classList.contains('is-loading') || !qa('.ff-chart-x text', chart).length ||
      !q('.ff-chart-line', chart)?.getAttribute('d')) missing.push('graph');
  parts.graph = !missing.includes('graph');

  const counts = {};
  for (const id of ['pages', 'sources', 'locations', 'devices', 'current', 'events']) {
    const panel = q(`[data-panel="${id}"]`);
    // The events panel has two lists (events, an event's properties): the one on show.
    const list = panel && qa('.ff-rowlist', panel).find((l) => !l.closest('[hidden]'));
    if (!list) { missing.push(`panel ${id} (absent)`); continue; }
    const err = q('.ff-rows-note.is-error', list);
    if (err) return { error: `panel ${id}: "${text(err)}"` };
    const rows = qa('.ff-rows .ff-row', list).length;
    const empty = q('.ff-rows-note.is-empty', list);
    parts[id] = !(list.classList.contains('is-loading') || (!rows && !empty));
    if (!parts[id]) missing.push(`panel ${id}`);
    counts[id] = rows;
  }

  const mapPanel = q('[data-panel="map"]');
  const mapErr = mapPanel && q('.ff-map-error, .ff-rows-note.is-error', mapPanel);
  if (mapErr) return { error: `map: "${text(mapErr)}"` };
  const outlines = mapPanel ? qa('path.ff-map-country', mapPanel).length : 0;
  const shaded = mapPanel ? qa('path.ff-map-has-visitors', mapPanel).length : 0;
  if (!outlines) missing.push('map outlines');
  else if (!shaded && !st?.mapAnswered) missing.push('map shading');
  parts.map = outlines > 0 && (shaded > 0 || !!st?.mapAnswered);
  // When each part was first seen filled (ms from navigation start).
  if (st) for (const [k, ok] of Object.entries(parts)) if (ok && st.partAt[k] == null) st.partAt[k] = performance.now();

  if (missing.length) return asPredicate ? false : { done: false, missing };
  if (st && st.filledAt == null) st.filledAt = performance.now();
  return {
    done: true,
    at: st ? st.filledAt : performance.now(),
    rows: counts,
    shaded,
    visitors: text(q('.ff-stat[data-metric="visitors"] .ff-stat-value')),
    active: text(q('[data-testid=active-now]')),
    site: dash.dataset.site,
    partAt: st ? Object.fromEntries(Object.entries(st.partAt).map(([k, v]) => [k, Math.round(v)])) : {},
    compareLine: [...document.querySelectorAll('.ff-chart-compare')].some((e) => e.style.display !== 'none' && e.getAttribute('d')),
  };
}

// After the fill: the /api/ requests the page started up to then, from the instrumentation and
// Resource Timing (server time = requestStart → responseStart, i.e. time to first byte on
// loopback), and the assets (script, CSS, world.json) with how many came from the HTTP cache.
function requestSummary(at) {
  const st = window.__ffBench;
  const started = st.started.filter((r) => r.t <= at);
  const entries = performance.getEntriesByType('resource');
  const api = entries.filter((e) => new URL(e.name).pathname.startsWith('/api/') && e.startTime <= at && !e.name.includes('/live/stream'));
  const serverMs = api.reduce((s, e) => s + Math.max(0, e.responseStart - e.requestStart), 0);
  const lastApiEnd = api.reduce((m, e) => Math.max(m, e.responseEnd), 0);
  const assets = entries.filter((e) => !new URL(e.name).pathname.startsWith('/api/') && e.startTime <= at);
  const keyOf = (r) => `${r.method} ${r.path} ${r.body}`;
  const seen = new Map();
  for (const r of started) seen.set(keyOf(r), (seen.get(keyOf(r)) || 0) + 1);
  const repeated = [...seen.values()].reduce((s, n) => s + (n - 1), 0);
  const nav = performance.getEntriesByType('navigation')[0];
  const used = new Set();
  return {
    api: started.length,
    apiFinished: api.length,
    serverMs: Math.round(serverMs),
    lastApiEnd: Math.round(lastApiEnd),
    repeated,
    list: started.map((r) => {
      // Its Resource Timing entry: the first unused one for the same path that started with it.
      const i = api.findIndex((e, j) => !used.has(j) && new URL(e.name).pathname === r.path && e.startTime >= r.t - 2);
      const e = i >= 0 ? api[i] : null;
      if (e) used.add(i);
      return { t: Math.round(r.t), end: r.end == null ? null : Math.round(r.end),
        queued: e ? Math.round(Math.max(0, e.requestStart - e.startTime)) : null,
        server: e ? Math.round(Math.max(0, e.responseStart - e.requestStart)) : null,
        what: `${r.method} ${r.path}${r.body ? ` ${r.body}` : ''}` };
    }),
    assets: assets.length,
    assetsCached: assets.filter((e) => e.transferSize === 0 && e.decodedBodySize > 0).length,
    assetKB: Math.round(assets.reduce((s, e) => s + e.transferSize, 0) / 1024),
    domContentLoaded: nav ? Math.round(nav.domContentLoadedEventEnd) : null,
  };
}

// ---------------------------------------------------------------------------------------------
// the benchmark

if (!existsSync(CHROMIUM)) fail(`Chromium not found at ${CHROMIUM}: install it (apt-get install -y chromium) or set CHROMIUM`, 2);

try {
  const res = await fetch(`${baseUrl}/healthz`);
  if (!res.ok) fail(`${baseUrl}/healthz answered ${res.status}`);
} catch (e) {
  fail(`${baseUrl} is not reachable: ${e.cause?.message || e.message}`);
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
    '--no-first-run', '--disable-component-update', '--disable-sync', `--user-agent=${CHROME_UA}`],
});
let exitCode = 0;
try {
  const context = await browser.newContext({ userAgent: CHROME_UA, viewport: { width: 1280, height: 900 } });
  await context.addInitScript(instrument);
  let access = args.share ? 'share link' : 'no login: a public site';
  if (args.user) {
    const res = await context.request.post(`${baseUrl}/api/dashboard/login`, { data: { username: args.user, password: args.password } });
    if (res.status() !== 200) throw new Error(`login as ${args.user} failed: ${res.status()} ${(await res.text()).trim()}`);
    access = `logged in as ${args.user}`;
  }

  /** One load in a new tab: {ms, wallMs, state, req}. */
  async function load(url) {
    const page = await context.newPage();
    try {
      const t0 = performance.now();
      await page.goto(url, { waitUntil: 'commit', timeout });
      let handle;
      try {
        handle = await page.waitForFunction(pageState, true, { timeout: Math.max(1, timeout - (performance.now() - t0)), polling: 'raf' });
      } catch (e) {
        if (!/Timeout/i.test(e.message)) throw e;
        const s = await page.evaluate(pageState, false).catch((e2) => ({ missing: [`the page (unreadable: ${e2.message})`] }));
        throw new Error(`not filled within ${timeout} ms: ${s?.error || `still waiting for ${s?.missing?.join('; ') || 'the page'}`} (${url})`);
      }
      const wallMs = performance.now() - t0;
      const state = await handle.jsonValue();
      if (state.error) throw new Error(state.error);
      const req = await page.evaluate(requestSummary, state.at);
      return { ms: state.at, wallMs, state, req };
    } finally {
      await page.close();
    }
  }

  const version = browser.version();
  console.log(`footfall dashboard load benchmark: ${baseUrl}`);
  console.log(`  ${args.share ? `share link /share/${args.share}` : `site ${args.site}`} (${access}); comparison ${args.compare ? 'on' : 'off (compare=0)'}; ` +
    `filters: ${filters.length ? filters.join(' & ') : 'none'}`);
  console.log(`  Chromium ${version} headless, 1280x900; one browser context, each load in a new tab: the HTTP cache, cookies ` +
    'and localStorage are kept as a returning user has them (not bypassed); 1 warm-up load per range, not counted');
  console.log(`  time = navigation start -> first moment the page is filled (in-page performance.now()); ${FILLED}`);
  console.log('  api = /api/ requests the page started before it was filled (the live stream not counted); server = their summed ' +
    'request->first-byte time; repeats = identical requests among them\n');

  const summary = [];
  for (const range of ranges) {
    const url = dashboardUrl(range);
    console.log(`${range}: ${url}`);
    const warm = await load(url);
    if (args.site && warm.state.site !== args.site) throw new Error(`the page shows site ${warm.state.site}, not ${args.site}`);
    console.log(`  warm-up  ${fmt(warm.ms)} ms (not counted); rows ${Object.entries(warm.state.rows).map(([k, v]) => `${k} ${v}`).join(', ')}; ` +
      `${warm.state.shaded} countries shaded; visitors ${warm.state.visitors}, active now ${warm.state.active}` +
      `${args.compare ? `; previous-period line ${warm.state.compareLine ? 'drawn' : 'absent'}` : ''}`);
    const runs = [];
    for (let i = 1; i <= loads; i++) {
      const r = await load(url);
      runs.push(r);
      console.log(`  load ${String(i).padEnd(3)} ${fmt(r.ms)} ms  (wall ${fmt(r.wallMs)} ms)  api ${r.req.api} requests` +
        `${r.req.api !== r.req.apiFinished ? ` (${r.req.apiFinished} answered)` : ''}, server ${r.req.serverMs} ms` +
        `${r.req.repeated ? `, ${r.req.repeated} repeats` : ''}; DOMContentLoaded ${r.req.domContentLoaded} ms; ` +
        `assets ${r.req.assets} (${r.req.assetsCached} from cache, ${r.req.assetKB} KB transferred); last: ${lastPart(r)}`);
      if (args.verbose) {
        const order = Object.entries(r.state.partAt).sort((a, b) => a[1] - b[1]).map(([k, v]) => `${k} ${v}`).join(', ');
        console.log(`      parts filled at (ms): ${order}`);
      }
      if (args.verbose) for (const x of r.req.list) console.log(`      ${String(x.t).padStart(5)} -> ${x.end == null ? '  ...' : String(x.end).padStart(5)} ms ` +
          `(queued in the browser ${x.queued ?? '?'}, server ${x.server ?? '?'})  ${x.what.slice(0, 160)}`);
    }
    const ms = runs.map((r) => r.ms);
    summary.push({ range, p50: median(ms), min: Math.min(...ms), max: Math.max(...ms),
      api: median(runs.map((r) => r.req.api)), server: median(runs.map((r) => r.req.serverMs)),
      last: mostCommon(runs.map((r) => lastPart(r).split(' ')[0])) });
  }

  console.log(`\nsummary (${loads} load${loads === 1 ? '' : 's'} per range; ms from navigation start to filled)`);
  console.log('  range       p50      min      max   api req   server ms (median)   most often last');
  for (const s of summary) {
    console.log(`  ${s.range.padEnd(8)} ${fmt(s.p50).padStart(7)}  ${fmt(s.min).padStart(7)}  ${fmt(s.max).padStart(7)}  ` +
      `${String(s.api).padStart(8)}  ${String(Math.round(s.server)).padStart(10)}            ${s.last}`);
  }
} catch (e) {
  console.error(`dashboard-browser: ${e.message}`);
  exitCode = 1;
} finally {
  await browser.close().catch(() => {});
}
process.exit(exitCode);

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** The part of the page that was filled last, e.g. "graph 812". */
function lastPart(r) {
  const [k, v] = Object.entries(r.state.partAt).sort((a, b) => b[1] - a[1])[0] || ['?', ''];
  return `${k} ${v}`;
}

function mostCommon(xs) {
  const n = new Map();
  for (const x of xs) n.set(x, (n.get(x) || 0) + 1);
  return [...n].sort((a, b) => b[1] - a[1]).map(([x, c]) => `${x} ${c}/${xs.length}`).join(', ');
}

function fmt(ms) {
  return ms.toFixed(0);
}
