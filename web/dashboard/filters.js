// Dashboard view state (range, comparison, filters) <-> the URL query string, and filter chips.
// ?range=7d&compare=0&f=visit:country:is:DE&f=event:page:is:/pricing
import { h, icon } from './dom.js';
import { countryName, flag, supportsFlags } from './format.js';
import { DEFAULT_RANGE, RANGES, isValidDay } from './range.js';

const OPS = new Set(['is', 'is_not', 'contains']);

export const DIMENSION_LABELS = {
  'event:page': 'Page',
  'visit:entry_page': 'Entry page',
  'visit:exit_page': 'Exit page',
  'visit:source': 'Source',
  'visit:referrer': 'Referrer',
  'visit:utm_source': 'UTM source',
  'visit:utm_medium': 'UTM medium',
  'visit:utm_campaign': 'UTM campaign',
  'visit:country': 'Country',
  'visit:region': 'Region',
  'visit:city': 'City',
  'visit:browser': 'Browser',
  'visit:os': 'OS',
  'visit:device': 'Device',
  'event:name': 'Event',
  'event:goal': 'Goal',
  // A saved segment: the server puts its filters in its place.
  segment: 'Segment',
};

export function dimensionLabel(dim) {
  if (dim.startsWith('event:props:')) return `Property ${dim.slice(12)}`;
  return DIMENSION_LABELS[dim] || dim;
}

function parseFilter(s) {
  const parts = s.split(':');
  const n = s.startsWith('event:props:') ? 3 : s.startsWith('segment:') ? 1 : 2;
  if (parts.length < n + 2) return null;
  const dim = parts.slice(0, n).join(':');
  const op = parts[n];
  const value = parts.slice(n + 1).join(':');
  if (!OPS.has(op)) return null;
  if (!DIMENSION_LABELS[dim] && !dim.startsWith('event:props:')) return null;
  return { dim, op, value };
}

/** Read the view state from location.search. */
export function readState(search = location.search) {
  const p = new URLSearchParams(search);
  let range = p.get('range') || DEFAULT_RANGE;
  let from = p.get('from');
  let to = p.get('to');
  if (range === 'custom') {
    if (!isValidDay(from) || !isValidDay(to)) range = DEFAULT_RANGE;
    else if (from > to) [from, to] = [to, from];
  } else if (!RANGES.some((r) => r.id === range)) {
    range = DEFAULT_RANGE;
  }
  const filters = p.getAll('f').map(parseFilter).filter(Boolean);
  return { range, from: range === 'custom' ? from : null, to: range === 'custom' ? to : null,
    // Comparison with the previous period is on unless turned off (compare=0).
    compare: p.get('compare') !== '0', filters };
}

/** Serialise the view state; unknown parameters (e.g. share) are kept. */
export function writeState(state, search = location.search) {
  const p = new URLSearchParams(search);
  for (const k of ['range', 'from', 'to', 'compare', 'f']) p.delete(k);
  if (state.range !== DEFAULT_RANGE) p.set('range', state.range);
  if (state.range === 'custom') { p.set('from', state.from); p.set('to', state.to); }
  if (!state.compare) p.set('compare', '0');
  for (const f of state.filters) p.append('f', `${f.dim}:${f.op}:${f.value}`);
  return p;
}

/** Filters in the query API's syntax. */
export function toApiFilters(filters) {
  return filters.map((f) => [f.op, f.dim, [f.value]]);
}

/** Add a filter, replacing any existing one on the same dimension. */
export function withFilter(state, dim, value) {
  const filters = state.filters.filter((f) => f.dim !== dim);
  filters.push({ dim, op: 'is', value });
  return { ...state, filters };
}

export function withoutFilter(state, index) {
  return { ...state, filters: state.filters.filter((_, i) => i !== index) };
}

function valueLabel(f) {
  if (f.dim === 'visit:country') return supportsFlags() ? `${flag(f.value)} ${countryName(f.value)}` : countryName(f.value);
  return f.value === '' ? '(none)' : f.value;
}

const OP_LABEL = { is: 'is', is_not: 'is not', contains: 'contains' };

/** Removable chips for the active filters. */
export function renderChips(container, state, { onRemove, onClear }) {
  container.replaceChildren();
  container.hidden = state.filters.length === 0;
  state.filters.forEach((f, i) => {
    const name = `${dimensionLabel(f.dim)} ${OP_LABEL[f.op]} ${valueLabel(f)}`;
    container.append(h('span', { class: 'ff-chip', dataset: { dim: f.dim } },
      h('span', { class: 'ff-chip-dim', text: `${dimensionLabel(f.dim)} ${OP_LABEL[f.op]}` }),
      h('strong', { class: 'ff-chip-val', text: valueLabel(f), title: f.value }),
      h('button', { type: 'button', class: 'ff-chip-x', 'aria-label': `Remove filter: ${name}`,
        title: 'Remove filter', onclick: () => onRemove(i) }, icon('x'))));
  });
  if (state.filters.length > 1) {
    container.append(h('button', { type: 'button', class: 'ff-link-btn', text: 'Clear all', onclick: onClear }));
  }
}
