// The dashboard (web/dashboard/) in a real Chromium against a real footfall server: login,
// first-run setup, adding a site, the numbers, live updates without reload, filters, share
// links, the map, and the screenshots in docs/. Traffic is sent over HTTP (POST /api/event,
// X-Forwarded-For from loopback sets the client address, so each IP is its own visitor).
// Waits poll observable state (waitFor / waitForFunction / locators), never a fixed delay.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { startServer, launchBrowser, newContext, waitFor, adminQuery, adminPost, adminGet, adminPut, live, CHROME_UA } from './harness.mjs';

const USER = { username: 'alice', password: 'correct horse battery staple' };
const DASHBOARD_FILE = fileURLToPath(new URL('../../web/dashboard/app.js', import.meta.url));
const SCREENSHOT = fileURLToPath(new URL('../../docs/screenshot.png', import.meta.url));
const SCREENSHOT_DARK = fileURLToPath(new URL('../../docs/screenshot-dark.png', import.meta.url));
const SCREENSHOT_PHONE = fileURLToPath(new URL('../../docs/screenshot-phone.png', import.meta.url));

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

// ---------------------------------------------------------------------------------------------
// helpers

/** A page view (or custom event) from visitor `ip`, with optional edge geo headers. */
async function send(server, { site, path = '/', ip, name = 'pageview', title, props, revenue, geo, ua = CHROME_UA }) {
  const headers = { 'content-type': 'text/plain', 'user-agent': ua, 'x-forwarded-for': ip };
  if (geo) {
    Object.assign(headers, {
      'cf-ipcountry': geo.country,
      'cf-ipcity': geo.city,
      'cf-iplatitude': String(geo.latitude),
      'cf-iplongitude': String(geo.longitude),
    });
  }
  const body = { n: name, u: `https://${site}${path}`, d: site, r: null };
  if (title) body.t = title;
  if (props) body.p = props;
  if (revenue) body.$ = revenue;
  const res = await fetch(`${server.url}/api/event`, { method: 'POST', headers, body: JSON.stringify(body) });
  assert.equal(res.status, 202, `POST /api/event: ${res.status} ${await res.text()}`);
  assert.equal(res.headers.get('x-footfall-dropped'), null, `event dropped: ${res.headers.get('x-footfall-dropped')}`);
}

async function context(opts = {}) {
  return newContext(browser, { viewport: { width: 1280, height: 900 }, ...opts });
}

/** A browser context signed in as USER (through the login API, like the form does). */
async function signedIn(server) {
  const ctx = await context();
  const res = await ctx.request.post(`${server.url}/api/dashboard/login`, { data: USER });
  assert.equal(res.status(), 200, `login: ${res.status()} ${await res.text()}`);
  return ctx;
}

const card = (page, metric) => page.locator(`.ff-stat[data-metric="${metric}"] .ff-stat-value`);

/** Waits until a card shows `text` (cards show the numbers once loaded, not while loading). */
async function cardShows(page, metric, text, timeout = 8000) {
  await page.waitForFunction(
    ([m, t]) => {
      const el = document.querySelector(`.ff-stat[data-metric="${m}"]`);
      return el && !el.classList.contains('is-loading') && el.querySelector('.ff-stat-value').textContent === t;
    },
    [metric, text],
    { timeout },
  ).catch(async (e) => {
    throw new Error(`card ${metric} never showed ${text}; it shows ${await card(page, metric).textContent()} (${e.message})`);
  });
}

/** The rows of a panel as {label, value}. */
async function panelRows(page, panel) {
  return page.locator(`[data-panel="${panel}"] .ff-rows .ff-row`).evaluateAll((rows) =>
    rows.map((r) => ({ label: r.querySelector('.ff-row-text').textContent, value: r.querySelector('.ff-row-val').textContent })),
  );
}

async function metrics(server, site, body = {}) {
  const r = await adminQuery(server, { site_id: site, date_range: '7d', metrics: ['visitors', 'pageviews'], ...body });
  return r.results[0].metrics;
}

// ---------------------------------------------------------------------------------------------
// one server for the signed-in tests; each test has its own site so numbers don't mix

const SHOP = 'shop.test'; // 3 visitors, 5 page views (tests 4, 6, 7)
const LIVE = 'live.test'; // starts empty (test 5)
const GEO = 'geo.test'; // a visitor with a location (test 8)
const GOALS = 'goals.test'; // goals and a funnel over 3 visitors
const SETTINGS = 'settings.test'; // goals and funnels set in the dashboard
const SEGMENTS = 'segments.test'; // a segment saved and applied in the dashboard
const CONTENT = 'content.test'; // a content catalogue: page types and unvisited pages
let server;

