// The dashboard for one site (/s/{domain}) or a share link (/share/{token}, read-only):
// wires the header, cards, graph, panels, map and the live stream to the view state in the URL.
import { api, getShareToken, setShareToken } from './api.js';
import { copyButton, h, icon } from './dom.js';
import { panelDefs, rowFor } from './breakdowns.js';
import { CARD_METRICS, createCards } from './cards.js';
import { createChart } from './chart.js';
import { createCurrentPanel } from './current.js';
import { createEventsPanel } from './events.js';
import { createGoalsPanel } from './goals.js';
import { createSegmentsControl } from './segments.js';
import { createUnvisitedPanel } from './unvisited.js';
import { createFunnelsPanel } from './funnels.js';
import { readState, renderChips, toApiFilters, withFilter, withoutFilter, writeState } from './filters.js';
import { METRICS, formatDay, formatNumber, todayIn } from './format.js';
import { accountControl, brand, siteSwitcher, statusPill } from './header.js';
import { connectLive } from './live.js';
import { createMapPanel } from './mappanel.js';
import { createPanel } from './panels.js';
import { rangeQuery } from './range.js';
import { createRangePicker } from './rangepicker.js';
import { link, navigate, setQuery } from './router.js';
import { rememberSite, session } from './session.js';
import { createShareControl } from './sharelink.js';
import { themeButton } from './theme.js';
import { createThrottle } from './throttle.js';
import { getPref, setPref } from './prefs.js';

const REFRESH_GAP_MS = 1500; // live refreshes of the range numbers: at most one per 1.5 s

export function messagePage(title, message, actions = []) {
  return { el: h('main', { class: 'ff-auth' },
    h('div', { class: 'ff-auth-top' }, brand('/'), themeButton()),
    h('div', { class: 'ff-card ff-auth-card ff-message', role: 'alert' }, h('h1', { text: title }), h('p', { class: 'ff-muted', text: message }),
      actions.length ? h('div', { class: 'ff-message-actions' }, ...actions) : null)) };
}

async function resolveSite({ domain, shareToken }) {
  if (!shareToken) setShareToken(null); // a view without a link reads as itself
  if (shareToken) {
    setShareToken(shareToken);
    try {
      return await api.shareInfo(shareToken);
    } catch (e) {
      setShareToken(null);
      if (e.status === 404) {
        return { error: messagePage('This link does not work', 'The share link is invalid or has been turned off. Ask whoever sent it for a new one.') };
      }
      return { error: messagePage('Could not open this dashboard', e.message) };
    }
  }
  try {
    return await api.site(domain);
  } catch (e) {
    if (e.status === 401 || e.status === 403) {
      navigate(`/login?next=${encodeURIComponent(location.pathname + location.search)}`, { replace: true });
      return { redirected: true };
    }
    const back = link('/', { class: 'ff-btn' }, h('span', { text: 'All sites' }));
    if (e.status === 404) return { error: messagePage('Site not found', `There is no site called ${domain} here.`, session.user ? [back] : []) };
    return { error: messagePage('Could not open this dashboard', e.message, [back]) };
  }
}

