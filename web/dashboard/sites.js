// The site list ("/"): every site with who is on it now and a 7-day sparkline, plus "Add site".
import { api } from './api.js';
import { copyButton, h, icon, svg } from './dom.js';
import { smoothPath } from './chart.js';
import { formatNumber, plural } from './format.js';
import { accountControl, brand, siteMark } from './header.js';
import { link } from './router.js';
import { themeButton } from './theme.js';

function timeZones() {
  let zones = [];
  try { zones = Intl.supportedValuesOf('timeZone'); } catch { zones = []; }
  const here = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  return [...new Set([here, 'UTC', ...zones])].sort((a, b) => a.localeCompare(b));
}

function sparkline(values) {
  const w = 120; const hgt = 32;
  const max = Math.max(1, ...values);
  const pts = values.map((v, i) => [values.length < 2 ? w / 2 : (i * w) / (values.length - 1), hgt - 2 - (v / max) * (hgt - 4)]);
  const d = smoothPath(pts);
  return svg('svg', { class: 'ff-spark', viewBox: `0 0 ${w} ${hgt}`, preserveAspectRatio: 'none', 'aria-hidden': 'true' },
    svg('path', { d: `${d}L${w},${hgt}L0,${hgt}Z`, class: 'ff-spark-area' }), svg('path', { d, class: 'ff-spark-line' }));
}

function siteCard(site) {
  const active = h('span', { class: 'ff-site-active', dataset: { testid: 'site-active' } }, h('span', { class: 'ff-live-dot', 'aria-hidden': 'true' }), h('span', { text: '…' }));
  const visitors = h('span', { class: 'ff-site-visitors ff-skel-text', text: '' });
  const spark = h('div', { class: 'ff-site-spark' });
  const el = link(`/s/${encodeURIComponent(site.domain)}`, { class: 'ff-card ff-site-card', 'data-domain': site.domain },
    h('div', { class: 'ff-site-card-top' }, siteMark(site.domain), h('span', { class: 'ff-site-card-name', text: site.domain }),
      site.public ? h('span', { class: 'ff-tag', text: 'public' }) : null),
    h('div', { class: 'ff-site-card-mid' }, h('div', {}, visitors, h('span', { class: 'ff-muted ff-small', text: 'visitors, last 7 days' })), spark),
    h('div', { class: 'ff-site-card-foot' }, active, h('span', { class: 'ff-muted ff-small', text: site.timezone })));
  async function loadActive() {
    try {
      const live = await api.live(site.domain, 0);
      const n = live.activeVisitors || 0;
      active.lastChild.textContent = `${formatNumber(n)} active now`;
      active.classList.toggle('is-zero', n === 0);
    } catch { active.lastChild.textContent = '–'; }
  }
  async function loadTrend() {
    try {
      const [agg, series] = await Promise.all([
        api.query({ site_id: site.domain, date_range: '7d', metrics: ['visitors'] }),
        api.query({ site_id: site.domain, date_range: '7d', metrics: ['visitors'], dimensions: ['time:day'], include: { time_labels: true } }),
      ]);
      visitors.classList.remove('ff-skel-text');
      visitors.textContent = formatNumber(agg.results[0]?.metrics[0] ?? 0);
      const by = new Map(series.results.map((r) => [r.dimensions[0], r.metrics[0]]));
      spark.replaceChildren(sparkline((series.meta.time_labels || []).map((l) => by.get(l) || 0)));
    } catch { visitors.classList.remove('ff-skel-text'); visitors.textContent = '–'; }
  }
  return { el, loadActive, loadTrend };
}

function addSiteForm(onAdded) {
  const domain = h('input', { class: 'ff-input', id: 'ff-new-domain', name: 'domain', required: true, placeholder: 'example.com',
    autocapitalize: 'none', spellcheck: 'false', autocomplete: 'off' });
  const tz = h('select', { class: 'ff-select', id: 'ff-new-tz', name: 'timezone' },
    ...timeZones().map((z) => h('option', { value: z, text: z.replaceAll('_', ' ') })));
  tz.value = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  const err = h('p', { class: 'ff-form-error', role: 'alert', dataset: { testid: 'add-site-error' } });
  const result = h('div', { class: 'ff-snippet-box', hidden: true, dataset: { testid: 'snippet-box' } });
  const form = h('form', { class: 'ff-form ff-add-site' },
    h('div', { class: 'ff-add-fields' },
      h('div', { class: 'ff-field' }, h('label', { for: 'ff-new-domain', text: 'Domain' }), domain,
        h('span', { class: 'ff-field-hint', text: 'Without https:// or www — subdomains are counted too.' })),
      h('div', { class: 'ff-field' }, h('label', { for: 'ff-new-tz', text: 'Reporting time zone' }), tz)),
    err,
    h('button', { type: 'submit', class: 'ff-btn ff-btn-primary' }, icon('plus'), h('span', { text: 'Add site' })));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.textContent = '';
    const d = domain.value.trim().replace(/^https?:\/\//, '').replace(/\/.*$/, '').replace(/^www\./, '').toLowerCase();
    const btn = form.querySelector('button[type=submit]');
    btn.disabled = true;
    try {
      const site = await api.addSite(d, tz.value);
      const code = h('code', { text: site.snippet, dataset: { testid: 'snippet' } });
      result.replaceChildren(
        h('h3', {}, icon('check'), h('span', { text: `${site.domain} is ready` })),
        h('p', { class: 'ff-muted', text: `Paste this into the <head> of every page on ${site.domain}. Visits show up live, within a second.` }),
        h('div', { class: 'ff-snippet' }, h('pre', {}, code), copyButton(() => site.snippet)),
        link(`/s/${encodeURIComponent(site.domain)}`, { class: 'ff-btn ff-btn-primary' }, h('span', { text: 'Open the dashboard' }), icon('arrow')));
      result.hidden = false;
      domain.value = '';
      if (site.created !== false) onAdded(site); // an existing site already has its card
      result.querySelector('button')?.focus();
    } catch (e2) {
      err.textContent = e2.message;
    } finally {
      btn.disabled = false;
    }
  });
  return h('section', { class: 'ff-card ff-add-card', 'aria-labelledby': 'ff-h-add' },
    h('h2', { id: 'ff-h-add', text: 'Add a site' }), form, result);
}

export async function sitesPage() {
  document.title = 'Sites · footfall';
  const grid = h('div', { class: 'ff-site-grid', dataset: { testid: 'site-list' } });
  const count = h('p', { class: 'ff-muted' });
  const cards = [];
  function addCard(site) {
    const c = siteCard(site);
    cards.push(c);
    grid.append(c.el);
    c.loadActive();
    c.loadTrend();
    count.textContent = plural(cards.length, 'site', 'sites');
    grid.hidden = false;
  }
  const add = addSiteForm(addCard);
  const main = h('main', { class: 'ff-page ff-sites' },
    h('div', { class: 'ff-page-head' }, h('h1', { text: 'Your sites' }), count), grid, add);
  const el = h('div', { class: 'ff-app' },
    h('header', { class: 'ff-topbar' }, h('div', { class: 'ff-topbar-inner' }, brand('/'), h('div', { class: 'ff-spacer' }), themeButton(), accountControl())),
    main);
  grid.hidden = true;
  try {
    const sites = await api.sites();
    sites.forEach(addCard);
    if (!sites.length) count.textContent = 'No sites yet. Add your first one below — it takes a minute.';
  } catch (e) {
    count.textContent = e.message;
  }
  const timer = setInterval(() => { if (!document.hidden) cards.forEach((c) => c.loadActive()); }, 10000);
  return { el, destroy() { clearInterval(timer); } };
}
