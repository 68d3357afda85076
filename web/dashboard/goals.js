// Goals: per goal, the visitors who converted, the conversions, the conversion rate and (for
// revenue goals) the revenue, for the dashboard's range and filters. Choosing a goal filters the whole dashboard by it.
import { h } from './dom.js';
import { createRowList } from './rows.js';
import { formatNumber } from './format.js';
import { createGoalSettings } from './goalsettings.js';

// A revenue figure as the API gives it ({short, long, value, currency}); other goals have none.
const money = (v) => (v && typeof v === 'object' ? v.short : '—');
const rate = (v) => `${Number(v || 0).toFixed(v >= 10 ? 1 : 2).replace(/\.?0+$/, '')}%`;

/**
 * createGoalsPanel({site, run, onPick, canEdit, onChange})
 *   run({dimension, metrics, limit}) → Promise<{results, meta}> with the dashboard's range + filters
 *   onPick({key, label}) — filter by the goal
 *   canEdit — a signed-in user: the panel offers goal and funnel settings
 *   onChange() — settings changed
 */
export function createGoalsPanel({ site, run, onPick, canEdit = false, onChange = () => {} }) {
  let gen = 0;
  const columns = [
    { label: 'Visitors', format: formatNumber },
    { label: 'Conversions', format: formatNumber },
    { label: 'CR', format: rate },
    { label: 'Revenue', format: money },
  ];
  const list = createRowList({ columns, keyLabel: 'Goal', onPick, pickLabel: (r) => `Filter by goal ${r.label}` });
  const settings = canEdit ? createGoalSettings({ site, onChange: () => { refresh(false); onChange(); } }) : null;
  const settingsBtn = settings ? h('button', { type: 'button', class: 'ff-btn ff-btn-ghost ff-btn-sm', dataset: { testid: 'goal-settings' },
    'aria-expanded': 'false', text: 'Settings',
    onclick: () => settingsBtn.setAttribute('aria-expanded', String(settings.toggle())) }) : null;
  const el = h('section', { class: 'ff-card ff-panel', dataset: { panel: 'goals' }, 'aria-labelledby': 'ff-h-goals' },
    h('header', { class: 'ff-panel-head' }, h('h2', { id: 'ff-h-goals', text: 'Goals' }), settingsBtn),
    h('div', { class: 'ff-panel-body' }, settings ? settings.el : null, list.el));

  async function refresh(silent) {
    const my = ++gen;
    if (!silent) list.loading();
    try {
      const res = await run({ dimension: 'event:goal', metrics: ['visitors', 'events', 'conversion_rate', 'total_revenue'], limit: 50 });
      if (my !== gen) return;
      list.setRows(res.results.map((r) => ({ key: r.dimensions[0], label: r.dimensions[0], values: r.metrics })),
        { emptyText: 'No conversions in this period. Goals are set with `footfall goals add` or the admin API.' });
    } catch (e) {
      if (my === gen) list.error(`Couldn't load goals: ${e.message}`);
    }
  }

  return { el, refresh };
}
