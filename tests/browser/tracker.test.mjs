// The tracker (web/tracker/footfall.js) in a real Chromium against a real footfall server.
// Pages are served at http://shop.test:PORT and load the tracker from the server at
// http://stats.shop.test:PORT/js/footfall.js (both map to 127.0.0.1), so every request
// is cross-origin as on a real site. Outcomes are read from the server's APIs and from the
// requests Chromium sends; waits poll observable state, never a fixed delay.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { get } from 'node:http';
import { fileURLToPath } from 'node:url';
import {
  startServer,
  startPageServer,
  launchBrowser,
  newContext,
  waitFor,
  adminQuery,
  live,
} from './harness.mjs';

const SITE = 'shop.test';
// Each test fails rather than hangs when something it awaits never happens.
const LIMIT = { timeout: 30_000 };
const TRACKER_FILE = fileURLToPath(new URL('../../web/tracker/footfall.js', import.meta.url));

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

const page = (title, body = '', script = '') => ({ title, body, script });

// A small SPA: go(path) pushes a route; the title follows a tick later, as in real apps.
const SPA = `
  const TITLES = {'/': 'Home', '/pricing': 'Pricing', '/docs': 'Docs', '/long': 'Long read', '/next': 'Next'};
  function render() { setTimeout(() => { document.title = TITLES[location.pathname] || location.pathname }) }
  function go(path) { history.pushState({}, '', path); render() }
  addEventListener('popstate', render);`;

/**
 * A footfall server with site shop.test (dedup off, so every view counts), a page server
 * for `pages` ({path: {title, body, script}}; unknown paths get pages['/'], as an SPA would),
 * and a fresh browser context whose tracker requests are recorded in `events`.
 * `attrs`: attributes of the tracker's script tag besides data-domain and src.
 */
async function setup(t, { attrs = 'data-allow-localhost', head = '', pages = { '/': page('Home') }, context: ctxOpts } = {}) {
  const server = await startServer({ sites: [SITE], extraArgs: ['--dedup-window-secs', '0'] });
  t.after(() => server.stop());
  const stats = `http://stats.${SITE}:${server.port}`;
  const tag = `<script defer data-domain="${SITE}" ${attrs} src="${stats}/js/footfall.js"></script>`;
  const routes = {};
  for (const [path, p] of Object.entries(pages)) {
    routes[path] = {
      body:
        `<!doctype html><html><head><meta charset="utf-8"><title>${p.title}</title>` +
        `<script>${SPA}${p.script || ''}</script>${head}${tag}</head><body>${p.body}</body></html>`,
    };
  }
  routes['/files/report.pdf'] = { body: '%PDF-1.4 not really', type: 'application/pdf' };
  routes['/landing'] = { body: '<!doctype html><title>Elsewhere</title>elsewhere' };
  const pageServer = await startPageServer(routes, { fallback: '/' });
  t.after(() => pageServer.stop());
  const context = await newContext(browser, ctxOpts);
  t.after(() => context.close());
  return { server, stats, context, pageServer, url: (path, host = SITE) => pageServer.url(host, path), ...capture(context) };
}

/**
 * Records the context's requests: `events` are the tracker's POSTs to /api/event (their JSON
 * body plus `page`, `path`, `req`, and `res`, a promise of the response); `all` is every request.
 */
function capture(context) {
  const events = [];
  const all = [];
  context.on('request', (req) => {
    let pg = null;
    try {
      pg = req.frame().page();
    } catch {}
    all.push({ url: req.url(), method: req.method(), page: pg, req });
    if (req.method() !== 'POST' || !new URL(req.url()).pathname.endsWith('/api/event')) return;
    const body = JSON.parse(req.postData());
    // res: null when the page went away first (unload, close).
    events.push({ ...body, page: pg, path: pathOf(body), req, res: req.response().catch(() => null) });
  });
  return { events, all };
}

function pathOf(body) {
  const u = new URL(body.u);
  return body.h ? u.pathname + u.hash : u.pathname;
}

const named = (events, n, path) => events.filter((e) => e.n === n && (path === undefined || e.path === path));