before(async () => {
  server = await startServer({ sites: [SHOP, LIVE, GEO, GOALS, SETTINGS, SEGMENTS, CONTENT], users: [USER] });
  // Visitor A: / and /pricing; B: / and /pricing; C: / only → 3 visitors, 5 page views.
  for (const [ip, paths] of [['203.0.113.1', ['/', '/pricing']], ['203.0.113.2', ['/', '/pricing']], ['203.0.113.3', ['/']]]) {
    for (const path of paths) await send(server, { site: SHOP, ip, path, title: path === '/' ? 'Shop home' : 'Pricing plans' });
  }
});
after(async () => {
  await server?.stop();
});

test('the served dashboard is the one in web/dashboard', async () => {
  const res = await fetch(`${server.url}/assets/app.js`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /javascript/);
  assert.equal(await res.text(), readFileSync(DASHBOARD_FILE, 'utf8'),
    'the served dashboard differs from web/dashboard: rebuild footfall or set FOOTFALL_WEB_DIR');
  for (const path of ['/', '/login', '/setup', `/s/${SHOP}`, '/share/x']) {
    const page = await fetch(server.url + path);
    assert.equal(page.status, 200, path);
    assert.match(await page.text(), /\/assets\/app\.js/, path);
  }
});

test('login: / goes to /login, a wrong password says so, the right one shows the sites, logout ends the session', async () => {
  const ctx = await context();
  try {
    const page = await ctx.newPage();
    await page.goto(`${server.url}/`);
    await page.waitForURL(/\/login$/);
    await page.fill('#username', USER.username);
    await page.fill('#password', 'not the password');
    await page.click('button[type=submit]');
    await page.locator('[data-testid=login-error]').filter({ hasText: /wrong username or password/i }).waitFor();
    assert.match(page.url(), /\/login$/);

    await page.fill('#password', USER.password);
    await page.click('button[type=submit]');
    await page.waitForURL(`${server.url}/`);
    await page.locator(`[data-testid=site-list] [data-domain="${SHOP}"]`).waitFor();
    assert.ok((await ctx.cookies()).some((c) => c.name === 'ff_session'), 'a session cookie is set');

    await page.click('[data-testid=account]');
    await page.click('[data-testid=logout]');
    await page.waitForURL(/\/login$/);
    assert.ok(!(await ctx.cookies()).some((c) => c.name === 'ff_session' && c.value), 'the session cookie is gone');
    const status = await page.evaluate(async () => (await fetch('/api/dashboard/sites')).status);
    assert.equal(status, 401);
  } finally {
    await ctx.close();
  }
});

test('setup: with no users, /setup with the logged token creates the first user, signed in; the token is single-use', async (t) => {
  const fresh = await startServer({ sites: [SHOP] });
  t.after(() => fresh.stop());
  const [, token] = await fresh.waitForLog(/setup token: ([0-9A-Za-z_-]+)/);
  const ctx = await context();
  t.after(() => ctx.close());
  const page = await ctx.newPage();
  await page.goto(`${fresh.url}/`);
  await page.waitForURL(/\/setup$/);
  await page.fill('#token', token);
  await page.fill('#username', 'root');
  await page.fill('#password', 'a long enough password');
  await page.fill('#password2', 'a different password');
  await page.click('button[type=submit]');
  await page.locator('[data-testid=setup-error]').filter({ hasText: /do not match/ }).waitFor();
  await page.fill('#password2', 'a long enough password');
  await page.click('button[type=submit]');
  await page.waitForURL(`${fresh.url}/`);
  await page.locator(`[data-testid=site-list] [data-domain="${SHOP}"]`).waitFor();
  const state = await page.evaluate(async () => (await fetch('/api/dashboard/state')).json());
  assert.equal(state.user, 'root');
  assert.equal(state.setup_required, false);

  const again = await fetch(`${fresh.url}/api/dashboard/setup`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token, username: 'mallory', password: 'another long password' }),
  });
  assert.ok(again.status >= 400 && again.status < 500, `reusing the setup token answered ${again.status}`);
  // A new visitor now gets the login page, not setup.
  const other = await context();
  t.after(() => other.close());
  const p2 = await other.newPage();
  await p2.goto(`${fresh.url}/setup`);
  await p2.waitForURL(/\/login$/);
});

