// Funnels: a saved funnel's steps as bars — the visitors who reached each step in order
// within a visit, the share of those who entered, and how many dropped off before it.
import { h } from './dom.js';
import { formatNumber } from './format.js';
import { api } from './api.js';
import { getPref, setPref } from './prefs.js';

const pct = (v) => `${Number(v || 0).toFixed(1).replace(/\.0$/, '')}%`;

/**
 * createFunnelsPanel({site, query})
 *   query() → the dashboard's {site_id, date_range, date?, filters} for the current view
 */
export function createFunnelsPanel({ site, query }) {
  const prefKey = `ff:funnel:${site}`;
  let funnels = null; // saved funnels, once listed
  let gen = 0;
  const select = h('select', { class: 'ff-input ff-input-sm', id: 'ff-funnel-pick', 'aria-label': 'Funnel',
    onchange: () => { setPref(prefKey, select.value); refresh(false); } });
  const steps = h('ol', { class: 'ff-funnel' });
  const note = h('div', { class: 'ff-rows-note', role: 'status' });
  const summary = h('p', { class: 'ff-funnel-summary ff-muted' });
  const el = h('section', { class: 'ff-card ff-panel', dataset: { panel: 'funnels' }, 'aria-labelledby': 'ff-h-funnels' },
    h('header', { class: 'ff-panel-head' }, h('h2', { id: 'ff-h-funnels', text: 'Funnels' }), select),
    h('div', { class: 'ff-panel-body' }, summary, steps, note));

  async function list() {
    const res = await api.funnels(site);
    funnels = res.funnels || [];
    const wanted = getPref(prefKey);
    select.replaceChildren(...funnels.map((f) => h('option', { value: f.name, text: f.name })));
    if (funnels.some((f) => f.name === wanted)) select.value = wanted;
    select.hidden = funnels.length === 0;
  }

  function draw(res) {
    const entered = res.entering_visitors || 0;
    summary.textContent = `${formatNumber(entered)} of ${formatNumber(res.all_visitors)} visitors entered (${pct(res.entering_visitors_percentage)}); `
      + `${pct(res.steps.at(-1)?.conversion_rate)} completed.`;
    steps.replaceChildren(...res.steps.map((s, i) => h('li', { class: 'ff-funnel-step', dataset: { step: String(i + 1) } },
      h('div', { class: 'ff-funnel-head' },
        h('span', { class: 'ff-funnel-n', text: String(i + 1) }),
        h('span', { class: 'ff-funnel-label', text: s.label }),
        h('span', { class: 'ff-funnel-visitors', text: formatNumber(s.visitors) }),
        h('span', { class: 'ff-funnel-rate', text: pct(s.conversion_rate) })),
      h('div', { class: 'ff-funnel-track', 'aria-hidden': 'true' },
        h('span', { class: 'ff-funnel-bar', style: { width: `${Math.max(entered ? 1 : 0, s.conversion_rate || 0)}%` } })),
      i > 0 ? h('div', { class: 'ff-funnel-drop ff-muted',
        text: `${formatNumber(s.dropoff)} dropped off (${pct(s.dropoff_percentage)})` }) : null)));
    note.textContent = '';
  }

  async function refresh(silent) {
    const my = ++gen;
    try {
      if (funnels === null) await list();
      if (my !== gen) return;
      if (!funnels.length) {
        steps.replaceChildren();
        summary.textContent = '';
        note.className = 'ff-rows-note is-empty';
        note.textContent = 'No funnels yet. Save one with `footfall funnels add` or the admin API: 2 to 8 goals, in order.';
        return;
      }
      if (!silent) el.classList.add('is-loading');
      const res = await api.funnel({ ...query(), funnel: select.value });
      if (my !== gen) return;
      el.classList.remove('is-loading');
      draw(res);
    } catch (e) {
      if (my !== gen) return;
      el.classList.remove('is-loading');
      note.className = 'ff-rows-note is-error';
      note.textContent = `Couldn't load the funnel: ${e.message}`;
    }
  }

  return {
    el,
    refresh,
    /** Saved funnels changed: list them again. */
    reload() { funnels = null; return refresh(false); },
  };
}
