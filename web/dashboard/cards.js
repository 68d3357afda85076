// The row of top-line numbers: "Active now" (live) and the six range metrics. Clicking a
// metric card picks what the graph shows.
import { h } from './dom.js';
import { METRICS, formatNumber, plural } from './format.js';

export const CARD_METRICS = ['visitors', 'visits', 'pageviews', 'views_per_visit', 'bounce_rate', 'visit_duration'];

function setText(el, text, animate) {
  if (el.textContent === text) return;
  el.textContent = text;
  if (animate) {
    el.classList.remove('is-bumped');
    void el.offsetWidth; // restart the animation
    el.classList.add('is-bumped');
  }
}

export function createCards({ onSelect }) {
  const liveValue = h('span', { class: 'ff-stat-value', dataset: { testid: 'active-now' } });
  const liveSub = h('span', { class: 'ff-stat-sub' });
  const announcer = h('div', { class: 'ff-sr-only', 'aria-live': 'polite', 'aria-atomic': 'true' });
  const live = h('div', { class: 'ff-stat ff-stat-live is-loading', dataset: { metric: 'active' } },
    h('span', { class: 'ff-stat-label' }, h('span', { class: 'ff-live-dot', 'aria-hidden': 'true' }), 'Active now'),
    liveValue, liveSub, announcer);

  const cards = new Map();
  for (const m of CARD_METRICS) {
    const value = h('span', { class: 'ff-stat-value' });
    const change = h('span', { class: 'ff-change' });
    const prev = h('span', {});
    const btn = h('button', { type: 'button', class: 'ff-stat is-loading', dataset: { metric: m },
      'aria-pressed': 'false', onclick: () => onSelect(m) },
    h('span', { class: 'ff-stat-label', text: METRICS[m].label }),
    value, h('span', { class: 'ff-stat-sub' }, change, prev));
    cards.set(m, { btn, value, change, prev, loaded: false });
  }
  const el = h('div', { class: 'ff-stats', role: 'group', 'aria-label': 'Key metrics' }, live, ...[...cards.values()].map((c) => c.btn));
  let lastActive = null;

  return {
    el,
    setActive(n, pages) {
      live.classList.remove('is-loading');
      setText(liveValue, formatNumber(n), lastActive !== null);
      liveSub.textContent = n ? `on ${plural(pages, 'page', 'pages')}` : 'nobody right now';
      if (n !== lastActive) announcer.textContent = `${plural(n, 'visitor', 'visitors')} active now`;
      lastActive = n;
    },
    select(metric) {
      for (const [m, c] of cards) {
        c.btn.classList.toggle('is-selected', m === metric);
        c.btn.setAttribute('aria-pressed', String(m === metric));
      }
    },
    loading() { for (const c of cards.values()) { c.btn.classList.add('is-loading'); c.loaded = false; } },
    /** row: {metrics:[...], comparison?:{metrics, change}} in CARD_METRICS order. */
    setData(row, compareOn) {
      CARD_METRICS.forEach((m, i) => {
        const c = cards.get(m);
        const spec = METRICS[m];
        const v = row ? row.metrics[i] : null;
        c.btn.classList.remove('is-loading');
        setText(c.value, spec.format(v ?? 0), c.loaded);
        c.value.title = spec.exact(v ?? 0);
        c.loaded = true;
        const cmp = compareOn && row?.comparison;
        if (cmp) {
          const raw = cmp.change?.[i];
          const ch = raw == null ? null : Math.round(raw);
          const good = ch == null || ch === 0 ? null : (ch > 0) !== !!spec.lowerIsBetter;
          // The server gives bounce rate's change in percentage points, the rest in percent.
          const unit = m === 'bounce_rate' ? ['pp', 'points'] : ['%', 'percent'];
          c.change.textContent = ch == null ? '' : ch === 0 ? `0${unit[0]}` : `${ch > 0 ? '▲' : '▼'} ${Math.abs(ch)}${unit[0]}`;
          c.change.className = `ff-change ${good === null ? 'is-flat' : good ? 'is-good' : 'is-bad'}`;
          c.change.setAttribute('aria-label', ch == null ? '' : `${ch >= 0 ? 'up' : 'down'} ${Math.abs(Math.round(ch))} ${unit[1]}`);
          c.prev.textContent = `vs ${spec.format(cmp.metrics[i] ?? 0)}`;
        } else {
          c.change.textContent = '';
          c.change.className = 'ff-change';
          c.prev.textContent = '';
        }
      });
    },
  };
}