test('add a site: the snippet to paste names the domain and the tracker', async () => {
  const ctx = await signedIn(server);
  try {
    const page = await ctx.newPage();
    await page.goto(`${server.url}/`);
    await page.fill('#ff-new-domain', 'https://www.new-site.test/');
    await page.click('.ff-add-site button[type=submit]');
    const snippet = await page.locator('[data-testid=snippet]').textContent();
    assert.match(snippet, /data-domain="new-site\.test"/);
    assert.match(snippet, /\/js\/footfall\.js/);
    await page.locator('[data-testid=site-list] [data-domain="new-site.test"]').waitFor();
    const sites = await page.evaluate(async () => (await fetch('/api/dashboard/sites')).json());
    assert.ok(sites.some((s) => s.domain === 'new-site.test'));
  } finally {
    await ctx.close();
  }
});

test('numbers: the cards and the top pages match the traffic sent and the query API', async () => {
  assert.deepEqual(await metrics(server, SHOP), [3, 5]);
  const ctx = await signedIn(server);
  try {
    const page = await ctx.newPage();
    await page.goto(`${server.url}/s/${SHOP}`);
    await cardShows(page, 'visitors', '3');
    await cardShows(page, 'pageviews', '5');
    await cardShows(page, 'visits', '3');
    await page.waitForFunction(() => document.querySelectorAll('[data-panel="pages"] .ff-rows .ff-row').length === 2);
    assert.deepEqual(await panelRows(page, 'pages'), [{ label: '/', value: '3' }, { label: '/pricing', value: '2' }]);
    // Titles come from /titles.
    await page.locator('[data-panel="pages"] .ff-row-sub', { hasText: 'Pricing plans' }).waitFor();
    // The graph has one point per day of the last 7 and no error banner. (It is drawn by its
    // own query, which may answer after the cards: wait for it rather than count at once.)
    await page.locator('.ff-chart-x text').first().waitFor();
    assert.equal(await page.locator('.ff-chart-x text').count() > 0, true);
    assert.equal(await page.locator('.ff-banner.is-error').isVisible(), false);
  } finally {
    await ctx.close();
  }
});

test('live: a new visitor shows up in Active now and Visitors within seconds, without a reload', async () => {
  const ctx = await signedIn(server);
  try {
    const page = await ctx.newPage();
    await page.goto(`${server.url}/s/${LIVE}`);
    await page.locator('[data-testid=status][data-status=live]').waitFor();
    await page.locator('[data-testid=active-now]', { hasText: /^0$/ }).waitFor();
    await cardShows(page, 'visitors', '0');
    await page.evaluate(() => { window.__sameDocument = true; });

    await send(server, { site: LIVE, ip: '198.51.100.7', path: '/hello', title: 'Hello' });
    await page.locator('[data-testid=active-now]', { hasText: /^1$/ }).waitFor({ timeout: 5000 });
    await cardShows(page, 'visitors', '1', 5000);
    await page.locator('[data-panel="current"] .ff-row-text', { hasText: '/hello' }).waitFor({ timeout: 5000 });

    await send(server, { site: LIVE, ip: '198.51.100.8', path: '/hello' });
    await page.locator('[data-testid=active-now]', { hasText: /^2$/ }).waitFor({ timeout: 5000 });
    await cardShows(page, 'visitors', '2', 5000);

    assert.equal(await page.evaluate(() => window.__sameDocument), true, 'the page was not reloaded');
    assert.equal(await page.evaluate(() => performance.getEntriesByType('navigation').length), 1);
  } finally {
    await ctx.close();
  }
});

test('filter: clicking a page row filters everything, lives in the URL, and the chip removes it', async () => {
  const ctx = await signedIn(server);
  try {
    const page = await ctx.newPage();
    await page.goto(`${server.url}/s/${SHOP}`);
    await cardShows(page, 'visitors', '3');
    await page.locator('[data-panel="pages"] .ff-row', { hasText: '/pricing' }).click();
    await page.locator('.ff-chip', { hasText: '/pricing' }).waitFor();
    const url = new URL(page.url());
    assert.deepEqual(url.searchParams.getAll('f'), ['event:page:is:/pricing']);
    await cardShows(page, 'visitors', '2');
    await cardShows(page, 'pageviews', '2');
    const [v, pv] = await metrics(server, SHOP, { filters: [['is', 'event:page', ['/pricing']]] });
    assert.deepEqual([v, pv], [2, 2]);

    // Back/forward follow the URL; the bookmarked URL opens filtered.
    await page.goBack();
    await cardShows(page, 'visitors', '3');
    await page.goForward();
    await cardShows(page, 'visitors', '2');

    // The chip's × is a real button, reachable by keyboard.
    const remove = page.locator('.ff-chip .ff-chip-x');
    await remove.focus();
    await page.keyboard.press('Enter');
    await page.locator('.ff-chip').waitFor({ state: 'detached' });
    await cardShows(page, 'visitors', '3');
    assert.equal(new URL(page.url()).searchParams.getAll('f').length, 0);

    const bookmarked = await ctx.newPage();
    await bookmarked.goto(`${server.url}/s/${SHOP}?f=${encodeURIComponent('event:page:is:/pricing')}`);
    await bookmarked.locator('.ff-chip', { hasText: '/pricing' }).waitFor();
    await cardShows(bookmarked, 'pageviews', '2');
  } finally {
    await ctx.close();
  }
});