/** Emulates the page being hidden or shown (headless pages are always visible otherwise). */
async function setHidden(pg, hidden) {
  await pg.evaluate((h) => {
    Object.defineProperty(document, 'hidden', { value: h, configurable: true });
    Object.defineProperty(document, 'visibilityState', { value: h ? 'hidden' : 'visible', configurable: true });
    document.dispatchEvent(new Event('visibilitychange'));
  }, hidden);
}

/**
 * Runs `action` in the page and resolves once every timer scheduled meanwhile (the
 * tracker's debounce of SPA navigations) has run: the point after which the tracker has
 * decided. With `untilEvent`, timers are watched until that window event has been handled
 * (the test's listener runs after the tracker's, which was added first).
 */
async function settle(pg, action, untilEvent) {
  await pg.evaluate(
    ([src, untilEvent]) =>
      new Promise((resolve) => {
        const pending = new Set();
        let watching = true;
        const orig = window.setTimeout;
        const check = () => !watching && !pending.size && resolve();
        window.setTimeout = (fn, ms, ...args) => {
          const id = orig(() => {
            try {
              fn(...args);
            } finally {
              pending.delete(id);
              check();
            }
          }, ms);
          pending.add(id);
          return id;
        };
        const stop = () => {
          window.setTimeout = orig;
          watching = false;
          check();
        };
        if (untilEvent) addEventListener(untilEvent, stop, { once: true });
        try {
          (0, eval)(src);
        } finally {
          if (!untilEvent) stop();
        }
      }),
    [`(${action})()`, untilEvent],
  );
}

/** Makes the page issue a request and waits until the capture has seen it: every request
 * the page started before is recorded by then. */
async function fence(pg, all, stats) {
  const mark = `${stats}/healthz?fence=${Math.random()}`;
  await pg.evaluate((u) => fetch(u, { mode: 'no-cors' }).catch(() => {}), mark);
  await waitFor(() => all.some((r) => r.url === mark), { message: `fence request ${mark}` });
}

/** The server's scroll depth for `path` today (null until an engagement event arrived). */
async function scrollDepth(server, path) {
  const r = await adminQuery(server, {
    site_id: SITE,
    date_range: 'day',
    metrics: ['scroll_depth'],
    filters: [['is', 'event:page', [path]]],
  });
  return r.results[0]?.metrics[0];
}

async function pageStats(server) {
  return Object.fromEntries((await live(server, SITE)).pageStats.map((p) => [p.path, p]));
}

test('the server serves the tracker as JavaScript, at most 1.5 KB gzipped', LIMIT, async (t) => {
  const server = await startServer({ sites: [SITE] });
  t.after(() => server.stop());
  const res = await fetch(`${server.url}/js/footfall.js`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^(text|application)\/javascript/);
  const body = Buffer.from(await res.arrayBuffer());
  const gz = gzipSync(body, { level: 9 }).length;
  assert.ok(gz <= 1536, `the tracker is ${gz} bytes gzipped; the budget is 1536`);
  assert.equal(
    body.toString(),
    readFileSync(TRACKER_FILE, 'utf8'),
    'the served tracker differs from web/tracker/footfall.js: rebuild footfall or set FOOTFALL_WEB_DIR',
  );
  // What a browser downloads, when the server compresses it.
  const wire = await new Promise((resolve, reject) => {
    get(`${server.url}/js/footfall.js`, { headers: { 'accept-encoding': 'gzip' } }, (r) => {
      let n = 0;
      r.on('data', (c) => (n += c.length));
      r.on('end', () => resolve({ encoding: r.headers['content-encoding'], bytes: n }));
    }).on('error', reject);
  });
  t.diagnostic(`tracker: ${body.length} bytes, ${gz} gzipped (zlib -9), ${wire.bytes} on the wire (${wire.encoding || 'identity'})`);
  if (wire.encoding === 'gzip') assert.ok(wire.bytes <= 1536, `served gzipped in ${wire.bytes} bytes`);
});