export async function dashboardPage({ domain, shareToken = null }) {
  const info = await resolveSite({ domain, shareToken });
  if (info.redirected) return null;
  if (info.error) return info.error;
  const site = info.domain;
  const timeZone = info.timezone || 'UTC';
  const readonly = !!shareToken;
  if (!readonly) rememberSite(site);

  let state = readState();
  let metric = METRICS[getPref('ff:metric')] ? getPref('ff:metric') : 'visitors';
  let rq = rangeQuery(state, timeZone);
  let gen = 0; // bumps when the view state changes; stale answers are dropped
  let graphData = null;
  let destroyed = false;
  let activeNow = 0;

  // --- data -------------------------------------------------------------------------------
  // The site's content catalogue (titles and types of known pages), read once per view.
  let catalogueOnce = null;
  const catalogue = () => (catalogueOnce ??= api.content(site).then((c) => c.entries).catch(() => []));
  const titleCache = new Map();
  async function titles(paths) {
    const known = new Map((await catalogue()).map((e) => [e.path, e]));
    const typed = (p) => {
      const e = known.get(p);
      if (!e) return titleCache.get(p) || '';
      const t = e.title || titleCache.get(p) || '';
      return `${e.type[0].toUpperCase()}${e.type.slice(1)}${t ? ` · ${t}` : ''}`;
    };
    const missing = paths.filter((p) => !titleCache.has(p));
    if (missing.length) {
      try {
        const got = await api.titles(site, missing.slice(0, 50));
        for (const p of missing.slice(0, 50)) titleCache.set(p, got?.[p] || '');
      } catch { /* not cached: asked again next time */ }
    }
    return Object.fromEntries(paths.map((p) => [p, typed(p)]));
  }

  function base(extraFilters = []) {
    const q = { site_id: site, date_range: rq.date_range, filters: [...toApiFilters(state.filters), ...extraFilters] };
    if (rq.date) q.date = rq.date;
    return q;
  }

  function run({ dimension, metrics, filters = [], limit = 10, orderBy }) {
    return api.query({ ...base(filters), metrics, dimensions: [dimension],
      order_by: orderBy || [[metrics[0], 'desc']], pagination: { limit }, include: { total_rows: true } });
  }

  async function fetchRows(dimension) {
    const res = await run({ dimension, metrics: ['visitors', 'percentage'] });
    return { rows: res.results.map((r) => rowFor(dimension, r)), total: res.meta?.total_rows ?? res.results.length };
  }

  // --- header ------------------------------------------------------------------------------
  const status = statusPill();
  const rangePicker = createRangePicker({ today: () => todayIn(timeZone), onChange: (patch) => setState({ ...state, ...patch }) });
  const compareBtn = h('button', { type: 'button', class: 'ff-btn ff-toggle', dataset: { testid: 'compare' }, 'aria-pressed': 'false',
    title: 'Compare with the previous period', onclick: () => setState({ ...state, compare: !state.compare }) },
  icon('compare'), h('span', { class: 'ff-hide-sm', text: 'Compare' }));
  const headerRight = [rangePicker.el, compareBtn];
  if (!readonly && session.user) {
    // Saving the current filters replaces them with the segment they became.
    headerRight.push(createSegmentsControl({ site,
      filters: () => toApiFilters(state.filters.filter((f) => f.dim !== 'segment')),
      onApply: (name) => setState(withFilter(state, 'segment', name)),
      onSaved: (name) => setState({ ...state, filters: [...state.filters.filter((f) => f.dim === 'segment'), { dim: 'segment', op: 'is', value: name }] }) }).el);
    headerRight.push(createShareControl({ domain: site }).el);
  }
  headerRight.push(themeButton());
  if (!readonly) headerRight.push(accountControl());
  const header = h('header', { class: 'ff-topbar' }, h('div', { class: 'ff-topbar-inner' },
    h('div', { class: 'ff-topbar-left' }, brand(readonly ? location.pathname : '/'),
      h('span', { class: 'ff-sep', 'aria-hidden': 'true', text: '/' }),
      siteSwitcher(site, { canSwitch: !readonly && !!session.user }),
      readonly ? h('span', { class: 'ff-tag', text: 'shared' }) : session.demo && site === 'demo.example' ? h('span', { class: 'ff-tag', text: 'demo' }) : null,
      status.el),
    h('div', { class: 'ff-topbar-right' }, ...headerRight)));

  // --- body --------------------------------------------------------------------------------
  const chips = h('div', { class: 'ff-chips', role: 'group', 'aria-label': 'Filters' });
  const errorBox = h('div', { class: 'ff-banner is-error', role: 'alert', hidden: true });
  // Until the first page view arrives: how to install the tracker. Goes away live.
  const snippet = `<script defer data-domain="${site}" src="${location.origin}/js/footfall.js"></script>`;
  const onboarding = h('section', { class: 'ff-banner ff-onboard', hidden: true, 'aria-label': 'Install the tracker' },
    h('div', { class: 'ff-onboard-head' }, h('span', { class: 'ff-wait-dot', 'aria-hidden': 'true' }),
      h('strong', { text: 'Waiting for the first visit…' }),
      h('span', { class: 'ff-muted', text: `Paste this into the <head> of ${site}. This page updates by itself when it arrives.` })),
    h('div', { class: 'ff-snippet' }, h('pre', {}, h('code', { text: snippet })), copyButton(() => snippet)));
  const cards = createCards({ onSelect: (m) => { metric = m; setPref('ff:metric', m); cards.select(m); drawGraph(); } });
  cards.select(metric);
  const chartBox = h('div', { class: 'ff-chart-box' });
  const chart = createChart(chartBox);
  const legend = h('div', { class: 'ff-chart-legend' });
  const topCard = h('section', { class: 'ff-card ff-top', 'aria-label': 'Overview' }, cards.el, legend, chartBox);

  const pick = (dim, row) => setState(withFilter(state, dim, row.value ?? row.key));
  const map = createMapPanel({ onCountryClick: (code) => code && setState(withFilter(state, 'visit:country', code)) });
  const current = createCurrentPanel({ titles, onPick: (row) => pick('event:page', row) });
  const panels = panelDefs({ titles }).map((def) => createPanel({ ...def, fetchRows, onPick: pick }));
  const events = createEventsPanel({ site, run });
  const funnels = createFunnelsPanel({ site, query: () => base() });
  const unvisited = createUnvisitedPanel({ catalogue, run });
  const goals = createGoalsPanel({ site, run, onPick: (row) => pick('event:goal', row),
    canEdit: !readonly && !!session.user, onChange: () => funnels.reload() });
  const footNote = h('span', {});
  const main = h('main', { class: 'ff-page ff-dash', dataset: { site } },
    chips, errorBox, onboarding, topCard,
    h('div', { class: 'ff-grid ff-grid-live' }, map.el, current.el),
    h('div', { class: 'ff-grid' }, panels[1].el, panels[0].el),
    h('div', { class: 'ff-grid' }, panels[2].el, panels[3].el),
    h('div', { class: 'ff-grid' }, events.el, goals.el),
    h('div', { class: 'ff-grid' }, funnels.el),
    unvisited.el,
    h('footer', { class: 'ff-foot ff-muted' }, footNote,
      h('span', {}, 'footfall · privacy-first analytics · no cookies on your visitors')));
  const el = h('div', { class: 'ff-app' }, header, main);

  function showError(e) {
    if (!e) { errorBox.hidden = true; return; }
    errorBox.replaceChildren(h('strong', { text: 'Could not load the numbers. ' }), h('span', { text: e.message }));
    errorBox.hidden = false;
  }

  async function loadCards(my) {
    const res = await api.query({ ...base(), metrics: CARD_METRICS, include: state.compare ? { compare: 'previous_period' } : {} });
    if (my !== gen) return;
    cards.setData(res.results[0], state.compare);
  }

  async function loadGraph(my) {
    const dim = `time:${rq.unit}`;
    const res = await api.query({ ...base(), metrics: CARD_METRICS, dimensions: [dim],
      include: state.compare ? { time_labels: true, compare: 'previous_period' } : { time_labels: true } });
    let cmp = null;
    if (res.meta?.comparison_results) {
      // The server sends the previous period's series with the current one.
      cmp = { meta: { time_labels: res.meta.comparison_time_labels }, results: res.meta.comparison_results };
    } else if (state.compare && res.query?.comparison_date_range) {
      // The previous period as whole days when it is whole days (it is, for every range we offer).
      const [from, to] = res.query.comparison_date_range;
      const days = /T00:00:00/.test(from) && /T23:59:59/.test(to) ? [from.slice(0, 10), to.slice(0, 10)] : [from, to];
      cmp = await api.query({ site_id: site, date_range: days, filters: toApiFilters(state.filters),
        metrics: CARD_METRICS, dimensions: [dim], include: { time_labels: true } });
    }
    if (my !== gen) return;
    const series = (r) => {
      const labels = r.meta?.time_labels || r.results.map((x) => x.dimensions[0]);
      const by = new Map(r.results.map((x) => [x.dimensions[0], x.metrics]));
      return { labels, rows: labels.map((l) => by.get(l) || null) };
    };
    graphData = { main: series(res), cmp: cmp ? series(cmp) : null, unit: rq.unit, nowLabel: rq.includesToday ? rq.nowLabel : null };
    drawGraph();
  }

  function drawGraph() {
    if (!graphData) return;
    const i = CARD_METRICS.indexOf(metric);
    const spec = METRICS[metric];
    const pick2 = (s) => s.rows.map((r) => (r ? r[i] ?? 0 : 0));
    chart.update({
      labels: graphData.main.labels, values: pick2(graphData.main),
      compareLabels: graphData.cmp?.labels, compareValues: graphData.cmp ? pick2(graphData.cmp) : null,
      unit: graphData.unit, nowLabel: graphData.nowLabel, live: rq.includesToday,
      metric: { label: spec.label, format: metric === 'bounce_rate' ? (v) => `${v}%` : spec.format, exact: spec.exact,
        integer: ['visitors', 'visits', 'pageviews', 'visit_duration'].includes(metric) },
    });
    legend.replaceChildren(...[
      h('span', { class: 'ff-legend-item' }, h('span', { class: 'ff-legend-swatch' }), h('span', { text: spec.label })),
      graphData.cmp ? h('span', { class: 'ff-legend-item' }, h('span', { class: 'ff-legend-swatch is-cmp' }), h('span', { text: 'Previous period' })) : null,
      h('span', { class: 'ff-legend-unit ff-muted', text: `per ${graphData.unit}` })].filter(Boolean));
  }

  async function loadMap(my) {
    const res = await run({ dimension: 'visit:country', metrics: ['visitors'], limit: 300 });
    if (my !== gen) return;
    map.setCountries(Object.fromEntries(res.results.filter((r) => r.dimensions[0]).map((r) => [r.dimensions[0].toUpperCase(), r.metrics[0]])));
  }

  /** Fetch everything for the current view; `silent` keeps what is on screen while loading. */
  async function refreshAll(silent) {
    rq = rangeQuery(state, timeZone);
    const my = gen;
    if (!silent) { cards.loading(); chart.loading(); }
    const jobs = [loadCards(my), loadGraph(my), loadMap(my), ...panels.map((p) => p.refresh(silent)), events.refresh(silent),
      goals.refresh(silent), funnels.refresh(silent), unvisited.refresh()];
    const results = await Promise.allSettled(jobs);
    if (my !== gen || destroyed) return;
    const failed = results.find((r) => r.status === 'rejected' && r.reason?.name !== 'AbortError');
    showError(failed ? failed.reason : null);
  }

  // --- live ----------------------------------------------------------------------------------
  const refresher = createThrottle(() => refreshAll(true), { minGap: REFRESH_GAP_MS });

  function setTitle() {
    document.title = `${activeNow ? `(${formatNumber(activeNow)}) ` : ''}${site} · footfall`;
  }

  const live = connectLive(api.streamUrl(site, { limit: 50 }), {
    onStatus: (s) => status.set(s),
    onReconnect: () => refreshAll(true),
    onStats: (stats) => {
      activeNow = stats.activeVisitors || 0;
      cards.setActive(activeNow, (stats.activeByPath || []).length);
      for (const p of stats.pageStats || []) if (p.title) titleCache.set(p.path, p.title);
      current.update(stats);
      onboarding.hidden = readonly || !session.user || stats.trackingSince != null;
      map.setDots(stats.visitorLocations);
      setTitle();
      footNote.textContent = `Times in ${timeZone}${stats.trackingSince ? ` · tracking since ${formatDay(todayIn(timeZone, new Date(stats.trackingSince)))}` : ''}`;
      if (rangeQuery(state, timeZone).includesToday) refresher.schedule();
    },
  });

  // --- view state ----------------------------------------------------------------------------
  function setState(next) {
    setQuery(writeState(next)); // the router calls update() below
  }

  function applyState() {
    state = readState();
    gen++;
    rangePicker.update(state);
    compareBtn.setAttribute('aria-pressed', String(state.compare));
    compareBtn.classList.toggle('is-on', state.compare);
    renderChips(chips, state, {
      onRemove: (i) => {
        setState(withoutFilter(state, i));
        (chips.querySelector('.ff-chip-x') || compareBtn).focus();
      },
      onClear: () => setState({ ...state, filters: [] }),
    });
    map.setSelected(state.filters.find((f) => f.dim === 'visit:country')?.value ?? null);
    refresher.touch();
    refreshAll(false);
  }

  footNote.textContent = `Times in ${timeZone}`;
  setTitle();
  applyState();

  return {
    el,
    update: applyState,
    destroy() {
      destroyed = true;
      gen++;
      refresher.dispose();
      live.close();
      rangePicker.destroy();
      map.destroy();
      chart.destroy();
      // Only clear our own token: the next view may already have set its own.
      if (readonly && getShareToken() === shareToken) setShareToken(null);
    },
  };
}