test('goals and funnels: the Goals panel shows conversions and revenue and filters by a goal; the funnel view shows the steps', async () => {
  // A: pricing then a signup that paid; B: pricing only; C: the home page only.
  await send(server, { site: GOALS, ip: '203.0.113.21', path: '/pricing' });
  await send(server, { site: GOALS, ip: '203.0.113.21', path: '/pricing', name: 'Signup', revenue: { amount: '1249.5', currency: 'EUR' } });
  await send(server, { site: GOALS, ip: '203.0.113.22', path: '/pricing' });
  await send(server, { site: GOALS, ip: '203.0.113.23', path: '/' });
  // Goals and a funnel added after the traffic: they apply to it.
  await adminPost(server, `/api/admin/sites/${GOALS}/goals`, { name: 'Visit pricing', page: '/pricing' });
  await adminPost(server, `/api/admin/sites/${GOALS}/goals`, { name: 'Signup', event: 'Signup', currency: 'EUR' });
  await adminPost(server, `/api/admin/sites/${GOALS}/funnels`, { name: 'Checkout', steps: ['Visit pricing', 'Signup'] });
  const byGoal = await adminQuery(server, { site_id: GOALS, date_range: '7d', metrics: ['visitors', 'events', 'conversion_rate'], dimensions: ['event:goal'] });
  assert.deepEqual(byGoal.results.map((r) => [r.dimensions[0], ...r.metrics]), [['Visit pricing', 2, 2, 66.67], ['Signup', 1, 1, 33.33]]);

  const ctx = await signedIn(server);
  try {
    const page = await ctx.newPage();
    await page.goto(`${server.url}/s/${GOALS}`);
    await cardShows(page, 'visitors', '3');
    const rows = () => page.locator('[data-panel="goals"] .ff-rows .ff-row').evaluateAll((els) =>
      els.map((r) => [r.querySelector('.ff-row-text').textContent, ...[...r.querySelectorAll('.ff-row-val')].map((v) => v.textContent)]));
    await page.waitForFunction(() => document.querySelectorAll('[data-panel="goals"] .ff-rows .ff-row').length === 2);
    // Revenue for the revenue goal only, in its currency.
    assert.deepEqual(await rows(), [['Visit pricing', '2', '2', '66.7%', '—'], ['Signup', '1', '1', '33.3%', '€1.2K']]);

    // The funnel: both entered at pricing, one signed up.
    const funnel = page.locator('[data-panel="funnels"]');
    await funnel.locator('.ff-funnel-step').nth(1).waitFor();
    const steps = await funnel.locator('.ff-funnel-step').evaluateAll((els) => els.map((s) => [
      s.querySelector('.ff-funnel-label').textContent, s.querySelector('.ff-funnel-visitors').textContent,
      s.querySelector('.ff-funnel-rate').textContent]));
    assert.deepEqual(steps, [['Visit pricing', '2', '100%'], ['Signup', '1', '50%']]);
    await funnel.locator('.ff-funnel-drop', { hasText: '1 dropped off (50%)' }).waitFor();
    assert.match(await funnel.locator('.ff-funnel-summary').textContent(), /^2 of 3 visitors entered/);
    assert.equal(await funnel.locator('#ff-funnel-pick').inputValue(), 'Checkout');

    // Choosing a goal filters the dashboard by it, in the URL too.
    await page.locator('[data-panel="goals"] .ff-row', { hasText: 'Signup' }).click();
    await page.locator('.ff-chip', { hasText: 'Signup' }).waitFor();
    assert.deepEqual(new URL(page.url()).searchParams.getAll('f'), ['event:goal:is:Signup']);
    await cardShows(page, 'visitors', '1');
    await page.waitForFunction(() => document.querySelectorAll('[data-panel="goals"] .ff-rows .ff-row').length === 1);
    assert.equal(await page.locator('.ff-banner.is-error').isVisible(), false);
  } finally {
    await ctx.close();
  }
});

