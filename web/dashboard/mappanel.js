// The world map card: countries shaded by visitors in the range, live dots for who is here now.
import { h } from './dom.js';
import { formatNumber, plural } from './format.js';

export function createMapPanel({ onCountryClick }) {
  const holder = h('div', { class: 'ff-map-holder' });
  const liveNote = h('span', { class: 'ff-map-legend-live' }, h('span', { class: 'ff-map-legend-dot', 'aria-hidden': 'true' }), h('span', { text: 'Live visitors' }));
  const rangeNote = h('span', { class: 'ff-map-legend-range' }, h('span', { class: 'ff-map-legend-ramp', 'aria-hidden': 'true' }), h('span', { text: 'Visitors in period' }));
  const el = h('section', { class: 'ff-card ff-panel ff-map-card', dataset: { panel: 'map' }, 'aria-labelledby': 'ff-h-map' },
    h('header', { class: 'ff-panel-head' }, h('h2', { id: 'ff-h-map', text: 'Visitor map' }),
      h('div', { class: 'ff-map-legend' }, liveNote, rangeNote)),
    holder);

  let map = null;
  let pending = { countries: null, dots: null, selected: null };
  const ready = import('./map.js').then((mod) => {
    map = mod.createMap(holder, { onCountryClick, formatNumber });
    if (pending.countries) map.setCountries(pending.countries);
    if (pending.dots) map.setDots(pending.dots);
    if (pending.selected !== null) map.setSelected?.(pending.selected);
  }).catch((e) => {
    holder.replaceChildren(h('p', { class: 'ff-rows-note is-error', text: `The map could not be loaded (${e.message}).` }));
  });

  return {
    el,
    ready,
    setCountries(values) { pending.countries = values; map?.setCountries(values); },
    setDots(locations) {
      const dots = (locations || []).filter((d) => d.latitude != null && d.longitude != null);
      pending.dots = dots;
      map?.setDots(dots);
      const n = dots.reduce((s, d) => s + (d.count || 1), 0);
      liveNote.lastChild.textContent = n ? `${plural(n, 'visitor', 'visitors')} live` : 'Live visitors';
    },
    setSelected(code) { pending.selected = code; map?.setSelected?.(code); },
    destroy() { map?.destroy(); },
  };
}
