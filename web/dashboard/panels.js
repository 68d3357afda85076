// A card with a tab strip over a ranked list: one breakdown dimension per tab.
import { h } from './dom.js';
import { createRowList } from './rows.js';
import { formatNumber } from './format.js';
import { getJSON, setJSON } from './prefs.js';

/**
 * createPanel({id, title, tabs, fetchRows, onPick})
 *   tabs: [{id, label, keyLabel, dimension?, variants?: [{id, label, dimension}], subs?(keys) → Promise<{key: text}>}]
 *   fetchRows(dimension) → Promise<{rows, total}>   (rows as in rows.js)
 *   onPick(dimension, row)
 */
export function createPanel({ id, title, tabs, fetchRows, onPick, className = '' }) {
  const saved = getJSON(`ff:tab:${id}`, {});
  let tab = tabs.find((t) => t.id === saved.tab) || tabs[0];
  const variantOf = new Map(tabs.filter((t) => t.variants).map((t) =>
    [t.id, t.variants.find((v) => v.id === saved[t.id]) || t.variants[0]]));
  let gen = 0;

  const list = createRowList({
    columns: [{ label: 'Visitors', format: formatNumber }],
    keyLabel: tab.keyLabel,
    onPick: (row) => onPick(dimension(), row),
  });

  const tabButtons = tabs.map((t) => h('button', {
    type: 'button', role: 'tab', class: 'ff-tab', id: `ff-tab-${id}-${t.id}`, text: t.label,
    'aria-selected': String(t === tab), tabindex: t === tab ? '0' : '-1',
    onclick: () => select(t),
  }));
  const tablist = h('div', { class: 'ff-tabs', role: 'tablist', 'aria-label': `${title} breakdown` }, ...(tabs.length > 1 ? tabButtons : []));
  tablist.addEventListener('keydown', (e) => {
    const i = tabs.indexOf(tab);
    const j = e.key === 'ArrowRight' ? i + 1 : e.key === 'ArrowLeft' ? i - 1 : null;
    if (j === null) return;
    e.preventDefault();
    const t = tabs[(j + tabs.length) % tabs.length];
    select(t);
    tabButtons[tabs.indexOf(t)].focus();
  });

  const variantSelect = h('select', { class: 'ff-select ff-select-sm', 'aria-label': 'Breakdown', onchange: () => {
    const v = tab.variants.find((x) => x.id === variantSelect.value);
    variantOf.set(tab.id, v);
    persist();
    list.setKeyLabel(v.label);
    refresh(false);
  } });
  const variantWrap = h('div', { class: 'ff-panel-variant' }, variantSelect);

  const body = h('div', { class: 'ff-panel-body', role: 'tabpanel' }, variantWrap, list.el);
  const el = h('section', { class: `ff-card ff-panel ${className}`, dataset: { panel: id }, 'aria-labelledby': `ff-h-${id}` },
    h('header', { class: 'ff-panel-head' }, h('h2', { id: `ff-h-${id}`, text: title }), tablist), body);

  function dimension() {
    return tab.variants ? variantOf.get(tab.id).dimension : tab.dimension;
  }

  function persist() {
    const o = { tab: tab.id };
    for (const [k, v] of variantOf) o[k] = v.id;
    setJSON(`ff:tab:${id}`, o);
  }

  function syncTabs() {
    tabButtons.forEach((b, i) => {
      const on = tabs[i] === tab;
      b.setAttribute('aria-selected', String(on));
      b.tabIndex = on ? 0 : -1;
    });
    body.setAttribute('aria-labelledby', `ff-tab-${id}-${tab.id}`);
    variantWrap.hidden = !tab.variants;
    if (tab.variants) {
      variantSelect.replaceChildren(...tab.variants.map((v) => h('option', { value: v.id, text: v.label })));
      variantSelect.value = variantOf.get(tab.id).id;
    }
    list.setKeyLabel(tab.variants ? variantOf.get(tab.id).label : tab.keyLabel);
  }

  function select(t) {
    if (t === tab) return;
    tab = t;
    persist();
    syncTabs();
    refresh(false);
  }

  async function refresh(silent) {
    const my = ++gen;
    const t = tab;
    if (!silent) list.loading();
    try {
      const { rows, total } = await fetchRows(dimension());
      if (my !== gen) return;
      list.setRows(rows, { footer: total > rows.length ? `Top ${rows.length} of ${formatNumber(total)}` : '' });
      if (t.subs && rows.length) {
        const subs = await t.subs(rows.map((r) => r.key));
        if (my === gen) list.setSubs(subs);
      }
    } catch (e) {
      if (my === gen && e.name !== 'AbortError') list.error(`Couldn't load this: ${e.message}`);
    }
  }

  syncTabs();
  return { el, refresh, dimension };
}