test('goal settings: a signed-in user adds and removes goals and a funnel; a bad goal says why and changes nothing', async () => {
  await send(server, { site: SETTINGS, ip: '203.0.113.31', path: '/' });
  await send(server, { site: SETTINGS, ip: '203.0.113.31', path: '/docs' });
  await send(server, { site: SETTINGS, ip: '203.0.113.32', path: '/' });
  const ctx = await signedIn(server);
  try {
    const page = await ctx.newPage();
    await page.goto(`${server.url}/s/${SETTINGS}`);
    await cardShows(page, 'visitors', '2');
    const panel = page.locator('[data-panel="goals"]');
    await panel.locator('[data-testid=goal-settings]').click();
    const form = panel.locator('[data-testid=goal-form]');
    const addGoal = async (name, kind, target) => {
      await form.locator('[name=goal-name]').fill(name);
      await form.locator('[name=goal-kind]').selectOption(kind);
      await form.locator('[name=goal-target]').fill(target);
      await form.locator('button[type=submit]').click();
    };
    // A pattern without a leading slash: the server's reason, shown; nothing saved.
    await addGoal('Docs', 'page', 'docs');
    await panel.locator('.ff-settings-msg.is-error', { hasText: 'start with /' }).waitFor();
    assert.equal(await panel.locator('[data-testid=goal-list] li').count(), 0);

    await addGoal('Home', 'page', '/');
    await panel.locator('[data-testid=goal-list] li', { hasText: 'Home' }).waitFor();
    await addGoal('Docs', 'page', '/docs**');
    await panel.locator('[data-testid=goal-list] li', { hasText: 'Docs' }).waitFor();
    // A revenue goal: a custom event with a currency, which the form offers for events only.
    assert.equal(await form.locator('[name=goal-currency]').isVisible(), false);
    await form.locator('[name=goal-kind]').selectOption('event');
    await form.locator('[name=goal-currency]').fill('usd');
    await addGoal('Upgrade', 'event', 'Upgrade');
    await panel.locator('[data-testid=goal-list] li', { hasText: 'revenue in USD' }).waitFor();
    const saved = await adminGet(server, `/api/admin/sites/${SETTINGS}/goals`);
    assert.deepEqual(saved.goals.find((g) => g.name === 'Upgrade'), { name: 'Upgrade', event: 'Upgrade', currency: 'USD' });
    await panel.locator('[data-testid=goal-list] li', { hasText: 'Upgrade' }).locator('button').click();
    await panel.locator('[data-testid=goal-list] li', { hasText: 'Upgrade' }).waitFor({ state: 'detached' });
    // The panel counts past traffic at once: the goals are a lens on it.
    await page.waitForFunction(() => document.querySelectorAll('[data-panel="goals"] .ff-rows .ff-row').length === 2);
    const goals = await adminQuery(server, { site_id: SETTINGS, date_range: '7d', metrics: ['visitors'], dimensions: ['event:goal'] });
    assert.deepEqual(goals.results.map((r) => [r.dimensions[0], r.metrics[0]]), [['Home', 2], ['Docs', 1]]);

    // A funnel of the two; it shows in the funnel view.
    const funnelForm = panel.locator('[data-testid=funnel-form]');
    await funnelForm.locator('[name=funnel-name]').fill('Home to docs');
    await funnelForm.locator('[name=funnel-steps]').fill('Home\nDocs');
    await funnelForm.locator('button[type=submit]').click();
    await panel.locator('[data-testid=funnel-list] li', { hasText: 'Home → Docs' }).waitFor();
    const funnel = page.locator('[data-panel="funnels"]');
    await funnel.locator('.ff-funnel-step').nth(1).waitFor();
    assert.deepEqual(await funnel.locator('.ff-funnel-visitors').allTextContents(), ['2', '1']);

    // The session alone can't change settings: a cross-site form has no CSRF token.
    const forged = await ctx.request.post(`${server.url}/api/dashboard/sites/${SETTINGS}/goals`, { data: { name: 'X', page: '/x' } });
    assert.equal(forged.status(), 403);
    const anonymous = await fetch(`${server.url}/api/dashboard/sites/${SETTINGS}/goals`);
    assert.equal(anonymous.status, 401);

    // Removing a goal: gone from the list and the panel.
    await panel.locator('[data-testid=goal-list] li', { hasText: 'Home' }).locator('button').click();
    await panel.locator('[data-testid=goal-list] li', { hasText: 'Home' }).waitFor({ state: 'detached' });
    await page.waitForFunction(() => document.querySelectorAll('[data-panel="goals"] .ff-rows .ff-row').length === 1);
    assert.equal(await page.locator('.ff-banner.is-error').isVisible(), false);
  } finally {
    await ctx.close();
  }
});