test('page views: on load with the title, each SPA navigation once, not on replaceState to the same URL, on back', LIMIT, async (t) => {
  const { server, context, events, url } = await setup(t);
  const pg = await context.newPage();
  await pg.goto(url('/'));
  await waitFor(() => named(events, 'pageview', '/').length === 1, { message: 'page view of /' });
  const first = named(events, 'pageview', '/')[0];
  assert.equal(first.t, 'Home');
  assert.equal(first.d, SITE);
  await waitFor(async () => (await pageStats(server))['/']?.title === 'Home', { message: 'server has / titled Home' });

  await pg.evaluate(() => go('/pricing'));
  const pricing = await waitFor(() => named(events, 'pageview', '/pricing')[0], { message: 'page view of /pricing' });
  assert.equal(pricing.t, 'Pricing', 'the title is read after the app updated it');

  // Same URL again: the tracker runs its check, and sends nothing.
  await settle(pg, () => history.replaceState({ again: 1 }, '', '/pricing'));
  await settle(pg, () => history.pushState({}, '', '/pricing'));
  // Without data-hash, the fragment is not part of the page.
  await settle(pg, () => { location.hash = '#faq' }, 'hashchange');
  await pg.evaluate(() => go('/docs'));
  await waitFor(() => named(events, 'pageview', '/docs').length === 1, { message: 'page view of /docs' });
  assert.equal(named(events, 'pageview', '/pricing').length, 1, 'no second view of /pricing');

  await pg.goBack(); // popstate to /pricing
  await waitFor(() => named(events, 'pageview', '/pricing').length === 2, { message: 'view of /pricing after back' });
  assert.equal(named(events, 'pageview', '/pricing')[1].t, 'Pricing');
  assert.equal(named(events, 'pageview').length, 4);

  const stats = await waitFor(async () => {
    const s = await pageStats(server);
    return s['/pricing']?.views === 2 && s['/docs']?.views === 1 && s;
  }, { message: 'server counts the views' });
  assert.equal(stats['/'].views, 1);
  assert.equal(stats['/pricing'].title, 'Pricing');
  assert.equal(stats['/docs'].title, 'Docs');
  for (const e of events) {
    const res = await e.res;
    assert.equal(res.status(), 202);
    assert.equal(res.headers()['x-footfall-dropped'], undefined, `${e.n} ${e.path} was dropped`);
  }
});

test('hash routing with data-hash records /#/route pages', LIMIT, async (t) => {
  const { server, context, events, url } = await setup(t, { attrs: 'data-allow-localhost data-hash' });
  const pg = await context.newPage();
  await pg.goto(url('/#/inbox'));
  await waitFor(() => named(events, 'pageview', '/#/inbox').length === 1, { message: 'view of /#/inbox' });
  assert.equal(named(events, 'pageview', '/#/inbox')[0].h, true);
  await pg.evaluate(() => { location.hash = '#/settings' });
  await waitFor(() => named(events, 'pageview', '/#/settings').length === 1, { message: 'view of /#/settings' });
  await waitFor(async () => {
    const s = await pageStats(server);
    return s['/#/inbox']?.views === 1 && s['/#/settings']?.views === 1;
  }, { message: 'server pages /#/inbox and /#/settings' });
  assert.equal(named(events, 'pageview').length, 2);
});

