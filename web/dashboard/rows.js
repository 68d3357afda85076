// A ranked list with a bar behind each row (proportional to the first value column).
// Rows are keyed, so refreshes update in place: bars glide, focus stays, nothing jumps.
import { h } from './dom.js';
import { formatPercent } from './format.js';

const SKELETON_ROWS = 6;

/**
 * createRowList({columns:[{label, format}], keyLabel, onPick?, pickLabel?})
 * setRows([{key, label, icon?, sub?, values:[..], pct?}])
 */
export function createRowList({ columns, keyLabel, onPick, pickLabel = (r) => `Filter by ${r.label}` }) {
  const headLabel = h('span', { text: keyLabel });
  const head = h('div', { class: 'ff-rows-head', 'aria-hidden': 'true' }, headLabel,
    ...columns.map((c) => h('span', { class: 'ff-rows-col', text: c.label })));
  const list = h('ol', { class: 'ff-rows' });
  const note = h('div', { class: 'ff-rows-note', role: 'status' });
  const el = h('div', { class: 'ff-rowlist' }, head, list, note);
  const byKey = new Map();
  let shown = false;

  function makeRow(r) {
    const bar = h('span', { class: 'ff-row-bar', 'aria-hidden': 'true' });
    const iconEl = h('span', { class: 'ff-row-icon', 'aria-hidden': 'true' });
    const text = h('span', { class: 'ff-row-text' });
    const sub = h('span', { class: 'ff-row-sub' });
    const label = h('span', { class: 'ff-row-label' }, iconEl, text, sub);
    const pct = h('span', { class: 'ff-row-pct' });
    const vals = columns.map(() => h('span', { class: 'ff-row-val' }));
    const inner = [bar, label, pct, ...vals];
    const body = onPick
      ? h('button', { type: 'button', class: 'ff-row', onclick: () => onPick(row.data) }, ...inner)
      : h('div', { class: 'ff-row is-static' }, ...inner);
    const li = h('li', { class: 'is-new' }, body);
    const row = { li, body, bar, iconEl, text, sub, pct, vals, data: r };
    setTimeout(() => li.classList.remove('is-new'), 400);
    return row;
  }

  function fill(row, r, max) {
    row.data = r;
    row.text.textContent = r.label;
    row.iconEl.textContent = r.icon || r.badge || '';
    row.iconEl.classList.toggle('is-badge', !r.icon && !!r.badge);
    row.iconEl.hidden = !r.icon && !r.badge;
    row.sub.textContent = r.sub || '';
    row.sub.hidden = !r.sub;
    row.body.title = r.sub ? `${r.label} — ${r.sub}` : r.label;
    row.pct.textContent = r.pct == null ? '' : formatPercent(r.pct);
    columns.forEach((c, i) => {
      const t = c.format(r.values[i] ?? 0);
      if (row.vals[i].textContent !== t) row.vals[i].textContent = t;
    });
    row.bar.style.width = `${max > 0 ? Math.max(1.5, ((r.values[0] || 0) / max) * 100) : 0}%`;
    if (onPick) row.body.setAttribute('aria-label', `${r.label}: ${columns.map((c, i) => `${c.format(r.values[i] ?? 0)} ${c.label.toLowerCase()}`).join(', ')}. ${pickLabel(r)}`);
    row.li.dataset.key = r.key;
  }

  return {
    el,
    setKeyLabel(t) { headLabel.textContent = t; },
    loading() {
      byKey.clear();
      shown = false;
      el.classList.add('is-loading');
      note.textContent = '';
      list.replaceChildren(...Array.from({ length: SKELETON_ROWS }, (_, i) =>
        h('li', { class: 'ff-row-skeleton', style: { '--w': `${88 - i * 12}%` } })));
    },
    error(message) {
      byKey.clear();
      el.classList.remove('is-loading');
      list.replaceChildren();
      note.className = 'ff-rows-note is-error';
      note.textContent = message;
    },
    setRows(rows, { emptyText = 'Nothing here yet for this period', footer = '' } = {}) {
      el.classList.remove('is-loading');
      if (!shown) { list.replaceChildren(); shown = true; }
      const focused = list.contains(document.activeElement) ? document.activeElement.closest('li')?.dataset.key : null;
      const max = Math.max(0, ...rows.map((r) => r.values[0] || 0));
      const keep = new Set();
      const items = rows.map((r) => {
        let row = byKey.get(r.key);
        if (!row) { row = makeRow(r); byKey.set(r.key, row); }
        fill(row, r, max);
        keep.add(r.key);
        return row.li;
      });
      for (const [k, row] of byKey) if (!keep.has(k)) { row.li.remove(); byKey.delete(k); }
      // Reorder only what moved.
      items.forEach((li, i) => { if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null); });
      while (list.children.length > items.length) list.lastChild.remove();
      if (focused && byKey.has(focused) && !list.contains(document.activeElement)) byKey.get(focused).body.focus({ preventScroll: true });
      note.className = `ff-rows-note${rows.length ? '' : ' is-empty'}`;
      note.textContent = rows.length ? footer : emptyText;
    },
    /** Update secondary labels (e.g. page titles) without re-rendering. */
    setSubs(subs) {
      for (const [k, row] of byKey) {
        const s = subs[k];
        if (s && row.sub.textContent !== s) {
          row.sub.textContent = s; row.sub.hidden = false; row.data.sub = s;
          row.body.title = `${row.data.label} — ${s}`;
        }
      }
    },
  };
}