test('segments: the current filters saved as a segment become its chip; applied from the menu; removed', async () => {
  // Two of three visitors view /pricing.
  for (const [ip, path] of [['203.0.113.41', '/pricing'], ['203.0.113.42', '/'], ['203.0.113.43', '/pricing']]) {
    await send(server, { site: SEGMENTS, ip, path });
  }
  const ctx = await signedIn(server);
  try {
    const page = await ctx.newPage();
    await page.goto(`${server.url}/s/${SEGMENTS}?f=${encodeURIComponent('event:page:is:/pricing')}`);
    await cardShows(page, 'visitors', '2');
    const trigger = page.locator('[data-testid=segments]');
    await trigger.click();
    const form = page.locator('[data-testid=segment-form]');
    await form.locator('[name=segment-name]').fill('Pricing readers');
    await form.locator('[name=segment-shared]').check();
    await form.locator('button[type=submit]').click();
    // The page filter became the segment, and means the same.
    await page.locator('.ff-chip', { hasText: 'Pricing readers' }).waitFor();
    assert.deepEqual(new URL(page.url()).searchParams.getAll('f'), ['segment:is:Pricing readers']);
    await cardShows(page, 'visitors', '2');
    const saved = await adminGet(server, `/api/admin/sites/${SEGMENTS}/segments`);
    assert.deepEqual(saved.segments.map((x) => [x.name, x.shared, x.owner, x.filters]),
      [['Pricing readers', true, USER.username, [['is', 'event:page', ['/pricing']]]]]);

    // Off, then on again from the menu.
    await page.locator('.ff-chip-x').click();
    await cardShows(page, 'visitors', '3');
    await trigger.click();
    assert.equal(await form.isVisible(), false, 'nothing to save without filters');
    await page.locator('[data-segment="Pricing readers"]').click();
    await page.locator('.ff-chip', { hasText: 'Pricing readers' }).waitFor();
    await cardShows(page, 'visitors', '2');

    // Removed by its owner.
    await trigger.click();
    await page.locator('[aria-label="Remove segment Pricing readers"]').click();
    await page.locator('.ff-seg-empty').waitFor();
    assert.deepEqual((await adminGet(server, `/api/admin/sites/${SEGMENTS}/segments`)).segments, []);
    assert.equal(await page.locator('.ff-banner.is-error').isVisible(), false);
  } finally {
    await ctx.close();
  }
});

test('content catalogue: Top pages show page types and titles; published pages without views are listed as not yet visited', async () => {
  await send(server, { site: CONTENT, ip: '203.0.113.51', path: '/blog/first', title: 'first - the page says' });
  await adminPut(server, `/api/sites/${CONTENT}/content`, [
    { path: '/blog/first', title: 'The first post', type: 'post' },
    { path: '/blog/second', title: 'The second post', type: 'post' },
    { path: '/about', type: 'page' },
    { path: '/draft', title: 'Draft', type: 'post', published: false },
  ]);
  const ctx = await signedIn(server);
  try {
    const page = await ctx.newPage();
    await page.goto(`${server.url}/s/${CONTENT}`);
    await cardShows(page, 'visitors', '1');
    const top = page.locator('[data-panel="pages"] .ff-row', { hasText: '/blog/first' });
    await top.locator('.ff-row-sub', { hasText: 'Post · The first post' }).waitFor();
    const panel = page.locator('[data-panel="unvisited"]');
    await panel.waitFor();
    assert.match(await panel.locator('.ff-unvisited-summary').textContent(), /^2 of 3 published pages have no views/);
    assert.deepEqual(await panel.locator('.ff-unvisited-title').allTextContents(), ['/about', 'The second post']);
    // A filter narrows what counts as visited.
    await page.goto(`${server.url}/s/${CONTENT}?f=${encodeURIComponent('event:page:is:/nowhere')}`);
    await panel.locator('.ff-unvisited-summary', { hasText: '3 of 3' }).waitFor();
    assert.equal(await page.locator('.ff-banner.is-error').isVisible(), false);
  } finally {
    await ctx.close();
  }
});

