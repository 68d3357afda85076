// "Currently viewing": active visitors by page, straight from the live stream.
import { h } from './dom.js';
import { createRowList } from './rows.js';
import { formatNumber } from './format.js';

export function createCurrentPanel({ titles, onPick }) {
  const list = createRowList({ columns: [{ label: 'Now', format: formatNumber }], keyLabel: 'Page', onPick });
  const count = h('span', { class: 'ff-badge-live' }, h('span', { class: 'ff-live-dot', 'aria-hidden': 'true' }), h('span', { text: '0' }));
  const el = h('section', { class: 'ff-card ff-panel ff-current', dataset: { panel: 'current' }, 'aria-labelledby': 'ff-h-current' },
    h('header', { class: 'ff-panel-head' }, h('h2', { id: 'ff-h-current', text: 'Currently viewing' }), count),
    h('div', { class: 'ff-panel-body' }, list.el));
  list.loading();
  let seq = 0;

  return {
    el,
    async update(stats) {
      const rows = (stats.activeByPath || []).slice(0, 10).map((p) => ({ key: p.path, label: p.path, values: [p.count] }));
      count.lastChild.textContent = formatNumber(stats.activeVisitors || 0);
      list.setRows(rows, { emptyText: 'Nobody is on the site right now. New visitors show up here the moment they arrive.' });
      const my = ++seq;
      const subs = await titles(rows.map((r) => r.key)).catch(() => ({}));
      if (my === seq) list.setSubs(subs);
    },
  };
}
