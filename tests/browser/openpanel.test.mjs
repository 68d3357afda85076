// OpenPanel's web SDK, unchanged (the npm packages @openpanel/web and @openpanel/sdk,
// pinned in package-lock.json), in a real Chromium against a real footfall server: the
// page at http://shop.test:PORT creates `new OpenPanel({clientId: 'shop.test', apiUrl:
// 'http://stats.shop.test:PORT', trackScreenViews: true})`, so its POSTs to /track are
// cross-origin with OpenPanel's own headers and need the preflight footfall answers.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startServer, startPageServer, launchBrowser, newContext, waitFor, adminQuery } from './harness.mjs';

const SITE = 'shop.test';
const LIMIT = { timeout: 30_000 };
// The packages' ES module builds, as a bundler would take them.
const moduleOf = (name) => readFileSync(fileURLToPath(import.meta.resolve(name)), 'utf8');
const WEB_JS = moduleOf('@openpanel/web');
const SDK_JS = moduleOf('@openpanel/sdk');

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

test('OpenPanel web SDK: screen views are page views, track() custom events with properties', LIMIT, async (t) => {
  const server = await startServer({ sites: [SITE], extraArgs: ['--dedup-window-secs', '0'] });
  t.after(() => server.stop());
  const api = `http://stats.${SITE}:${server.port}`;
  const html =
    '<!doctype html><html><head><meta charset="utf-8"><title>Post X</title>' +
    '<script type="importmap">{"imports": {"@openpanel/sdk": "/op/sdk.js"}}</script>' +
    '<script type="module">' +
    "import { OpenPanel } from '/op/web.js';" +
    `window.op = new OpenPanel({ clientId: '${SITE}', apiUrl: '${api}', trackScreenViews: true, trackOutgoingLinks: true });` +
    '</script></head><body>' +
    "<button id=go onclick=\"history.pushState({}, '', '/pricing'); document.title = 'Pricing'\">pricing</button>" +
    "<button id=buy onclick=\"op.track('signup', { plan: 'pro', seats: 3 })\">buy</button>" +
    '<a id=out target=_blank href="/landing">elsewhere</a>' +
    "<script>out.href = 'http://elsewhere.test:' + location.port + '/landing'</script>" +
    '</body></html>';
  const pages = await startPageServer(
    {
      '/page': { body: html },
      '/landing': { body: '<!doctype html><title>Elsewhere</title>elsewhere' },
      '/op/web.js': { body: WEB_JS, type: 'text/javascript' },
      '/op/sdk.js': { body: SDK_JS, type: 'text/javascript' },
    },
    { fallback: '/page' },
  );
  t.after(() => pages.stop());
  const context = await newContext(browser);
  t.after(() => context.close());
  const tracked = [];
  context.on('requestfinished', async (req) => {
    if (req.url().startsWith(`${api}/track`)) {
      tracked.push({ method: req.method(), body: req.postDataJSON(), status: (await req.response())?.status() });
    }
  });

  const pg = await context.newPage();
  await pg.goto(pages.url(SITE, '/blog/x?utm_source=hn'), { referer: 'https://news.ycombinator.com/' });
  await waitFor(() => tracked.some((r) => r.body?.payload?.name === 'screen_view'), { message: 'first screen_view' });
  await pg.click('#go');
  await waitFor(() => tracked.filter((r) => r.body?.payload?.name === 'screen_view').length === 2, {
    message: 'screen_view after pushState',
  });
  await pg.click('#buy');
  await waitFor(() => tracked.some((r) => r.body?.payload?.name === 'signup'), { message: 'signup sent' });
  // An outgoing link: the SDK sends link_out without the page it was clicked on.
  await pg.click('#out');
  await waitFor(() => tracked.some((r) => r.body?.payload?.name === 'link_out'), { message: 'link_out sent' });
  assert.equal(tracked.find((r) => r.body.payload.name === 'link_out').body.payload.properties.__path, undefined);
  // Every message the SDK sent was taken (the preflight passed; no retries).
  assert.deepEqual(
    tracked.map((r) => [r.method, r.body.type, r.body.payload.name, r.status]),
    [
      ['POST', 'track', 'screen_view', 202],
      ['POST', 'track', 'screen_view', 202],
      ['POST', 'track', 'signup', 202],
      ['POST', 'track', 'link_out', 202],
    ],
  );

  const pagesSeen = await waitFor(async () => {
    const r = await adminQuery(server, { site_id: SITE, date_range: 'day', metrics: ['pageviews'], dimensions: ['event:page'] });
    const m = Object.fromEntries(r.results.map((x) => [x.dimensions[0], x.metrics[0]]));
    return m['/pricing'] && m;
  }, { message: 'both pages stored' });
  assert.deepEqual(pagesSeen, { '/blog/x': 1, '/pricing': 1 });

  // One visitor, one visit: two page views and two custom events.
  const agg = await waitFor(async () => {
    const r = await adminQuery(server, { site_id: SITE, date_range: 'day', metrics: ['visitors', 'visits', 'pageviews', 'events'] });
    return r.results[0].metrics[3] === 4 && r;
  }, { message: 'four events stored' });
  assert.deepEqual(agg.results[0].metrics, [1, 1, 2, 4]);

  // The link click is on the page it was clicked on, where the visitor was.
  const clicks = await adminQuery(server, {
    site_id: SITE,
    date_range: 'day',
    metrics: ['events'],
    dimensions: ['event:page', 'event:props:href'],
    filters: [['is', 'event:name', ['link_out']]],
  });
  assert.deepEqual(clicks.results.map((x) => [...x.dimensions, x.metrics[0]]), [
    ['/pricing', `http://elsewhere.test:${pages.port}/landing`, 1],
  ]);

  const sources = await adminQuery(server, { site_id: SITE, date_range: 'day', metrics: ['visitors'], dimensions: ['visit:source', 'visit:utm_source'] });
  assert.deepEqual(sources.results.map((x) => x.dimensions), [['Hacker News', 'hn']]);

  const names = await adminQuery(server, {
    site_id: SITE,
    date_range: 'day',
    metrics: ['events'],
    dimensions: ['event:props:plan', 'event:props:seats'],
    filters: [['is', 'event:name', ['signup']]],
  });
  assert.deepEqual(names.results.map((x) => [...x.dimensions, x.metrics[0]]), [['pro', '3', 1]]);

  const titles = await fetch(`${server.url}/api/stats/${SITE}/titles?path=${encodeURIComponent('/blog/x')}`, {
    headers: { authorization: `Bearer ${server.adminToken}` },
  });
  assert.equal(titles.status, 200);
  assert.match(await titles.text(), /Post X/);
});

