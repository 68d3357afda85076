// The whole path in one browser: a site with the tracker is visited (SPA navigations, a second
// tab, a custom event), and the dashboard — logged in, then through a share link — shows those
// visits, and moves by itself when another visitor arrives. Nothing here posts events itself:
// every number on the dashboard came from the tracker.
// Waits poll observable state, never a fixed delay.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, startPageServer, launchBrowser, newContext, waitFor, adminQuery } from './harness.mjs';

const SITE = 'journey.test';
const USER = { username: 'owner', password: 'correct horse battery staple' };
const FIREFOX_UA = 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0';

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

/** A small SPA: links call history.pushState and set the title, as a router would. */
function spa(stats) {
  const script = `
    const TITLES = {'/': 'Journey home', '/pricing': 'Journey pricing', '/docs': 'Journey docs'};
    function render() { document.title = TITLES[location.pathname] || location.pathname; }
    function go(path) { history.pushState({}, '', path); render(); }
    render();`;
  return `<!doctype html><html><head><meta charset="utf-8"><title>Journey</title>
    <script>${script}</script>
    <script defer data-domain="${SITE}" data-allow-localhost src="${stats}/js/footfall.js"></script>
    </head><body><button id="to-pricing" onclick="go('/pricing')">pricing</button>
    <button id="signup" onclick="footfall('Signup', {props: {plan: 'pro'}})">sign up</button></body></html>`;
}

const cardValue = (metric) => `.ff-stat[data-metric="${metric}"]:not(.is-loading) .ff-stat-value`;

async function cardIs(page, metric, text) {
  await page.waitForFunction(([sel, t]) => document.querySelector(sel)?.textContent === t, [cardValue(metric), text], {
    timeout: 10_000,
  }).catch(async () => {
    const shown = await page.locator(`.ff-stat[data-metric="${metric}"] .ff-stat-value`).textContent();
    throw new Error(`card ${metric} shows ${shown}, expected ${text}`);
  });
}

async function rows(page, panel) {
  return page.locator(`[data-panel="${panel}"] .ff-rows .ff-row`).evaluateAll((els) =>
    els.map((r) => ({ label: r.textContent, value: r.querySelector('.ff-row-val')?.textContent })),
  );
}

test('tracker visits show on the dashboard, logged in and shared, and new visitors appear without reload', async (t) => {
  const server = await startServer({ sites: [SITE], users: [USER] });
  t.after(() => server.stop());
  const stats = `http://stats.${SITE}:${server.port}`;
  const pages = await startPageServer({ '/': { body: spa(stats) } }, { fallback: '/' });
  t.after(() => pages.stop());

  // A visitor: lands on /, goes to /pricing in the SPA, opens /docs in a second tab, signs up.
  const visitor = await newContext(browser);
  t.after(() => visitor.close());
  const tab1 = await visitor.newPage();
  await tab1.goto(pages.url(SITE, '/'));
  await tab1.click('#to-pricing');
  const tab2 = await visitor.newPage();
  await tab2.goto(pages.url(SITE, '/docs'));
  await tab1.bringToFront();
  await tab1.click('#signup');
  const truth = await waitFor(async () => {
    const r = await adminQuery(server, { site_id: SITE, date_range: 'day', metrics: ['visitors', 'pageviews', 'events'] });
    const [visitors, pageviews, events] = r.results[0]?.metrics ?? [];
    return pageviews === 3 && events >= 4 && { visitors, pageviews };
  }, { message: 'the tracker’s three page views and the Signup event to be stored' });
  assert.equal(truth.visitors, 1, 'two tabs of one browser are one visitor');

  // The owner's dashboard shows exactly that.
  const owner = await newContext(browser, { viewport: { width: 1280, height: 900 } });
  t.after(() => owner.close());
  const login = await owner.request.post(`${server.url}/api/dashboard/login`, { data: USER });
  assert.equal(login.status(), 200);
  const { csrf } = await login.json();
  const dash = await owner.newPage();
  await dash.goto(`${server.url}/s/${SITE}?range=day`);
  await dash.evaluate(() => { window.__noReload = true; });
  await cardIs(dash, 'visitors', '1');
  await cardIs(dash, 'pageviews', '3');
  await dash.waitForFunction(() => Number(document.querySelector('[data-testid=active-now]')?.textContent) === 1);
  await waitFor(async () => {
    const pagesPanel = await rows(dash, 'pages');
    const labels = pagesPanel.map((r) => r.label).join(' | ');
    return ['/pricing', '/docs', 'Journey pricing'].every((s) => labels.includes(s)) && pagesPanel;
  }, { message: 'top pages with their titles' });
  await waitFor(async () => (await rows(dash, 'events')).some((r) => /Signup/.test(r.label) && r.value === '1'), {
    message: 'the Signup custom event in its panel',
  });

  // A second visitor (another browser) arrives while the dashboard is open: it moves by itself.
  const other = await newContext(browser, { userAgent: FIREFOX_UA });
  t.after(() => other.close());
  const p = await other.newPage();
  await p.goto(pages.url(SITE, '/docs'));
  await cardIs(dash, 'visitors', '2');
  await cardIs(dash, 'pageviews', '4');
  await dash.waitForFunction(() => Number(document.querySelector('[data-testid=active-now]')?.textContent) === 2);
  assert.equal(await dash.evaluate(() => window.__noReload), true, 'the dashboard was not reloaded');

  // The same numbers through a share link, without a login.
  const share = await owner.request.post(`${server.url}/api/dashboard/sites/${SITE}/share`, {
    headers: { 'x-csrf-token': csrf, 'content-type': 'application/json' },
    data: {},
  });
  assert.equal(share.status(), 200);
  const { share_token } = await share.json();
  const guest = await newContext(browser);
  t.after(() => guest.close());
  const shared = await guest.newPage();
  await shared.goto(`${server.url}/share/${share_token}?range=day`);
  await cardIs(shared, 'visitors', '2');
  await cardIs(shared, 'pageviews', '4');
  assert.equal((await guest.cookies()).length, 0, 'no cookie is needed or set for a share link');
});
