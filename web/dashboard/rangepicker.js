// The date range menu: presets, a custom from–to, and keyboard shortcuts.
import { h, icon } from './dom.js';
import { popover } from './popover.js';
import { RANGES, rangeLabel } from './range.js';

export function createRangePicker({ onChange, today }) {
  const label = h('span', { class: 'ff-range-label' });
  const trigger = h('button', { type: 'button', class: 'ff-btn ff-range-btn', dataset: { testid: 'range' } },
    icon('calendar'), label, icon('chevron', 'ff-icon ff-chev'));
  const items = RANGES.map((r) => h('button', { type: 'button', class: 'ff-menu-item', dataset: { range: r.id },
    onclick: () => { pop.close(); onChange({ range: r.id, from: null, to: null }); } },
  h('span', { text: r.label }), h('kbd', { text: r.key.toUpperCase(), 'aria-hidden': 'true' })));
  const from = h('input', { type: 'date', class: 'ff-input ff-input-sm', id: 'ff-from', required: true });
  const to = h('input', { type: 'date', class: 'ff-input ff-input-sm', id: 'ff-to', required: true });
  const err = h('p', { class: 'ff-form-error', role: 'alert' });
  const custom = h('form', { class: 'ff-custom-range', onsubmit: (e) => {
    e.preventDefault();
    if (!from.value || !to.value) { err.textContent = 'Pick both dates.'; return; }
    let [a, b] = [from.value, to.value];
    if (a > b) [a, b] = [b, a];
    err.textContent = '';
    pop.close();
    onChange({ range: 'custom', from: a, to: b });
  } },
  h('span', { class: 'ff-menu-title', text: 'Custom range' }),
  h('div', { class: 'ff-custom-fields' },
    h('label', { for: 'ff-from' }, h('span', { text: 'From' }), from),
    h('label', { for: 'ff-to' }, h('span', { text: 'To' }), to)),
  err,
  h('button', { type: 'submit', class: 'ff-btn ff-btn-primary ff-btn-sm', text: 'Apply' }));
  const panel = h('div', { class: 'ff-menu ff-range-menu', role: 'group' }, ...items, h('hr'), custom);
  const pop = popover({ trigger, panel, align: 'right', label: 'Date range', onOpen: () => {
    const t = today();
    from.max = t; to.max = t;
  } });

  let state = null;
  function onKey(e) {
    if (e.ctrlKey || e.metaKey || e.altKey || e.target.closest('input, textarea, select, [contenteditable]')) return;
    const r = RANGES.find((x) => x.key === e.key.toLowerCase());
    if (r) { e.preventDefault(); onChange({ range: r.id, from: null, to: null }); }
  }
  document.addEventListener('keydown', onKey);

  return {
    el: pop.el,
    update(s) {
      state = s;
      label.textContent = rangeLabel(s);
      for (const b of items) b.setAttribute('aria-current', String(b.dataset.range === s.range));
      if (s.range === 'custom') { from.value = s.from; to.value = s.to; }
    },
    destroy() { document.removeEventListener('keydown', onKey); },
    get state() { return state; },
  };
}