test('heartbeats: one leader among the tabs of a site, none from hidden tabs', LIMIT, async (t) => {
  const { server, context, events, url, pageServer } = await setup(t, {
    attrs: 'data-allow-localhost data-heartbeat="1"',
  });
  // A tab that is hidden from the start, in another browser context (no tab to defer to).
  const lone = await newContext(browser);
  t.after(() => lone.close());
  await lone.addInitScript(() => {
    Object.defineProperty(document, 'hidden', { value: true, configurable: true });
    Object.defineProperty(document, 'visibilityState', { value: 'hidden', configurable: true });
  });
  const loneEvents = capture(lone).events;
  const hiddenTab = await lone.newPage();
  await hiddenTab.goto(pageServer.url(SITE, '/hidden'));
  await waitFor(() => named(loneEvents, 'pageview').length === 1, { message: 'view from the hidden tab' });

  const a = await context.newPage();
  await a.goto(url('/a'));
  const b = await context.newPage();
  await b.goto(url('/b'));
  const beats = (p) => events.filter((e) => e.n === 'heartbeat' && e.page === p).length;

  await waitFor(() => beats(a) + beats(b) >= 1, { message: 'a first heartbeat' });
  const [a0, b0] = [beats(a), beats(b)];
  await waitFor(() => beats(a) - a0 + beats(b) - b0 >= 3, { timeout: 8000, message: '3 more heartbeats' });
  const [da, db] = [beats(a) - a0, beats(b) - b0];
  assert.ok(da === 0 || db === 0, `both tabs sent heartbeats (${da} and ${db})`);
  const [leader, other] = da ? [a, b] : [b, a];
  const otherPath = other === a ? '/a' : '/b';

  // The server takes them: the visitor is active.
  const hb = events.find((e) => e.n === 'heartbeat');
  assert.equal((await hb.res).status(), 202);
  assert.equal((await hb.res).headers()['x-footfall-dropped'], undefined);

  // Hidden, the leader stops; the other tab takes over.
  await setHidden(leader, true);
  const o0 = beats(other);
  await waitFor(() => beats(other) > o0, { timeout: 5000, message: 'the other tab takes over' });
  const l1 = beats(leader);
  const o1 = beats(other);
  await waitFor(() => beats(other) - o1 >= 3, { timeout: 8000, message: '3 heartbeats from the new leader' });
  assert.equal(beats(leader), l1, 'the hidden tab sent heartbeats');
  assert.ok(named(events, 'heartbeat').every((e) => e.path === '/a' || e.path === '/b'));
  assert.ok(named(events, 'heartbeat').filter((e) => e.page === other).every((e) => e.path === otherPath));
  const live1 = await live(server, SITE);
  assert.ok(live1.activeVisitors >= 1);

  // All along, the tab hidden from the start sent none.
  assert.equal(named(loneEvents, 'heartbeat').length, 0, 'a hidden tab sent heartbeats');
  // Shown again, it does.
  await setHidden(hiddenTab, false);
  await waitFor(() => named(loneEvents, 'heartbeat').length >= 1, { timeout: 5000, message: 'heartbeat once shown' });
});

test('engagement: visible time and scroll depth when hidden, on SPA navigation and on close; never e=0', LIMIT, async (t) => {
  const tall = '<div style="height: 6000px; background: linear-gradient(#fff, #ccc)">tall</div>';
  const { server, context, events, url } = await setup(t, {
    pages: { '/': page('Home', tall), '/long': page('Long read', tall) },
  });
  const pg = await context.newPage();
  await pg.goto(url('/long'));
  await waitFor(() => named(events, 'pageview', '/long').length === 1, { message: 'view of /long' });
  // Scroll to the bottom; resolves after the tracker's scroll listener (registered first) ran.
  await pg.evaluate(
    () =>
      new Promise((resolve) => {
        addEventListener('scroll', () => resolve(), { once: true });
        scrollTo(0, document.documentElement.scrollHeight);
      }),
  );
  await setHidden(pg, true);
  const hidden = await waitFor(() => named(events, 'engagement', '/long')[0], { message: 'engagement on hide' });
  assert.ok(hidden.e > 0, `e = ${hidden.e}`);
  assert.equal(Math.round(hidden.sd), 100);
  assert.equal((await hidden.res).headers()['x-footfall-dropped'], undefined, 'engagement dropped');
  assert.equal(await waitFor(() => scrollDepth(server, '/long'), { message: 'scroll depth of /long' }), 100);

  // Shown again, then an SPA navigation leaves /long: engagement for /long, then the view.
  await setHidden(pg, false);
  await pg.evaluate(() => scrollTo(0, 0));
  await pg.evaluate(() => go('/next'));
  await waitFor(() => named(events, 'pageview', '/next').length === 1, { message: 'view of /next' });
  const leaving = named(events, 'engagement', '/long');
  assert.equal(leaving.length, 2, 'engagement for /long when leaving it');
  assert.ok(leaving[1].e > 0);
  assert.equal(Math.round(leaving[1].sd), 100, 'scroll depth is the maximum over the view');
  assert.ok(events.indexOf(leaving[1]) < events.indexOf(named(events, 'pageview', '/next')[0]));

  // Closing the tab sends engagement for /next, kept alive through unload. Playwright no
  // longer reports requests of a closed page: the server tells.
  await pg.close({ runBeforeUnload: true });
  const closing = await waitFor(() => scrollDepth(server, '/next'), { message: 'engagement for /next on close' });
  assert.ok(closing > 0 && closing < 100, `scroll depth of /next, seen at the top: ${closing}`);

  // A tab that is never visible sends no engagement (e would be 0).
  const ctx2 = await newContext(browser);
  t.after(() => ctx2.close());
  await ctx2.addInitScript(() => {
    Object.defineProperty(document, 'hidden', { value: true, configurable: true });
    Object.defineProperty(document, 'visibilityState', { value: 'hidden', configurable: true });
  });
  const ev2 = capture(ctx2).events;
  const pg2 = await ctx2.newPage();
  await pg2.goto(url('/long'));
  await waitFor(() => named(ev2, 'pageview', '/long').length === 1, { message: 'view from the hidden tab' });
  await pg2.evaluate(() => go('/next'));
  await waitFor(() => named(ev2, 'pageview', '/next').length === 1, { message: 'second view from the hidden tab' });
  assert.equal(named(ev2, 'engagement').length, 0, 'engagement with e=0 sent');
});