test('share link: created in the UI, opens read-only without a login; a bad token is refused', async (t) => {
  const ctx = await signedIn(server);
  t.after(() => ctx.close());
  const page = await ctx.newPage();
  await page.goto(`${server.url}/s/${SHOP}`);
  await page.click('[data-testid=share]');
  await page.click('[data-testid=share-create]');
  const shareUrl = await page.locator('[data-testid=share-url]').inputValue();
  assert.match(shareUrl, new RegExp(`^${server.url}/share/[^/]+$`));

  const anon = await context();
  t.after(() => anon.close());
  const shared = await anon.newPage();
  await shared.goto(shareUrl);
  await cardShows(shared, 'visitors', '3');
  await cardShows(shared, 'pageviews', '5');
  await shared.locator('[data-testid=status][data-status=live]').waitFor();
  await shared.waitForFunction(() => document.querySelectorAll('[data-panel="pages"] .ff-rows .ff-row').length === 2);
  assert.equal(await shared.locator('[data-testid=share]').count(), 0, 'no share management');
  assert.equal(await shared.locator('[data-testid=site-switcher]').count(), 0, 'no site picker');
  assert.equal(await shared.locator('[data-testid=account]').count(), 0, 'no account menu');
  const sitesStatus = await shared.evaluate(async () => (await fetch('/api/dashboard/sites')).status);
  assert.equal(sitesStatus, 401);

  // Filters work in share mode too (every read carries the token).
  await shared.locator('[data-panel="pages"] .ff-row', { hasText: '/pricing' }).click();
  await cardShows(shared, 'visitors', '2');

  const bad = await anon.newPage();
  await bad.goto(`${server.url}/share/not-a-real-token`);
  await bad.locator('.ff-message', { hasText: /invalid|turned off/ }).waitFor();

  // Disabling the link locks it again.
  if (!(await page.locator('[data-testid=share-disable]').isVisible())) await page.click('[data-testid=share]');
  await page.locator('[data-testid=share-disable]').click();
  await page.locator('[data-testid=share-create]').waitFor();
  const after = await anon.newPage();
  await after.goto(shareUrl);
  await after.locator('.ff-message', { hasText: /invalid|turned off/ }).waitFor();
});

test('map: a visitor with a location shows as a live dot and shades the country; clicking it filters', async () => {
  await send(server, { site: GEO, ip: '192.0.2.44', path: '/', geo: { country: 'DE', city: 'Berlin', latitude: 52.52, longitude: 13.4 } });
  const st = await live(server, GEO);
  assert.equal(st.visitorLocations[0]?.country, 'DE', JSON.stringify(st.visitorLocations));
  const ctx = await signedIn(server);
  try {
    const page = await ctx.newPage();
    await page.goto(`${server.url}/s/${GEO}`);
    await page.locator('.ff-map-dot').first().waitFor();
    const DE = '[data-panel="map"] path.ff-map-country[data-country="DE"]';
    await page.waitForFunction((sel) => document.querySelector(sel)?.classList.contains('ff-map-has-visitors'), DE);
    await page.locator('[data-panel="locations"] .ff-row-text', { hasText: 'Germany' }).waitFor();
    // A real click in the middle of Germany (the Berlin dot may be on top: it means Germany too).
    const box = await page.locator(DE).boundingBox();
    await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
    await page.locator('.ff-chip', { hasText: 'Germany' }).waitFor();
    assert.deepEqual(new URL(page.url()).searchParams.getAll('f'), ['visit:country:is:DE']);
    await cardShows(page, 'visitors', '1');
  } finally {
    await ctx.close();
  }
});

test('robust: blocked storage, an impossible custom date and a malformed address still give a working page', async (t) => {
  const ctx = await signedIn(server);
  t.after(() => ctx.close());
  // As in a third-party iframe with storage blocked: every localStorage access throws.
  await ctx.addInitScript(() => {
    Object.defineProperty(window, 'localStorage', { get() { throw new DOMException('blocked', 'SecurityError'); } });
  });
  const [visitors] = await metrics(server, SHOP);
  const page = await ctx.newPage();
  // 2026-02-31 doesn't exist: the range falls back to the default instead of failing queries.
  await page.goto(`${server.url}/s/${SHOP}?range=custom&from=2026-02-31&to=2026-03-02`);
  await cardShows(page, 'visitors', String(visitors));
  const errors = await page.locator('.ff-error, [role=alert]').evaluateAll((els) =>
    els.filter((e) => e.offsetParent !== null && e.textContent.trim()).map((e) => e.textContent.trim()));
  assert.deepEqual(errors, [], 'no error shown');
  await page.goto(`${server.url}/s/50%off`);
  await page.getByText('Page not found').waitFor();
});