test('OpenPanel /track: preflight, ignored profile messages, and hostile bodies', LIMIT, async (t) => {
  const server = await startServer({ sites: [SITE] });
  t.after(() => server.stop());
  const pre = await fetch(`${server.url}/track`, {
    method: 'OPTIONS',
    headers: {
      origin: 'http://shop.test',
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'content-type,openpanel-client-id,openpanel-sdk-name,openpanel-sdk-version',
    },
  });
  assert.ok(pre.status < 300, `preflight status ${pre.status}`);
  assert.equal(pre.headers.get('access-control-allow-origin'), '*');
  assert.match(pre.headers.get('access-control-allow-headers') || '', /openpanel-client-id/);

  const post = (body, headers = { 'openpanel-client-id': SITE }) =>
    fetch(`${server.url}/track`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) Chrome/130.0 Safari/537.36', ...headers },
      body,
    });
  const identify = await post(JSON.stringify({ type: 'identify', payload: { profileId: 'u1', email: 'a@b.c' } }));
  assert.equal(identify.status, 202);
  assert.equal((await identify.json()).status, 'ignored');
  for (const [body, headers, needle] of [
    ['{"type":"track","payload":{"name":"x"}}', {}, 'openpanel-client-id'],
    ['{"type":"track"', undefined, 'not valid JSON'],
    ['{"type":"nope","payload":{}}', undefined, 'not an OpenPanel message type'],
    ['{"type":"track","payload":{"name":"x","properties":{"__path":"ftp://x/y"}}}', undefined, '__path'],
  ]) {
    const r = await post(body, headers);
    assert.equal(r.status, 400, body);
    assert.match(await r.text(), new RegExp(needle.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')), body);
  }
  const unknown = await post('{"type":"track","payload":{"name":"screen_view","properties":{"__path":"https://other.test/"}}}', {
    'openpanel-client-id': 'other.test',
  });
  // Not a site of this server: nothing stored.
  assert.notEqual(unknown.status, 500);
  const agg = await adminQuery(server, { site_id: SITE, date_range: 'day', metrics: ['events'] });
  assert.equal(agg.results[0].metrics[0], 0);
});