test('custom events with props, queued calls made before the tracker loaded, and callbacks', LIMIT, async (t) => {
  const queue =
    '<script>window.footfall = window.footfall || function () { (window.footfall.q = window.footfall.q || []).push(arguments) };' +
    "footfall('Queued', {props: {source: 'queue'}})</script>";
  const { server, context, events, url } = await setup(t, { head: queue });
  const pg = await context.newPage();
  await pg.goto(url('/'));
  const status = await pg.evaluate(
    () => new Promise((resolve) => footfall('Signup', { props: { plan: 'pro' }, callback: (r) => resolve(r.status) })),
  );
  assert.equal(status, 202);
  const names = events.map((e) => e.n);
  assert.deepEqual(names.slice(0, 3), ['pageview', 'Queued', 'Signup']);

  const byName = await waitFor(async () => {
    const r = await adminQuery(server, { site_id: SITE, date_range: 'day', metrics: ['events'], dimensions: ['event:name'] });
    const m = Object.fromEntries(r.results.map((x) => [x.dimensions[0], x.metrics[0]]));
    return m.Signup && m.Queued && m;
  }, { message: 'Signup and Queued in event:name' });
  assert.equal(byName.Signup, 1);
  assert.equal(byName.Queued, 1);
  const plans = await adminQuery(server, {
    site_id: SITE,
    date_range: 'day',
    metrics: ['events'],
    dimensions: ['event:props:plan'],
    filters: [['is', 'event:name', ['Signup']]],
  });
  assert.deepEqual(plans.results.map((x) => [x.dimensions[0], x.metrics[0]]), [['pro', 1]]);
  const sources = await adminQuery(server, {
    site_id: SITE,
    date_range: 'day',
    metrics: ['events'],
    dimensions: ['event:props:source'],
    filters: [['is', 'event:name', ['Queued']]],
  });
  assert.deepEqual(sources.results.map((x) => [x.dimensions[0], x.metrics[0]]), [['queue', 1]]);
});