/** A loopback port nothing listens on right now. */
async function freePort() {
  const srv = createServer();
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address();
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

test('connection: the header shows when the server is gone, and the dashboard reconnects by itself', async (t) => {
  const site = 'pub.test';
  const listen = `127.0.0.1:${await freePort()}`;
  const first = await startServer({ publicSites: [site], listen });
  const ctx = await context();
  t.after(() => ctx.close());
  const page = await ctx.newPage();
  await page.goto(`${first.url}/s/${site}?range=day`);
  await page.locator('[data-testid=status][data-status=live]').waitFor();
  await page.evaluate(() => { window.__noReload = true; });

  await first.stop({ keepData: true });
  await page.locator('[data-testid=status][data-status=reconnecting], [data-testid=status][data-status=offline]')
    .waitFor({ timeout: 15_000 });

  const second = await startServer({ listen, dataDir: first.dataDir });
  t.after(() => second.stop());
  await page.locator('[data-testid=status][data-status=live]').waitFor({ timeout: 20_000 });
  await send(second, { site, ip: '203.0.113.77', path: '/after-restart' });
  await page.waitForFunction(() => Number(document.querySelector('[data-testid=active-now]')?.textContent) === 1,
    null, { timeout: 10_000 });
  assert.equal(await page.evaluate(() => window.__noReload), true, 'no reload happened');
});

test('screenshot: the demo, live, at 1440 wide in light (whole page) and dark, and on a phone', async (t) => {
  const demo = await startServer({ demo: true });
  t.after(() => demo.stop());
  // The demo writes a month of history in the background first; shoot once it is all there.
  await demo.waitForLog(/demo: .*history/, 30_000);
  const ctx = await context({ viewport: { width: 1440, height: 900 }, colorScheme: 'light', deviceScaleFactor: 1 });
  t.after(() => ctx.close());
  const page = await ctx.newPage();
  await page.goto(`${demo.url}/`);
  await page.waitForURL(/\/s\/demo\.example/);
  // Comparison is on by default; the toggle turns it off and on again through the URL.
  await page.click('[data-testid=compare]');
  await page.waitForURL(/compare=0/);
  await page.waitForFunction(() => document.querySelector('.ff-chart-compare')?.style.display === 'none');
  await page.click('[data-testid=compare]');
  await page.waitForURL((u) => !u.search.includes('compare='));
  await page.locator('[data-testid=status][data-status=live]').waitFor();
  // Everything populated; on a timeout, say which part wasn't.
  const state = () => page.evaluate(() => {
    const n = (sel) => document.querySelectorAll(sel).length;
    return {
      active: Number(document.querySelector('[data-testid=active-now]')?.textContent || 0),
      pages: n('[data-panel="pages"] .ff-rows .ff-row'), sources: n('[data-panel="sources"] .ff-rows .ff-row'),
      current: n('[data-panel="current"] .ff-rows .ff-row'), compare: [...document.querySelectorAll('.ff-chart-compare')].filter((e) => e.style.display !== 'none' && e.getAttribute('d')).length, changes: n('.ff-change:not(:empty)'),
      dots: n('.ff-map-dot'), shaded: n('.ff-map-has-visitors'),
      loading: n('.ff-stat.is-loading') + n('.ff-chart.is-loading'), fonts: document.fonts.status,
    };
  });
  await waitFor(async () => {
    const s = await state();
    return s.active >= 3 && s.pages >= 5 && s.sources >= 5 && s.current >= 2 && s.compare === 1 && s.changes >= 6 &&
      s.dots >= 2 && s.shaded >= 5 && s.loading === 0 && s.fonts === 'loaded' && s;
  }, { timeout: 30_000, interval: 250, message: 'the demo dashboard to fill in' });
  // Between two live refreshes: no bar or line is mid-glide.
  const settled = () => page.waitForFunction(() => !document.getAnimations().some((a) => a instanceof CSSTransition));
  await settled();
  await page.screenshot({ path: SCREENSHOT, animations: 'disabled', fullPage: true });
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.waitForFunction(() => getComputedStyle(document.body).backgroundColor !== 'rgb(244, 245, 248)');
  await settled();
  await page.screenshot({ path: SCREENSHOT_DARK, animations: 'disabled' });
  const phone = await context({ viewport: { width: 375, height: 812 }, isMobile: true, hasTouch: true });
  t.after(() => phone.close());
  const p2 = await phone.newPage();
  await p2.goto(`${demo.url}/s/demo.example`);
  await p2.waitForFunction(() => document.querySelectorAll('.ff-stat.is-loading').length === 0 &&
    document.querySelectorAll('[data-panel="pages"] .ff-rows .ff-row').length >= 5);
  const overflow = await p2.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `the phone layout scrolls sideways by ${overflow}px`);
  await p2.screenshot({ path: SCREENSHOT_PHONE, animations: 'disabled' });
});