test('outbound link clicks and file downloads with data-outbound-links and data-file-downloads', LIMIT, async (t) => {
  const links =
    '<a id="out" href="/landing"><span>Elsewhere</span></a> <a id="pdf" href="/files/report.pdf?v=2" download>Report</a> ' +
    '<a id="in" href="/about">About</a>' +
    "<script>out.href = 'http://elsewhere.example:' + location.port + '/landing?ref=shop'</script>";
  const { server, context, events, url, pageServer } = await setup(t, {
    attrs: 'data-allow-localhost data-outbound-links data-file-downloads',
    pages: { '/': page('Home'), '/about': page('About'), '/links': page('Links', links) },
  });
  const outbound = pageServer.url('elsewhere.example', '/landing?ref=shop');
  const pg = await context.newPage();
  await pg.goto(url('/links'));
  await waitFor(() => named(events, 'pageview', '/links').length === 1, { message: 'view of /links' });

  await pg.click('#pdf');
  const dl = await waitFor(() => named(events, 'File Download')[0], { message: 'File Download event' });
  assert.deepEqual(dl.p, { url: url('/files/report.pdf') });

  await pg.click('#in');
  await waitFor(() => named(events, 'pageview', '/about').length === 1, { message: 'view of /about' });
  await pg.goBack();
  await waitFor(() => named(events, 'pageview', '/links').length === 2, { message: 'view of /links again' });
  assert.equal(named(events, 'Outbound Link: Click').length, 0, 'an internal link counted as outbound');

  await Promise.all([pg.waitForURL(outbound), pg.click('#out span')]);
  const out = await waitFor(() => named(events, 'Outbound Link: Click')[0], { message: 'Outbound Link: Click event' });
  assert.deepEqual(out.p, { url: outbound });
  assert.equal(out.path, '/links');
  // Leaving the page for another site sent its engagement (a short page: all of it seen).
  assert.equal(await waitFor(() => scrollDepth(server, '/links'), { message: 'engagement for /links' }), 100);

  const urls = await waitFor(async () => {
    const r = await adminQuery(server, {
      site_id: SITE,
      date_range: 'day',
      metrics: ['events'],
      dimensions: ['event:name', 'event:props:url'],
      filters: [['is', 'event:name', ['Outbound Link: Click', 'File Download']]],
    });
    return r.results.length === 2 && r.results.map((x) => x.dimensions).sort();
  }, { message: 'both events on the server' });
  assert.deepEqual(urls, [
    ['File Download', url('/files/report.pdf')],
    ['Outbound Link: Click', outbound],
  ]);
});

test('sends nothing when opted out, for automated browsers without data-allow-localhost, and with DNT/GPC under data-respect-dnt', LIMIT, async (t) => {
  const setGpc = () => Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', { get: () => true });
  const setDnt = () => Object.defineProperty(Navigator.prototype, 'doNotTrack', { get: () => '1' });
  const setIgnore = () => localStorage.setItem('footfall_ignore', 'true');
  const cases = [
    { name: 'localStorage.footfall_ignore', attrs: 'data-allow-localhost', init: setIgnore, sends: false },
    { name: 'navigator.webdriver without data-allow-localhost', attrs: '', sends: false },
    { name: 'GPC with data-respect-dnt', attrs: 'data-allow-localhost data-respect-dnt', init: setGpc, sends: false },
    { name: 'DNT with data-respect-dnt', attrs: 'data-allow-localhost data-respect-dnt', init: setDnt, sends: false },
    { name: 'DNT without data-respect-dnt', attrs: 'data-allow-localhost', init: setDnt, sends: true },
    { name: 'data-respect-dnt without DNT or GPC', attrs: 'data-allow-localhost data-respect-dnt', sends: true },
  ];
  for (const c of cases) {
    await t.test(c.name, LIMIT, async (t) => {
      const { context, events, all, url, stats } = await setup(t, { attrs: c.attrs });
      if (c.init) await context.addInitScript(c.init);
      const pg = await context.newPage();
      await pg.goto(url('/'));
      assert.equal(await pg.evaluate(() => navigator.webdriver), true);
      const called = await pg.evaluate(
        () => new Promise((resolve) => footfall('Signup', { callback: () => resolve(true) })),
      );
      assert.equal(called, true, 'the callback runs either way');
      await fence(pg, all, stats);
      if (c.sends) assert.deepEqual(events.map((e) => e.n), ['pageview', 'Signup']);
      else assert.deepEqual(events.map((e) => e.n), [], 'requests were sent');
    });
  }
});

test('never throws into the host page', LIMIT, async (t) => {
  // Hostile surroundings: no BroadcastChannel, storage that throws, a throwing callback,
  // props that can't be serialised, and a second copy of the tracker whose endpoint refuses
  // connections. The page records whatever reaches it.
  const { context, events, url } = await setup(t, { attrs: 'data-allow-localhost data-heartbeat="0.2"' });
  await context.addInitScript(() => {
    window.__errors = [];
    addEventListener('error', (e) => window.__errors.push(String(e.message)));
    addEventListener('unhandledrejection', (e) => window.__errors.push(`unhandled rejection: ${e.reason}`));
    delete window.BroadcastChannel;
    Object.defineProperty(window, 'localStorage', {
      get() {
        throw new DOMException('storage is disabled', 'SecurityError');
      },
    });
  });
  const pg = await context.newPage();
  const errors = [];
  pg.on('pageerror', (e) => errors.push(String(e)));
  await pg.goto(url('/'));
  await waitFor(() => named(events, 'pageview', '/').length === 1, { message: 'view despite the surroundings' });
  const returned = await pg.evaluate(() => {
    const circular = {};
    circular.self = circular;
    return [
      footfall('Circular', { props: circular }),
      footfall('Thrower', { callback: () => { throw new Error('from the callback') } }),
      history.pushState({}, '', '/after'),
    ].map((v) => v === undefined);
  });
  assert.deepEqual(returned, [true, true, true]);
  await waitFor(() => named(events, 'pageview', '/after').length >= 1, { message: 'view of /after' });
  await waitFor(() => named(events, 'heartbeat').length >= 2, { message: 'heartbeats without BroadcastChannel' });

  await pg.evaluate(
    () =>
      new Promise((resolve) => {
        const s = document.createElement('script');
        s.src = document.querySelector('script[data-domain]').src;
        s.dataset.domain = 'shop.test';
        s.dataset.allowLocalhost = '';
        s.dataset.api = 'http://127.0.0.1:9/api/event';
        s.onload = resolve;
        document.head.append(s);
      }),
  );
  // Its callback gets the network error; by then its page view has failed too.
  const probe = await pg.evaluate(
    () => new Promise((resolve) => footfall('Probe', { callback: (r) => resolve(r instanceof Error ? r.name : r) })),
  );
  assert.equal(probe, 'TypeError');
  assert.deepEqual(await pg.evaluate(() => window.__errors), []);
  assert.deepEqual(errors, []);
});

test('requests are text/plain without cookies, and the tracker stores nothing', LIMIT, async (t) => {
  // The stats host is same-site with the page (stats.shop.test), so a cookie would be sent
  // with credentialed requests: the tracker's must omit it.
  const { context, events, all, url, stats } = await setup(t);
  await context.addCookies([{ name: 'stats_cookie', value: 'x', url: stats }]);
  const pg = await context.newPage();
  await pg.goto(url('/'));
  await pg.evaluate(() => new Promise((resolve) => footfall('Signup', { callback: resolve })));
  await waitFor(() => events.length === 2, { message: 'pageview and Signup requests' });
  for (const e of events) {
    const headers = await e.req.allHeaders();
    assert.match(headers['content-type'], /^text\/plain/);
    assert.equal(headers.cookie, undefined, `${e.n} sent a cookie`);
    assert.equal((await e.res).headers()['set-cookie'], undefined);
  }
  // Control: a credentialed request from the page does carry the cookie.
  const control = `${stats}/healthz?control`;
  await pg.evaluate((u) => fetch(u, { credentials: 'include', mode: 'no-cors' }), control);
  const req = await waitFor(() => all.find((r) => r.url === control), { message: 'control request' });
  assert.match((await req.req.allHeaders()).cookie || '', /stats_cookie=x/);

  const stored = await pg.evaluate(() => ({
    cookie: document.cookie,
    local: localStorage.length,
    session: sessionStorage.length,
  }));
  assert.deepEqual(stored, { cookie: '', local: 0, session: 0 });
});
